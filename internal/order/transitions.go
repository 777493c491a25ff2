package order

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
)

// The transitions below change an order in memory, with the events they
// imply in its outbox, and do no I/O: the runner writes the order (one
// compare-and-set) and publishes the outbox after.

// Reject ends an order whose order.placed was wrong.
func (o *Order) Reject(r *Rejection, now time.Time) {
	o.State = StateRejected
	o.SessionClaim = nil
	o.Placed = DropCustomer(o.Placed)
	o.enqueue(now, events.TypeOrderRejected, events.InputOrderPlaced, events.OrderRejected{
		OrderID: o.OrderID, Shop: o.Shop, InputType: events.InputOrderPlaced, Reason: r.Reason, Message: r.Message,
	})
	o.Note(now, "rejected: "+r.Reason)
}

// Fail ends the order after a permanent Inbank refusal (or an
// input given up) and queues order.failed. It reports false when the
// order had ended already: nothing to write.
func (o *Order) Fail(step string, cause error, attempts int, now time.Time) bool {
	if Final(o.State) {
		return false
	}
	o.State, o.Failure = StateFailed, cause.Error()
	o.SessionClaim, o.ActivationClaim = nil, nil
	o.Placed = DropCustomer(o.Placed)
	data := events.OrderFailed{OrderID: o.OrderID, Shop: o.Shop, Step: step, Message: cause.Error(), Attempts: attempts}
	var api *inbankapi.APIError
	if errors.As(cause, &api) {
		data.HTTPStatus, data.ErrorCode = api.Status, api.ErrorCode
	}
	o.enqueue(now, events.TypeOrderFailed, step, data)
	o.Note(now, "failed at "+step)
	return true
}

// RecordConditions keeps what the session's step needs of the model's
// rental conditions: the identifier types a shipment may name.
func (o *Order) RecordConditions(c inbankapi.RentalConditions) {
	o.IdentifierTypes = c.AssetIdentifierTypes
}

// OutboxPublished empties the outbox once JetStream has acknowledged every
// event in it.
func (o *Order) OutboxPublished() { o.Outbox = nil }

// DropPublished removes from the outbox the events published reports as
// stored by JetStream, and returns their ids.
func (o *Order) DropPublished(published func(id string) bool) (dropped []string) {
	kept := o.Outbox[:0:0]
	for _, ev := range o.Outbox {
		if published(ev.ID) {
			dropped = append(dropped, ev.ID)
		} else {
			kept = append(kept, ev)
		}
	}
	if len(dropped) > 0 {
		o.Outbox = kept
	}
	return dropped
}

// OutboxDecidedBefore reports whether an event in the outbox was decided
// before t, or at a time not kept.
func (o *Order) OutboxDecidedBefore(t time.Time) bool {
	for _, ev := range o.Outbox {
		if ev.At.Before(t) {
			return true
		}
	}
	return false
}

// RecordSession keeps a session Inbank created for owner's attempt, and
// publishes it when its quote is known (nil: the calculation failed
// transiently; the session waits, unpublished, to be priced). The
// customer's data went to Inbank with it and nothing needs it again (no
// second session is made for a recorded one): the state keeps none. It
// reports false when owner's claim was taken over meanwhile: that session
// stays unpublished and expires at Inbank.
func (o *Order) RecordSession(owner string, created inbankapi.CreatedSession, validUntil time.Time, quote *events.Quote, now time.Time) bool {
	if o.State != StateNew || !o.ClaimedBy(StepSession, owner) {
		return false
	}
	o.SessionUUID, o.RedirectURL, o.ValidUntil, o.SessionAt, o.SessionClaim = created.UUID, created.RedirectURL, &validUntil, &now, nil
	o.Placed = DropCustomer(o.Placed)
	if quote == nil {
		o.Note(now, "session created; not published until Inbank's calculation answers")
		return true
	}
	o.publishSession(*quote, now)
	return true
}

