package order

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/ids"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
)

// Order states. The first three are waiting for Inbank or the customer;
// the last six are final.
const (
	StateNew       = "new"       // order.placed recorded, no session yet
	StatePending   = "pending"   // session created, customer in Inbank's dialog
	StateGranted   = "granted"   // customer signed; waiting for identifiers and activation (or the portal)
	StateActivated = "activated" // contract in force; contract.activated published
	StateRejected  = "rejected"  // order.placed was wrong
	StateFailed    = "failed"    // Inbank refused permanently
	StateDeclined  = "declined"
	StateCancelled = "cancelled"
	StateExpired   = "expired"
)

// Final reports whether nothing more happens for an order in state s.
func Final(s string) bool {
	switch s {
	case StateActivated, StateRejected, StateFailed, StateDeclined, StateCancelled, StateExpired:
		return true
	}
	return false
}

// sessionWatch is how long after activation the bridge keeps reading a
// session that has not reached a final status: after an API activation
// Inbank moves the session to completed, and the callback saying so may
// be lost or look like an earlier one.
const sessionWatch = 24 * time.Hour

// sessionSettled reports whether a session status can change no more.
func sessionSettled(status string) bool {
	return status == inbankapi.SessionCompleted || inbankapi.SessionFinal(status)
}

// awaitsSessionEnd reports whether the order is activated while its
// session may still move (to completed), within sessionWatch of the
// activation: such an order is still reconciled, so that
// session.status_changed reaches its final status without callbacks.
func (o *Order) awaitsSessionEnd(now time.Time) bool {
	return o.State == StateActivated && o.SessionUUID != "" && !sessionSettled(o.SessionStatus) &&
		(o.ActivatedAt == nil || now.Sub(*o.ActivatedAt) < sessionWatch)
}

// Order is what the bridge knows of one order, stored in the
// smartrent_orders bucket. Every field is there so that any bridge can
// pick the order up after any crash.
type Order struct {
	OrderID   string    `json:"orderId"`
	Shop      string    `json:"shop,omitempty"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`

	// Placed is the order.placed data, kept to create the session.
	// Customer data is dropped once the session exists.
	Placed      *events.OrderPlaced `json:"placed,omitempty"`
	ProductCode string              `json:"productCode"`
	Period      int                 `json:"period"`
	// IdentifierTypes are the model's assetIdentifierTypes.
	IdentifierTypes []string      `json:"identifierTypes,omitempty"`
	Quote           *events.Quote `json:"quote,omitempty"`

	// Session creation: Attempts counts claims. A claim whose owner died
	// before recording the session is taken over after it expires; the
	// session that owner may have created is never published and expires
	// at Inbank.
	SessionClaim    *Claim `json:"sessionClaim,omitempty"`
	SessionAttempts int    `json:"sessionAttempts,omitempty"`
	SessionUUID     string `json:"sessionUuid,omitempty"`
	// SessionAt is when the session was recorded: where
	// smartrent_session_to_activation_seconds starts.
	SessionAt   *time.Time `json:"sessionCreatedAt,omitempty"`
	RedirectURL string     `json:"redirectUrl,omitempty"`
	// ValidUntil is the validUntil sent with the session: a session
	// created but never recorded expires at Inbank then.
	ValidUntil    *time.Time `json:"validUntil,omitempty"`
	SessionStatus string     `json:"sessionStatus,omitempty"`
	ContractUUID  string     `json:"contractUuid,omitempty"`
	// RefreshRequested is set by a callback: re-read the session.
	RefreshRequested bool `json:"refreshRequested,omitempty"`
	// RefreshTraceParent is the trace context of the callback that asked
	// for the refresh. Whichever Advance serves the request (often one
	// still running for an earlier input), the read and the events it
	// causes belong to the callback's trace.
	RefreshTraceParent string `json:"refreshTraceparent,omitempty"`
	// RefreshReadAt is when the last read that served a refresh request
	// began: a callback stored before it is answered by that read, and the
	// next one waits until RefreshEvery has passed (a flood of callbacks
	// costs Inbank at most one session read a second per order).
	RefreshReadAt *time.Time `json:"refreshReadAt,omitempty"`

	// Shipment and delivery as the shop's systems reported them.
	Identifiers []events.AssetIdentifier `json:"identifiers,omitempty"`
	ShippedAt   *time.Time               `json:"shippedAt,omitempty"`
	DeliveredAt *time.Time               `json:"deliveredAt,omitempty"`
	Carrier     string                   `json:"carrier,omitempty"`
	Tracking    string                   `json:"trackingNumber,omitempty"`

	// IdentifiersAssigned are the identifiers Inbank has for the contract.
	// The assignment is claimed too, so concurrent handlers of one order
	// send it once; after a crash it is simply repeated.
	IdentifiersAssigned []events.AssetIdentifier `json:"identifiersAssigned,omitempty"`
	IdentifiersClaim    *Claim                   `json:"identifiersClaim,omitempty"`

	// Activation: a claim before the call. ActivationUncertain is when an
	// attempt may or may not have reached Inbank: the contract is read, and
	// the call repeated only after ActivationSettle. ActivationCalled once
	// Inbank answered 2xx.
	ActivationClaim     *Claim     `json:"activationClaim,omitempty"`
	ActivationAttempts  int        `json:"activationAttempts,omitempty"`
	ActivationUncertain *time.Time `json:"activationUncertain,omitempty"`
	ActivationCalled    bool       `json:"activationCalled,omitempty"`

	// The outcome: how and when the contract came into force.
	ActivatedVia string     `json:"activatedVia,omitempty"`
	ActivatedAt  *time.Time `json:"activatedAt,omitempty"`

	// Outbox holds events decided but not yet acknowledged by JetStream.
	// They are published after the state that implies them is saved, and
	// removed after their PubAck; their ids are fixed, so publishing one
	// twice stores it once.
	Outbox []OutboxEvent `json:"outbox,omitempty"`

	// ReconcileClaim makes one bridge at a time reconcile the order.
	ReconcileClaim *Claim `json:"reconcileClaim,omitempty"`

	History []Step `json:"history,omitempty"`
	Failure string `json:"failure,omitempty"`

	// TraceParent is the W3C trace context of the last input, carried to
	// the events it causes.
	TraceParent string `json:"traceparent,omitempty"`
}

