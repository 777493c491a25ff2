package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/natsconn"
	"github.com/smartrent-bridge/bridge/internal/natstest"
)

// TestConnectionClosedForGoodStopsTheBinaries: when NATS closes a
// connection for good (here: its credentials are revoked, so every
// reconnect is refused), each binary stops with an error instead of
// staying up with nothing connected.
func TestConnectionClosedForGoodStopsTheBinaries(t *testing.T) {
	opts := &server.Options{
		ServerName: "revoke", Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(), Username: "bridge", Password: "first-password",
	}
	srv := natstest.RunOptions(t, opts, nil)
	url := fmt.Sprintf("nats://bridge:first-password@127.0.0.1:%d", srv.Addr().(*net.TCPAddr).Port)
	_, inbankSrv := inbanktest.NewServer(t, inbanktest.Config{})
	env := map[string]string{
		"NATS_URL": url, "CALLBACK_SECRET": testSecret, "LISTEN_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0",
		"INBANK_BASE_URL": inbankSrv.URL, "INBANK_API_KEY": inbanktest.DefaultAPIKey, "INBANK_SHOP_UUID": inbanktest.DefaultShopUUID,
		"INBANK_PRODUCT_CODE": inbanktest.DefaultProductCode, "CALLBACK_BASE_URL": "http://127.0.0.1:1", "LOG_LEVEL": "error",
	}
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bridgeDone, ingressDone := make(chan error, 1), make(chan error, 1)
	bridgeUp, ingressUp := make(chan BridgeStarted, 1), make(chan IngressStarted, 1)
	// One after the other: the embedded nats-server has a data race
	// between a stream update and a consumer create arriving together
	// (filestore UpdateConfig vs ConsumerStore), which -race reports.
	go func() { ingressDone <- RunIngress(ctx, nil, getenv, io.Discard, ingressUp) }()
	select {
	case <-ingressUp:
	case err := <-ingressDone:
		t.Fatalf("ingress did not start: %v", err)
	}
	go func() { bridgeDone <- RunBridge(ctx, nil, getenv, io.Discard, bridgeUp) }()
	select {
	case <-bridgeUp:
	case err := <-bridgeDone:
		t.Fatalf("bridge did not start: %v", err)
	}

	revoked := opts.Clone()
	revoked.Password = "second-password"
	if err := srv.ReloadOptions(revoked); err != nil {
		t.Fatal(err)
	}
	for name, done := range map[string]chan error{"bridge": bridgeDone, "webhook-ingress": ingressDone} {
		select {
		case err := <-done:
			if !errors.Is(err, natsconn.ErrConnectionLost) {
				t.Fatalf("%s stopped with %v, want ErrConnectionLost", name, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s still running 20 s after its credentials were revoked", name)
		}
	}
}

// TestSetupTimeoutIsItsOwn: connecting and setting up JetStream have
// separate limits; a server that is reachable but cannot set up (here:
// no JetStream at all) stops the binary after NATS_SETUP_TIMEOUT with a
// reason, not after NATS_CONNECT_TIMEOUT.
func TestSetupTimeoutIsItsOwn(t *testing.T) {
	srv := natstest.RunOptions(t, &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true}, nil)
	env := map[string]string{
		"NATS_URL": srv.ClientURL(), "NATS_CONNECT_TIMEOUT": "200ms", "NATS_SETUP_TIMEOUT": "1500ms",
		"CALLBACK_SECRET": testSecret, "LISTEN_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0", "LOG_LEVEL": "error",
	}
	start := time.Now()
	err := RunIngress(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, nil)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "set up streams") {
		t.Fatalf("err = %v", err)
	}
	if took < 1500*time.Millisecond || took > 10*time.Second {
		t.Fatalf("gave up after %v; NATS_SETUP_TIMEOUT is 1.5 s (connect timeout 200 ms)", took)
	}
}
