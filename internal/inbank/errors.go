package inbank

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors matched by [*APIError] through errors.Is.
var (
	ErrUnauthorized = errors.New("inbank: unauthorized")
	ErrForbidden    = errors.New("inbank: forbidden")
	ErrNotFound     = errors.New("inbank: not found")
	ErrRejected     = errors.New("inbank: request rejected") // 400 and 422
	ErrRateLimited  = errors.New("inbank: rate limited")
	ErrUnavailable  = errors.New("inbank: unavailable")  // 502, 503, 504
	ErrServer       = errors.New("inbank: server error") // 500 and other 5xx
)

// APIError is an answer from Inbank other than 2xx.
type APIError struct {
	Op         string        // operation, e.g. "create_session"
	Status     int           // HTTP status
	Message    string        // "message" of the body, or a short excerpt of a non-JSON body
	ErrorCode  string        // "errorCode" of 400/422 bodies, e.g. ASSET_MODEL_NOT_FOUND
	RetryAfter time.Duration // parsed Retry-After header, 0 if none
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "inbank %s: HTTP %d", e.Op, e.Status)
	if e.ErrorCode != "" {
		fmt.Fprintf(&b, " %s", e.ErrorCode)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

// Retryable reports whether the same request may succeed later: 429 and
// 502–504. Every other status, 500 included, is permanent: the engineering
// rules allow retries only for these.
func (e *APIError) Retryable() bool {
	switch e.Status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// Is maps the status to the package's sentinel errors.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrRejected:
		return e.Status == http.StatusBadRequest || e.Status == http.StatusUnprocessableEntity
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	case ErrUnavailable:
		return e.Status >= 502 && e.Status <= 504
	case ErrServer:
		return e.Status >= 500 && !(e.Status >= 502 && e.Status <= 504)
	}
	return false
}

// TransportError is a request that got no HTTP answer: connection refused,
// reset, timeout. It is always retryable.
type TransportError struct {
	Op  string
	Err error
}

func (e *TransportError) Error() string { return fmt.Sprintf("inbank %s: %v", e.Op, e.Err) }
func (e *TransportError) Unwrap() error { return e.Err }

// Retryable is always true: the request may not even have arrived.
func (e *TransportError) Retryable() bool { return true }

// IsTransient reports whether err is worth retrying: a transport failure or
// timeout, an API answer of 429 or 502–504, or a call not sent (a local
// guard refused it). Validation errors and other API answers are permanent.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var api *APIError
	if errors.As(err, &api) {
		return api.Retryable()
	}
	var ns *NotSentError
	if errors.As(err, &ns) {
		return true
	}
	var tr *TransportError
	if errors.As(err, &tr) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// RetryAfter returns the delay Inbank asked for in Retry-After, or 0.
func RetryAfter(err error) time.Duration {
	var api *APIError
	if errors.As(err, &api) {
		return api.RetryAfter
	}
	var ns *NotSentError
	if errors.As(err, &ns) {
		return ns.RetryAfter
	}
	return 0
}

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

// NotSentError is a call refused before it was sent to Inbank (a shop's
// concurrency budget or circuit breaker). Inbank did not act, so it is
// transient and certain: repeating it cannot repeat a side effect. It is
// no answer of Inbank's and carries no HTTP status (it once posed as a
// 503, and order.failed reported an Inbank status Inbank never sent).
type NotSentError struct {
	Op, Reason string
	RetryAfter time.Duration
}

func (e *NotSentError) Error() string {
	return fmt.Sprintf("inbank %s: not sent: %s", e.Op, e.Reason)
}
