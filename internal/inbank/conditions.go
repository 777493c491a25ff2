package inbank

import (
	"context"
	"time"

	"github.com/smartrent-bridge/bridge/internal/inbankapi"
	"github.com/smartrent-bridge/bridge/internal/ttlcache"
)

// Conditions returns models' rental conditions from Inbank through a
// cache: they change when the partner agreement changes, not per order.
// The workflow and the quote service share one.
type Conditions struct {
	api   API
	cache *ttlcache.Cache[inbankapi.RentalConditions]
}

// NewConditions caches api's rental conditions in cache (nil: 10 minutes,
// 10,000 models).
func NewConditions(api API, cache *ttlcache.Cache[inbankapi.RentalConditions]) *Conditions {
	if cache == nil {
		cache = ttlcache.New[inbankapi.RentalConditions]("conditions", 10*time.Minute, 10000, 30*time.Second, nil)
	}
	return &Conditions{api: api, cache: cache}
}

// Get returns the conditions of the model that identifierType and
// identifier name under productCode. A model Inbank does not rent gives an
// error matching inbankapi.ErrNotFound; errors are not cached.
func (c *Conditions) Get(ctx context.Context, productCode, identifierType, identifier string) (inbankapi.RentalConditions, error) {
	key := productCode + "\x00" + identifierType + "\x00" + identifier
	v, _, err := c.cache.Get(ctx, key, func(ctx context.Context) (inbankapi.RentalConditions, error) {
		var cond inbankapi.RentalConditions
		err := RetryBriefly(ctx, func(ctx context.Context) error {
			var err error
			cond, err = c.api.RentalConditions(ctx, productCode, identifierType, identifier)
			return err
		})
		return cond, err
	})
	return v, err
}
