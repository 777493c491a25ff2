package natsconn_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

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

// TestRedactErrorHidesWhatNATSRepeats: nats.go repeats a server it cannot
// parse, password and all; the error a binary prints has none.
func TestRedactErrorHidesWhatNATSRepeats(t *testing.T) {
	for _, url := range []string{"nats://operator:S3cret-Pa55/word@127.0.0.1:1", "operator:S3cret-Pa55/word@127.0.0.1:1", "nats://S3cret-Pa55/word@127.0.0.1:1"} {
		// What a binary does: credentials out of the URL, then connect.
		servers, user, password, token := natsconn.Credentials(url)
		if strings.Contains(servers, "S3cret") || !strings.HasSuffix(servers, "127.0.0.1:1") || password+token != "S3cret-Pa55/word" {
			t.Errorf("Credentials(%q) = %q, %q, %q, %q", url, servers, user, password, token)
		}
		_, err := nats.Connect(servers, nats.UserInfo(user, password), nats.Timeout(200*time.Millisecond))
		if err == nil {
			t.Fatalf("%s: connected", url)
		}
		got := natsconn.RedactError(err, url, password, token)
		if strings.Contains(got, "S3cret") || strings.Contains(got, "Pa55") {
			t.Errorf("RedactError(%q) = %q", err, got)
		}
	}
	if got := natsconn.RedactError(errors.New("auth failed for another-secret"), "nats://h", "another-secret"); strings.Contains(got, "another-secret") {
		t.Errorf("an extra secret kept: %q", got)
	}
}

// TestConnectErrorNamesNoPassword: the binaries' start-up error for an
// unreachable or unparsable server with credentials in its URL.
func TestConnectErrorNamesNoPassword(t *testing.T) {
	for _, url := range []string{"nats://ingress:S3cret-Pa55/word@127.0.0.1:1", "ingress:S3cret-Pa55@word@127.0.0.1:1", "nats://S3cret-Pa55/word@127.0.0.1:1"} {
		s := &natsconn.Settings{URL: url, ConnectTimeout: 300 * time.Millisecond}
		_, _, err := natsconn.Connect(context.Background(), s, "test", slog.New(slog.DiscardHandler), nil)
		if err == nil || strings.Contains(err.Error(), "S3cret") || strings.Contains(err.Error(), "Pa55") || !strings.Contains(err.Error(), "cannot reach NATS") {
			t.Errorf("%s: %v", url, err)
		}
	}
}
