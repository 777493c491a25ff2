package orderstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Keys of the open-orders bucket that are not orders. No state key can be
// one: a state key with a dot starts with a shop alias, and an alias
// starts with a letter or digit.
const (
	leasePrefix    = "_lease."
	backfilledKey  = "_meta.backfilled"
	retiredMarkers = time.Minute // how long a retired entry's marker is listed
)

// OpenIndex is the set of orders that may still need Inbank (bucket
// smartrent_open): an order's key is added before the order is created
// and removed once it is finished, so reconciliation reads the open
// orders, not every order ever stored. It also holds the reconciler's
// lease, so one bridge at a time reconciles.
type OpenIndex struct {
	kv    jetstream.KeyValue
	js    jetstream.JetStream
	owner string // this process, in the leases it holds
}

// OpenIndexOf opens the bucket of a provisioned (or verified) topology;
// owner names this process in the leases it takes.
func OpenIndexOf(ctx context.Context, js jetstream.JetStream, owner string) (*OpenIndex, error) {
	kv, err := js.KeyValue(ctx, streams.BucketOpen)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", streams.BucketOpen, err)
	}
	return &OpenIndex{kv: kv, js: js, owner: owner}, nil
}

// indexEntry is an open order's value in the index: the ids of events of
// the order that JetStream acknowledged while the order's own outbox may
// still list them (see [OpenIndex.Add]). Entries written before it was
// kept hold "1".
type indexEntry struct {
	Published []string `json:"published,omitempty"`
}

// Add marks the order stored under key as open (idempotent), with the ids
// of its events known published: the input that placed the order writes
// this entry after publishing them, instead of writing the order once
// more to empty its outbox.
func (x *OpenIndex) Add(ctx context.Context, key string, published []string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	value := []byte{'1'}
	if len(published) > 0 {
		var err error
		if value, err = json.Marshal(indexEntry{Published: published}); err != nil {
			return fmt.Errorf("index open order %s: %w", key, err)
		}
	}
	if _, err := x.kv.Put(ctx, key, value); err != nil {
		return fmt.Errorf("index open order %s: %w", key, err)
	}
	return nil
}

// Published returns the ids of the order's events the index names as
// published (none when the order is not in the index).
func (x *OpenIndex) Published(ctx context.Context, key string) ([]string, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	e, err := x.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read open order %s: %w", key, err)
	}
	if v := e.Value(); len(v) > 0 && v[0] == '{' {
		var entry indexEntry
		if err := json.Unmarshal(v, &entry); err != nil {
			return nil, fmt.Errorf("read open order %s: %w", key, err)
		}
		return entry.Published, nil
	}
	return nil, nil
}

// Remove marks the order as finished. The purge marker expires after a
// minute, so retired orders stop costing a listing.
func (x *OpenIndex) Remove(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := x.kv.Purge(ctx, key, jetstream.PurgeTTL(retiredMarkers)); err != nil {
		return fmt.Errorf("retire order %s from the open index: %w", key, err)
	}
	return nil
}

// Keys returns the keys of the open orders.
func (x *OpenIndex) Keys(ctx context.Context) ([]string, error) {
	lister, err := x.kv.ListKeys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list open orders: %w", err)
	}
	defer lister.Stop()
	var keys []string
	for k := range lister.Keys() {
		if !strings.HasPrefix(k, leasePrefix) && k != backfilledKey {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// Lease takes the named lease for ttl, or renews it when this process
// holds it, unless another holder has it. The key has a per-key TTL, so
// a lease lapses by itself when its holder stops; a live holder keeps
// it, so one bridge keeps reporting.
func (x *OpenIndex) Lease(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	key := leasePrefix + name
	_, err := x.kv.Create(ctx, key, []byte(x.owner), jetstream.KeyTTL(ttl))
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return false, fmt.Errorf("lease %s: %w", name, err)
	}
	e, err := x.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil // lapsed just now: the next try takes it
	case err != nil:
		return false, fmt.Errorf("lease %s: %w", name, err)
	case string(e.Value()) != x.owner:
		return false, nil
	}
	msg := &nats.Msg{Subject: "$KV." + x.kv.Bucket() + "." + key, Data: []byte(x.owner)}
	_, err = x.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(e.Revision()), jetstream.WithMsgTTL(ttl))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("renew lease %s: %w", name, err)
	}
	return true, nil
}

// Backfilled reports whether the index was built from a bucket written
// before the index existed (see [OpenIndex.MarkBackfilled]).
func (x *OpenIndex) Backfilled(ctx context.Context) (bool, error) {
	_, err := x.kv.Get(ctx, backfilledKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("open index: %w", err)
	}
	return true, nil
}

// MarkBackfilled records that every order stored before the index existed
// has been indexed or retired.
func (x *OpenIndex) MarkBackfilled(ctx context.Context) error {
	if _, err := x.kv.Put(ctx, backfilledKey, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		return fmt.Errorf("open index: %w", err)
	}
	return nil
}
