package order_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
	"github.com/smartrent-bridge/bridge/internal/order"
)

// TestRecordShipment: what a shipment or delivery does to an order in
// each state, decided by the order alone.
func TestRecordShipment(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	shippedAt := now.Add(-time.Hour)
	other := []events.AssetIdentifier{{Identifier: "490154203237518", IdentifierType: inbankapi.AssetIdentifierIMEI}}
	badIMEI := []events.AssetIdentifier{{Identifier: "356938035643808", IdentifierType: inbankapi.AssetIdentifierIMEI}}
	granted := func(change ...func(*order.Order)) order.Order {
		o := order.Order{OrderID: "o-1", State: order.StateGranted, IdentifierTypes: []string{inbankapi.AssetIdentifierIMEI}}
		for _, c := range change {
			c(&o)
		}
		return o
	}
	shipped := order.Shipment{Input: events.InputDeviceShipped, At: shippedAt, Carrier: "DPD", Tracking: "T1", Identifiers: imei()}
	tests := []struct {
		name       string
		o          order.Order
		s          order.Shipment
		changed    bool
		reason     string // a rejection's
		kept       bool
		wantIDs    []events.AssetIdentifier
		shipped    bool
		delivered  bool
		noteAppend bool
	}{
		{name: "granted: shipment recorded with identifiers", o: granted(), s: shipped, changed: true, wantIDs: imei(), shipped: true, noteAppend: true},
		{name: "pending: recorded for later", o: granted(func(o *order.Order) { o.State = order.StatePending }), s: shipped, changed: true, wantIDs: imei(), shipped: true, noteAppend: true},
		{name: "delivery sets only the delivery", o: granted(), s: order.Shipment{Input: events.InputDeviceDelivered, At: shippedAt}, changed: true, delivered: true, noteAppend: true},
		{name: "activated: late or repeated, nothing", o: granted(func(o *order.Order) { o.State = order.StateActivated }), s: shipped},
		{name: "declined: refused", o: granted(func(o *order.Order) { o.State = order.StateDeclined }), s: shipped, reason: events.ReasonOrderNotActive},
		{name: "invalid IMEI: refused", o: granted(), s: order.Shipment{Input: events.InputDeviceShipped, At: shippedAt, Identifiers: badIMEI}, reason: events.ReasonInvalidIdentifier},
		{name: "type the model does not take: refused", o: granted(), s: order.Shipment{Input: events.InputDeviceShipped, At: shippedAt,
			Identifiers: []events.AssetIdentifier{{Identifier: "SN1", IdentifierType: inbankapi.AssetIdentifierSerialNumber}}}, reason: events.ReasonInvalidIdentifier},
		{name: "other identifiers than assigned: assigned kept", o: granted(func(o *order.Order) { o.Identifiers, o.IdentifiersAssigned = imei(), imei() }),
			s: order.Shipment{Input: events.InputDeviceDelivered, At: shippedAt, Identifiers: other}, changed: true, kept: true, wantIDs: imei(), delivered: true, noteAppend: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.o
			got := o.RecordShipment(tt.s, now)
			if got.Changed != tt.changed || got.AssignedKept != tt.kept {
				t.Fatalf("changed %v, kept %v; want %v, %v", got.Changed, got.AssignedKept, tt.changed, tt.kept)
			}
			switch {
			case tt.reason == "" && got.Rejection != nil:
				t.Fatalf("rejected: %v", got.Rejection)
			case tt.reason != "" && (got.Rejection == nil || got.Rejection.Reason != tt.reason):
				t.Fatalf("rejection %v, want %s", got.Rejection, tt.reason)
			}
			if !tt.changed && (o.ShippedAt != nil || o.DeliveredAt != nil || len(o.History) > 0) {
				t.Fatalf("an input that changed nothing changed the order: %+v", o)
			}
			if !slices.Equal(o.Identifiers, tt.wantIDs) {
				t.Errorf("identifiers %v, want %v", o.Identifiers, tt.wantIDs)
			}
			if (o.ShippedAt != nil) != tt.shipped || (o.DeliveredAt != nil) != tt.delivered {
				t.Errorf("shipped %v, delivered %v", o.ShippedAt, o.DeliveredAt)
			}
			if tt.shipped && (!o.ShippedAt.Equal(shippedAt) || o.Carrier != "DPD" || o.Tracking != "T1") {
				t.Errorf("shipment %v %q %q", o.ShippedAt, o.Carrier, o.Tracking)
			}
			if tt.noteAppend && (len(o.History) != 1 || o.History[0].What != tt.s.Input) {
				t.Errorf("history %v", o.History)
			}
		})
	}
}

