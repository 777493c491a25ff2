package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/smartrent-bridge/bridge/internal/activation"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/handlers"
	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
	"github.com/smartrent-bridge/bridge/internal/order"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/internal/telemetry"
)

func TestPathAOnDelivery(t *testing.T) {
	h := newHarness(t, nil)
	h.mustDeliver(placed("A1", 800))
	h.count("A1", events.TypeSessionCreated, 1)
	created := h.pub.of("A1", events.TypeSessionCreated)[0]
	if q := created["quote"].(map[string]any); q["grossMonthlyPayment"] != 42.07 || q["period"] != 24.0 {
		t.Fatalf("quote = %v", q)
	}
	if _, err := h.fake.Sign(h.session("A1")); err != nil {
		t.Fatal(err)
	}
	h.callback("A1")
	changed := h.pub.of("A1", events.TypeSessionStatusChange)
	if len(changed) != 1 || changed[0]["status"] != "granted" || changed[0]["previousStatus"] != "pending" || changed[0]["contractUuid"] == nil {
		t.Fatalf("status_changed = %v", changed)
	}
	h.mustDeliver(&events.DeviceShipped{OrderID: "A1", AssetIdentifiers: imei()})
	h.count("A1", events.TypeIdentifiersAssigned, 1)
	if got := h.fake.Activations(h.contract("A1")); got != 0 {
		t.Fatalf("activated on shipment under on-delivery: %d calls", got)
	}
	h.mustDeliver(&events.DeviceDelivered{OrderID: "A1"})
	act := h.pub.of("A1", events.TypeContractActivated)
	if len(act) != 1 || act[0]["activatedVia"] != "api" || act[0]["grossMonthlyPayment"] != 42.07 {
		t.Fatalf("contract.activated = %v", act)
	}
	// Inbank moves the session to completed and calls back: not a portal activation.
	h.callback("A1")
	h.mustDeliver(&events.DeviceDelivered{OrderID: "A1"})
	h.count("A1", events.TypeContractActivated, 1)
	if got := h.fake.Activations(h.contract("A1")); got != 1 {
		t.Fatalf("activation calls = %d, want 1", got)
	}
	if got := h.fake.IdentifierAssignments(h.contract("A1")); got != 1 {
		t.Fatalf("identifier assignments = %d, want 1", got)
	}
	if o := h.store.get(t, "A1"); o.State != order.StateActivated || o.Placed.Customer != nil {
		t.Fatalf("order = %s", o.State)
	}
}

func TestPathAOnShipment(t *testing.T) {
	h := newHarness(t, func(c *handlers.Config) { c.Policy = activation.OnShipment })
	h.signed("S1", 500)
	h.mustDeliver(&events.DeviceShipped{OrderID: "S1", AssetIdentifiers: imei()})
	h.count("S1", events.TypeContractActivated, 1)
}

func TestShipmentBeforeGrantIsKeptUntilGranted(t *testing.T) {
	h := newHarness(t, func(c *handlers.Config) { c.Policy = activation.OnShipment })
	h.mustDeliver(placed("E1", 500))
	h.mustDeliver(&events.DeviceShipped{OrderID: "E1", AssetIdentifiers: imei()})
	h.count("E1", events.TypeIdentifiersAssigned, 0)
	h.fake.Sign(h.session("E1"))
	h.callback("E1")
	h.count("E1", events.TypeIdentifiersAssigned, 1)
	h.count("E1", events.TypeContractActivated, 1)
}

func TestPathBPortal(t *testing.T) {
	h := newHarness(t, func(c *handlers.Config) { c.Policy = activation.Portal })
	h.signed("B1", 500)
	h.mustDeliver(&events.DeviceShipped{OrderID: "B1", AssetIdentifiers: imei()})
	h.mustDeliver(&events.DeviceDelivered{OrderID: "B1"})
	c := h.contract("B1")
	if h.fake.IdentifierAssignments(c) != 0 || h.fake.Activations(c) != 0 {
		t.Fatal("portal policy called Inbank for identifiers or activation")
	}
	if o := h.store.get(t, "B1"); o.ShippedAt == nil || o.DeliveredAt == nil || len(o.Identifiers) != 1 {
		t.Fatalf("shipment not recorded: %+v", o)
	}
	h.count("B1", events.TypeIdentifiersAssigned, 0)
	if err := h.fake.PortalApprove(h.session("B1")); err != nil {
		t.Fatal(err)
	}
	h.callback("B1")
	h.activatedVia("B1", "portal")
}

func TestPortalApprovalUnderAPIPolicy(t *testing.T) {
	h := newHarness(t, nil)
	h.mustDeliver(placed("B2", 500))
	h.fake.Sign(h.session("B2"))
	h.fake.PortalApprove(h.session("B2"))
	h.callback("B2")
	h.activatedVia("B2", "portal")
}

