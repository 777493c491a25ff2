package orderstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/orderstore"
)

type doc struct {
	State string `json:"state"`
}

func (d doc) DeepCopy() doc { return d }

// TestStateStoreRemembersButNeverDecidesOnStaleValues: a second bridge's
// change makes the first one's remembered value stale; its Save then
// conflicts, and LoadFresh shows the change.
func TestStateStoreRemembersButNeverDecidesOnStaleValues(t *testing.T) {
	_, kv := provisioned(t)
	ctx := context.Background()
	a, b := orderstore.NewStateStore[doc](kv), orderstore.NewStateStore[doc](kv)
	rev, err := a.Create(ctx, "O/1", doc{"new"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, "O/1", doc{"new"}); !errors.Is(err, orderstore.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	if _, err := b.Save(ctx, "O/1", doc{"pending"}, rev); err != nil {
		t.Fatal(err)
	}
	stale, staleRev, err := a.Load(ctx, "O/1")
	if err != nil || stale.State != "new" || staleRev != rev {
		t.Fatalf("a.Load = %+v %d %v, want its remembered value", stale, staleRev, err)
	}
	if _, err := a.Save(ctx, "O/1", doc{"rejected"}, staleRev); !errors.Is(err, orderstore.ErrConflict) {
		t.Fatalf("save on a stale value: %v, want ErrConflict", err)
	}
	fresh, _, err := a.Load(ctx, "O/1") // the conflict made it forget
	if err != nil || fresh.State != "pending" {
		t.Fatalf("after the conflict: %+v %v", fresh, err)
	}
	if _, err := b.Save(ctx, "O/1", doc{"granted"}, mustRev(t, b, "O/1")); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := a.LoadFresh(ctx, "O/1"); v.State != "granted" {
		t.Fatalf("LoadFresh = %+v", v)
	}
	if _, _, err := a.Load(ctx, "nope"); !errors.Is(err, orderstore.ErrNotFound) {
		t.Fatalf("missing order: %v", err)
	}
	n := 0
	for v, err := range a.All(ctx) {
		if err != nil || v.State != "granted" {
			t.Fatalf("All: %+v %v", v, err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("All listed %d orders", n)
	}
}

func mustRev(t *testing.T, s *orderstore.StateStore[doc], id string) uint64 {
	t.Helper()
	_, rev, err := s.LoadFresh(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// nested has every kind of field an order has that could share memory:
// pointers, slices of structs, raw JSON, nested maps of any.
type nested struct {
	At     *time.Time      `json:"at,omitempty"`
	Items  []doc           `json:"items,omitempty"`
	Raw    json.RawMessage `json:"raw,omitempty"`
	Extra  map[string]any  `json:"extra,omitempty"`
	Parent *doc            `json:"parent,omitempty"`
}

func (n nested) DeepCopy() nested {
	c := n
	c.At = events.CopyPtr(n.At)
	c.Items = slices.Clone(n.Items)
	c.Raw = bytes.Clone(n.Raw)
	c.Extra = map[string]any{
		"list": slices.Clone(n.Extra["list"].([]any)),
		"map":  maps.Clone(n.Extra["map"].(map[string]any)),
	}
	c.Parent = events.CopyPtr(n.Parent)
	return c
}

func (n *nested) scribble() {
	*n.At = n.At.Add(time.Hour)
	n.Items[0].State = "scribbled"
	n.Items = append(n.Items, doc{"appended"})
	n.Raw[2] = 'X'
	n.Extra["list"].([]any)[0] = "scribbled"
	n.Extra["map"].(map[string]any)["k"] = "scribbled"
	n.Parent.State = "scribbled"
}

// TestStateStoreHandsOutCopies: the store remembers decoded values, so a
// caller changing what it saved or loaded, however deep, must not change
// what the next Load returns (the store copies with the value's
// DeepCopy on every save and load); and a remembered value must read
// exactly as the server's bytes decode.
func TestStateStoreHandsOutCopies(t *testing.T) {
	_, kv := provisioned(t)
	ctx := context.Background()
	s := orderstore.NewStateStore[nested](kv)
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	v := nested{
		At: &at, Items: []doc{{"a"}, {"b"}}, Raw: json.RawMessage(`{"x":1}`),
		Extra:  map[string]any{"list": []any{"one", 2.0}, "map": map[string]any{"k": "v"}},
		Parent: &doc{"p"},
	}
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "O/1", v); err != nil {
		t.Fatal(err)
	}
	v.scribble() // the caller's value after saving it
	loadedJSON := func() []byte {
		t.Helper()
		got, _, err := s.Load(ctx, "O/1")
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		got.scribble() // the caller's value after loading it
		return b
	}
	for i := range 2 {
		if got := loadedJSON(); string(got) != string(want) {
			t.Fatalf("load %d = %s\nwant %s", i+1, got, want)
		}
	}
	fresh, _, err := s.LoadFresh(ctx, "O/1")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(fresh); string(b) != string(want) {
		t.Fatalf("from the server: %s\nwant %s", b, want)
	}
}

// TestStateStoreForgetsTheLeastRecentlyUsed: the store remembers up to
// 1,024 orders and forgets the one used longest ago, so an order being
// worked on stays remembered however many others come and go. Both
// orders are removed behind the store's back at once: a load that still
// answers came from memory, one that finds nothing went to the server.
// (Forgetting an arbitrary order instead loses the busy one within 6,000
// others but for one run in a hundred.)
func TestStateStoreForgetsTheLeastRecentlyUsed(t *testing.T) {
	_, kv := provisioned(t)
	ctx := context.Background()
	s := orderstore.NewStateStore[doc](kv)
	for _, key := range []string{"IDLE", "BUSY"} {
		if _, err := s.Create(ctx, key, doc{"new"}); err != nil {
			t.Fatal(err)
		}
		if err := kv.Purge(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 6000 {
		if _, err := s.Create(ctx, fmt.Sprintf("OTHER-%d", i), doc{"new"}); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 { // an order being worked on is used every few writes of others
			if _, _, err := s.Load(ctx, "BUSY"); err != nil {
				t.Fatalf("after %d other orders, the order in use was forgotten and read from the server: %v", i+1, err)
			}
		}
	}
	if _, _, err := s.Load(ctx, "IDLE"); !errors.Is(err, orderstore.ErrNotFound) {
		t.Errorf("the order unused since 6,000 others was still remembered (err %v)", err)
	}
}

// TestConcurrentWritesStoreTheirOwnDocuments: writes share encode
// buffers, so many at once (of different sizes) must each store exactly
// its own document, byte for byte what json.Marshal writes, as read back
// from the server.
func TestConcurrentWritesStoreTheirOwnDocuments(t *testing.T) {
	_, kv := provisioned(t)
	ctx := context.Background()
	store := orderstore.NewStateStore[doc](kv)
	const writers, each = 16, 25
	value := func(w, i, round int) doc {
		return doc{State: strings.Repeat(fmt.Sprintf("w%d-i%d-r%d;", w, i, round), 1+(w*7+i*3+round)%40)}
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				key := fmt.Sprintf("concurrent-%d-%d", w, i)
				rev, err := store.Create(ctx, key, value(w, i, 0))
				if err == nil {
					_, err = store.Save(ctx, key, value(w, i, 1), rev)
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", key, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w := range writers {
		for i := range each {
			key := fmt.Sprintf("concurrent-%d-%d", w, i)
			e, err := kv.Get(ctx, key)
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			want, _ := json.Marshal(value(w, i, 1))
			if !bytes.Equal(e.Value(), want) {
				t.Fatalf("%s holds %q, want %q", key, e.Value(), want)
			}
		}
	}
}
