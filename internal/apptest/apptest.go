// Package apptest starts the whole product for a test: an embedded NATS
// server, the fake Inbank, the ingress and a bridge, and watches
// SMARTRENT_OUT. The examples' tests run against it.
package apptest

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/app"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/eventwatch"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/schemas"
)

// World is a running product.
type World struct {
	NATSURL string
	JS      jetstream.JetStream
	Fake    *inbanktest.Fake
	Out     *eventwatch.Watcher
}

// Start runs everything until the test ends.
func Start(t *testing.T) *World {
	t.Helper()
	srv := natstest.Run(t, natstest.Options{})
	_, js := natstest.Connect(t, srv.ClientURL())
	fake, inbankSrv := inbanktest.NewServer(t, inbanktest.Config{})
	env := map[string]string{
		"NATS_URL": srv.ClientURL(), "CALLBACK_SECRET": "apptest-callback-secret-0123",
		"LISTEN_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0", "LOG_LEVEL": "error",
		"INBANK_BASE_URL": inbankSrv.URL, "INBANK_API_KEY": inbanktest.DefaultAPIKey,
		"INBANK_SHOP_UUID": inbanktest.DefaultShopUUID, "INBANK_PRODUCT_CODE": inbanktest.DefaultProductCode,
		"RECONCILE_INTERVAL": "500ms",
	}
	var mu sync.Mutex
	getenv := func(k string) string { mu.Lock(); defer mu.Unlock(); return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	ing := make(chan app.IngressStarted, 1)
	wg.Go(func() {
		if err := app.RunIngress(ctx, nil, getenv, io.Discard, ing); err != nil {
			t.Errorf("ingress: %v", err)
			close(ing)
		}
	})
	s, ok := <-ing
	if !ok {
		t.FailNow()
	}
	mu.Lock()
	env["CALLBACK_BASE_URL"] = "http://" + s.Callbacks.String()
	mu.Unlock()
	br := make(chan app.BridgeStarted, 1)
	wg.Go(func() {
		if err := app.RunBridge(ctx, nil, getenv, io.Discard, br); err != nil {
			t.Errorf("bridge: %v", err)
			close(br)
		}
	})
	if _, ok := <-br; !ok {
		t.FailNow()
	}
	out, err := eventwatch.Watch(context.Background(), js, events.NewCodec(schemas.MustLoad()), []string{streams.StreamOut}, nil, func(err error) { t.Errorf("invalid event: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(out.Stop)
	return &World{NATSURL: srv.ClientURL(), JS: js, Fake: fake, Out: out}
}

// Wait fails the test unless the order gets n events of typ within 30 s.
func (w *World) Wait(t *testing.T, orderID, typ string, n int) []map[string]any {
	t.Helper()
	if !w.Out.Wait(orderID, typ, n, 30*time.Second) {
		t.Fatalf("%s: no %d × %s within 30s", orderID, n, typ)
	}
	return w.Out.Of(orderID, typ)
}
