package events_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/natstest"
)

// BenchmarkCodec measures an order.placed event through encoding and
// decoding, each with schema validation: the per-event cost on both sides.
func BenchmarkCodec(b *testing.B) {
	codec := events.NewCodec(schemaSet)
	data := samples()[events.TypeOrderPlaced]
	e, _ := codec.New("urn:bench", events.TypeOrderPlaced, "ORD-1001", data)
	body, err := codec.Encode(e)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := codec.Encode(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := codec.Decode(nil, body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStateTransition measures one compare-and-set transition of an
// order's state in the KV bucket on an embedded server (remembered load,
// then save), the unit of the workflow's work.
func BenchmarkStateTransition(b *testing.B) {
	_, kv := provisioned(b)
	ctx := context.Background()
	store := events.NewStateStore[doc](kv)
	if _, err := store.Create(ctx, "ORD-B", doc{"new"}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		_, rev, err := store.Load(ctx, "ORD-B")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := store.Save(ctx, "ORD-B", doc{fmt.Sprint("state-", i)}, rev); err != nil {
			b.Fatal(err)
		}
	}
}

// provisioned starts a server with the bridge's topology and returns a
// client and the orders bucket.
func provisioned(tb testing.TB) (jetstream.JetStream, jetstream.KeyValue) {
	tb.Helper()
	srv := natstest.Run(tb, natstest.Options{})
	_, js := natstest.Connect(tb, srv.ClientURL())
	kv, err := events.ProvisionBridge(context.Background(), js, events.DefaultTopology())
	if err != nil {
		tb.Fatal(err)
	}
	return js, kv
}