// PriceSession publishes a recorded, unpublished session with its quote.
// It reports false when that session is published already (or was never
// this order's).
func (o *Order) PriceSession(sessionUUID string, quote events.Quote, now time.Time) bool {
	if o.State != StateNew || o.SessionUUID != sessionUUID {
		return false
	}
	o.publishSession(quote, now)
	return true
}

// publishSession moves a created, priced session to pending and queues
// session.created.
func (o *Order) publishSession(quote events.Quote, now time.Time) {
	o.State, o.SessionStatus, o.SessionClaim, o.Quote = StatePending, inbankapi.SessionPending, nil, &quote
	o.Placed = DropCustomer(o.Placed)
	o.enqueue(now, events.TypeSessionCreated, o.SessionUUID, events.SessionCreated{
		OrderID: o.OrderID, Shop: o.Shop, SessionUUID: o.SessionUUID, RedirectURL: o.RedirectURL,
		ValidUntil: o.ValidUntil, Quote: quote,
	})
	o.Note(now, "session created")
}

// sessionRank orders statuses so that state only moves forward.
var sessionRank = map[string]int{
	inbankapi.SessionPending: 0, inbankapi.SessionGranted: 1, inbankapi.SessionCompleted: 2,
	inbankapi.SessionDeclined: 3, inbankapi.SessionCancelled: 3, inbankapi.SessionExpired: 3,
}

// KnownSessionStatus reports whether status is one Inbank documents.
func KnownSessionStatus(status string) bool {
	_, known := sessionRank[status]
	return known
}

// SessionForward reports whether a read status moves the stored session
// forward: known, later in sessionRank, and the stored one not final.
func (o *Order) SessionForward(status string) bool {
	rank, known := sessionRank[status]
	return known && status != o.SessionStatus && rank >= sessionRank[o.SessionStatus] && !inbankapi.SessionFinal(o.SessionStatus)
}

// ApplySession records what a read of the session brought: a forward
// status change (with session.status_changed), the contract, and that a
// requested refresh was served. It reports false when there was nothing
// to record: the order waits on.
func (o *Order) ApplySession(s inbankapi.Session, now time.Time) bool {
	changed := o.SessionForward(s.Status)
	if !changed && !o.RefreshRequested && (s.CreditContractUUID == "" || s.CreditContractUUID == o.ContractUUID) {
		return false
	}
	if o.RefreshRequested {
		o.RefreshReadAt = &now
	}
	o.RefreshRequested, o.RefreshTraceParent = false, ""
	if o.State == StateActivated && !changed {
		return true // the refresh is served; an activated order keeps its contract
	}
	if s.CreditContractUUID != "" {
		o.ContractUUID = s.CreditContractUUID
	}
	if !changed {
		return true
	}
	prev := o.SessionStatus
	o.SessionStatus = s.Status
	o.enqueue(now, events.TypeSessionStatusChange, s.Status, events.SessionStatusChanged{
		OrderID: o.OrderID, Shop: o.Shop, SessionUUID: o.SessionUUID, PreviousStatus: prev, Status: s.Status, ContractUUID: o.ContractUUID,
	})
	switch {
	case o.State == StateActivated:
		// The order's own state only moves forward; the event above still
		// reports Inbank's change.
	case s.Status == inbankapi.SessionGranted, s.Status == inbankapi.SessionCompleted:
		o.State = StateGranted
	case s.Status == inbankapi.SessionDeclined:
		o.State = StateDeclined
	case s.Status == inbankapi.SessionCancelled:
		o.State = StateCancelled
	case s.Status == inbankapi.SessionExpired:
		o.State = StateExpired
	}
	o.Note(now, "session "+s.Status)
	return true
}

