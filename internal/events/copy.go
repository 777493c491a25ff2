package events

import (
	"maps"
	"slices"
)

// Copier is a value that makes deep copies of itself: a copy shares no
// pointer, slice or map with the original, so either may be changed
// without the other seeing it. [StateStore] needs it to remember decoded
// values and still hand every caller a value of its own.
type Copier[T any] interface {
	DeepCopy() T
}

// DeepCopy returns a copy of p that shares no memory with it (nil for nil).
func (p *OrderPlaced) DeepCopy() *OrderPlaced {
	if p == nil {
		return nil
	}
	c := *p
	c.InsuranceUsed = CopyPtr(p.InsuranceUsed)
	c.HeroDevice.GrossPrice = CopyPtr(p.HeroDevice.GrossPrice)
	c.AddOns = slices.Clone(p.AddOns)
	for i := range c.AddOns {
		c.AddOns[i].GrossPrice = CopyPtr(p.AddOns[i].GrossPrice)
	}
	c.GrossTradeInAmount = CopyPtr(p.GrossTradeInAmount)
	c.GrossCampaignDiscount = CopyPtr(p.GrossCampaignDiscount)
	c.Customer = CopyPtr(p.Customer)
	c.Merchant = slices.Clone(p.Merchant)
	if p.AdditionalData != nil {
		c.AdditionalData = copyJSONValue(p.AdditionalData).(map[string]any)
	}
	return &c
}

// DeepCopy returns a copy of q that shares no memory with it (nil for nil).
func (q *Quote) DeepCopy() *Quote {
	if q == nil {
		return nil
	}
	c := *q
	c.TotalGrossPriceWithDiscount = CopyPtr(q.TotalGrossPriceWithDiscount)
	c.VAT = CopyPtr(q.VAT)
	return &c
}

// CopyPtr returns a pointer to a copy of *p, or nil: a deep copy for
// pointers to values that hold no pointers themselves.
func CopyPtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}

// copyJSONValue deep-copies what encoding/json decodes into an any: maps,
// slices and immutable scalars.
func copyJSONValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		c := maps.Clone(v)
		for k, e := range c {
			c[k] = copyJSONValue(e)
		}
		return c
	case []any:
		c := slices.Clone(v)
		for i, e := range c {
			c[i] = copyJSONValue(e)
		}
		return c
	}
	return v
}
