package order

import (
	"slices"
	"time"

	"github.com/smartrent-bridge/bridge/internal/events"
)

// DeepCopy returns a copy of o that shares no memory with it: the store
// remembers orders decoded and hands each load its own copy
// ([events.Copier]). TestOrderDeepCopySharesNothing fails when a field
// added to Order, or to what it holds, is left shared.
func (o Order) DeepCopy() Order {
	c := o
	c.Placed = o.Placed.DeepCopy()
	c.Quote = o.Quote.DeepCopy()
	for _, t := range []**time.Time{&c.SessionAt, &c.ValidUntil, &c.ShippedAt, &c.DeliveredAt, &c.ActivationUncertain, &c.ActivatedAt, &c.RefreshReadAt} {
		*t = events.CopyPtr(*t)
	}
	for _, claim := range []**Claim{&c.SessionClaim, &c.IdentifiersClaim, &c.ActivationClaim, &c.ReconcileClaim} {
		*claim = events.CopyPtr(*claim)
	}
	c.IdentifierTypes = slices.Clone(o.IdentifierTypes)
	c.Identifiers = slices.Clone(o.Identifiers)
	c.IdentifiersAssigned = slices.Clone(o.IdentifiersAssigned)
	c.History = slices.Clone(o.History)
	c.Outbox = slices.Clone(o.Outbox)
	for i := range c.Outbox {
		c.Outbox[i].Data = slices.Clone(o.Outbox[i].Data)
	}
	return c
}
