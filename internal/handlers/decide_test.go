package handlers_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/smartrent-bridge/bridge/internal/activation"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/handlers"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
)

// TestDecide covers every transition and refusal of the workflow as pure
// decisions: an order and the facts in, one move out.
func TestDecide(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	phone := inbankapi.RentalConditions{Periods: []int{12, 24, 36}, AssetIdentifierTypes: []string{inbankapi.AssetIdentifierIMEI},
		InsuranceRequirement: inbankapi.InsuranceOptional, SubscriptionTotalLimits: inbankapi.Limits{MinNetPrice: 100, MaxNetPrice: 5000}}
	insuranceAlways := phone
	insuranceAlways.InsuranceRequirement = inbankapi.InsuranceAlways
	only12 := phone
	only12.Periods = []int{12}
	activated := inbankapi.Contract{Status: inbankapi.ContractActivated}
	signed := inbankapi.Contract{Status: "signed"}

	newOrder := func(change ...func(*handlers.Order)) handlers.Order {
		o := handlers.Order{OrderID: "o-1", State: handlers.StateNew, ProductCode: "smartrent", Period: 24, Placed: placed("o-1", 900)}
		for _, c := range change {
			c(&o)
		}
		return o
	}
	granted := func(change ...func(*handlers.Order)) handlers.Order {
		o := handlers.Order{OrderID: "o-1", State: handlers.StateGranted, ProductCode: "smartrent", SessionUUID: "s-1",
			SessionStatus: inbankapi.SessionGranted, ContractUUID: "c-1"}
		for _, c := range change {
			c(&o)
		}
		return o
	}
	shippedAssigned := func(o *handlers.Order) {
		o.Identifiers, o.IdentifiersAssigned, o.ShippedAt = imei(), imei(), at(-time.Hour)
	}
	delivered := func(o *handlers.Order) { shippedAssigned(o); o.DeliveredAt = at(-time.Minute) }
	claimBy := func(owner string, until time.Duration) *handlers.Claim {
		return &handlers.Claim{Owner: owner, Until: now.Add(until)}
	}
	api := handlers.Facts{Now: now, Attempt: "me", Policy: activation.OnDelivery, Settle: 2 * time.Minute}
	with := func(change func(*handlers.Facts)) handlers.Facts { f := api; change(&f); return f }
	refresh := with(func(f *handlers.Facts) { f.Refresh = true })
	withConditions := func(c inbankapi.RentalConditions) handlers.Facts {
		return with(func(f *handlers.Facts) { f.Conditions = &c })
	}

	tests := []struct {
		name  string
		order handlers.Order
		facts handlers.Facts
		want  handlers.Move
	}{
		// Outbox first, whatever the state.
		{"outbox before anything", newOrder(func(o *handlers.Order) { o.Outbox = []handlers.OutboxEvent{{ID: "e"}} }), api,
			handlers.Move{Kind: handlers.MovePublish}},
		{"outbox of a final order", granted(func(o *handlers.Order) {
			o.State, o.Outbox = handlers.StateFailed, []handlers.OutboxEvent{{ID: "e"}}
		}), api, handlers.Move{Kind: handlers.MovePublish}},

		// A new order: checks, conditions, then the session.
		{"new: claimed by another attempt", newOrder(func(o *handlers.Order) { o.SessionClaim = claimBy("other", 30*time.Second) }), api,
			handlers.Move{Kind: handlers.MoveWait, After: 30 * time.Second, Why: "session creation claimed by other"}},
		{"new: own claim is no wait", newOrder(func(o *handlers.Order) { o.SessionClaim = claimBy("me", 30*time.Second) }), api,
			handlers.Move{Kind: handlers.MoveLoadConditions}},
		{"new: expired claim is taken over", newOrder(func(o *handlers.Order) { o.SessionClaim = claimBy("other", -time.Second) }), api,
			handlers.Move{Kind: handlers.MoveLoadConditions}},
		{"new: held until its retry is due", newOrder(func(o *handlers.Order) { o.SessionClaim = claimBy(handlers.RetryHold, 4*time.Second) }), api,
			handlers.Move{Kind: handlers.MoveWait, After: 4 * time.Second, Why: "session creation failed transiently; retried at 2026-12-02T12:00:04Z"}},
		{"new: a hold past its time is no wait", newOrder(func(o *handlers.Order) { o.SessionClaim = claimBy(handlers.RetryHold, -time.Millisecond) }), api,
			handlers.Move{Kind: handlers.MoveLoadConditions}},
		{"new: attempts exhausted", newOrder(func(o *handlers.Order) { o.SessionAttempts = 20 }), with(func(f *handlers.Facts) { f.MaxAttempts = 20 }),
			handlers.Move{Kind: handlers.MoveGiveUp}},
		{"new: attempts left", newOrder(func(o *handlers.Order) { o.SessionAttempts = 19 }), with(func(f *handlers.Facts) { f.MaxAttempts = 20 }),
			handlers.Move{Kind: handlers.MoveLoadConditions}},
		{"new: no order.placed data", newOrder(func(o *handlers.Order) { o.Placed = nil }), api,
			handlers.Move{Kind: handlers.MoveUnprocessable}},
		{"new: shop not configured", newOrder(func(o *handlers.Order) { o.Shop = "elsewhere" }), with(func(f *handlers.Facts) { f.Policy = "" }),
			reject(events.ReasonInvalidOrder)},
		{"new: no product code", newOrder(func(o *handlers.Order) { o.ProductCode = "" }), api, reject(events.ReasonInvalidOrder)},
		{"new: currency", newOrder(func(o *handlers.Order) { o.Placed.Currency = "USD" }), api, reject(events.ReasonInvalidOrder)},
		{"new: period Inbank never offers", newOrder(func(o *handlers.Order) { o.Placed.Period = 18 }), api, reject(events.ReasonPeriodNotOffered)},
		{"new: conditions needed", newOrder(), api, handlers.Move{Kind: handlers.MoveLoadConditions}},
		{"new: model not rentable", newOrder(), with(func(f *handlers.Facts) { f.NotRentable = true }), reject(events.ReasonModelNotRentable)},
		{"new: period not offered for the model", newOrder(), withConditions(only12), reject(events.ReasonPeriodNotOffered)},
		{"new: insurance refused where required", newOrder(func(o *handlers.Order) { no := false; o.Placed.InsuranceUsed = &no }),
			withConditions(insuranceAlways), reject(events.ReasonInsuranceRequired)},
		{"new: price out of limits", newOrder(func(o *handlers.Order) { o.Placed.HeroDevice.NetPrice = 9000 }), withConditions(phone),
			reject(events.ReasonPriceOutOfLimits)},
		{"new: eligible, insurance as the model decides", newOrder(), withConditions(phone),
			handlers.Move{Kind: handlers.MoveCreateSession, Insurance: true}},
		{"new: eligible, insurance as the order says", newOrder(func(o *handlers.Order) { no := false; o.Placed.InsuranceUsed = &no }),
			withConditions(phone), handlers.Move{Kind: handlers.MoveCreateSession, Insurance: false}},
		{"new: session recorded, not priced", newOrder(func(o *handlers.Order) { o.SessionUUID = "s-1" }), withConditions(phone),
			handlers.Move{Kind: handlers.MovePriceSession, Insurance: true}},

		// Pending: the customer is with Inbank.
		{"pending: waits", granted(func(o *handlers.Order) {
			o.State, o.SessionStatus, o.ContractUUID = handlers.StatePending, inbankapi.SessionPending, ""
		}), api,
			handlers.Move{Kind: handlers.MoveRest}},
		{"pending: reconciliation reads the session", granted(func(o *handlers.Order) { o.State = handlers.StatePending }), refresh,
			handlers.Move{Kind: handlers.MoveReadSession}},
		{"pending: a callback reads the session", granted(func(o *handlers.Order) { o.State, o.RefreshRequested = handlers.StatePending, true }), api,
			handlers.Move{Kind: handlers.MoveReadSession}},
		{"pending: a callback soon after the last one waits", granted(func(o *handlers.Order) {
			o.State, o.RefreshRequested, o.RefreshReadAt = handlers.StatePending, true, at(-300*time.Millisecond)
		}), api, handlers.Move{Kind: handlers.MoveWait, After: 700 * time.Millisecond, Why: "the session was read for a callback less than 1s ago"}},
		{"pending: a callback a second after the last one reads", granted(func(o *handlers.Order) {
			o.State, o.RefreshRequested, o.RefreshReadAt = handlers.StatePending, true, at(-time.Second)
		}), api, handlers.Move{Kind: handlers.MoveReadSession}},
		{"pending: reconciliation reads whenever", granted(func(o *handlers.Order) {
			o.State, o.RefreshRequested, o.RefreshReadAt = handlers.StatePending, true, at(-time.Millisecond)
		}), refresh, handlers.Move{Kind: handlers.MoveReadSession}},
		{"pending: shop no longer configured", granted(func(o *handlers.Order) { o.State, o.RefreshRequested = handlers.StatePending, true }),
			with(func(f *handlers.Facts) { f.Policy = "" }), handlers.Move{Kind: handlers.MoveUnprocessable}},
		{"activated: shop no longer configured", granted(func(o *handlers.Order) {
			o.State, o.ActivatedAt, o.RefreshRequested = handlers.StateActivated, at(-time.Hour), true
		}), with(func(f *handlers.Facts) { f.Policy = "" }), handlers.Move{Kind: handlers.MoveUnprocessable}},
		{"pending: read, nothing new", granted(func(o *handlers.Order) { o.State = handlers.StatePending }),
			with(func(f *handlers.Facts) { f.Refresh, f.SessionRead = true, true }), handlers.Move{Kind: handlers.MoveRest}},

		// Final states rest, except an activated order whose session still moves.
		{"rejected rests", granted(func(o *handlers.Order) { o.State = handlers.StateRejected }), refresh, handlers.Move{Kind: handlers.MoveRest}},
		{"failed rests", granted(func(o *handlers.Order) { o.State = handlers.StateFailed }), refresh, handlers.Move{Kind: handlers.MoveRest}},
		{"declined rests", granted(func(o *handlers.Order) { o.State = handlers.StateDeclined }), refresh, handlers.Move{Kind: handlers.MoveRest}},
		{"cancelled rests", granted(func(o *handlers.Order) { o.State = handlers.StateCancelled }), refresh, handlers.Move{Kind: handlers.MoveRest}},
		{"expired rests", granted(func(o *handlers.Order) { o.State = handlers.StateExpired }), refresh, handlers.Move{Kind: handlers.MoveRest}},
		{"activated: callback reads the session", granted(func(o *handlers.Order) {
			o.State, o.ActivatedAt, o.RefreshRequested = handlers.StateActivated, at(-time.Hour), true
		}), api, handlers.Move{Kind: handlers.MoveReadSession}},
		{"activated: session not completed yet is watched", granted(func(o *handlers.Order) {
			o.State, o.ActivatedAt = handlers.StateActivated, at(-time.Hour)
		}), refresh, handlers.Move{Kind: handlers.MoveReadSession}},
		{"activated: session completed rests", granted(func(o *handlers.Order) {
			o.State, o.ActivatedAt, o.SessionStatus = handlers.StateActivated, at(-time.Hour), inbankapi.SessionCompleted
		}), refresh, handlers.Move{Kind: handlers.MoveRest}},
		{"activated: watched for 24 hours only", granted(func(o *handlers.Order) {
			o.State, o.ActivatedAt = handlers.StateActivated, at(-25*time.Hour)
		}), refresh, handlers.Move{Kind: handlers.MoveRest}},
		{"activated: without reconciliation rests", granted(func(o *handlers.Order) {
			o.State, o.ActivatedAt = handlers.StateActivated, at(-time.Hour)
		}), api, handlers.Move{Kind: handlers.MoveRest}},

		// Granted: path B (portal) and path A (identifiers, activation).
		{"granted: no contract yet", granted(func(o *handlers.Order) { o.ContractUUID = "" }), api, handlers.Move{Kind: handlers.MoveRest}},
		{"granted: shop not configured", granted(), with(func(f *handlers.Facts) { f.Policy = "" }), handlers.Move{Kind: handlers.MoveUnprocessable}},
		{"portal: waits for the shop", granted(), with(func(f *handlers.Facts) { f.Policy = activation.Portal }), handlers.Move{Kind: handlers.MoveRest}},
		{"portal: reconciliation reads the contract", granted(), with(func(f *handlers.Facts) { f.Policy, f.Refresh, f.SessionRead = activation.Portal, true, true }),
			handlers.Move{Kind: handlers.MoveAwaitActivation, Via: events.ActivatedViaPortal}},
		{"portal: completed session reads the contract", granted(func(o *handlers.Order) { o.SessionStatus = inbankapi.SessionCompleted }),
			with(func(f *handlers.Facts) { f.Policy = activation.Portal }), handlers.Move{Kind: handlers.MoveAwaitActivation, Via: events.ActivatedViaPortal}},
		{"API policy, approved in the portal", granted(func(o *handlers.Order) { o.SessionStatus = inbankapi.SessionCompleted }), api,
			handlers.Move{Kind: handlers.MoveAwaitActivation, Via: events.ActivatedViaPortal}},
		{"granted: nothing shipped", granted(), api, handlers.Move{Kind: handlers.MoveRest}},
		{"granted: shipped identifiers are assigned", granted(func(o *handlers.Order) { o.Identifiers, o.ShippedAt = imei(), at(-time.Hour) }), api,
			handlers.Move{Kind: handlers.MoveAssignIdentifiers}},
		{"granted: assignment claimed by another attempt", granted(func(o *handlers.Order) {
			o.Identifiers, o.IdentifiersClaim = imei(), claimBy("other", 10*time.Second)
		}), api, handlers.Move{Kind: handlers.MoveWait, After: 10 * time.Second, Why: "identifier assignment claimed by other"}},
		{"on delivery: shipped is not enough", granted(shippedAssigned), api, handlers.Move{Kind: handlers.MoveRest}},
		{"on delivery: delivered activates", granted(delivered), api, handlers.Move{Kind: handlers.MoveActivate}},
		{"on shipment: shipped activates", granted(shippedAssigned), with(func(f *handlers.Facts) { f.Policy = activation.OnShipment }),
			handlers.Move{Kind: handlers.MoveActivate}},
		{"activation claimed by another attempt", granted(delivered, func(o *handlers.Order) { o.ActivationClaim = claimBy("other", 20*time.Second) }), api,
			handlers.Move{Kind: handlers.MoveWait, After: 20 * time.Second, Why: "activation claimed by other"}},
		{"repeated activation reads the contract first", granted(delivered, func(o *handlers.Order) { o.ActivationAttempts = 1 }), api,
			handlers.Move{Kind: handlers.MoveReadContract}},
		{"repeated activation: already active", granted(delivered, func(o *handlers.Order) { o.ActivationAttempts = 1 }),
			with(func(f *handlers.Facts) { f.Contract = &activated }), handlers.Move{Kind: handlers.MoveRecordActivated, Via: events.ActivatedViaAPI}},
		{"repeated activation: may still take effect", granted(delivered, func(o *handlers.Order) {
			o.ActivationAttempts, o.ActivationUncertain = 1, at(-30*time.Second)
		}), with(func(f *handlers.Facts) { f.Contract = &signed }),
			handlers.Move{Kind: handlers.MoveWait, After: 90 * time.Second, Why: "an earlier activation may still take effect"}},
		{"repeated activation: settled, call again", granted(delivered, func(o *handlers.Order) {
			o.ActivationAttempts, o.ActivationUncertain = 1, at(-3*time.Minute)
		}), with(func(f *handlers.Facts) { f.Contract = &signed }), handlers.Move{Kind: handlers.MoveActivate}},
		{"repeated activation: earlier one certainly not applied", granted(delivered, func(o *handlers.Order) { o.ActivationAttempts = 1 }),
			with(func(f *handlers.Facts) { f.Contract = &signed }), handlers.Move{Kind: handlers.MoveActivate}},
		{"activation called: waits", granted(delivered, func(o *handlers.Order) { o.ActivationCalled = true }), api, handlers.Move{Kind: handlers.MoveRest}},
		{"activation called: reconciliation reads the contract", granted(delivered, func(o *handlers.Order) { o.ActivationCalled = true }),
			with(func(f *handlers.Facts) { f.Refresh, f.SessionRead = true, true }),
			handlers.Move{Kind: handlers.MoveAwaitActivation, Via: events.ActivatedViaAPI}},
		{"granted: reconciliation reads the session first", granted(delivered), refresh, handlers.Move{Kind: handlers.MoveReadSession}},
		{"granted: session read, activation next", granted(delivered), with(func(f *handlers.Facts) { f.Refresh, f.SessionRead = true, true }),
			handlers.Move{Kind: handlers.MoveActivate}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := json.Marshal(tt.order)
			got := handlers.Decide(&tt.order, tt.facts)
			if after, _ := json.Marshal(tt.order); string(after) != string(before) {
				t.Errorf("Decide changed the order:\n%s\n%s", before, after)
			}
			if got.Kind != tt.want.Kind || got.After != tt.want.After || got.Why != tt.want.Why ||
				got.Insurance != tt.want.Insurance || got.Via != tt.want.Via {
				t.Fatalf("Decide = %+v, want %+v", got, tt.want)
			}
			switch {
			case tt.want.Rejection != nil && (got.Rejection == nil || got.Rejection.Reason != tt.want.Rejection.Reason):
				t.Fatalf("rejection %v, want reason %s", got.Rejection, tt.want.Rejection.Reason)
			case got.Kind == handlers.MoveUnprocessable && got.Err == nil:
				t.Fatal("unprocessable without a reason")
			case got.Kind == handlers.MoveGiveUp && (got.Step != handlers.StepSession || !errors.Is(got.Err, handlers.ErrAttemptsExhausted)):
				t.Fatalf("give up at %q (%v), want %s with ErrAttemptsExhausted", got.Step, got.Err, handlers.StepSession)
			}
		})
	}
}

func reject(reason string) handlers.Move {
	return handlers.Move{Kind: handlers.MoveReject, Rejection: &handlers.Rejection{Reason: reason}}
}