func TestFinalOutcomes(t *testing.T) {
	h := newHarness(t, nil)
	h.signed("D1", 1050) // the demo decline range
	if o := h.store.get(t, "D1"); o.State != order.StateDeclined {
		t.Fatalf("state = %s", o.State)
	}
	h.mustDeliver(placed("C1", 500))
	h.fake.Cancel(h.session("C1"))
	h.callback("C1")
	if o := h.store.get(t, "C1"); o.State != order.StateCancelled {
		t.Fatalf("state = %s", o.State)
	}
	// A late granted callback after cancellation changes nothing.
	h.callback("C1")
	h.count("C1", events.TypeSessionStatusChange, 1)
	// A shipment for a cancelled order is rejected, and the order stays.
	h.mustDeliver(&events.DeviceShipped{OrderID: "C1", AssetIdentifiers: imei()})
	rej := h.pub.of("C1", events.TypeOrderRejected)
	if len(rej) != 1 || rej[0]["reason"] != events.ReasonOrderNotActive || rej[0]["inputType"] != "device.shipped" {
		t.Fatalf("rejections = %v", rej)
	}
}

func TestExpiredWithoutCallbacksThroughReconciliation(t *testing.T) {
	h := newHarness(t, nil)
	h.mustDeliver(placed("X1", 500))
	h.mustDeliver(placed("X2", 500))
	h.fake.Expire(h.session("X1"))
	h.fake.Sign(h.session("X2"))
	h.advanceClock(2 * time.Minute)
	n, err := h.wf.Reconcile(context.Background(), h.store, time.Minute)
	if err != nil || n != 2 {
		t.Fatalf("reconciled %d, %v", n, err)
	}
	if o := h.store.get(t, "X1"); o.State != order.StateExpired {
		t.Fatalf("X1 = %s", o.State)
	}
	if o := h.store.get(t, "X2"); o.State != order.StateGranted {
		t.Fatalf("X2 = %s", o.State)
	}
	// Not yet due again: nothing is re-read.
	calls := h.fake.Calls(inbank.OpGetSession)
	if n, _ := h.wf.Reconcile(context.Background(), h.store, time.Minute); n != 0 || h.fake.Calls(inbank.OpGetSession) != calls {
		t.Fatalf("reconciled %d orders that changed just now", n)
	}
}

func TestDuplicateOrderPlacedMakesOneSession(t *testing.T) {
	h := newHarness(t, nil)
	h.mustDeliver(placed("P1", 500))
	h.mustDeliver(placed("P1", 500))
	h.oneSession("P1")
}

func TestCrashBetweenSessionCallAndRecord(t *testing.T) {
	h := newHarness(t, crashOnce(order.StepSession))
	err := h.deliver(placed("K1", 500))
	if err == nil {
		t.Fatal("no error after the crash hook")
	}
	// Redelivered before the claim expired: waits.
	if err := h.deliver(placed("K1", 500)); err == nil {
		t.Fatal("a second bridge did not wait for the live claim")
	}
	h.advanceClock(2 * time.Second)
	h.mustDeliver(placed("K1", 500))
	if got := h.fake.SessionsCreated("K1"); got != 2 {
		t.Fatalf("sessions at Inbank = %d, want 2 (the first was never recorded)", got)
	}
	h.count("K1", events.TypeSessionCreated, 1)
	if o := h.store.get(t, "K1"); o.SessionUUID != h.pub.of("K1", events.TypeSessionCreated)[0]["sessionUuid"] {
		t.Fatal("published session is not the recorded one")
	}
}

func TestCrashBetweenActivationAndRecord(t *testing.T) {
	h := newHarness(t, crashOnce(order.StepActivate))
	h.signed("K2", 500)
	h.mustDeliver(&events.DeviceShipped{OrderID: "K2", AssetIdentifiers: imei()})
	if err := h.deliver(&events.DeviceDelivered{OrderID: "K2"}); err == nil {
		t.Fatal("no error after the crash hook")
	}
	h.advanceClock(2 * time.Second)
	h.mustDeliver(&events.DeviceDelivered{OrderID: "K2"})
	if got := h.fake.Activations(h.contract("K2")); got != 1 {
		t.Fatalf("activation calls = %d, want 1", got)
	}
	h.activatedVia("K2", "api")
}

func TestUncertainActivationWaitsForTheSettleTime(t *testing.T) {
	h := newHarness(t, nil)
	h.signed("U1", 500)
	h.mustDeliver(&events.DeviceShipped{OrderID: "U1", AssetIdentifiers: imei()})
	// The activation times out without an answer and did not take effect.
	h.fake.SetFault(inbank.OpActivateContract, inbanktest.Fault{Timeout: true, Remaining: 1})
	if err := h.deliver(&events.DeviceDelivered{OrderID: "U1"}); err == nil {
		t.Fatal("no error for a timed-out activation")
	}
	if err := h.deliver(&events.DeviceDelivered{OrderID: "U1"}); err == nil {
		t.Fatal("activation repeated before the settle time")
	}
	if got := h.fake.Activations(h.contract("U1")); got != 0 {
		t.Fatalf("activation calls = %d", got)
	}
	h.advanceClock(6 * time.Second)
	h.mustDeliver(&events.DeviceDelivered{OrderID: "U1"})
	h.count("U1", events.TypeContractActivated, 1)
}

