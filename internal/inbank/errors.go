package inbank

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// maxMessage bounds how much of an unexpected body goes into an error.
const maxMessage = 200

// excerpt turns a non-JSON body into a short, printable message.
func excerpt(body []byte) string {
	s := strings.TrimSpace(string(body))
	if len(s) > maxMessage {
		s = s[:maxMessage]
		for !utf8.ValidString(s) && len(s) > 0 {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
}
