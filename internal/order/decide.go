package order

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/smartrent-bridge/bridge/internal/activation"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
)

// MoveKind names what an order needs next.
type MoveKind int

// The moves [Decide] chooses from. Moves with a side effect at Inbank
// (session creation, identifiers, activation) are run under a claim by
// the one runner of the claim → call → record protocol.
const (
	MoveRest              MoveKind = iota // nothing to do until an input or reconciliation
	MoveWait                              // a step is claimed elsewhere or Inbank needs time: retry after Move.After
	MoveUnprocessable                     // the stored order cannot be processed (Move.Err)
	MovePublish                           // publish the outbox, then clear it
	MoveReject                            // order.placed was wrong: end the order (Move.Rejection)
	MoveLoadConditions                    // read the model's rental conditions, then decide again
	MoveCreateSession                     // claim; calculation and session creation together
	MovePriceSession                      // price a recorded, unpublished session and publish it
	MoveReadSession                       // re-read the session from Inbank
	MoveAssignIdentifiers                 // claim; give the contract the device's identifiers
	MoveReadContract                      // read the contract before repeating an activation, then decide again
	MoveActivate                          // claim; activate the contract
	MoveRecordActivated                   // the contract is active: record it (Move.Via)
	MoveAwaitActivation                   // read the contract until it is active (Move.Via)
	MoveGiveUp                            // the step ran out of attempts: fail the order at Move.Step (Move.Err)
)

var moveNames = [...]string{"rest", "wait", "unprocessable", "publish", "reject", "load_conditions", "create_session",
	"price_session", "read_session", "assign_identifiers", "read_contract", "activate", "record_activated", "await_activation", "give_up"}

func (k MoveKind) String() string {
	if int(k) < len(moveNames) {
		return moveNames[k]
	}
	return fmt.Sprintf("move(%d)", int(k))
}

// Move is one decision about an order.
type Move struct {
	Kind      MoveKind
	After     time.Duration // MoveWait: how long
	Why       string        // MoveWait: why
	Rejection *Rejection    // MoveReject
	Err       error         // MoveUnprocessable, MoveGiveUp
	Step      string        // MoveGiveUp: the step that ran out of attempts
	Insurance bool          // MoveCreateSession, MovePriceSession: insurance as the conditions decided
	Via       string        // MoveRecordActivated, MoveAwaitActivation: events.ActivatedViaAPI or …Portal
}

// Facts is what a decision knows besides the order: the time, the
// attempt, the shop's policy, and what this step has read so far.
type Facts struct {
	Now     time.Time
	Attempt string // this attempt's id: a claim it holds is not held elsewhere
	// Policy is the order's shop's activation policy; "" when the shop is
	// not configured.
	Policy activation.Policy
	// Settle is how long an activation that may have reached Inbank is
	// given before it is repeated (ActivationSettle).
	Settle time.Duration
	// Refresh re-reads the session (and a contract awaited) without a
	// callback: reconciliation.
	Refresh bool
	// SessionRead: the session was read in this step and showed nothing new.
	SessionRead bool
	// Conditions are the model's rental conditions once read; NotRentable
	// that Inbank has none for it.
	Conditions  *inbankapi.RentalConditions
	NotRentable bool
	// Contract is the contract once read in this step.
	Contract *inbankapi.Contract
	// MaxAttempts bounds an order's session creation attempts (MAX_DELIVER;
	// 0: no bound): then the order fails at the step (MoveGiveUp).
	MaxAttempts int
}

// Decide chooses an order's next move from its state and the facts, with
// no I/O: every transition of the workflow and every refusal is here, and
// [Workflow] only carries the moves out.
func Decide(o *Order, f Facts) Move {
	readSession := o.SessionUUID != "" && !f.SessionRead && (f.Refresh || o.RefreshRequested)
	switch {
	case len(o.Outbox) > 0:
		// Decided events go out before anything else is decided.
		return Move{Kind: MovePublish}
	case o.State == StateNew:
		return decideNew(o, f)
	case o.State == StateActivated && readSession && (o.RefreshRequested || o.awaitsSessionEnd(f.Now)):
		// Done, but Inbank still moves the session (to completed after an
		// API activation): report that change too.
		return readSessionOf(o, f)
	case Final(o.State):
		return Move{Kind: MoveRest}
	case readSession:
		return readSessionOf(o, f)
	case o.State == StateGranted:
		return decideGranted(o, f)
	}
	return Move{Kind: MoveRest} // pending: the customer is in Inbank's dialog
}

// RefreshEvery is the least time between two session reads that serve
// callbacks' refresh requests for one order.
const RefreshEvery = time.Second

// readSessionOf reads the session at the order's shop's Inbank, which
// must still be configured; a refresh requested by callbacks waits until
// RefreshEvery has passed since the last one was served.
func readSessionOf(o *Order, f Facts) Move {
	if f.Policy == "" {
		return Move{Kind: MoveUnprocessable, Err: fmt.Errorf("shop %q is not configured", o.Shop)}
	}
	if !f.Refresh && o.RefreshReadAt != nil {
		if next := o.RefreshReadAt.Add(RefreshEvery); f.Now.Before(next) {
			return Move{Kind: MoveWait, After: next.Sub(f.Now), Why: "the session was read for a callback less than " + RefreshEvery.String() + " ago"}
		}
	}
	return Move{Kind: MoveReadSession}
}

