package handlers

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/smartrent-bridge/bridge/internal/inbank"
)

// ConditionsCache keeps rental conditions per model for a while: they
// change when the partner agreement changes, not per order. Concurrent
// misses for one model make one Inbank call. It is bounded: when full,
// expired entries are dropped, then the oldest.
type ConditionsCache struct {
	ttl   time.Duration
	limit int
	group singleflight.Group

	mu      sync.Mutex
	entries map[string]cached
}

type cached struct {
	c       inbank.RentalConditions
	expires time.Time
}

// NewConditionsCache returns a cache of up to limit models for ttl.
func NewConditionsCache(ttl time.Duration, limit int) *ConditionsCache {
	return &ConditionsCache{ttl: ttl, limit: max(limit, 1), entries: map[string]cached{}}
}

// Get returns the conditions of a model, from the cache or from Inbank.
// Errors are not cached.
func (c *ConditionsCache) Get(ctx context.Context, api Inbank, productCode, identifierType, identifier string) (inbank.RentalConditions, error) {
	key := productCode + "\x00" + identifierType + "\x00" + identifier
	now := time.Now()
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.c, nil
	}
	v, err, _ := c.group.Do(key, func() (any, error) {
		var cond inbank.RentalConditions
		err := shortRetry(ctx, func(ctx context.Context) error {
			var err error
			cond, err = api.RentalConditions(ctx, productCode, identifierType, identifier)
			return err
		})
		if err != nil {
			return cond, err
		}
		c.put(key, cond, time.Now())
		return cond, nil
	})
	return v.(inbank.RentalConditions), err
}

func (c *ConditionsCache) put(key string, cond inbank.RentalConditions, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.limit {
		oldest, oldestAt := "", now.Add(c.ttl)
		for k, e := range c.entries {
			if now.After(e.expires) {
				delete(c.entries, k)
				continue
			}
			if e.expires.Before(oldestAt) {
				oldest, oldestAt = k, e.expires
			}
		}
		if len(c.entries) >= c.limit {
			delete(c.entries, oldest)
		}
	}
	c.entries[key] = cached{c: cond, expires: now.Add(c.ttl)}
}
