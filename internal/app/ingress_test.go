package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smartrent-bridge/bridge/internal/callbacktoken"
	"github.com/smartrent-bridge/bridge/internal/ingress"
	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

const ingressSecret = "ingress-test-secret-0123"

func TestIngressBinary(t *testing.T) {
	srv := natstest.Run(t, natstest.Options{})
	env := map[string]string{
		"NATS_URL": srv.ClientURL(), "CALLBACK_SECRET": ingressSecret,
		"LISTEN_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0",
	}
	addrs, cancel, done := startIngress(t, env)
	tokens, _ := callbacktoken.New([]string{ingressSecret})
	resp, err := http.Post("http://"+addrs.Callbacks.String()+callbacktoken.PathPrefix+tokens.Token("ORD-1"), "application/json", strings.NewReader(`{"status":"granted"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "OK" {
		t.Fatalf("callback: %d %q", resp.StatusCode, b)
	}
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": `smartrent_ingress_callbacks_total{outcome="accepted"} 1`} {
		resp, err := http.Get("http://" + addrs.Ops.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d, want %q in:\n%.300s", path, resp.StatusCode, want, b)
		}
	}
	srv.Stop()
	resp, err = http.Get("http://" + addrs.Ops.String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("/readyz with NATS down: %d, want 503", resp.StatusCode)
	}
	cancel() // SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ingress did not shut down")
	}
}

// startIngress runs the ingress with env until cancel; done has its result.
func startIngress(t *testing.T, env map[string]string) (IngressStarted, context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan IngressStarted, 1)
	done := make(chan error, 1)
	go func() { done <- RunIngress(ctx, nil, func(k string) string { return env[k] }, io.Discard, started) }()
	select {
	case addrs := <-started:
		return addrs, cancel, done
	case err := <-done:
		cancel()
		t.Fatalf("ingress did not start: %v", err)
		return IngressStarted{}, nil, nil
	}
}

func TestIngressStartupErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no ingressSecret", map[string]string{}, "CALLBACK_SECRET is required"},
		{"weak ingressSecret", map[string]string{"CALLBACK_SECRET": "short"}, "at least 16"},
		{"no NATS", map[string]string{"CALLBACK_SECRET": ingressSecret, "NATS_URL": "nats://127.0.0.1:1", "NATS_CONNECT_TIMEOUT": "300ms"}, "cannot reach NATS"},
		{"tolerance beyond the duplicate window", map[string]string{"CALLBACK_SECRET": ingressSecret, "INBANK_CALLBACK_SIGNATURE_TOLERANCE": "5m", "NATS_URL": "nats://127.0.0.1:1", "NATS_CONNECT_TIMEOUT": "300ms"}, "more than half of DUPLICATE_WINDOW"},
		{"client certificate without its key", map[string]string{"CALLBACK_SECRET": ingressSecret, "NATS_TLS_CERT": "/etc/nats/client.crt", "NATS_URL": "nats://127.0.0.1:1", "NATS_CONNECT_TIMEOUT": "300ms"}, "NATS_TLS_CERT and NATS_TLS_KEY go together"},
		{"bad signature mode", map[string]string{"CALLBACK_SECRET": ingressSecret, "INBANK_CALLBACK_SIGNATURE": "maybe", "NATS_CONNECT_TIMEOUT": "300ms", "NATS_URL": "nats://127.0.0.1:1"}, "want off, optional or required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := RunIngress(context.Background(), nil, func(k string) string { return tt.env[k] }, io.Discard, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("took %v", time.Since(start))
			}
		})
	}
	if err := RunIngress(context.Background(), []string{"--help"}, func(string) string { return "" }, io.Discard, nil); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
}

// TestIngressStoresNothingItAnswered503: with NATS down the ingress answers
// 503; NATS comes back on the same store, the sender posts the same
// callback again and gets 200, and the stream holds it once. Before, the
// first POST waited in nats.go's reconnect buffer and was stored on
// reconnect as well: a 503 that was stored anyway (issue 26).
func TestIngressStoresNothingItAnswered503(t *testing.T) {
	srv := natstest.Run(t, natstest.Options{})
	env := map[string]string{
		"NATS_URL": srv.ClientURL(), "CALLBACK_SECRET": ingressSecret,
		"LISTEN_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0", "PUBLISH_TIMEOUT": "2s",
	}
	addrs, cancel, done := startIngress(t, env)
	defer func() {
		cancel()
		<-done
	}()
	tokens, _ := callbacktoken.New([]string{ingressSecret})
	post := func() (int, string) {
		t.Helper()
		resp, err := http.Post("http://"+addrs.Callbacks.String()+callbacktoken.PathPrefix+tokens.Token("ORD-503"), "application/json", strings.NewReader(`{"uuid":"5f0c"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	readyz := func(want int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := http.Get("http://" + addrs.Ops.String() + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz still %d, want %d", resp.StatusCode, want)
			}
			time.Sleep(20 * time.Millisecond) // polling the ingress's own readiness
		}
	}

	srv.Stop()
	readyz(503) // the ingress has seen the connection go
	if code, retry := post(); code != 503 || retry == "" {
		t.Fatalf("NATS down: %d (Retry-After %q), want 503 with Retry-After", code, retry)
	}
	srv = natstest.Run(t, srv.Opts) // the same port and store
	readyz(200)
	if code, _ := post(); code != 200 {
		t.Fatalf("the retry after NATS came back: %d, want 200", code)
	}
	// No wait is needed: nats.go writes a reconnect buffer to the new
	// connection before it reports itself connected (and /readyz 200), and
	// the server stores one connection's messages in order, so anything
	// held from the 503 was stored before the retry was acknowledged.
	_, js := natstest.Connect(t, srv.ClientURL())
	s, err := js.Stream(context.Background(), streams.StreamCallbacks)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("SMARTRENT_CALLBACKS holds %d callbacks, want 1: a callback answered 503 was stored", n)
	}
}

// TestSIGHUPRereadsTheSignatureKey: after INBANK_API_KEY_FILE changed and
// a SIGHUP (here its test hook), the ingress verifies signatures with the
// new API key and refuses the old one, without a restart.
func TestSIGHUPRereadsTheSignatureKey(t *testing.T) {
	srv := natstest.Run(t, natstest.Options{})
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "inbank-api-key")
	if err := os.WriteFile(keyFile, []byte("old-api-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"NATS_URL": srv.ClientURL(), "CALLBACK_SECRET": testSecret, "INBANK_API_KEY_FILE": keyFile, "INBANK_CALLBACK_SIGNATURE": "required",
		"LISTEN_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0", "LOG_LEVEL": "error",
	}
	reload := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan IngressStarted, 1)
	done := make(chan error, 1)
	go func() {
		done <- RunIngress(ctx, nil, func(k string) string { return env[k] }, io.Discard, started, IngressOptions{Reload: reload})
	}()
	defer func() { cancel(); <-done }()
	var addrs IngressStarted
	select {
	case addrs = <-started:
	case err := <-done:
		t.Fatal(err)
	}
	tokens, _ := callbacktoken.New([]string{testSecret})
	url := "http://" + addrs.Callbacks.String() + callbacktoken.PathPrefix + tokens.Token("KEY-1")
	post := func(key string) int {
		t.Helper()
		body := `{"uuid":"s-` + key + `"}`
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		m := hmac.New(sha512.New, []byte(key))
		m.Write([]byte(ts + "." + body))
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set(ingress.HeaderTimestamp, ts)
		req.Header.Set(ingress.HeaderSignature, hex.EncodeToString(m.Sum(nil)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if a, b := post("old-api-key"), post("new-api-key"); a != http.StatusOK || b != http.StatusUnauthorized {
		t.Fatalf("before the rotation: old key %d, new key %d", a, b)
	}
	if err := os.WriteFile(keyFile, []byte("new-api-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reload <- struct{}{}
	reload <- struct{}{} // the second send returns once the first reload ran
	if a, b := post("new-api-key"), post("old-api-key"); a != http.StatusOK || b != http.StatusUnauthorized {
		t.Fatalf("after the rotation: new key %d, old key %d", a, b)
	}
}
