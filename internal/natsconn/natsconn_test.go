package natsconn_test

import (
	"strings"
	"testing"

	"github.com/smartrent-bridge/bridge/internal/natsconn"
)

// TestRedactHidesEveryPassword: every way nats.go accepts a server with
// credentials prints without them.
func TestRedactHidesEveryPassword(t *testing.T) {
	for in, want := range map[string]string{
		"nats://ingress:Pa55word@host:4222":          "nats://ingress:redacted@host:4222",
		"ingress:Pa55word@host:4222":                 "ingress:redacted@host:4222",
		"nats://ingress:Pa/5s@word@host":             "nats://ingress:redacted@host",
		"tls://ingress:p%2Fw:x@host":                 "tls://ingress:redacted@host",
		"nats://s3cr3t-token@host":                   "nats://redacted@host",
		"nats://a:Pa55word@h1, nats://b:Other/pw@h2": "nats://a:redacted@h1,nats://b:redacted@h2",
		"nats://127.0.0.1:4222":                      "nats://127.0.0.1:4222",
		"ws://user:Pa55word@host:443/path?q=1":       "ws://user:redacted@host:443/path?q=1",
	} {
		got := natsconn.Redact(in)
		if got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
		for _, secret := range []string{"Pa55word", "Pa/5s", "p%2Fw", "s3cr3t", "Other/pw"} {
			if strings.Contains(got, secret) {
				t.Errorf("Redact(%q) = %q keeps %q", in, got, secret)
			}
		}
	}
}