func TestIneligibleOrdersAreRejectedWithoutSession(t *testing.T) {
	f := false
	tests := []struct {
		name   string
		edit   func(*events.OrderPlaced)
		reason string
	}{
		{"period 48", func(p *events.OrderPlaced) { p.Period = 48 }, events.ReasonPeriodNotOffered},
		{"period the model lacks", func(p *events.OrderPlaced) {
			p.HeroDevice.Identifier, p.HeroDevice.ModelID, p.Period = inbanktest.EANTablet, inbanktest.ModelTablet, 12
		}, events.ReasonPeriodNotOffered},
		{"price above the limit", func(p *events.OrderPlaced) { p.HeroDevice.NetPrice = 5000 }, events.ReasonPriceOutOfLimits},
		{"insurance refused where required", func(p *events.OrderPlaced) {
			p.HeroDevice.Identifier, p.HeroDevice.ModelID, p.InsuranceUsed = inbanktest.EANTablet, inbanktest.ModelTablet, &f
		}, events.ReasonInsuranceRequired},
		{"unknown model", func(p *events.OrderPlaced) { p.HeroDevice.Identifier = "4006381333931" }, events.ReasonModelNotRentable},
		{"add-on category not allowed", func(p *events.OrderPlaced) {
			p.AddOns = []events.AddOn{{CategoryCode: "warranty", ModelName: "Extra", NetPrice: 10}}
		}, events.ReasonAddOnNotAllowed},
		{"currency", func(p *events.OrderPlaced) { p.Currency = "USD" }, events.ReasonInvalidOrder},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			p := placed("R1", 500)
			tt.edit(p)
			h.mustDeliver(p)
			rej := h.pub.of("R1", events.TypeOrderRejected)
			if len(rej) != 1 || rej[0]["reason"] != tt.reason || rej[0]["inputType"] != "order.placed" {
				t.Fatalf("rejections = %v, want %s", rej, tt.reason)
			}
			if got := h.fake.Calls(inbank.OpCreateSession); got != 0 {
				t.Fatalf("%d sessions created", got)
			}
			if o := h.store.get(t, "R1"); o.State != order.StateRejected {
				t.Fatalf("state = %s", o.State)
			}
		})
	}
}

func TestInvalidIMEIIsRejectedWithoutPatch(t *testing.T) {
	h := newHarness(t, nil)
	h.signed("I1", 500)
	bad := []events.AssetIdentifier{{Identifier: "356938035643808", IdentifierType: inbankapi.AssetIdentifierIMEI}}
	h.mustDeliver(&events.DeviceShipped{OrderID: "I1", AssetIdentifiers: bad})
	rej := h.pub.of("I1", events.TypeOrderRejected)
	if len(rej) != 1 || rej[0]["reason"] != events.ReasonInvalidIdentifier {
		t.Fatalf("rejections = %v", rej)
	}
	if got := h.fake.Calls(inbank.OpAssignAssetIdentifiers); got != 0 {
		t.Fatalf("PATCH sent %d times", got)
	}
	// The order stays where it was: a corrected shipment goes on.
	h.mustDeliver(&events.DeviceShipped{OrderID: "I1", AssetIdentifiers: imei()})
	h.count("I1", events.TypeIdentifiersAssigned, 1)
}

func TestSessionCreationRefused(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.SetFault(inbank.OpCreateSession, inbanktest.Fault{Status: 400})
	err := h.deliver(placed("F1", 500))
	if !streams.IsPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	failed := h.pub.of("F1", events.TypeOrderFailed)
	if len(failed) != 1 || failed[0]["step"] != order.StepSession || failed[0]["httpStatus"] != 400.0 {
		t.Fatalf("order.failed = %v", failed)
	}
	if o := h.store.get(t, "F1"); o.State != order.StateFailed {
		t.Fatalf("state = %s", o.State)
	}
}

func TestInbankUnavailableThenRecovers(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.SetFault(inbanktest.AllOperations, inbanktest.Fault{Status: 503, RetryAfterSeconds: 7})
	err := h.deliver(placed("T1", 500))
	if err == nil || streams.IsPermanent(err) {
		t.Fatalf("err = %v, want a transient error", err)
	}
	h.fake.ClearFaults()
	h.mustDeliver(placed("T1", 500))
	h.oneSession("T1")
}

func TestUnknownOrderWaitsThenIsRejected(t *testing.T) {
	h := newHarness(t, nil)
	h.publishedAt = h.clock()
	if err := h.deliver(&events.DeviceShipped{OrderID: "N1", AssetIdentifiers: imei()}); err == nil {
		t.Fatal("shipment for an unknown order did not wait")
	}
	h.count("N1", events.TypeOrderRejected, 0)
	h.advanceClock(11 * time.Second)
	h.mustDeliver(&events.DeviceShipped{OrderID: "N1", AssetIdentifiers: imei()})
	rej := h.pub.of("N1", events.TypeOrderRejected)
	if len(rej) != 1 || rej[0]["reason"] != events.ReasonOrderUnknown {
		t.Fatalf("rejections = %v", rej)
	}
}

func TestPublishFailureKeepsTheOutbox(t *testing.T) {
	h := newHarness(t, nil)
	h.pub.fail = errors.New("nats down")
	if err := h.deliver(placed("O1", 500)); err == nil {
		t.Fatal("no error while publishing fails")
	}
	if o := h.store.get(t, "O1"); len(o.Outbox) != 1 || o.SessionUUID == "" {
		t.Fatalf("outbox = %v", o.Outbox)
	}
	h.pub.fail = nil
	h.mustDeliver(placed("O1", 500))
	h.oneSession("O1")
}

