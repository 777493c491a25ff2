package order_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/smartrent-bridge/bridge/internal/activation"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
	"github.com/smartrent-bridge/bridge/internal/order"
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

	newOrder := func(change ...func(*order.Order)) order.Order {
		o := order.Order{OrderID: "o-1", State: order.StateNew, ProductCode: "smartrent", Period: 24, Placed: placed("o-1", 900)}
		for _, c := range change {
			c(&o)
		}
		return o
	}
	granted := func(change ...func(*order.Order)) order.Order {
		o := order.Order{OrderID: "o-1", State: order.StateGranted, ProductCode: "smartrent", SessionUUID: "s-1",
			SessionStatus: inbankapi.SessionGranted, ContractUUID: "c-1"}
		for _, c := range change {
			c(&o)
		}
		return o
	}
	shippedAssigned := func(o *order.Order) {
		o.Identifiers, o.IdentifiersAssigned, o.ShippedAt = imei(), imei(), at(-time.Hour)
	}
	delivered := func(o *order.Order) { shippedAssigned(o); o.DeliveredAt = at(-time.Minute) }
	claimBy := func(owner string, until time.Duration) *order.Claim {
		return &order.Claim{Owner: owner, Until: now.Add(until)}
	}
	api := order.Facts{Now: now, Attempt: "me", Policy: activation.OnDelivery, Settle: 2 * time.Minute}
	with := func(change func(*order.Facts)) order.Facts { f := api; change(&f); return f }
	refresh := with(func(f *order.Facts) { f.Refresh = true })
	withConditions := func(c inbankapi.RentalConditions) order.Facts {
		return with(func(f *order.Facts) { f.Conditions = &c })
	}

	tests := []struct {
		name  string
		order order.Order
		facts order.Facts
		want  order.Move
	}{
		// Outbox first, whatever the state.
		{"outbox before anything", newOrder(func(o *order.Order) { o.Outbox = []order.OutboxEvent{{ID: "e"}} }), api,
			order.Move{Kind: order.MovePublish}},
		{"outbox of a final order", granted(func(o *order.Order) {
			o.State, o.Outbox = order.StateFailed, []order.OutboxEvent{{ID: "e"}}
		}), api, order.Move{Kind: order.MovePublish}},

		// A new order: checks, conditions, then the session.
		{"new: claimed by another attempt", newOrder(func(o *order.Order) { o.SessionClaim = claimBy("other", 30*time.Second) }), api,
			order.Move{Kind: order.MoveWait, After: 30 * time.Second, Why: "session creation claimed by other"}},
		{"new: own claim is no wait", newOrder(func(o *order.Order) { o.SessionClaim = claimBy("me", 30*time.Second) }), api,
			order.Move{Kind: order.MoveLoadConditions}},
		{"new: expired claim is taken over", newOrder(func(o *order.Order) { o.SessionClaim = claimBy("other", -time.Second) }), api,
			order.Move{Kind: order.MoveLoadConditions}},
		{"new: held until its retry is due", newOrder(func(o *order.Order) { o.SessionClaim = claimBy(order.RetryHold, 4*time.Second) }), api,
			order.Move{Kind: order.MoveWait, After: 4 * time.Second, Why: "session creation failed transiently; retried at 2026-12-02T12:00:04Z"}},
		{"new: a hold past its time is no wait", newOrder(func(o *order.Order) { o.SessionClaim = claimBy(order.RetryHold, -time.Millisecond) }), api,
			order.Move{Kind: order.MoveLoadConditions}},
		{"new: attempts exhausted", newOrder(func(o *order.Order) { o.SessionAttempts = 20 }), with(func(f *order.Facts) { f.MaxAttempts = 20 }),
			order.Move{Kind: order.MoveGiveUp}},
		{"new: attempts left", newOrder(func(o *order.Order) { o.SessionAttempts = 19 }), with(func(f *order.Facts) { f.MaxAttempts = 20 }),
			order.Move{Kind: order.MoveLoadConditions}},
		{"new: no order.placed data", newOrder(func(o *order.Order) { o.Placed = nil }), api,
			order.Move{Kind: order.MoveUnprocessable}},
		{"new: shop not configured", newOrder(func(o *order.Order) { o.Shop = "elsewhere" }), with(func(f *order.Facts) { f.Policy = "" }),
			rejected(events.ReasonInvalidOrder)},
		{"new: no product code", newOrder(func(o *order.Order) { o.ProductCode = "" }), api, rejected(events.ReasonInvalidOrder)},
		{"new: currency", newOrder(func(o *order.Order) { o.Placed.Currency = "USD" }), api, rejected(events.ReasonInvalidOrder)},
		{"new: period Inbank never offers", newOrder(func(o *order.Order) { o.Placed.Period = 18 }), api, rejected(events.ReasonPeriodNotOffered)},
		{"new: conditions needed", newOrder(), api, order.Move{Kind: order.MoveLoadConditions}},
		{"new: model not rentable", newOrder(), with(func(f *order.Facts) { f.NotRentable = true }), rejected(events.ReasonModelNotRentable)},
		{"new: period not offered for the model", newOrder(), withConditions(only12), rejected(events.ReasonPeriodNotOffered)},
		{"new: insurance refused where required", newOrder(func(o *order.Order) { no := false; o.Placed.InsuranceUsed = &no }),
			withConditions(insuranceAlways), rejected(events.ReasonInsuranceRequired)},
		{"new: price out of limits", newOrder(func(o *order.Order) { o.Placed.HeroDevice.NetPrice = 9000 }), withConditions(phone),
			rejected(events.ReasonPriceOutOfLimits)},
		{"new: eligible, insurance as the model decides", newOrder(), withConditions(phone),
			order.Move{Kind: order.MoveCreateSession, Insurance: true}},
		{"new: eligible, insurance as the order says", newOrder(func(o *order.Order) { no := false; o.Placed.InsuranceUsed = &no }),
			withConditions(phone), order.Move{Kind: order.MoveCreateSession, Insurance: false}},
		{"new: session recorded, not priced", newOrder(func(o *order.Order) { o.SessionUUID = "s-1" }), withConditions(phone),
			order.Move{Kind: order.MovePriceSession, Insurance: true}},

		// Pending: the customer is with Inbank.
		{"pending: waits", granted(func(o *order.Order) {
			o.State, o.SessionStatus, o.ContractUUID = order.StatePending, inbankapi.SessionPending, ""
		}), api,
			order.Move{Kind: order.MoveRest}},
		{"pending: reconciliation reads the session", granted(func(o *order.Order) { o.State = order.StatePending }), refresh,
			order.Move{Kind: order.MoveReadSession}},
		{"pending: a callback reads the session", granted(func(o *order.Order) { o.State, o.RefreshRequested = order.StatePending, true }), api,
			order.Move{Kind: order.MoveReadSession}},
		{"pending: a callback soon after the last one waits", granted(func(o *order.Order) {
			o.State, o.RefreshRequested, o.RefreshReadAt = order.StatePending, true, at(-300*time.Millisecond)
		}), api, order.Move{Kind: order.MoveWait, After: 700 * time.Millisecond, Why: "the session was read for a callback less than 1s ago"}},
		{"pending: a callback a second after the last one reads", granted(func(o *order.Order) {
			o.State, o.RefreshRequested, o.RefreshReadAt = order.StatePending, true, at(-time.Second)
		}), api, order.Move{Kind: order.MoveReadSession}},
		{"pending: reconciliation reads whenever", granted(func(o *order.Order) {
			o.State, o.RefreshRequested, o.RefreshReadAt = order.StatePending, true, at(-time.Millisecond)
		}), refresh, order.Move{Kind: order.MoveReadSession}},
		{"pending: shop no longer configured", granted(func(o *order.Order) { o.State, o.RefreshRequested = order.StatePending, true }),
			with(func(f *order.Facts) { f.Policy = "" }), order.Move{Kind: order.MoveUnprocessable}},
		{"activated: shop no longer configured", granted(func(o *order.Order) {
			o.State, o.ActivatedAt, o.RefreshRequested = order.StateActivated, at(-time.Hour), true
		}), with(func(f *order.Facts) { f.Policy = "" }), order.Move{Kind: order.MoveUnprocessable}},
		{"pending: read, nothing new", granted(func(o *order.Order) { o.State = order.StatePending }),
			with(func(f *order.Facts) { f.Refresh, f.SessionRead = true, true }), order.Move{Kind: order.MoveRest}},

		// Final states rest, except an activated order whose session still moves.
		{"rejected rests", granted(func(o *order.Order) { o.State = order.StateRejected }), refresh, order.Move{Kind: order.MoveRest}},
		{"failed rests", granted(func(o *order.Order) { o.State = order.StateFailed }), refresh, order.Move{Kind: order.MoveRest}},
		{"declined rests", granted(func(o *order.Order) { o.State = order.StateDeclined }), refresh, order.Move{Kind: order.MoveRest}},
		{"cancelled rests", granted(func(o *order.Order) { o.State = order.StateCancelled }), refresh, order.Move{Kind: order.MoveRest}},
		{"expired rests", granted(func(o *order.Order) { o.State = order.StateExpired }), refresh, order.Move{Kind: order.MoveRest}},
		{"activated: callback reads the session", granted(func(o *order.Order) {
			o.State, o.ActivatedAt, o.RefreshRequested = order.StateActivated, at(-time.Hour), true
		}), api, order.Move{Kind: order.MoveReadSession}},
		{"activated: session not completed yet is watched", granted(func(o *order.Order) {
			o.State, o.ActivatedAt = order.StateActivated, at(-time.Hour)
		}), refresh, order.Move{Kind: order.MoveReadSession}},
		{"activated: session completed rests", granted(func(o *order.Order) {
			o.State, o.ActivatedAt, o.SessionStatus = order.StateActivated, at(-time.Hour), inbankapi.SessionCompleted
		}), refresh, order.Move{Kind: order.MoveRest}},
		{"activated: watched for 24 hours only", granted(func(o *order.Order) {
			o.State, o.ActivatedAt = order.StateActivated, at(-25*time.Hour)
		}), refresh, order.Move{Kind: order.MoveRest}},
		{"activated: without reconciliation rests", granted(func(o *order.Order) {
			o.State, o.ActivatedAt = order.StateActivated, at(-time.Hour)
		}), api, order.Move{Kind: order.MoveRest}},

		// Granted: path B (portal) and path A (identifiers, activation).
		{"granted: no contract yet", granted(func(o *order.Order) { o.ContractUUID = "" }), api, order.Move{Kind: order.MoveRest}},
		{"granted: shop not configured", granted(), with(func(f *order.Facts) { f.Policy = "" }), order.Move{Kind: order.MoveUnprocessable}},
		{"portal: waits for the shop", granted(), with(func(f *order.Facts) { f.Policy = activation.Portal }), order.Move{Kind: order.MoveRest}},
		{"portal: reconciliation reads the contract", granted(), with(func(f *order.Facts) { f.Policy, f.Refresh, f.SessionRead = activation.Portal, true, true }),
			order.Move{Kind: order.MoveAwaitActivation, Via: events.ActivatedViaPortal}},
		{"portal: completed session reads the contract", granted(func(o *order.Order) { o.SessionStatus = inbankapi.SessionCompleted }),
			with(func(f *order.Facts) { f.Policy = activation.Portal }), order.Move{Kind: order.MoveAwaitActivation, Via: events.ActivatedViaPortal}},
		{"API policy, approved in the portal", granted(func(o *order.Order) { o.SessionStatus = inbankapi.SessionCompleted }), api,
			order.Move{Kind: order.MoveAwaitActivation, Via: events.ActivatedViaPortal}},
		{"granted: nothing shipped", granted(), api, order.Move{Kind: order.MoveRest}},
		{"granted: shipped identifiers are assigned", granted(func(o *order.Order) { o.Identifiers, o.ShippedAt = imei(), at(-time.Hour) }), api,
			order.Move{Kind: order.MoveAssignIdentifiers}},
		{"granted: assignment claimed by another attempt", granted(func(o *order.Order) {
			o.Identifiers, o.IdentifiersClaim = imei(), claimBy("other", 10*time.Second)
		}), api, order.Move{Kind: order.MoveWait, After: 10 * time.Second, Why: "identifier assignment claimed by other"}},
		{"on delivery: shipped is not enough", granted(shippedAssigned), api, order.Move{Kind: order.MoveRest}},
		{"on delivery: delivered activates", granted(delivered), api, order.Move{Kind: order.MoveActivate}},
		{"on shipment: shipped activates", granted(shippedAssigned), with(func(f *order.Facts) { f.Policy = activation.OnShipment }),
			order.Move{Kind: order.MoveActivate}},
		{"activation claimed by another attempt", granted(delivered, func(o *order.Order) { o.ActivationClaim = claimBy("other", 20*time.Second) }), api,
			order.Move{Kind: order.MoveWait, After: 20 * time.Second, Why: "activation claimed by other"}},
		{"repeated activation reads the contract first", granted(delivered, func(o *order.Order) { o.ActivationAttempts = 1 }), api,
			order.Move{Kind: order.MoveReadContract}},
		{"repeated activation: already active", granted(delivered, func(o *order.Order) { o.ActivationAttempts = 1 }),
			with(func(f *order.Facts) { f.Contract = &activated }), order.Move{Kind: order.MoveRecordActivated, Via: events.ActivatedViaAPI}},
		{"repeated activation: may still take effect", granted(delivered, func(o *order.Order) {
			o.ActivationAttempts, o.ActivationUncertain = 1, at(-30*time.Second)
		}), with(func(f *order.Facts) { f.Contract = &signed }),
			order.Move{Kind: order.MoveWait, After: 90 * time.Second, Why: "an earlier activation may still take effect"}},
		{"repeated activation: settled, call again", granted(delivered, func(o *order.Order) {
			o.ActivationAttempts, o.ActivationUncertain = 1, at(-3*time.Minute)
		}), with(func(f *order.Facts) { f.Contract = &signed }), order.Move{Kind: order.MoveActivate}},
		{"repeated activation: earlier one certainly not applied", granted(delivered, func(o *order.Order) { o.ActivationAttempts = 1 }),
			with(func(f *order.Facts) { f.Contract = &signed }), order.Move{Kind: order.MoveActivate}},
		{"activation called: waits", granted(delivered, func(o *order.Order) { o.ActivationCalled = true }), api, order.Move{Kind: order.MoveRest}},
		{"activation called: reconciliation reads the contract", granted(delivered, func(o *order.Order) { o.ActivationCalled = true }),
			with(func(f *order.Facts) { f.Refresh, f.SessionRead = true, true }),
			order.Move{Kind: order.MoveAwaitActivation, Via: events.ActivatedViaAPI}},
		{"granted: reconciliation reads the session first", granted(delivered), refresh, order.Move{Kind: order.MoveReadSession}},
		{"granted: session read, activation next", granted(delivered), with(func(f *order.Facts) { f.Refresh, f.SessionRead = true, true }),
			order.Move{Kind: order.MoveActivate}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := json.Marshal(tt.order)
			got := order.Decide(&tt.order, tt.facts)
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
			case got.Kind == order.MoveUnprocessable && got.Err == nil:
				t.Fatal("unprocessable without a reason")
			case got.Kind == order.MoveGiveUp && (got.Step != order.StepSession || !errors.Is(got.Err, order.ErrAttemptsExhausted)):
				t.Fatalf("give up at %q (%v), want %s with ErrAttemptsExhausted", got.Step, got.Err, order.StepSession)
			}
		})
	}
}

func rejected(reason string) order.Move {
	return order.Move{Kind: order.MoveReject, Rejection: &order.Rejection{Reason: reason}}
}

// placed is an order.placed for a phone at net price net.
func placed(orderID string, net float64) *events.OrderPlaced {
	return &events.OrderPlaced{
		OrderID: orderID, Period: 24, Locale: "et-EE", Description: "iPhone rental",
		ReturnURL: "https://shop.example/r", CancelURL: "https://shop.example/c",
		HeroDevice: events.HeroDevice{IdentifierType: inbankapi.ModelIdentifierEAN, Identifier: "0195949821899", ModelID: "apple-iphone-16-128gb", ModelName: "iPhone 16", NetPrice: net},
	}
}

func imei() []events.AssetIdentifier {
	return []events.AssetIdentifier{{Identifier: "356938035643809", IdentifierType: inbankapi.AssetIdentifierIMEI}}
}
