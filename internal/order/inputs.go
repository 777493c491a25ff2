package order

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/smartrent-bridge/bridge/internal/events"
)

// The inputs of an order as facts: each records what one event says in
// the order, or refuses the event, and does no I/O. What follows from the
// facts is [Decide]'s.

// New is the order an order.placed starts, for shop under productCode
// (the event's, or the shop's default).
func New(p *events.OrderPlaced, shop, productCode, traceParent string, now time.Time) Order {
	o := Order{
		OrderID: p.OrderID, Shop: shop, State: StateNew, CreatedAt: now, UpdatedAt: now,
		Placed: p, ProductCode: productCode, Period: p.Period, TraceParent: traceParent,
	}
	o.Note(now, "order placed")
	return o
}

// NewInvalid is the order of an order.placed that could not be decoded:
// it ends rejected (INVALID_ORDER) before it began.
func NewInvalid(orderID, shop string, now time.Time) Order {
	o := Order{OrderID: orderID, Shop: shop, State: StateRejected, CreatedAt: now, UpdatedAt: now}
	o.Note(now, "rejected: "+events.ReasonInvalidOrder)
	return o
}

// ErrEndedFailed is an order.placed redelivered after its order failed:
// it is dead-lettered, so that an operator's replay can try it again.
var ErrEndedFailed = errors.New("order failed")

// PlacedAgain records an order.placed for an order that exists. A second
// order.placed makes no new session (false: nothing changes), with one
// exception: an order that failed before it had a session is tried again
// with a new run of attempts, which is what an operator's replay of its
// order.placed means. redelivered is this very message coming again after
// its order failed meanwhile (its attempts ran out on another path): it
// ends with ErrEndedFailed.
func (o *Order) PlacedAgain(p *events.OrderPlaced, redelivered bool, now time.Time) (bool, error) {
	if o.State != StateFailed || o.SessionUUID != "" {
		return false, nil
	}
	if redelivered {
		return false, fmt.Errorf("order %s: %w: %s", o.OrderID, ErrEndedFailed, o.Failure)
	}
	o.State, o.Failure, o.Placed, o.SessionAttempts = StateNew, "", p, 0
	o.Note(now, "order placed again after a failure")
	return true, nil
}

// Shipment is a device.shipped or device.delivered for the order.
type Shipment struct {
	Input       string // events.InputDeviceShipped or events.InputDeviceDelivered
	At          time.Time
	Carrier     string // device.shipped only
	Tracking    string // device.shipped only
	Identifiers []events.AssetIdentifier
}

// ShipmentRecorded is what a shipment did to the order.
type ShipmentRecorded struct {
	// Changed: the order changed (write it, then advance it).
	Changed bool
	// Rejection refuses the input (order.rejected for it); the order is
	// unchanged.
	Rejection *Rejection
	// AssignedKept: the shipment names other identifiers than those
	// Inbank has already; the assigned ones are kept.
	AssignedKept bool
}

// RecordShipment records a shipment or delivery. A late or repeated one
// for an activated order changes nothing; one for an order that ended
// otherwise, or with identifiers the model does not take, is refused.
func (o *Order) RecordShipment(s Shipment, now time.Time) ShipmentRecorded {
	switch {
	case o.State == StateActivated:
		return ShipmentRecorded{}
	case Final(o.State):
		return ShipmentRecorded{Rejection: NewRejection(events.ReasonOrderNotActive, "order %s is %s", o.OrderID, o.State)}
	}
	if len(s.Identifiers) > 0 {
		if r := CheckIdentifiers(s.Identifiers, o.IdentifierTypes); r != nil {
			return ShipmentRecorded{Rejection: r}
		}
	}
	var kept bool
	switch s.Input {
	case events.InputDeviceDelivered:
		o.DeliveredAt = &s.At
	default:
		o.ShippedAt, o.Carrier, o.Tracking = &s.At, s.Carrier, s.Tracking
	}
	if len(s.Identifiers) > 0 {
		switch {
		case len(o.IdentifiersAssigned) > 0 && !slices.Equal(o.IdentifiersAssigned, s.Identifiers):
			kept = true
		case len(o.IdentifiersAssigned) == 0:
			o.Identifiers = slices.Clone(s.Identifiers)
		}
	}
	o.Note(now, s.Input)
	return ShipmentRecorded{Changed: true, AssignedKept: kept}
}

// ClockSkew is how far the bridge's clock and nats-server's may disagree
// when a callback's stored time is compared with a session read's start.
const ClockSkew = time.Second

// RequestRefresh records a callback, stored at storedAt: a hint to read
// the session again. requested is false when there is nothing to write:
// the order ended (other than activated, whose session may still move),
// a refresh is requested already, or a read that began after the callback
// was stored has answered it (answered).
func (o *Order) RequestRefresh(storedAt time.Time, traceParent string) (requested, answered bool) {
	answered = o.RefreshReadAt != nil && o.RefreshReadAt.After(storedAt.Add(ClockSkew))
	if (Final(o.State) && o.State != StateActivated) || o.RefreshRequested || answered {
		return false, answered
	}
	o.RefreshRequested, o.RefreshTraceParent = true, traceParent
	return true, false
}
