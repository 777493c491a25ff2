package events

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MigrateStateKeys moves orders of non-default shops from the key scheme
// of earlier versions, OrderKey(shop + "/" + orderId), which the default
// shop's order "shop/orderId" shared, to [StateKey]. The stored state
// names its shop, so a key is moved only when its value says it belongs to
// a non-default shop. It is safe to run from several bridges at once: the
// new key is created once, and the old one is deleted only at the
// revision that was copied. It returns how many orders it moved.
func MigrateStateKeys(ctx context.Context, kv jetstream.KeyValue) (int, error) {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return 0, nil
		}
		return 0, fmt.Errorf("migrate state keys: %w", err)
	}
	defer lister.Stop()
	var legacy []string
	for key := range lister.Keys() {
		if dec, ok := decodeLegacy(key); ok && strings.Contains(dec, "/") {
			legacy = append(legacy, key)
		}
	}
	moved := 0
	for _, key := range legacy {
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return moved, fmt.Errorf("migrate state key %s: %w", key, err)
		}
		var names struct {
			Shop    string `json:"shop"`
			OrderID string `json:"orderId"`
		}
		if json.Unmarshal(e.Value(), &names) != nil || names.Shop == "" || OrderKey(names.Shop+"/"+names.OrderID) != key {
			continue // the default shop's order whose id has a "/": its key is right
		}
		if _, err := kv.Create(ctx, StateKey(names.Shop, names.OrderID), e.Value()); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return moved, fmt.Errorf("migrate state key %s: %w", key, err)
		}
		err = kv.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			continue // written since (by a bridge of the earlier version): left for the next start
		}
		if err != nil {
			return moved, fmt.Errorf("migrate state key %s: delete: %w", key, err)
		}
		moved++
	}
	return moved, nil
}

func decodeLegacy(key string) (string, bool) {
	enc, ok := strings.CutPrefix(key, "=")
	if !ok {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(enc)
	return string(b), err == nil
}

// MoveLegacyCallbacks hands the callbacks that an earlier version stored
// in SMARTRENT_IN, and its bridges had not yet handled, to
// SMARTRENT_CALLBACKS, then removes the earlier callbacks consumer from
// SMARTRENT_IN. Each callback is republished with its Nats-Msg-Id before
// it is acknowledged on the old consumer, so a crash in between moves it
// twice and stores it once. Callbacks an older bridge still holds are
// waited for: that bridge handles them, or they come back to the old
// consumer and are moved. Several bridges may run it at once. It returns
// how many callbacks it moved; with nothing to move it returns at once.
func MoveLegacyCallbacks(ctx context.Context, js jetstream.JetStream) (int, error) {
	moved := 0
	for {
		old, err := js.Consumer(ctx, StreamIn, ConsumerCallbacks)
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			return moved, nil
		}
		if err != nil {
			return moved, fmt.Errorf("callbacks consumer of %s: %w", StreamIn, err)
		}
		if info := old.CachedInfo(); info.NumPending == 0 && info.NumAckPending == 0 {
			err := js.DeleteConsumer(ctx, StreamIn, ConsumerCallbacks)
			if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				return moved, fmt.Errorf("remove the callbacks consumer of %s: %w", StreamIn, err)
			}
			return moved, nil
		}
		batch, err := old.Fetch(256, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return moved, fmt.Errorf("fetch from the callbacks consumer of %s: %w", StreamIn, err)
		}
		for m := range batch.Messages() {
			out := &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()}
			if _, err := js.PublishMsg(ctx, out); err != nil {
				return moved, fmt.Errorf("move a callback to %s: %w", StreamCallbacks, err)
			}
			if err := m.DoubleAck(ctx); err != nil {
				return moved, fmt.Errorf("moved a callback, but not acknowledged on %s: %w", StreamIn, err)
			}
			moved++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && ctx.Err() == nil {
			return moved, fmt.Errorf("fetch from the callbacks consumer of %s: %w", StreamIn, err)
		}
		if ctx.Err() != nil {
			return moved, ctx.Err()
		}
	}
}
