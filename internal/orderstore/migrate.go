package orderstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/ids"
)

// MigrateStateKeys moves orders of non-default shops from the key scheme
// of earlier versions, ids.OrderKey(shop + "/" + orderId), which the default
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
		if json.Unmarshal(e.Value(), &names) != nil || names.Shop == "" || ids.OrderKey(names.Shop+"/"+names.OrderID) != key {
			continue // the default shop's order whose id has a "/": its key is right
		}
		if _, err := kv.Create(ctx, ids.StateKey(names.Shop, names.OrderID), e.Value()); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
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
