package handlers

import (
	"time"

	"github.com/smartrent-bridge/bridge/internal/activation"
	"github.com/smartrent-bridge/bridge/internal/inbank"
)

// ShopConfig is one more Inbank shop the workflow serves, by alias. The
// default shop is the one of Config's top-level fields.
type ShopConfig struct {
	Inbank      Inbank
	Conditions  *inbank.Conditions // default: a private cache
	ProductCode string             // default product code of its orders
	Policy      activation.Policy  // default: Config.Policy
	SessionTTL  time.Duration      // default: Config.SessionTTL
}

// shop is a configured shop with its guard.
type shop struct {
	alias       string
	api         Inbank
	conditions  *inbank.Conditions
	productCode string
	policy      activation.Policy
	ttl         time.Duration
}
