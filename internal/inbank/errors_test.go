package inbank

import (
	"net/http"
	"testing"
	"time"

	"github.com/smartrent-bridge/bridge/internal/inbankapi"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"5", 5 * time.Second}, {"-3", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func FuzzDecodeResponse(f *testing.F) {
	for _, s := range []string{
		`{"uuid":"a","status":"pending","creditContractUuid":"c"}`,
		`{"message":"not_found"}`, `{"message":"x","errorCode":"ASSET_MODEL_NOT_FOUND"}`,
		`<html>`, ``, `{"periods":[12,"x"]}`, "\xff\xfe",
	} {
		f.Add([]byte(s), 422)
	}
	f.Fuzz(func(t *testing.T, body []byte, status int) {
		e := decodeAPIError("op", status, "", body, time.Now())
		if e == nil || e.Message == "" && e.ErrorCode == "" {
			t.Fatalf("no message for %q", body)
		}
		if len(e.Message) > maxMessage+len("…")+1 && len(e.Message) > len(body) {
			t.Fatalf("message longer than the body: %q", e.Message)
		}
		for _, v := range []any{&inbankapi.Session{}, &inbankapi.RentalConditions{}, &inbankapi.Calculation{}, &inbankapi.CreatedSession{}, &inbankapi.Contract{}} {
			_ = decodeBody(body, v) // must not panic
		}
	})
}
