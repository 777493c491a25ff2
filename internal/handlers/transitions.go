package handlers

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

// rejectOrder ends an order whose order.placed was wrong.
func rejectOrder(o *Order, r *Rejection, now time.Time) {
	o.State = StateRejected
	o.SessionClaim = nil
	o.Placed = dropCustomer(o.Placed)
	enqueue(o, events.TypeOrderRejected, events.InputOrderPlaced, events.OrderRejected{
		OrderID: o.OrderID, Shop: o.Shop, InputType: events.InputOrderPlaced, Reason: r.Reason, Message: r.Message,
	})
	o.note(now, "rejected: "+r.Reason)
}

// markFailed ends the order after a permanent Inbank refusal (or an
// input given up) and queues order.failed.
func markFailed(o *Order, step string, cause error, attempts int, now time.Time) {
	o.State, o.Failure = StateFailed, cause.Error()
	o.SessionClaim, o.ActivationClaim = nil, nil
	o.Placed = dropCustomer(o.Placed)
	data := events.OrderFailed{OrderID: o.OrderID, Shop: o.Shop, Step: step, Message: cause.Error(), Attempts: attempts}
	var api *inbankapi.APIError
	if errors.As(cause, &api) {
		data.HTTPStatus, data.ErrorCode = api.Status, api.ErrorCode
	}
	enqueue(o, events.TypeOrderFailed, step, data)
	o.note(now, "failed at "+step)
}

// recordCreatedSession keeps a session Inbank created for the order. The
// customer's data went to Inbank with it and nothing needs it again (no
// second session is made for a recorded one): the state keeps none.
func recordCreatedSession(o *Order, created inbankapi.CreatedSession, validUntil, now time.Time) {
	o.SessionUUID, o.RedirectURL, o.ValidUntil, o.SessionAt, o.SessionClaim = created.UUID, created.RedirectURL, &validUntil, &now, nil
	o.Placed = dropCustomer(o.Placed)
}

// publishSession moves a created, priced session to pending and queues
// session.created.
func publishSession(o *Order, quote events.Quote, now time.Time) {
	o.State, o.SessionStatus, o.SessionClaim, o.Quote = StatePending, inbankapi.SessionPending, nil, &quote
	o.Placed = dropCustomer(o.Placed)
	enqueue(o, events.TypeSessionCreated, o.SessionUUID, events.SessionCreated{
		OrderID: o.OrderID, Shop: o.Shop, SessionUUID: o.SessionUUID, RedirectURL: o.RedirectURL,
		ValidUntil: o.ValidUntil, Quote: quote,
	})
	o.note(now, "session created")
}

// sessionRank orders statuses so that state only moves forward.
var sessionRank = map[string]int{
	inbankapi.SessionPending: 0, inbankapi.SessionGranted: 1, inbankapi.SessionCompleted: 2,
	inbankapi.SessionDeclined: 3, inbankapi.SessionCancelled: 3, inbankapi.SessionExpired: 3,
}

// sessionForward reports whether a read status moves the stored session
// forward: known, later in sessionRank, and the stored one not final.
func sessionForward(o *Order, status string) bool {
	rank, known := sessionRank[status]
	return known && status != o.SessionStatus && rank >= sessionRank[o.SessionStatus] && !inbankapi.SessionFinal(o.SessionStatus)
}

// applySession records what a read of the session brought: a forward
// status change (with session.status_changed), the contract, and that a
// requested refresh was served. It reports false when there was nothing
// to record: the order waits on.
func applySession(o *Order, s inbankapi.Session, now time.Time) bool {
	changed := sessionForward(o, s.Status)
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
	enqueue(o, events.TypeSessionStatusChange, s.Status, events.SessionStatusChanged{
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
	o.note(now, "session "+s.Status)
	return true
}

// recordIdentifiers records identifiers Inbank accepted, with
// identifiers.assigned once per set.
func recordIdentifiers(o *Order, ids []events.AssetIdentifier, now time.Time) {
	if slices.Equal(o.IdentifiersAssigned, ids) {
		return
	}
	o.IdentifiersAssigned = ids
	enqueue(o, events.TypeIdentifiersAssigned, identifiersKey(ids), events.IdentifiersAssigned{
		OrderID: o.OrderID, Shop: o.Shop, ContractUUID: o.ContractUUID, AssetIdentifiers: ids,
	})
	o.note(now, "identifiers assigned")
}

// refuseIdentifiers forgets identifiers Inbank refused, so that a
// corrected shipment can follow. It reports false when the order moved on
// meanwhile (nothing to report).
func refuseIdentifiers(o *Order, ids []events.AssetIdentifier, now time.Time) bool {
	if o.State != StateGranted || slices.Equal(o.IdentifiersAssigned, ids) {
		return false
	}
	o.Identifiers = nil
	o.note(now, "identifiers refused by Inbank")
	return true
}

func identifiersKey(ids []events.AssetIdentifier) string {
	k := ""
	for _, id := range ids {
		k += id.IdentifierType + ":" + id.Identifier + ";"
	}
	return k
}

// beginActivation marks an activation attempt: until Inbank answers, it
// may or may not reach it.
func beginActivation(o *Order, now time.Time) {
	o.ActivationAttempts++
	o.ActivationUncertain = &now
	o.note(now, fmt.Sprintf("activating (attempt %d)", o.ActivationAttempts))
}

// activationCalled records Inbank's 2xx to the activation.
func activationCalled(o *Order, now time.Time) {
	o.ActivationCalled, o.ActivationClaim, o.ActivationUncertain = true, nil, nil
	o.note(now, "activation called")
}

// markActivated ends the order with exactly one contract.activated. It
// reports false when the order was activated already.
func markActivated(o *Order, via string, called bool, now time.Time) bool {
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
	enqueue(o, events.TypeContractActivated, o.ContractUUID, data)
	o.note(now, "contract activated via "+via)
	return true
}

func dropCustomer(p *events.OrderPlaced) *events.OrderPlaced {
	if p == nil || p.Customer == nil {
		return p
	}
	c := *p
	c.Customer = nil
	return &c
}

// enqueue adds an event to the outbox with an id fixed by order, type and
// discriminator.
func enqueue(o *Order, typ, discriminator string, data any) {
	b, err := json.Marshal(data)
	if err != nil {
		panic(fmt.Sprintf("handlers: marshal %s: %v", typ, err)) // our own types always marshal
	}
	o.Outbox = append(o.Outbox, OutboxEvent{ID: eventID(o.Key(), typ, discriminator), Type: typ, Data: b, TraceParent: o.TraceParent})
}

var eventNamespace = uuid.MustParse("6f1d7c8e-2b7a-4f0e-9a51-3c0d8e6b9f42")

// eventID fixes an event's id by order, type and a discriminator (the
// session, the status, the input's id…), so the same decision published
// twice is stored once.
func eventID(orderID, typ, discriminator string) string {
	return uuid.NewSHA1(eventNamespace, []byte(orderID+"\x00"+typ+"\x00"+discriminator)).String()
}