// decideNew checks a new order and chooses how its session is made.
func decideNew(o *Order, f Facts) Move {
	if m, held := claimedElsewhere(o.SessionClaim, f, "session creation"); held {
		return m
	}
	if f.MaxAttempts > 0 && o.SessionAttempts >= f.MaxAttempts {
		// Whichever path made them (the input's deliveries, reconciliation,
		// other inputs of the order), the order has had its attempts.
		return Move{Kind: MoveGiveUp, Step: StepSession, Err: fmt.Errorf("%w: %d session creation attempts failed", ErrAttemptsExhausted, o.SessionAttempts)}
	}
	p := o.Placed
	switch {
	case p == nil:
		return Move{Kind: MoveUnprocessable, Err: fmt.Errorf("order %s has no order.placed data", o.OrderID)}
	case f.Policy == "":
		return rejectMove(NewRejection(events.ReasonInvalidOrder, "shop %q is not configured", o.Shop))
	case o.ProductCode == "":
		return rejectMove(NewRejection(events.ReasonInvalidOrder, "productCode is missing and no default product code is configured"))
	}
	if r := CheckOrderFields(p); r != nil {
		return rejectMove(r)
	}
	if f.NotRentable {
		return rejectMove(NewRejection(events.ReasonModelNotRentable, "%s %s is not rentable under product %s",
			p.HeroDevice.IdentifierType, p.HeroDevice.Identifier, o.ProductCode))
	}
	if f.Conditions == nil {
		return Move{Kind: MoveLoadConditions}
	}
	insurance, r := Eligibility(p, *f.Conditions)
	if r != nil {
		return rejectMove(r)
	}
	if o.SessionUUID != "" {
		// Created and recorded while its calculation failed transiently:
		// only price it now ("Calculation and session together").
		return Move{Kind: MovePriceSession, Insurance: insurance}
	}
	return Move{Kind: MoveCreateSession, Insurance: insurance}
}

// decideGranted moves a granted order towards activation: by the portal
// (path B) or by identifiers and activation through the API (path A).
// Facts.Refresh reads the contract even when nothing new arrived.
func decideGranted(o *Order, f Facts) Move {
	if o.ContractUUID == "" {
		return Move{Kind: MoveRest} // granted but no contract yet: the next read brings it
	}
	if f.Policy == "" {
		return Move{Kind: MoveUnprocessable, Err: fmt.Errorf("shop %q is not configured", o.Shop)}
	}
	portal := f.Policy == activation.Portal ||
		(o.SessionStatus == inbankapi.SessionCompleted && o.ActivationAttempts == 0 && !o.ActivationCalled)
	switch {
	case portal:
		if !f.Refresh && o.SessionStatus != inbankapi.SessionCompleted {
			return Move{Kind: MoveRest}
		}
		return Move{Kind: MoveAwaitActivation, Via: events.ActivatedViaPortal}
	case o.ActivationCalled:
		if !f.Refresh {
			return Move{Kind: MoveRest}
		}
		return Move{Kind: MoveAwaitActivation, Via: events.ActivatedViaAPI}
	case len(o.Identifiers) > 0 && !slices.Equal(o.Identifiers, o.IdentifiersAssigned):
		if m, held := claimedElsewhere(o.IdentifiersClaim, f, "identifier assignment"); held {
			return m
		}
		return Move{Kind: MoveAssignIdentifiers}
	case activationDue(o, f.Policy):
		return decideActivation(o, f)
	}
	return Move{Kind: MoveRest}
}

// decideActivation calls activation once: claimed, and after reading the
// contract when an earlier attempt may have reached Inbank.
func decideActivation(o *Order, f Facts) Move {
	if m, held := claimedElsewhere(o.ActivationClaim, f, "activation"); held {
		return m
	}
	if o.ActivationAttempts > 0 {
		// An earlier attempt ended without a record.
		if f.Contract == nil {
			return Move{Kind: MoveReadContract}
		}
		if f.Contract.Status == inbankapi.ContractActivated {
			return Move{Kind: MoveRecordActivated, Via: events.ActivatedViaAPI}
		}
		if o.ActivationUncertain != nil {
			if settle := o.ActivationUncertain.Add(f.Settle); f.Now.Before(settle) {
				return Move{Kind: MoveWait, After: settle.Sub(f.Now), Why: "an earlier activation may still take effect"}
			}
		}
	}
	return Move{Kind: MoveActivate}
}

// activationDue: identifiers are with Inbank and the device has reached
// the point the policy names.
func activationDue(o *Order, policy activation.Policy) bool {
	if len(o.IdentifiersAssigned) == 0 {
		return false
	}
	switch policy {
	case activation.OnShipment:
		return o.ShippedAt != nil || o.DeliveredAt != nil
	case activation.OnDelivery:
		return o.DeliveredAt != nil
	}
	return false
}

// claimedElsewhere is the wait for a step another attempt has claimed,
// or that is held until its retry is due ([RetryHold]).
func claimedElsewhere(c *Claim, f Facts, step string) (Move, bool) {
	if !c.HeldBy(f.Attempt, f.Now) {
		return Move{}, false
	}
	why := step + " claimed by " + c.Owner
	if c.Owner == RetryHold {
		why = step + " failed transiently; retried at " + c.Until.Format(time.RFC3339Nano)
	}
	return Move{Kind: MoveWait, After: c.Until.Sub(f.Now), Why: why}, true
}

func rejectMove(r *Rejection) Move { return Move{Kind: MoveReject, Rejection: r} }

// ErrAttemptsExhausted ends an order whose step failed transiently
// MaxAttempts times: no path calls Inbank for it again.
var ErrAttemptsExhausted = errors.New("gave up")
