package orderstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/smartrent-bridge/bridge/internal/ids"
	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/orderstore"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

// TestStoreRefusesKeysBeforeSending: a key the server would refuse never
// reaches it, and the connection stays up.
func TestStoreRefusesKeysBeforeSending(t *testing.T) {
	srv := natstest.Run(t, natstest.Options{})
	nc, js := natstest.Connect(t, srv.ClientURL())
	kv, err := streams.ProvisionBridge(context.Background(), js, streams.DefaultTopology())
	if err != nil {
		t.Fatal(err)
	}
	store := orderstore.NewStateStore[doc](kv)
	for _, key := range []string{strings.Repeat("k", 5000), "a b", "a*", ""} {
		if _, err := store.Create(context.Background(), key, doc{}); !errors.Is(err, ids.ErrInvalidID) {
			t.Errorf("Create(%.20q…): %v", key, err)
		}
		if _, _, err := store.Load(context.Background(), key); !errors.Is(err, ids.ErrInvalidID) {
			t.Errorf("Load(%.20q…): %v", key, err)
		}
	}
	if nc.Status() != nats.CONNECTED {
		t.Fatalf("connection %v", nc.Status())
	}
}

// TestMigrateStateKeys moves a non-default shop's order from the earlier
// key OrderKey(shop/orderId) to StateKey, leaves the default shop's order
// whose id has a slash where it is, and is idempotent.
func TestMigrateStateKeys(t *testing.T) {
	_, kv := provisioned(t)
	ctx := context.Background()
	put := func(key, shop, id string) {
		b, _ := json.Marshal(map[string]string{"shop": shop, "orderId": id, "state": "granted"})
		if _, err := kv.Put(ctx, key, b); err != nil {
			t.Fatal(err)
		}
	}
	put(ids.OrderKey("lv-web/X"), "lv-web", "X")    // lv-web's order X, earlier scheme
	put(ids.OrderKey("lt-shop/Y"), "", "lt-shop/Y") // the default shop's order "lt-shop/Y"
	put(ids.OrderKey("PLAIN"), "", "PLAIN")         // untouched
	for run, want := range []int{1, 0} {
		n, err := orderstore.MigrateStateKeys(ctx, kv)
		if err != nil || n != want {
			t.Fatalf("run %d: moved %d (%v), want %d", run, n, err, want)
		}
	}
	if _, err := kv.Get(ctx, ids.StateKey("lv-web", "X")); err != nil {
		t.Fatalf("lv-web's X not at its new key: %v", err)
	}
	if _, err := kv.Get(ctx, ids.OrderKey("lv-web/X")); err == nil {
		t.Fatal("the earlier key of lv-web's X is still there")
	}
	for _, key := range []string{ids.OrderKey("lt-shop/Y"), "PLAIN"} {
		if _, err := kv.Get(ctx, key); err != nil {
			t.Fatalf("%s moved: %v", key, err)
		}
	}
}
