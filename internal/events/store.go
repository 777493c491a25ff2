package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"

	"github.com/nats-io/nats.go/jetstream"
)

// Store errors.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrConflict = errors.New("revision conflict") // someone else changed it since it was loaded
)

// StateStore keeps one JSON document per order in a KV bucket, changed
// only by compare-and-set. Keys are [OrderKey]s.
type StateStore[T any] struct {
	kv jetstream.KeyValue
}

// NewStateStore wraps a KV bucket.
func NewStateStore[T any](kv jetstream.KeyValue) *StateStore[T] { return &StateStore[T]{kv: kv} }

// Load returns the order's state and its revision, or ErrNotFound.
func (s *StateStore[T]) Load(ctx context.Context, orderID string) (T, uint64, error) {
	var v T
	e, err := s.kv.Get(ctx, OrderKey(orderID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return v, 0, fmt.Errorf("order %s: %w", orderID, ErrNotFound)
	}
	if err != nil {
		return v, 0, fmt.Errorf("load order %s: %w", orderID, err)
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return v, 0, fmt.Errorf("decode order %s: %w", orderID, err)
	}
	return v, e.Revision(), nil
}

// Create stores the first state of an order, or returns ErrExists.
func (s *StateStore[T]) Create(ctx context.Context, orderID string, v T) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encode order %s: %w", orderID, err)
	}
	rev, err := s.kv.Create(ctx, OrderKey(orderID), b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("order %s: %w", orderID, ErrExists)
	}
	if err != nil {
		return 0, fmt.Errorf("create order %s: %w", orderID, err)
	}
	return rev, nil
}

// Save replaces the state if it is still at rev, or returns ErrConflict.
// Conflicts are detected with jetstream.ErrKeyRevisionMismatch, as the
// library documents (it also covers replicated buckets' error code).
func (s *StateStore[T]) Save(ctx context.Context, orderID string, v T, rev uint64) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encode order %s: %w", orderID, err)
	}
	n, err := s.kv.Update(ctx, OrderKey(orderID), b, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, fmt.Errorf("order %s at revision %d: %w", orderID, rev, ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("save order %s: %w", orderID, err)
	}
	return n, nil
}

// All iterates over every stored order (for reconciliation). Entries that
// cannot be read are yielded with their error.
func (s *StateStore[T]) All(ctx context.Context) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		lister, err := s.kv.ListKeys(ctx)
		if err != nil {
			if errors.Is(err, jetstream.ErrNoKeysFound) {
				return
			}
			yield(zero, fmt.Errorf("list orders: %w", err))
			return
		}
		defer lister.Stop()
		for key := range lister.Keys() {
			e, err := s.kv.Get(ctx, key)
			if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
				continue
			}
			var v T
			if err == nil {
				err = json.Unmarshal(e.Value(), &v)
			}
			if !yield(v, err) {
				return
			}
		}
	}
}