// TestRequestRefresh: a callback asks for one session read; one stored
// before a read began is answered by it.
func TestRequestRefresh(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	readAt := now
	tests := []struct {
		name                string
		o                   order.Order
		stored              time.Time
		requested, answered bool
	}{
		{"pending: requested", order.Order{State: order.StatePending}, now, true, false},
		{"activated: its session may still move", order.Order{State: order.StateActivated}, now, true, false},
		{"expired: nothing", order.Order{State: order.StateExpired}, now, false, false},
		{"requested already", order.Order{State: order.StatePending, RefreshRequested: true}, now, false, false},
		{"stored before a read began: answered", order.Order{State: order.StatePending, RefreshReadAt: &readAt}, now.Add(-2 * order.ClockSkew), false, true},
		{"stored within the clock skew of a read: requested", order.Order{State: order.StatePending, RefreshReadAt: &readAt}, now.Add(-order.ClockSkew / 2), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.o
			requested, answered := o.RequestRefresh(tt.stored, "00-tp")
			if requested != tt.requested || answered != tt.answered {
				t.Fatalf("requested %v, answered %v; want %v, %v", requested, answered, tt.requested, tt.answered)
			}
			if o.RefreshRequested != (tt.requested || tt.o.RefreshRequested) || requested && o.RefreshTraceParent != "00-tp" {
				t.Fatalf("refresh %v %q", o.RefreshRequested, o.RefreshTraceParent)
			}
		})
	}
}

// TestPlacedAgain: a second order.placed makes no new session, except
// after a failure before the session, and a redelivery then ends.
func TestPlacedAgain(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	p := placed("o-1", 900)
	pending := order.Order{OrderID: "o-1", State: order.StatePending, SessionUUID: "s-1"}
	if again, err := pending.PlacedAgain(p, false, now); again || err != nil {
		t.Fatalf("pending: %v %v", again, err)
	}
	failedWithSession := order.Order{OrderID: "o-1", State: order.StateFailed, SessionUUID: "s-1"}
	if again, err := failedWithSession.PlacedAgain(p, false, now); again || err != nil {
		t.Fatalf("failed with a session: %v %v", again, err)
	}
	failed := order.Order{OrderID: "o-1", State: order.StateFailed, Failure: "HTTP 500", SessionAttempts: 5}
	redelivered := failed
	if again, err := redelivered.PlacedAgain(p, true, now); again || !errors.Is(err, order.ErrEndedFailed) || redelivered.State != order.StateFailed {
		t.Fatalf("redelivered: %v %v %s", again, err, redelivered.State)
	}
	if again, err := failed.PlacedAgain(p, false, now); !again || err != nil || failed.State != order.StateNew || failed.SessionAttempts != 0 || failed.Failure != "" || failed.Placed != p {
		t.Fatalf("replayed: %v %v %+v", again, err, failed)
	}
}

// TestClaims: an attempt counts, holds for its retry only while it owns
// the claim, and an activation Inbank certainly did not take is certain.
func TestClaims(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var o order.Order
	o.TakeClaim(order.StepActivate, "a-1", now.Add(time.Minute), now)
	if !o.ClaimedBy(order.StepActivate, "a-1") || o.ClaimedBy(order.StepActivate, "a-2") || o.Attempts(order.StepActivate) != 1 || o.ActivationUncertain == nil {
		t.Fatalf("after the claim: %+v", o)
	}
	if o.HoldForRetry(order.StepActivate, "a-2", now.Add(time.Second), true) {
		t.Fatal("a claim not owned was turned into a hold")
	}
	if !o.HoldForRetry(order.StepActivate, "a-1", now.Add(time.Second), true) || o.ActivationClaim.Owner != order.RetryHold || o.ActivationUncertain != nil {
		t.Fatalf("hold: %+v %v", o.ActivationClaim, o.ActivationUncertain)
	}
	o.TakeClaim(order.StepSession, "s-1", now.Add(time.Minute), now)
	o.TakeClaim(order.StepSession, "s-2", now.Add(time.Minute), now)
	if o.Attempts(order.StepSession) != 2 || o.ClaimedBy(order.StepSession, "s-1") {
		t.Fatalf("session attempts %d, claim %+v", o.SessionAttempts, o.SessionClaim)
	}
	if !o.ClaimReconciliation("bridge-1", now.Add(time.Minute), now) || o.ClaimReconciliation("bridge-2", now.Add(time.Minute), now) ||
		!o.ClaimReconciliation("bridge-2", now.Add(2*time.Minute), now.Add(time.Minute)) {
		t.Fatalf("reconciliation claim %+v", o.ReconcileClaim)
	}
}
