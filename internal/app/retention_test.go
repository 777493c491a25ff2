package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/orderstore"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

func (w *world) openKeys() []string {
	w.t.Helper()
	x, err := orderstore.OpenIndexOf(context.Background(), w.js, "test")
	if err != nil {
		w.t.Fatal(err)
	}
	keys, err := x.Keys(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	return keys
}

// TestFinishedOrdersExpire: a finished order keeps no customer data in
// any revision, leaves the open index, and is removed by JetStream itself
// after ORDER_RETENTION; an open order stays.
func TestFinishedOrdersExpire(t *testing.T) {
	w := newWorld(t, inbanktest.Config{}, map[string]string{"ORDER_RETENTION": "2s"})
	w.bridge()
	ctx := context.Background()
	kv, err := w.js.KeyValue(ctx, streams.BucketOrders)
	if err != nil {
		t.Fatal(err)
	}
	rejected := orderPlaced("RET-REJ", 500) // with customer data, rejected before any session
	rejected.Period = 48
	w.publish(events.TypeOrderPlaced, "RET-REJ", rejected)
	w.out.wait("RET-REJ", events.TypeOrderRejected, 1)
	w.place("RET-OPEN", 500)
	w.sessionOf("RET-OPEN")
	w.place("RET-DONE", 500)
	w.fake.Sign(w.sessionOf("RET-DONE"))
	w.ship("RET-DONE", imei)
	w.deliver("RET-DONE")
	w.out.wait("RET-DONE", events.TypeContractActivated, 1)

	hist, err := kv.History(ctx, "RET-REJ")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range hist {
		if bytes.Contains(e.Value(), []byte("49403136515")) || bytes.Contains(e.Value(), []byte("mari@example.ee")) {
			t.Fatalf("a stored revision of a rejected order holds customer data: %s", e.Value())
		}
	}
	gone := func(key string) bool {
		_, err := kv.Get(ctx, key)
		return errors.Is(err, jetstream.ErrKeyNotFound)
	}
	start := time.Now()
	if !w.out.waitUntil(20*time.Second, func() bool { return gone("RET-REJ") && gone("RET-DONE") }) {
		t.Fatalf("finished orders still stored after 20 s (retention 2 s); open index %v", w.openKeys())
	}
	t.Logf("finished orders removed by JetStream %v after activation", time.Since(start).Round(100*time.Millisecond))
	if gone("RET-OPEN") {
		t.Fatal("an open order expired")
	}
	if keys := w.openKeys(); len(keys) != 1 || keys[0] != "RET-OPEN" {
		t.Fatalf("open index %v, want only RET-OPEN", keys)
	}
}

// TestOpenIndexBackfilledFromAnEarlierBucket: a bucket written before the
// open-order index existed (the index bucket is missing) is indexed at
// start-up, and its open orders still complete without callbacks.
func TestOpenIndexBackfilledFromAnEarlierBucket(t *testing.T) {
	w := newWorld(t, inbanktest.Config{Callbacks: inbanktest.CallbackPolicy{DropRate: 1}}, nil)
	stop := w.bridge()
	w.place("MIG-1", 500)
	s := w.sessionOf("MIG-1")
	stop()
	ctx := context.Background()
	if err := w.js.DeleteKeyValue(ctx, streams.BucketOpen); err != nil { // as before this version
		t.Fatal(err)
	}
	w.bridge()
	if keys := w.openKeys(); len(keys) != 1 || keys[0] != "MIG-1" {
		t.Fatalf("open index after start-up %v, want MIG-1", keys)
	}
	if _, err := w.fake.Sign(s); err != nil {
		t.Fatal(err)
	}
	w.out.wait("MIG-1", events.TypeSessionStatusChange, 1) // by reconciliation alone
}

// TestOrderGaugesFromOneBridge: with two bridges, one (the lease holder)
// reports the open orders by state and the other reports none, so a
// dashboard's sum is right.
func TestOrderGaugesFromOneBridge(t *testing.T) {
	w := newWorld(t, inbanktest.Config{}, nil)
	w.bridge()
	a := w.started.Ops.String()
	w.bridge()
	b := w.started.Ops.String()
	w.place("GAUGE-1", 500)
	w.sessionOf("GAUGE-1")
	reports := func(addr string) bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(body), `smartrent_orders{state="pending"} 1`)
	}
	stable := 0
	if !w.out.waitUntil(15*time.Second, func() bool {
		if ra, rb := reports(a), reports(b); ra != rb {
			stable++
		} else {
			stable = 0
		}
		return stable >= 10 // ten looks in a row, over several reconcile passes
	}) {
		t.Fatalf("never exactly one bridge reporting (a %v, b %v)", reports(a), reports(b))
	}
}