func TestTraceParentIsCarriedToTheEventsAnInputCauses(t *testing.T) {
	h := newHarness(t, nil)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	p := placed("TP1", 500)
	e, _ := h.codec.New("urn:test", events.TypeOrderPlaced, "TP1", p)
	e.SetExtension(events.ExtensionTraceParent, tp)
	if err := h.wf.Handle(context.Background(), events.Envelope{Event: e, Data: p}, streams.Delivery{Subject: events.SubjectOrderPlaced, Published: h.clock()}); err != nil {
		t.Fatal(err)
	}
	h.pub.mu.Lock()
	defer h.pub.mu.Unlock()
	for _, out := range h.pub.events {
		if out.Subject() == "TP1" && events.TraceParent(out) != tp {
			t.Fatalf("%s has traceparent %q, want %q", out.Type(), events.TraceParent(out), tp)
		}
	}
}

func TestConcurrentShipmentsAssignOnce(t *testing.T) {
	h := newHarness(t, func(c *handlers.Config) { c.Policy = activation.OnShipment })
	h.signed("CS1", 500)
	h.fake.SetFault(inbank.OpAssignAssetIdentifiers, inbanktest.Fault{Latency: inbanktest.Duration(100 * time.Millisecond)})
	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- h.deliver(&events.DeviceShipped{OrderID: "CS1", AssetIdentifiers: imei()}) }()
	}
	for range 4 {
		if err := <-errs; streams.IsPermanent(err) {
			t.Fatalf("permanent error: %v", err)
		}
	}
	h.mustDeliver(&events.DeviceShipped{OrderID: "CS1", AssetIdentifiers: imei()})
	if got := h.fake.IdentifierAssignments(h.contract("CS1")); got != 1 {
		t.Fatalf("identifier assignments = %d, want 1", got)
	}
	h.count("CS1", events.TypeContractActivated, 1)
	h.count("CS1", events.TypeOrderFailed, 0)
}

// TestRefusedIdentifiersNotRecordedAreRetried: Inbank refuses the
// identifiers, and the write that records the refusal fails. The step is
// retried (no dead letter, no order.failed for a refusal the state does
// not show); the next delivery records it and reports it once.
func TestRefusedIdentifiersNotRecordedAreRetried(t *testing.T) {
	h := newHarness(t, nil)
	h.signed("R1", 500)
	h.fake.SetFault(inbank.OpAssignAssetIdentifiers, inbanktest.Fault{Status: 400})
	h.store.mu.Lock()
	h.store.failSave = 3 // the shipment and the claim are written; recording the refusal fails
	h.store.mu.Unlock()
	err := h.deliver(&events.DeviceShipped{OrderID: "R1", AssetIdentifiers: imei()})
	if calls := h.fake.Calls(inbank.OpAssignAssetIdentifiers); calls != 1 {
		t.Fatalf("%d identifier calls before the failing write, want 1", calls)
	}
	if err == nil || streams.IsPermanent(err) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	if n := len(h.pub.of("R1", events.TypeOrderFailed)); n != 0 {
		t.Fatalf("%d order.failed for an unrecorded refusal", n)
	}
	h.advanceClock(2 * time.Second) // the unreleased claim expires (CLAIM_TTL 1 s)
	if err := h.deliver(&events.DeviceShipped{OrderID: "R1", AssetIdentifiers: imei()}); !streams.IsPermanent(err) {
		t.Fatalf("retry: err = %v, want permanent", err)
	}
	if o := h.store.get(t, "R1"); len(o.Identifiers) != 0 {
		t.Fatalf("refused identifiers kept: %v", o.Identifiers)
	}
}

// TestCalculationRefusedWhileSessionCreated: the calculation runs beside
// the session creation; when Inbank refuses it, the order fails at the
// calculation and the session it created is never published.
func TestCalculationRefusedWhileSessionCreated(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.SetFault(inbank.OpCalculate, inbanktest.Fault{Status: 400})
	if err := h.deliver(placed("C1", 500)); !streams.IsPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	failed := h.pub.of("C1", events.TypeOrderFailed)
	if len(failed) != 1 || failed[0]["step"] != order.StepCalculate {
		t.Fatalf("order.failed = %v", failed)
	}
	if n := len(h.pub.of("C1", events.TypeSessionCreated)); n != 0 {
		t.Fatalf("%d session.created for an order whose calculation was refused", n)
	}
	if o := h.store.get(t, "C1"); o.State != order.StateFailed {
		t.Fatalf("state = %s", o.State)
	}
}

// TestCalculationFailingAfterSessionCreatedIsRetriedAlone: the session was
// created but the calculation failed transiently. The session is recorded
// unpublished; the retry prices it and publishes it, without a second
// session.
func TestCalculationFailingAfterSessionCreatedIsRetriedAlone(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.SetFault(inbank.OpCalculate, inbanktest.Fault{Status: 503, Remaining: 3}) // outlasts the short in-line retries
	err := h.deliver(placed("C2", 500))
	if err == nil || streams.IsPermanent(err) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	o := h.store.get(t, "C2")
	if o.State != order.StateNew || o.SessionUUID == "" || o.SessionClaim != nil {
		t.Fatalf("state %s, session %q, claim %v: want the session recorded, unpublished, unclaimed", o.State, o.SessionUUID, o.SessionClaim)
	}
	if n := len(h.pub.of("C2", events.TypeSessionCreated)); n != 0 {
		t.Fatalf("session.created published without a price")
	}
	h.mustDeliver(placed("C2", 500)) // the redelivery
	created := h.pub.of("C2", events.TypeSessionCreated)
	if len(created) != 1 || created[0]["sessionUuid"] != o.SessionUUID || created[0]["quote"] == nil {
		t.Fatalf("session.created = %v, want one for session %s with its quote", created, o.SessionUUID)
	}
	if n := len(h.fake.Sessions("C2")); n != 1 {
		t.Fatalf("%d sessions at Inbank, want 1", n)
	}
}

