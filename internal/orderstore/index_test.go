package orderstore_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/ids"
	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/orderstore"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

// TestBucketsOfAnEarlierVersionUpgraded: the orders bucket of an earlier
// version (5 revisions, no per-key TTLs) becomes history 1 with TTLs at
// start-up, keeping its orders, and the open index is created.
func TestBucketsOfAnEarlierVersionUpgraded(t *testing.T) {
	srv := natstest.Run(t, natstest.Options{})
	_, js := natstest.Connect(t, srv.ClientURL())
	ctx := context.Background()
	old, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: streams.BucketOrders, History: 5, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{`{"state":"new"}`, `{"state":"pending"}`} {
		if _, err := old.Put(ctx, "ORD-1", []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	kv, err := streams.ProvisionBridge(ctx, js, streams.DefaultTopology())
	if err != nil {
		t.Fatal(err)
	}
	st, _ := kv.Status(ctx)
	if st.History() != 1 || st.LimitMarkerTTL() == 0 {
		t.Fatalf("history %d, marker TTL %v", st.History(), st.LimitMarkerTTL())
	}
	if e, err := kv.Get(ctx, "ORD-1"); err != nil || string(e.Value()) != `{"state":"pending"}` {
		t.Fatalf("order lost in the upgrade: %v", err)
	}
	if _, err := streams.VerifyBridge(ctx, js, streams.DefaultTopology()); err != nil {
		t.Fatalf("verify after upgrade: %v", err)
	}
}

// TestOpenIndexAndLease: entries come and go; the lease belongs to one
// owner, who renews it, and lapses by itself.
func TestOpenIndexAndLease(t *testing.T) {
	srv := natstest.Run(t, natstest.Options{})
	_, js := natstest.Connect(t, srv.ClientURL())
	ctx := context.Background()
	if _, err := streams.ProvisionBridge(ctx, js, streams.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	a, _ := orderstore.OpenIndexOf(ctx, js, "bridge-a")
	b, _ := orderstore.OpenIndexOf(ctx, js, "bridge-b")
	for _, k := range []string{"ORD-1", "ORD-2", ids.StateKey("lv-web", "ORD-1")} {
		if err := a.Add(ctx, k, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Remove(ctx, "ORD-2"); err != nil {
		t.Fatal(err)
	}
	if held, err := a.Lease(ctx, "reconciler", time.Second); !held || err != nil {
		t.Fatalf("a: %v %v", held, err)
	}
	if held, _ := b.Lease(ctx, "reconciler", time.Second); held {
		t.Fatal("b took a lease a holds")
	}
	if held, err := a.Lease(ctx, "reconciler", time.Second); !held || err != nil {
		t.Fatalf("a could not renew: %v", err)
	}
	keys, err := b.Keys(ctx)
	if err != nil || !slices.Equal(keys, []string{"ORD-1", "lv-web.ORD-1"}) {
		t.Fatalf("keys %v (%v)", keys, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for { // a stopped renewing: the lease lapses by its TTL
		if held, _ := b.Lease(ctx, "reconciler", time.Second); held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lease never lapsed")
		}
		time.Sleep(100 * time.Millisecond) // the server's TTL clock: nothing to await
	}
}

// TestStartUpConcurrentlyOnR3Cluster: three bridges starting together on
// a fresh three-node cluster all provision, migrate and open the index
// (a fresh install of a Deployment with several replicas).
func TestStartUpConcurrentlyOnR3Cluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short mode")
	}
	c := natstest.RunCluster(t)
	topo := streams.DefaultTopology()
	topo.Replicas = 3
	errs := make(chan error, 3)
	for i := range 3 {
		_, js := natstest.Connect(t, c.URLs())
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			kv, err := streams.ProvisionBridge(ctx, js, topo)
			if err == nil {
				_, err = orderstore.MigrateStateKeys(ctx, kv)
			}
			if err == nil {
				var x *orderstore.OpenIndex
				if x, err = orderstore.OpenIndexOf(ctx, js, fmt.Sprint("bridge-", i)); err == nil {
					if _, err = x.Backfilled(ctx); err == nil {
						err = x.MarkBackfilled(ctx)
					}
				}
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
