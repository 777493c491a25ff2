package app

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

// TestBridgeUpgradeHandsOverStoredCallbacks: a callback stored in
// SMARTRENT_IN by the version before SMARTRENT_CALLBACKS, and not yet
// handled, is handled by the upgraded bridge (PROVISION=true) at once,
// not left to the reconciler (an hour away here); the old consumer is
// removed and the log says so.
func TestBridgeUpgradeHandsOverStoredCallbacks(t *testing.T) {
	w := newWorld(t, inbanktest.Config{}, map[string]string{"RECONCILE_INTERVAL": "1h", "LOG_LEVEL": "info"})
	stop := w.bridge()
	w.place("ORD-UP", 600)
	session := w.sessionOf("ORD-UP")
	stop()

	// The earlier layout: every smartrent.in.> subject in SMARTRENT_IN,
	// the callbacks consumer on it.
	ctx := context.Background()
	if err := w.js.DeleteStream(ctx, streams.StreamCallbacks); err != nil {
		t.Fatal(err)
	}
	in := streams.DefaultTopology().Streams()[0]
	in.Subjects = []string{"smartrent.in.>"}
	if _, err := w.js.UpdateStream(ctx, in); err != nil {
		t.Fatal(err)
	}
	for _, c := range streams.DefaultTopology().Consumers() {
		if c.Durable == streams.ConsumerCallbacks {
			if _, err := w.js.CreateConsumer(ctx, streams.StreamIn, c.ConsumerConfig); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := w.fake.Sign(session); err != nil { // its callback goes to SMARTRENT_IN
		t.Fatal(err)
	}
	if !w.out.waitUntil(10*time.Second, func() bool { return len(w.callbacksStoredIn(streams.StreamIn, "ORD-UP")) > 0 }) {
		t.Fatal("the callback was not stored in SMARTRENT_IN")
	}

	logs := &syncBuffer{}
	w.bridgeLogging(logs)
	if !w.out.Wait("ORD-UP", events.TypeSessionStatusChange, 1, 20*time.Second) {
		t.Fatalf("the callback stored before the upgrade was not handled; logs:\n%.3000s", logs.String())
	}
	if !w.out.waitUntil(10*time.Second, func() bool {
		return strings.Contains(logs.String(), "upgrade: moved the callbacks left in SMARTRENT_IN")
	}) {
		t.Errorf("no upgrade log line:\n%.3000s", logs.String())
	}
	if _, err := w.js.Consumer(ctx, streams.StreamIn, streams.ConsumerCallbacks); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("the callbacks consumer of SMARTRENT_IN: %v, want it removed", err)
	}
}