// TestOrderNotAcknowledgedUnindexed: the index entry is written alongside
// the order's first write; when it fails, order.placed is not acknowledged,
// also when it comes again for an order that exists, and the next delivery
// indexes the order without a second session.
func TestOrderNotAcknowledgedUnindexed(t *testing.T) {
	h := newHarness(t, nil)
	h.store.mu.Lock()
	h.store.addFail = errors.New("index unavailable")
	h.store.mu.Unlock()
	for range 2 { // a new order, then a known one
		if err := h.deliver(placed("IX1", 500)); err == nil || streams.IsPermanent(err) {
			t.Fatalf("err = %v, want a transient error while the index fails", err)
		}
	}
	h.store.mu.Lock()
	h.store.addFail = nil
	h.store.mu.Unlock()
	h.mustDeliver(placed("IX1", 500))
	h.store.mu.Lock()
	indexed := h.store.open[order.StoreKey("", "IX1")]
	h.store.mu.Unlock()
	if !indexed {
		t.Fatal("the order is not in the open index")
	}
	h.oneSession("IX1")
}

// TestRefreshServedByAnotherInputKeepsTheCallbacksTrace: a callback that
// lands while order.placed's Advance is still running has its session read
// made by that Advance. The read, its log line and the status event it
// causes belong to the callback's trace all the same (on a busy machine
// this interleaving is common; the e2e trace test lost its span to it).
func TestRefreshServedByAnotherInputKeepsTheCallbacksTrace(t *testing.T) {
	const (
		placedTP   = "00-11111111111111111111111111111111-1111111111111111-01"
		callbackTP = "00-22222222222222222222222222222222-2222222222222222-01"
		callbackID = "22222222222222222222222222222222"
	)
	var logs bytes.Buffer
	var h *harness
	delivered := false
	h = newHarness(t, func(c *handlers.Config) {
		c.Logger = slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(&logs, nil)))
		c.Hooks.AfterInbankCall = func(step, orderID string) error {
			if step != order.StepSession || delivered {
				return nil
			}
			delivered = true
			// The customer signs and Inbank calls back before the created
			// session is recorded: the callback's own Advance finds the
			// step claimed and waits.
			s := h.fake.Sessions(orderID)
			if _, err := h.fake.Sign(s[0].UUID); err != nil {
				t.Error(err)
			}
			cb := &events.CallbackReceived{OrderID: orderID, ReceivedAt: h.clock(), Body: json.RawMessage(`{}`)}
			if err := h.deliverWithTrace(cb, callbackTP); err == nil {
				t.Error("the callback's own Advance went on while the session step was claimed")
			}
			return nil
		}
	})
	if err := h.deliverWithTrace(placed("TR1", 500), placedTP); err != nil {
		t.Fatal(err)
	}
	h.pub.mu.Lock()
	var status []event.Event
	for _, e := range h.pub.events {
		if e.Type() == events.TypeSessionStatusChange {
			status = append(status, e)
		}
	}
	h.pub.mu.Unlock()
	if len(status) != 1 {
		t.Fatalf("%d session.status_changed, want 1 (order.placed's Advance serves the refresh)", len(status))
	}
	if got := events.TraceParent(status[0]); got != callbackTP {
		t.Errorf("session.status_changed traceparent = %q, want the callback's %q", got, callbackTP)
	}
	found := false
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, `"msg":"session status changed"`) {
			found = true
			if !strings.Contains(line, `"trace_id":"`+callbackID+`"`) {
				t.Errorf("the status change is logged outside the callback's trace: %s", line)
			}
		}
	}
	if !found {
		t.Fatalf("no status change logged:\n%s", logs.String())
	}
	if o := h.store.get(t, "TR1"); o.RefreshRequested || o.RefreshTraceParent != "" {
		t.Errorf("refresh request left after it was served: %v %q", o.RefreshRequested, o.RefreshTraceParent)
	}
}

