package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/app"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

// TestSameInbankRequestsAsTheBridge keeps the floor honest: for the same
// order.placed, the bare bridge sends Inbank exactly the requests our
// bridge sends (paths and bodies; validUntil, a time, aside), so that make
// bench compares the bridges and not the work they ask of Inbank.
func TestSameInbankRequestsAsTheBridge(t *testing.T) {
	ours := requestsFor(t, func(ctx context.Context, env map[string]string) error {
		return app.RunBridge(ctx, nil, func(k string) string { return env[k] }, io.Discard, nil)
	})
	bare := requestsFor(t, func(ctx context.Context, env map[string]string) error {
		for k, v := range env {
			t.Setenv(k, v)
		}
		return run(ctx)
	})
	if len(ours) == 0 {
		t.Fatal("our bridge made no Inbank request")
	}
	if len(ours) != len(bare) {
		t.Fatalf("ours made %d requests, bare %d:\n%v\n%v", len(ours), len(bare), ours, bare)
	}
	for k, n := range ours {
		if bare[k] != n {
			t.Errorf("request %s: ours %d, bare %d", k, n, bare[k])
		}
	}
}

var validUntil = regexp.MustCompile(`"validUntil":"[^"]*"`)

// requestsFor runs a bridge on its own NATS server and fake Inbank, places
// one order and returns the Inbank requests it made until session.created,
// as "METHOD path body" → count.
func requestsFor(t *testing.T, runBridge func(context.Context, map[string]string) error) map[string]int {
	t.Helper()
	srv := natstest.Run(t, natstest.Options{})
	nc, js := natstest.Connect(t, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := streams.ProvisionBridge(ctx, js, streams.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	fake := inbanktest.New(inbanktest.Config{})
	defer fake.Close()
	inbank := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen[r.Method+" "+r.URL.RequestURI()+" "+string(validUntil.ReplaceAll(body, []byte(`"validUntil":"…"`)))]++
		mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		fake.ServeHTTP(w, r)
	}))
	defer inbank.Close()
	fake.SetPublicURL(inbank.URL)

	created := make(chan struct{})
	var once sync.Once
	sub, err := nc.Subscribe(events.SubjectSessionCreated, func(*nats.Msg) { once.Do(func() { close(created) }) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	env := map[string]string{
		"NATS_URL": srv.ClientURL(), "INBANK_BASE_URL": inbank.URL, "INBANK_API_KEY": inbanktest.DefaultAPIKey,
		"INBANK_SHOP_UUID": inbanktest.DefaultShopUUID, "INBANK_PRODUCT_CODE": inbanktest.DefaultProductCode,
		"CALLBACK_BASE_URL": "https://callbacks.example", "CALLBACK_SECRET": "barebridge-test-secret-0123456789",
		"METRICS_ADDR": "127.0.0.1:0", "LOG_LEVEL": "error", "RECONCILE_INTERVAL": "10m", "CONCURRENCY": "4",
	}
	bctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runBridge(bctx, env) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("bridge: %v", err)
		}
	}()
	body, _ := json.Marshal(map[string]any{
		"specversion": "1.0", "id": "evt-1", "source": "urn:test", "type": events.TypeOrderPlaced, "subject": "ORD-1",
		"time": time.Now().UTC().Format(time.RFC3339Nano), "datacontenttype": "application/json",
		"data": map[string]any{"orderId": "ORD-1", "period": 24, "locale": "et-EE", "description": "test", "returnUrl": "https://s.example/r", "cancelUrl": "https://s.example/c",
			"heroDevice": map[string]any{"identifierType": "EAN", "identifier": inbanktest.EANPhone, "modelId": inbanktest.ModelPhone, "modelName": "iPhone", "netPrice": 500}},
	})
	msg := &nats.Msg{Subject: events.SubjectOrderPlaced, Data: body, Header: nats.Header{"Content-Type": {"application/cloudevents+json"}, jetstream.MsgIDHeader: {"evt-1"}}}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	select {
	case <-created:
	case <-ctx.Done():
		t.Fatal("no session.created within 30 s")
	}
	mu.Lock()
	defer mu.Unlock()
	out := map[string]int{}
	for k, v := range seen {
		out[k] = v
	}
	return out
}
