package events_test

import (
	"context"
	"errors"
	"testing"

	"github.com/smartrent-bridge/bridge/internal/events"
)

type doc struct {
	State string `json:"state"`
}

// TestStateStoreRemembersButNeverDecidesOnStaleValues: a second bridge's
// change makes the first one's remembered value stale; its Save then
// conflicts, and LoadFresh shows the change.
func TestStateStoreRemembersButNeverDecidesOnStaleValues(t *testing.T) {
	_, kv := provisioned(t)
	ctx := context.Background()
	a, b := events.NewStateStore[doc](kv), events.NewStateStore[doc](kv)
	rev, err := a.Create(ctx, "O/1", doc{"new"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, "O/1", doc{"new"}); !errors.Is(err, events.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	if _, err := b.Save(ctx, "O/1", doc{"pending"}, rev); err != nil {
		t.Fatal(err)
	}
	stale, staleRev, err := a.Load(ctx, "O/1")
	if err != nil || stale.State != "new" || staleRev != rev {
		t.Fatalf("a.Load = %+v %d %v, want its remembered value", stale, staleRev, err)
	}
	if _, err := a.Save(ctx, "O/1", doc{"rejected"}, staleRev); !errors.Is(err, events.ErrConflict) {
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
	if _, _, err := a.Load(ctx, "nope"); !errors.Is(err, events.ErrNotFound) {
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

func mustRev(t *testing.T, s *events.StateStore[doc], id string) uint64 {
	t.Helper()
	_, rev, err := s.LoadFresh(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}