// RecordIdentifiers records identifiers Inbank accepted for owner's
// attempt, with identifiers.assigned once per set. The assignment is
// repeatable, so a result whose claim was taken over is recorded too.
func (o *Order) RecordIdentifiers(owner string, ids []events.AssetIdentifier, now time.Time) {
	o.releaseClaim(StepIdentifiers, owner)
	if slices.Equal(o.IdentifiersAssigned, ids) {
		return
	}
	o.IdentifiersAssigned = ids
	o.enqueue(now, events.TypeIdentifiersAssigned, identifiersKey(ids), events.IdentifiersAssigned{
		OrderID: o.OrderID, Shop: o.Shop, ContractUUID: o.ContractUUID, AssetIdentifiers: ids,
	})
	o.Note(now, "identifiers assigned")
}

// RefuseIdentifiers forgets identifiers Inbank refused owner's attempt,
// so that a corrected shipment can follow. It reports false when the order
// moved on meanwhile (nothing to report; the claim is released anyway).
func (o *Order) RefuseIdentifiers(owner string, ids []events.AssetIdentifier, now time.Time) bool {
	o.releaseClaim(StepIdentifiers, owner)
	if o.State != StateGranted || slices.Equal(o.IdentifiersAssigned, ids) {
		return false
	}
	o.Identifiers = nil
	o.Note(now, "identifiers refused by Inbank")
	return true
}

func identifiersKey(ids []events.AssetIdentifier) string {
	k := ""
	for _, id := range ids {
		k += id.IdentifierType + ":" + id.Identifier + ";"
	}
	return k
}

// RecordActivationCalled records Inbank's 2xx to the activation.
func (o *Order) RecordActivationCalled(now time.Time) {
	o.ActivationCalled, o.ActivationClaim, o.ActivationUncertain = true, nil, nil
	o.Note(now, "activation called")
}

// MarkActivated ends the order with exactly one contract.activated. It
// reports false when the order was activated already.
func (o *Order) MarkActivated(via string, called bool, now time.Time) bool {
	if o.State == StateActivated {
		return false
	}
	o.State, o.ActivatedVia, o.ActivatedAt = StateActivated, via, &now
	o.ActivationCalled = o.ActivationCalled || called
	o.ActivationClaim, o.ActivationUncertain = nil, nil
	data := events.ContractActivated{
		OrderID: o.OrderID, Shop: o.Shop, ContractUUID: o.ContractUUID, SessionUUID: o.SessionUUID,
		ActivatedVia: via, ProductCode: o.ProductCode, Period: o.Period, ActivatedAt: &now,
	}
	if o.Quote != nil {
		g := o.Quote.GrossMonthlyPayment
		data.GrossMonthlyPayment = &g
	}
	o.enqueue(now, events.TypeContractActivated, o.ContractUUID, data)
	o.Note(now, "contract activated via "+via)
	return true
}

func DropCustomer(p *events.OrderPlaced) *events.OrderPlaced {
	if p == nil || p.Customer == nil {
		return p
	}
	c := *p
	c.Customer = nil
	return &c
}

// enqueue adds an event to the outbox with an id fixed by order, type and
// discriminator.
func (o *Order) enqueue(now time.Time, typ, discriminator string, data any) {
	b, err := json.Marshal(data)
	if err != nil {
		panic(fmt.Sprintf("order: marshal %s: %v", typ, err)) // our own types always marshal
	}
	o.Outbox = append(o.Outbox, OutboxEvent{ID: EventID(o.Key(), typ, discriminator), Type: typ, Data: b, TraceParent: o.TraceParent, At: now})
}

var eventNamespace = uuid.MustParse("6f1d7c8e-2b7a-4f0e-9a51-3c0d8e6b9f42")

// EventID fixes an event's id by order, type and a discriminator (the
// session, the status, the input's id…), so the same decision published
// twice is stored once.
func EventID(orderID, typ, discriminator string) string {
	return uuid.NewSHA1(eventNamespace, []byte(orderID+"\x00"+typ+"\x00"+discriminator)).String()
}