// TestFailedSessionCreationIsHeldForEveryPath: after a transient failure
// the session step is held until its retry is due, and no path calls
// Inbank sooner: not another input of the order, not reconciliation. The
// consumer is told to come back when the hold ends.
func TestFailedSessionCreationIsHeldForEveryPath(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.SetFault(inbank.OpCreateSession, inbanktest.Fault{Status: 503, RetryAfterSeconds: 5})
	err := h.deliver(placed("H1", 500))
	if err == nil || streams.IsPermanent(err) {
		t.Fatalf("err = %v, want a retry", err)
	}
	if !strings.Contains(err.Error(), "create_session") {
		t.Fatalf("err = %v, want the session step's failure", err)
	}
	o := h.store.get(t, "H1")
	if o.SessionClaim == nil || o.SessionClaim.Owner != order.RetryHold {
		t.Fatalf("session claim after a 503 = %+v, want a retry hold", o.SessionClaim)
	}
	if hold := o.SessionClaim.Until.Sub(h.clock()); hold < 5*time.Second || hold > 5500*time.Millisecond {
		t.Fatalf("held for %v, want Retry-After 5 s, up to 10 %% more", hold)
	}
	calls := h.fake.Calls(inbank.OpCreateSession)
	h.fake.ClearFaults()
	// Early: a duplicate order.placed, the reconciler, an operator's reconcile.
	if err := h.deliver(placed("H1", 500)); err == nil {
		t.Fatal("a second order.placed during the hold did not wait")
	}
	h.advanceClock(3 * time.Second)
	if _, err := h.wf.Reconcile(context.Background(), h.store, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := h.wf.ReconcileNow(context.Background(), "H1"); err == nil {
		t.Fatal("reconcile during the hold did not wait")
	}
	if got := h.fake.Calls(inbank.OpCreateSession); got != calls {
		t.Fatalf("session creation called %d times during the hold", got-calls)
	}
	h.advanceClock(3 * time.Second)
	h.mustDeliver(placed("H1", 500))
	h.oneSession("H1")
}

// TestSessionCreationAttemptsAreBounded: the order has MaxAttempts
// attempts in all, whichever path makes them; then it fails at the step
// and the input is dead-lettered.
func TestSessionCreationAttemptsAreBounded(t *testing.T) {
	h := newHarness(t, func(c *handlers.Config) { c.MaxAttempts = 3 })
	h.fake.SetFault(inbank.OpCreateSession, inbanktest.Fault{Status: 503})
	if err := h.deliver(placed("B1", 500)); err == nil {
		t.Fatal("no retry after a 503")
	}
	for range 2 { // two more attempts, by reconciliation
		h.advanceClock(5 * time.Second)
		if _, err := h.wf.ReconcileNow(context.Background(), "B1"); err == nil {
			t.Fatal("reconcile during a 503 did not fail")
		}
	}
	if got := h.fake.Calls(inbank.OpCreateSession); got != 3 {
		t.Fatalf("%d session creation calls, want 3", got)
	}
	h.advanceClock(5 * time.Second)
	err := h.deliver(placed("B1", 500)) // the input's next delivery
	if !streams.IsPermanent(err) || !errors.Is(err, order.ErrAttemptsExhausted) {
		t.Fatalf("err = %v, want the input dead-lettered: attempts exhausted", err)
	}
	if got := h.fake.Calls(inbank.OpCreateSession); got != 3 {
		t.Fatalf("%d session creation calls, want 3", got)
	}
	failed := h.pub.of("B1", events.TypeOrderFailed)
	if len(failed) != 1 || failed[0]["step"] != order.StepSession {
		t.Fatalf("order.failed = %v, want one at %s", failed, order.StepSession)
	}
}

// TestCustomerDataLeavesTheStateWithTheSession: the customer's data goes
// to Inbank with the session, and the state keeps none of it from the
// write that records the session on, also while the session waits
// unpublished for a calculation that failed transiently.
func TestCustomerDataLeavesTheStateWithTheSession(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.SetFault(inbank.OpCalculate, inbanktest.Fault{Status: 503, Remaining: 3})
	p := placed("C1", 500)
	p.Customer = &events.Customer{IdentityCode: "49403136515", FirstName: "Mari", LastName: "Maasikas", Email: "mari@example.ee", Mobile: "+37255555555"}
	if err := h.deliver(p); err == nil {
		t.Fatal("the calculation's 503 was not reported")
	}
	o := h.store.get(t, "C1")
	if o.SessionUUID == "" || o.State != order.StateNew {
		t.Fatalf("state %s, session %q: want a recorded, unpublished session", o.State, o.SessionUUID)
	}
	h.withStoreLocked(func() {
		for id, b := range h.store.data {
			if strings.Contains(string(b), "49403136515") || strings.Contains(string(b), "mari@example.ee") {
				t.Errorf("stored %s holds customer data", id)
			}
		}
	})
	h.mustDeliver(p) // priced and published without it
	h.oneSession("C1")
}

// TestCallbackAnsweredByALaterReadCostsNothing: a callback stored before
// a session read for another callback began is answered by that read: it
// is acknowledged with no write and no Inbank call. One stored after it is
// served, no sooner than RefreshEvery after the read.
func TestCallbackAnsweredByALaterReadCostsNothing(t *testing.T) {
	h := newHarness(t, nil)
	h.mustDeliver(placed("CB1", 500))
	stored := h.clock()
	h.advanceClock(2 * time.Second)
	h.mustDeliver(&events.CallbackReceived{OrderID: "CB1", ReceivedAt: h.clock(), Body: json.RawMessage(`{}`)}) // stored now: a read
	reads := h.fake.Calls(inbank.OpGetSession)
	_, rev, _ := h.store.Load(context.Background(), "CB1")

	h.publishedAt = stored // an older copy, redelivered late
	h.mustDeliver(&events.CallbackReceived{OrderID: "CB1", ReceivedAt: stored, Body: json.RawMessage(`{}`)})
	if got := h.fake.Calls(inbank.OpGetSession); got != reads {
		t.Fatalf("%d session reads for a callback a later read answered", got-reads)
	}
	if _, rev2, _ := h.store.Load(context.Background(), "CB1"); rev2 != rev {
		t.Fatal("a callback a later read answered wrote the order")
	}

	h.publishedAt = time.Time{}
	err := h.deliver(&events.CallbackReceived{OrderID: "CB1", ReceivedAt: h.clock(), Body: json.RawMessage(`{}`)})
	if err == nil || h.fake.Calls(inbank.OpGetSession) != reads {
		t.Fatalf("a callback right after the last read: err %v, %d reads; want a wait and none", err, h.fake.Calls(inbank.OpGetSession)-reads)
	}
	h.advanceClock(order.RefreshEvery)
	h.mustDeliver(&events.CallbackReceived{OrderID: "CB1", ReceivedAt: h.clock(), Body: json.RawMessage(`{}`)})
	if got := h.fake.Calls(inbank.OpGetSession); got != reads+1 {
		t.Fatalf("%d session reads once RefreshEvery passed, want 1", got-reads)
	}
}

// sessionCreatedID is the fixed id of the order's session.created.
func (h *harness) sessionCreatedID(orderID string) string {
	h.t.Helper()
	h.pub.mu.Lock()
	defer h.pub.mu.Unlock()
	for _, e := range h.pub.events {
		if e.Subject() == orderID && e.Type() == events.TypeSessionCreated {
			return e.ID()
		}
	}
	h.t.Fatalf("%s: no session.created", orderID)
	return ""
}

// TestNewOrderWritesItsStateTwice: a new order is written twice (created
// with the session's claim; the session recorded with session.created in
// its outbox) and indexed once, naming session.created as published: no
// third write empties the outbox. Beyond half the duplicate window,
// when publishing it again could store it twice, the next input's
// Advance (in another bridge) learns from the index that it was
// published, publishes only its own event and leaves the outbox empty.
func TestNewOrderWritesItsStateTwice(t *testing.T) {
	h := newHarness(t, nil)
	h.mustDeliver(placed("W1", 800))
	h.oneSession("W1")
	key, id := order.StoreKey("", "W1"), h.sessionCreatedID("W1")
	h.withStoreLocked(func() {
		if got := h.store.writes[key]; got != 2 {
			t.Errorf("order written %d times up to session.created, want 2", got)
		}
		if got := h.store.published[key]; !slices.Equal(got, []string{id}) || !h.store.open[key] {
			t.Errorf("index entry: open %v, published %v; want open, published [%s]", h.store.open[key], got, id)
		}
	})
	if o := h.store.get(t, "W1"); len(o.Outbox) != 1 || o.Outbox[0].ID != id {
		t.Fatalf("stored outbox %v, want session.created left in it", o.Outbox)
	}

	h.advanceClock(3 * time.Minute) // past the duplicate window (2m)
	h.restart()                     // another bridge takes the callback
	if _, err := h.fake.Sign(h.session("W1")); err != nil {
		t.Fatal(err)
	}
	h.callback("W1")
	h.count("W1", events.TypeSessionStatusChange, 1)
	h.pub.mu.Lock()
	attempts := h.pub.attempts[id]
	h.pub.mu.Unlock()
	if attempts != 1 {
		t.Errorf("session.created published %d times, want 1", attempts)
	}
	if o := h.store.get(t, "W1"); len(o.Outbox) != 0 {
		t.Errorf("stored outbox after the callback: %v, want empty", o.Outbox)
	}
}

// TestPublishedNotIndexedIsPublishedAgainInTheWindow: when the index
// entry could not be written after session.created was published, the
// input is not acknowledged; its redelivery (within the duplicate window)
// publishes it again, which the server ignores, and writes the entry.
func TestPublishedNotIndexedIsPublishedAgainInTheWindow(t *testing.T) {
	h := newHarness(t, nil)
	h.withStoreLocked(func() { h.store.addFail = errors.New("index unavailable") })
	if err := h.deliver(placed("W2", 500)); err == nil {
		t.Fatal("acknowledged without its index entry")
	}
	h.withStoreLocked(func() { h.store.addFail = nil })
	h.advanceClock(30 * time.Second)
	h.mustDeliver(placed("W2", 500))
	h.oneSession("W2")
	key, id := order.StoreKey("", "W2"), h.sessionCreatedID("W2")
	h.withStoreLocked(func() {
		if got := h.store.published[key]; !slices.Equal(got, []string{id}) {
			t.Errorf("index names %v as published, want [%s]", got, id)
		}
	})
}

// cancelOnSessionRead is Inbank with the caller's context cancelled as a
// session read starts: the process shutting down mid-call.
type cancelOnSessionRead struct {
	handlers.Inbank
	cancel context.CancelFunc
}

func (c cancelOnSessionRead) Session(ctx context.Context, uuid string) (inbankapi.Session, error) {
	c.cancel()
	return c.Inbank.Session(ctx, uuid)
}

// TestReconcilePassCutByShutdownWarnsNothing: a pass stopped by shutdown
// leaves its orders to the next pass, which is no fault to warn an
// operator about (every demo's end logged one such warning).
func TestReconcilePassCutByShutdownWarnsNothing(t *testing.T) {
	h, ctx, logs := stoppableHarness(t, func(c *handlers.Config, cancel context.CancelFunc) {
		c.Inbank = cancelOnSessionRead{Inbank: c.Inbank, cancel: cancel}
	})
	h.mustDeliver(placed("SD1", 500))
	h.advanceClock(2 * time.Minute)
	if _, err := h.wf.Reconcile(ctx, h.store, time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("Reconcile = %v, want the cancellation", err)
	}
	// A cancelled call is no answer from Inbank: the order is not failed
	// (this store, unlike the KV one, would have written it).
	if o := h.store.get(t, "SD1"); o.State != order.StatePending {
		t.Errorf("order is %s after a cancelled read, want %s", o.State, order.StatePending)
	}
	h.count("SD1", events.TypeOrderFailed, 0)
	warnedNothing(t, logs)
	stopped := false
	for line := range strings.Lines(logs.String()) {
		stopped = stopped || strings.Contains(line, `"msg":"reconcile: stopped before the order moved`) && strings.Contains(line, `"order_id":"SD1"`)
	}
	if !stopped {
		t.Errorf("no line says the order was left to the next pass:\n%s", logs.String())
	}
}

// cancelOnCreateSession is Inbank with the caller's context cancelled as
// the session creation starts.
type cancelOnCreateSession struct {
	handlers.Inbank
	cancel context.CancelFunc
}

func (c cancelOnCreateSession) CreateSession(ctx context.Context, r inbankapi.SessionRequest) (inbankapi.CreatedSession, error) {
	c.cancel()
	return c.Inbank.CreateSession(ctx, r)
}

// TestInputStoppedMidSessionCallIsNotFailed: a call with a side effect
// cut short by the work being stopped is left as after a crash (the claim
// expires, the input comes again), never judged as Inbank's refusal.
func TestInputStoppedMidSessionCallIsNotFailed(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := newHarness(t, func(c *handlers.Config) {
		c.Inbank = cancelOnCreateSession{Inbank: c.Inbank, cancel: cancel}
	})
	p := placed("SD2", 500)
	e, err := h.codec.New("urn:test", events.TypeOrderPlaced, "SD2", p)
	if err != nil {
		t.Fatal(err)
	}
	err = h.wf.Handle(ctx, events.Envelope{Event: e, Data: p}, streams.Delivery{Subject: events.SubjectOrderPlaced, Published: h.clock(), NumDelivered: 1})
	if !errors.Is(err, context.Canceled) || streams.IsPermanent(err) {
		t.Fatalf("Handle = %v, want the cancellation, to be retried", err)
	}
	o := h.store.get(t, "SD2")
	if order.Final(o.State) {
		t.Errorf("order is %s after a cancelled session call", o.State)
	}
	// Nothing more is written with a context that is gone (on the KV
	// store such a write fails and warns): the attempt's own claim stays
	// and expires, not turned into a hold for a retry.
	if o.SessionClaim == nil || o.SessionClaim.Owner == order.RetryHold {
		t.Errorf("session claim = %+v, want the attempt's own", o.SessionClaim)
	}
	h.count("SD2", events.TypeOrderFailed, 0)
}

// cancelOnScan is the store with the reconcile pass's context cancelled
// as it reads its second order, and, as the KV store does, every read of
// a cancelled context failing with the cancellation.
type cancelOnScan struct {
	handlers.Store
	cancel context.CancelFunc
	reads  int
}

func (s *cancelOnScan) LoadFresh(ctx context.Context, key string) (order.Order, uint64, error) {
	if s.reads++; s.reads == 2 {
		s.cancel()
	}
	if err := ctx.Err(); err != nil {
		return order.Order{}, 0, fmt.Errorf("load order %s: %w", key, err)
	}
	return s.Store.LoadFresh(ctx, key)
}

// TestReconcileScanCutByShutdownWarnsNothing: a pass stopped while it
// reads the open orders ends there with the cancellation, logging no
// error or warning for the orders it could not read (a demo's end logged
// "cannot read an order" and "cannot retire an index entry" for them).
func TestReconcileScanCutByShutdownWarnsNothing(t *testing.T) {
	h, ctx, logs := stoppableHarness(t, func(c *handlers.Config, cancel context.CancelFunc) {
		c.Store = &cancelOnScan{Store: c.Store, cancel: cancel}
	})
	for _, id := range []string{"SC1", "SC2", "SC3", "SC4"} {
		h.mustDeliver(placed(id, 500))
	}
	h.advanceClock(2 * time.Minute)
	if _, err := h.wf.Reconcile(ctx, h.store, time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("Reconcile = %v, want the cancellation", err)
	}
	warnedNothing(t, logs)
}

// stoppableHarness is a harness logging into the returned buffer (info
// and up, JSON), with a context that change's cancel stops: the work
// stopped as at shutdown.
func stoppableHarness(t *testing.T, change func(c *handlers.Config, cancel context.CancelFunc)) (*harness, context.Context, *bytes.Buffer) {
	t.Helper()
	logs := new(bytes.Buffer)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h := newHarness(t, func(c *handlers.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		change(c, cancel)
	})
	return h, ctx, logs
}

// warnedNothing fails t for each WARN or ERROR line in logs.
func warnedNothing(t *testing.T, logs *bytes.Buffer) {
	t.Helper()
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("logged %s", line)
		}
	}
}