// StoreKey is an order's key in the store, injective in (shop, order id):
// see [ids.StateKey].
func StoreKey(shop, orderID string) string { return ids.StateKey(shop, orderID) }

// CheckIdentity checks that a loaded order is the one asked for. With
// injective keys it always is; a state written under another scheme (or
// by hand) is refused with ErrForeignState rather than applied to the
// wrong shop's order.
func (o *Order) CheckIdentity(shop, orderID string) error {
	if o.Shop != shop || o.OrderID != orderID {
		return fmt.Errorf("state key %s holds another order (shop %q): %w", o.Key(), o.Shop, ErrForeignState)
	}
	return nil
}

// ErrForeignState is a state key that holds another order.
var ErrForeignState = errors.New("state belongs to another order")

// Key is the order's key in the store.
func (o *Order) Key() string { return StoreKey(o.Shop, o.OrderID) }

// Claim reserves a step with a side effect for one bridge until Until.
type Claim struct {
	Owner string    `json:"owner"`
	Until time.Time `json:"until"`
}

// HeldBy reports whether the claim is live and not owner's (an attempt id,
// or a bridge's id for reconciliation).
func (c *Claim) HeldBy(owner string, now time.Time) bool {
	return c != nil && c.Owner != owner && now.Before(c.Until)
}

// OutboxEvent is a state event waiting to be published.
type OutboxEvent struct {
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	Data        json.RawMessage `json:"data"`
	TraceParent string          `json:"traceparent,omitempty"`
	// At is when the event was decided (zero in orders stored before
	// it was kept): how long a publication of it may have been stored.
	At time.Time `json:"at,omitzero"`
}

// Step is one line of an order's history, for operators.
type Step struct {
	At   time.Time `json:"at"`
	What string    `json:"what"`
}

// maxHistory bounds the history kept per order.
const maxHistory = 50

func (o *Order) Note(now time.Time, what string) {
	o.History = append(o.History, Step{At: now, What: what})
	if len(o.History) > maxHistory {
		o.History = o.History[len(o.History)-maxHistory:]
	}
	o.UpdatedAt = now
}

// Settled reports whether the order needs nothing more from Inbank: final,
// its events published, and its session final too (or watched long
// enough).
func (o *Order) Settled(now time.Time) bool {
	return Final(o.State) && len(o.Outbox) == 0 && !o.awaitsSessionEnd(now)
}

// Steps named in order.failed and logs.
const (
	StepConditions  = "get_rental_conditions"
	StepCalculate   = "calculate"
	StepSession     = "create_session"
	StepReadSession = "get_session"
	StepIdentifiers = "assign_asset_identifiers"
	StepActivate    = "activate_contract"
	StepContract    = "get_contract"
)

// RetryHold owns the claim of a step that failed transiently until its
// retry is due: no attempt holds it, and every attempt waits for it.
const RetryHold = "retry-hold"

// Retention returns the store's preparation of an order before each write
// ([orderstore.StateStore.ExpireWith]): a settled order keeps no customer data
// and expires after retention.
func Retention(retention time.Duration, now func() time.Time) func(*Order) time.Duration {
	return func(o *Order) time.Duration {
		if !o.Settled(now()) {
			return 0
		}
		o.Placed = DropCustomer(o.Placed)
		return retention
	}
}
