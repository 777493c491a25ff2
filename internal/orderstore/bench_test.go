package orderstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/orderstore"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

// BenchmarkStateTransition measures one compare-and-set transition of an
// order's state in the KV bucket on an embedded server (remembered load,
// then save), the unit of the workflow's work.
func BenchmarkStateTransition(b *testing.B) {
	_, kv := provisioned(b)
	ctx := context.Background()
	store := orderstore.NewStateStore[doc](kv)
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
	kv, err := streams.ProvisionBridge(context.Background(), js, streams.DefaultTopology())
	if err != nil {
		tb.Fatal(err)
	}
	return js, kv
}
