package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/callbacktoken"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/eventwatch"
	"github.com/smartrent-bridge/bridge/internal/handlers"
	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
	"github.com/smartrent-bridge/bridge/internal/ingress"
	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/order"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/schemas"
)

const testSecret = "e2e-callback-secret-0123"

// world is one embedded NATS server, one fake Inbank, the real ingress
// handler, and the shop's side: a publisher and a collector of everything
// on smartrent.out.>.
type world struct {
	t       *testing.T
	srv     *natstest.Server
	nc      *nats.Conn
	js      jetstream.JetStream
	fake    *inbanktest.Fake
	inbank  *httptest.Server
	ingress *httptest.Server
	pub     *streams.Publisher
	out     *collector
	env     map[string]string
	started BridgeStarted // of the last bridge started
}

func newWorld(t *testing.T, fakeCfg inbanktest.Config, env map[string]string) *world {
	t.Helper()
	srv := natstest.Run(t, natstest.Options{})
	nc, js := natstest.Connect(t, srv.ClientURL())
	ctx := context.Background()
	if _, err := streams.ProvisionBridge(ctx, js, streams.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	codec := events.NewCodec(schemas.MustLoad())
	w := &world{t: t, srv: srv, nc: nc, js: js, pub: streams.NewPublisher(js, codec), out: newCollector(t, js, codec)}
	tokens, _ := callbacktoken.New([]string{testSecret})
	h, err := ingress.New(ingress.Config{Tokens: tokens, Publisher: w.pub, Codec: codec, SignatureKeys: []string{inbanktest.DefaultAPIKey}})
	if err != nil {
		t.Fatal(err)
	}
	w.ingress = httptest.NewServer(h)
	t.Cleanup(w.ingress.Close)
	w.fake, w.inbank = inbanktest.NewServer(t, fakeCfg)
	w.env = map[string]string{
		"NATS_URL": srv.ClientURL(), "INBANK_BASE_URL": w.inbank.URL, "INBANK_API_KEY": inbanktest.DefaultAPIKey,
		"INBANK_SHOP_UUID": inbanktest.DefaultShopUUID, "INBANK_PRODUCT_CODE": inbanktest.DefaultProductCode,
		"CALLBACK_BASE_URL": w.ingress.URL, "CALLBACK_SECRET": testSecret, "METRICS_ADDR": "127.0.0.1:0",
		"RECONCILE_INTERVAL": "300ms", "INBANK_TIMEOUT": "2s", "ACTIVATION_SETTLE": "2s", "ACK_WAIT": "2s",
		"LOG_LEVEL": "error",
	}
	for k, v := range env {
		w.env[k] = v
	}
	return w
}

// bridge runs one bridge until the returned stop is called (or the test ends).
func (w *world) bridge(opts ...BridgeOptions) (stop func()) {
	w.t.Helper()
	return w.bridgeLogging(io.Discard, opts...)
}

func (w *world) bridgeLogging(logOut io.Writer, opts ...BridgeOptions) (stop func()) {
	w.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan BridgeStarted, 1)
	done := make(chan error, 1)
	env := w.env
	go func() { done <- RunBridge(ctx, nil, func(k string) string { return env[k] }, logOut, started, opts...) }()
	select {
	case w.started = <-started:
	case err := <-done:
		w.t.Fatalf("bridge did not start: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				w.t.Errorf("bridge: %v", err)
			}
		})
	}
	w.t.Cleanup(stop)
	return stop
}

func (w *world) publish(typ, orderID string, data any) {
	w.t.Helper()
	e, err := w.pub.Codec().New("urn:shop:test", typ, orderID, data)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.pub.Publish(context.Background(), e); err != nil {
		w.t.Fatal(err)
	}
}

func orderPlaced(id string, net float64) events.OrderPlaced {
	return events.OrderPlaced{
		OrderID: id, Period: 24, Locale: "et-EE", Description: "iPhone 16 rental",
		ReturnURL: "https://shop.example/r", CancelURL: "https://shop.example/c",
		HeroDevice: events.HeroDevice{IdentifierType: inbankapi.ModelIdentifierEAN, Identifier: inbanktest.EANPhone, ModelID: inbanktest.ModelPhone, ModelName: "Apple iPhone 16", NetPrice: net},
		Customer:   &events.Customer{IdentityCode: "49403136515", FirstName: "Mari", LastName: "Maasikas", Email: "mari@example.ee", Mobile: "+37255555555"},
	}
}

var imei = []events.AssetIdentifier{{Identifier: "356938035643809", IdentifierType: inbankapi.AssetIdentifierIMEI}}

func (w *world) place(id string, net float64) {
	w.t.Helper()
	o := orderPlaced(id, net)
	w.publish(events.TypeOrderPlaced, id, o)
}

func (w *world) ship(id string, ids []events.AssetIdentifier) {
	w.publish(events.TypeDeviceShipped, id, events.DeviceShipped{OrderID: id, AssetIdentifiers: ids})
}

func (w *world) deliver(id string) {
	w.publish(events.TypeDeviceDelivered, id, events.DeviceDelivered{OrderID: id})
}

// sessionOf waits for the order's session.created and returns its uuid.
func (w *world) sessionOf(id string) string {
	w.t.Helper()
	w.out.wait(id, events.TypeSessionCreated, 1)
	return w.out.of(id, events.TypeSessionCreated)[0]["sessionUuid"].(string)
}

// collector keeps every event stored in SMARTRENT_OUT.
type collector struct {
	t *testing.T
	*eventwatch.Watcher
}

func newCollector(t *testing.T, js jetstream.JetStream, codec *events.Codec) *collector {
	w, err := eventwatch.Watch(context.Background(), js, codec, []string{streams.StreamOut}, nil, func(err error) {
		t.Errorf("invalid event: %v", err)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return &collector{t: t, Watcher: w}
}

func (c *collector) of(orderID, typ string) []map[string]any { return c.Of(orderID, typ) }

// wait blocks until the order has at least n events of typ, or fails the
// test after 30 s.
func (c *collector) wait(orderID, typ string, n int) {
	c.t.Helper()
	if !c.Wait(orderID, typ, n, 30*time.Second) {
		c.t.Fatalf("%s: %d × %s after 30s, want %d", orderID, len(c.of(orderID, typ)), typ, n)
	}
}

func (c *collector) waitUntil(timeout time.Duration, cond func() bool) bool {
	return c.WaitUntil(timeout, cond)
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestE2EPathAOnDelivery(t *testing.T) {
	w := newWorld(t, inbanktest.Config{Callbacks: inbanktest.CallbackPolicy{Sign: true}}, map[string]string{"LOG_LEVEL": "debug"})
	logs := &syncBuffer{}
	stop := w.bridgeLogging(logs)
	w.place("ORD-A", 800)
	s := w.sessionOf("ORD-A")
	if _, err := w.fake.Sign(s); err != nil {
		t.Fatal(err)
	}
	w.out.wait("ORD-A", events.TypeSessionStatusChange, 1)
	w.ship("ORD-A", imei)
	w.out.wait("ORD-A", events.TypeIdentifiersAssigned, 1)
	w.deliver("ORD-A")
	w.out.wait("ORD-A", events.TypeContractActivated, 1)
	act := w.out.of("ORD-A", events.TypeContractActivated)[0]
	if act["activatedVia"] != "api" || act["sessionUuid"] != s || act["productCode"] != inbanktest.DefaultProductCode {
		t.Fatalf("contract.activated = %v", act)
	}
	// The session goes to completed after activation: a status change, no second activation event.
	w.out.wait("ORD-A", events.TypeSessionStatusChange, 2)
	info := w.fake.Sessions("ORD-A")[0]
	if w.fake.Activations(info.ContractUUID) != 1 || w.fake.SessionsCreated("ORD-A") != 1 {
		t.Fatalf("activations %d, sessions %d", w.fake.Activations(info.ContractUUID), w.fake.SessionsCreated("ORD-A"))
	}
	if n := len(w.out.of("ORD-A", events.TypeContractActivated)); n != 1 {
		t.Fatalf("%d contract.activated", n)
	}
	stop()
	out := logs.String()
	assertLogLinesStrict(t, out)
	if !strings.Contains(out, `"order_id":"ORD-A"`) || !strings.Contains(out, `"shop":"default"`) {
		t.Fatalf("logs do not name the order and its shop:\n%.2000s", out)
	}
	for _, secret := range []string{"49403136515", "Maasikas", "mari@example.ee", "+37255555555", inbanktest.DefaultAPIKey, testSecret} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
}

func TestE2EInbankFailingPastMaxDeliver(t *testing.T) {
	w := newWorld(t, inbanktest.Config{}, map[string]string{"MAX_DELIVER": "3"})
	w.bridge()
	w.fake.SetFault(inbank.OpGetRentalConditions, inbanktest.Fault{Status: 503, RetryAfterSeconds: 1})
	w.place("ORD-G", 500)
	w.out.wait("ORD-G", events.TypeOrderFailed, 1)
	f := w.out.of("ORD-G", events.TypeOrderFailed)[0]
	if f["step"] != order.StepConditions || f["attempts"] != 3.0 {
		t.Fatalf("order.failed = %v", f)
	}
	dl := w.oneDeadLetter(events.SubjectDLQPrefix + events.SubjectOrderPlaced)
	if got := dl.Header.Get(streams.HeaderDLQDeliveries); got != "3" {
		t.Fatalf("deliveries header = %q", got)
	}
	// Spaced retries: three deliveries took at least the two Retry-After waits.
	if calls := w.fake.Calls(inbank.OpGetRentalConditions); calls < 3 || calls > 9 {
		t.Fatalf("%d conditions calls for 3 deliveries", calls)
	}
}

func TestE2EPathAOnShipment(t *testing.T) {
	w := newWorld(t, inbanktest.Config{}, map[string]string{"ACTIVATION_POLICY": "on-shipment"})
	w.bridge()
	w.place("ORD-S", 500)
	w.fake.Sign(w.sessionOf("ORD-S"))
	w.out.wait("ORD-S", events.TypeSessionStatusChange, 1)
	w.ship("ORD-S", imei)
	w.out.wait("ORD-S", events.TypeContractActivated, 1)
}

func TestE2EPathBPortal(t *testing.T) {
	w := newWorld(t, inbanktest.Config{}, map[string]string{"ACTIVATION_POLICY": "portal"})
	w.bridge()
	w.place("ORD-B", 500)
	s := w.sessionOf("ORD-B")
	w.fake.Sign(s)
	w.out.wait("ORD-B", events.TypeSessionStatusChange, 1)
	w.ship("ORD-B", imei)
	w.deliver("ORD-B")
	if err := w.fake.PortalApprove(s); err != nil {
		t.Fatal(err)
	}
	w.out.wait("ORD-B", events.TypeContractActivated, 1)
	if via := w.out.of("ORD-B", events.TypeContractActivated)[0]["activatedVia"]; via != "portal" {
		t.Fatalf("activatedVia = %v", via)
	}
	c := w.fake.Sessions("ORD-B")[0].ContractUUID
	if w.fake.Activations(c) != 0 || w.fake.IdentifierAssignments(c) != 0 {
		t.Fatal("the bridge called Inbank under the portal policy")
	}
}

func TestE2EFinalOutcomesAndExpiryWithoutCallbacks(t *testing.T) {
	w := newWorld(t, inbanktest.Config{}, nil)
	w.bridge()
	w.place("ORD-D", 1050)
	w.place("ORD-C", 500)
	w.fake.Sign(w.sessionOf("ORD-D"))
	w.fake.Cancel(w.sessionOf("ORD-C"))
	w.out.wait("ORD-D", events.TypeSessionStatusChange, 1)
	w.out.wait("ORD-C", events.TypeSessionStatusChange, 1)
	if st := w.out.of("ORD-D", events.TypeSessionStatusChange)[0]["status"]; st != "declined" {
		t.Fatalf("ORD-D: %v", st)
	}
	if st := w.out.of("ORD-C", events.TypeSessionStatusChange)[0]["status"]; st != "cancelled" {
		t.Fatalf("ORD-C: %v", st)
	}
	// Expiry sends no callback to anyone here: only reconciliation sees it.
	w.fake.SetCallbackPolicy(inbanktest.CallbackPolicy{DropRate: 1})
	w.place("ORD-X", 500)
	w.fake.Expire(w.sessionOf("ORD-X"))
	w.out.wait("ORD-X", events.TypeSessionStatusChange, 1)
	if st := w.out.of("ORD-X", events.TypeSessionStatusChange)[0]["status"]; st != "expired" {
		t.Fatalf("ORD-X: %v", st)
	}
}

// drive takes n orders through path A with whatever callback behaviour
// the fake has, and waits for every contract.activated.
func (w *world) drive(prefix string, n int) []string {
	w.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%03d", prefix, i)
		w.place(ids[i], 300+float64(i%500))
	}
	for _, id := range ids {
		w.fake.Sign(w.sessionOf(id))
		w.ship(id, imei)
		w.deliver(id)
	}
	for _, id := range ids {
		w.out.wait(id, events.TypeContractActivated, 1)
	}
	return ids
}

func (w *world) assertExactlyOnce(ids []string) {
	w.t.Helper()
	for _, id := range ids {
		if got := len(w.out.of(id, events.TypeSessionCreated)); got != 1 {
			w.t.Errorf("%s: %d session.created", id, got)
		}
		if got := len(w.out.of(id, events.TypeContractActivated)); got != 1 {
			w.t.Errorf("%s: %d contract.activated", id, got)
		}
		for _, s := range w.fake.Sessions(id) {
			if s.ContractUUID != "" && w.fake.Activations(s.ContractUUID) > 1 {
				w.t.Errorf("%s: %d activation calls", id, w.fake.Activations(s.ContractUUID))
			}
		}
	}
}

func TestE2ECallbacksDuplicatedAndReordered(t *testing.T) {
	w := newWorld(t, inbanktest.Config{Callbacks: inbanktest.CallbackPolicy{Duplicates: 2, Reorder: true, Delay: inbanktest.Duration(50 * time.Millisecond)}}, nil)
	w.bridge()
	ids := w.drive("DUP", 10)
	w.assertExactlyOnce(ids)
	for _, id := range ids {
		if got := len(w.out.of(id, events.TypeSessionStatusChange)); got > 2 {
			t.Errorf("%s: %d status changes for pending→granted→completed", id, got)
		}
	}
}

func TestE2EAllCallbacksDropped(t *testing.T) {
	w := newWorld(t, inbanktest.Config{Callbacks: inbanktest.CallbackPolicy{DropRate: 1}}, nil)
	w.bridge()
	ids := w.drive("DROP", 10)
	w.assertExactlyOnce(ids)
	if st := w.fake.CallbackStats(); st.Sent != 0 {
		t.Fatalf("callbacks sent: %+v", st)
	}
}

func TestE2EDuplicateOrderPlaced(t *testing.T) {
	w := newWorld(t, inbanktest.Config{}, nil)
	w.bridge()
	w.place("ORD-P", 500)
	w.place("ORD-P", 500) // a second event id for the same order
	w.sessionOf("ORD-P")
	w.place("ORD-Q", 500) // a later order: once it has its session, ORD-P's duplicate was handled
	w.sessionOf("ORD-Q")
	if got := w.fake.SessionsCreated("ORD-P"); got != 1 {
		t.Fatalf("sessions at Inbank = %d", got)
	}
	if got := len(w.out.of("ORD-P", events.TypeSessionCreated)); got != 1 {
		t.Fatalf("session.created = %d", got)
	}
}

func TestE2ECrashBetweenCallAndRecordThenRestart(t *testing.T) {
	w := newWorld(t, inbanktest.Config{}, map[string]string{"CLAIM_TTL": "1s"})
	crashed := make(chan string, 4)
	var mu sync.Mutex
	crashOn := map[string]bool{order.StepSession: true, order.StepActivate: true}
	hooks := handlers.Hooks{AfterInbankCall: func(step, _ string) error {
		mu.Lock()
		defer mu.Unlock()
		if crashOn[step] {
			crashOn[step] = false
			crashed <- step
			return fmt.Errorf("killed after %s", step)
		}
		return nil
	}}
	stop := w.bridge(BridgeOptions{Hooks: hooks})
	w.place("ORD-K", 500)
	<-crashed // the first session was created and not recorded
	stop()
	w.bridge(BridgeOptions{Hooks: hooks}) // restarted
	s := w.sessionOf("ORD-K")
	w.fake.Sign(s)
	w.ship("ORD-K", imei)
	w.deliver("ORD-K")
	<-crashed // activation called, not recorded
	w.out.wait("ORD-K", events.TypeContractActivated, 1)
	if got := w.fake.SessionsCreated("ORD-K"); got != 2 {
		t.Fatalf("sessions at Inbank = %d, want 2 (one orphan)", got)
	}
	if got := len(w.out.of("ORD-K", events.TypeSessionCreated)); got != 1 {
		t.Fatalf("session.created = %d", got)
	}
	var contract string
	for _, si := range w.fake.Sessions("ORD-K") {
		if si.UUID == s {
			contract = si.ContractUUID
		}
	}
	if got := w.fake.Activations(contract); got != 1 {
		t.Fatalf("activation calls = %d", got)
	}
}

func TestE2EInbankUnavailableForAWhile(t *testing.T) {
	w := newWorld(t, inbanktest.Config{}, nil)
	w.bridge()
	w.fake.SetFault(inbanktest.AllOperations, inbanktest.Fault{Status: 503, RetryAfterSeconds: 1})
	w.place("ORD-T", 500)
	w.place("ORD-U", 600)
	// Wait until the bridge has met the outage a few times.
	for w.fake.Calls(inbank.OpGetRentalConditions) < 3 {
		time.Sleep(20 * time.Millisecond) // polling the fake's own counter
	}
	w.fake.SetFault(inbanktest.AllOperations, inbanktest.Fault{Status: 429, RetryAfterSeconds: 1, Remaining: 2})
	w.sessionOf("ORD-T")
	w.sessionOf("ORD-U")
	if w.fake.SessionsCreated("ORD-T") != 1 || w.fake.SessionsCreated("ORD-U") != 1 {
		t.Fatal("more than one session after the outage")
	}
}

func (w *world) deadLetters(subject string) []*jetstream.RawStreamMsg {
	w.t.Helper()
	_, all, err := streams.StreamMessages(context.Background(), w.js, streams.StreamDLQ)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for _, m := range all {
		if subject == "" || m.Subject == subject {
			out = append(out, m)
		}
	}
	return out
}

// oneDeadLetter waits for the single dead letter of subject (written right
// after order.failed) and returns it.
func (w *world) oneDeadLetter(subject string) *jetstream.RawStreamMsg {
	w.t.Helper()
	var dl []*jetstream.RawStreamMsg
	if !w.out.waitUntil(10*time.Second, func() bool {
		dl = w.deadLetters(subject)
		return len(dl) == 1
	}) {
		w.t.Fatalf("%d dead letters on %s, want 1", len(dl), subject)
	}
	return dl[0]
}

func TestE2ESessionRefusedGoesToDeadLetters(t *testing.T) {
	w := newWorld(t, inbanktest.Config{}, nil)
	w.bridge()
	w.fake.SetFault(inbank.OpCreateSession, inbanktest.Fault{Status: 422})
	w.place("ORD-F", 500)
	w.out.wait("ORD-F", events.TypeOrderFailed, 1)
	f := w.out.of("ORD-F", events.TypeOrderFailed)[0]
	if f["step"] != order.StepSession || f["httpStatus"] != 422.0 {
		t.Fatalf("order.failed = %v", f)
	}
	dl := w.oneDeadLetter(events.SubjectDLQPrefix + events.SubjectOrderPlaced)
	h := dl.Header
	if !strings.Contains(h.Get(streams.HeaderDLQReason), "422") || h.Get(streams.HeaderDLQStream) != streams.StreamIn || h.Get(streams.HeaderDLQStreamSeq) == "" {
		t.Fatalf("dead letter headers = %v", h)
	}
	var body map[string]any
	if json.Unmarshal(dl.Data, &body) != nil || body["subject"] != "ORD-F" {
		t.Fatalf("dead letter does not keep the original message: %s", dl.Data)
	}
	if w.fake.SessionsCreated("ORD-F") != 0 {
		t.Fatal("a session exists")
	}
}

func TestE2ERejections(t *testing.T) {
	w := newWorld(t, inbanktest.Config{}, map[string]string{"LOG_LEVEL": "debug"})
	logs := &syncBuffer{}
	stop := w.bridgeLogging(logs)
	long := orderPlaced("ORD-R1", 500)
	long.Period = 48
	w.publish(events.TypeOrderPlaced, "ORD-R1", long)
	w.place("ORD-R2", 9000)
	w.out.wait("ORD-R1", events.TypeOrderRejected, 1)
	w.out.wait("ORD-R2", events.TypeOrderRejected, 1)
	if r := w.out.of("ORD-R1", events.TypeOrderRejected)[0]["reason"]; r != events.ReasonPeriodNotOffered {
		t.Fatalf("ORD-R1: %v", r)
	}
	if r := w.out.of("ORD-R2", events.TypeOrderRejected)[0]["reason"]; r != events.ReasonPriceOutOfLimits {
		t.Fatalf("ORD-R2: %v", r)
	}
	if w.fake.Calls(inbank.OpCreateSession) != 0 {
		t.Fatal("a session was created for an ineligible order")
	}

	w.place("ORD-I", 500)
	w.fake.Sign(w.sessionOf("ORD-I"))
	w.out.wait("ORD-I", events.TypeSessionStatusChange, 1)
	w.ship("ORD-I", []events.AssetIdentifier{{Identifier: "356938035643808", IdentifierType: "IMEI"}})
	w.out.wait("ORD-I", events.TypeOrderRejected, 1)
	if r := w.out.of("ORD-I", events.TypeOrderRejected)[0]; r["reason"] != events.ReasonInvalidIdentifier || r["inputType"] != "device.shipped" {
		t.Fatalf("ORD-I: %v", r)
	}
	if w.fake.Calls(inbank.OpAssignAssetIdentifiers) != 0 {
		t.Fatal("PATCH sent for an invalid IMEI")
	}

	// An order.placed that breaks its schema: rejected and dead-lettered.
	raw := `{"specversion":"1.0","id":"bad-1","source":"urn:shop","type":"smartrent.order.placed.v1","subject":"ORD-V","datacontenttype":"application/json","data":{"orderId":"ORD-V","period":24}}`
	msg := &nats.Msg{Subject: events.SubjectOrderPlaced, Data: []byte(raw), Header: nats.Header{"Nats-Msg-Id": {"bad-1"}}}
	if _, err := w.pub.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	w.out.wait("ORD-V", events.TypeOrderRejected, 1)
	if r := w.out.of("ORD-V", events.TypeOrderRejected)[0]["reason"]; r != events.ReasonInvalidOrder {
		t.Fatalf("ORD-V: %v", r)
	}
	stop()
	if !strings.Contains(logs.String(), `"msg":"input rejected"`) {
		t.Fatalf(`no "input rejected" line logged:\n%s`, logs.String())
	}
	assertLogLinesStrict(t, logs.String())
}

// assertLogLinesStrict decodes every log line with a JSON decoder that,
// like strict log pipelines, refuses duplicate member names.
func assertLogLinesStrict(t *testing.T, logs string) {
	t.Helper()
	for line := range strings.Lines(logs) {
		var v jsontext.Value
		if err := jsonv2.Unmarshal([]byte(line), &v); err != nil {
			t.Errorf("log line refused by a strict JSON decoder: %v\n%s", err, line)
		}
	}
}

func TestE2ETwoBridges500Orders(t *testing.T) {
	if testing.Short() {
		t.Skip("500-order run skipped in -short mode")
	}
	w := newWorld(t, inbanktest.Config{Callbacks: inbanktest.CallbackPolicy{Duplicates: 1, Reorder: true, Delay: inbanktest.Duration(20 * time.Millisecond)}}, nil)
	w.bridge()
	w.bridge()
	ids := w.drive("TWO", 500)
	w.assertExactlyOnce(ids)
	for _, id := range ids {
		if got := w.fake.SessionsCreated(id); got != 1 {
			t.Errorf("%s: %d sessions at Inbank", id, got)
		}
	}
}

func TestBridgeStartupErrors(t *testing.T) {
	base := map[string]string{
		"INBANK_BASE_URL": "http://127.0.0.1:1", "INBANK_API_KEY": "k", "INBANK_SHOP_UUID": "s",
		"CALLBACK_BASE_URL": "http://cb", "CALLBACK_SECRET": testSecret, "NATS_URL": "nats://127.0.0.1:1", "NATS_CONNECT_TIMEOUT": "300ms",
	}
	tests := []struct {
		drop, set, want string
	}{
		{drop: "INBANK_BASE_URL", want: "INBANK_BASE_URL is required"},
		{drop: "INBANK_API_KEY", want: "INBANK_API_KEY is required"},
		{drop: "INBANK_SHOP_UUID", want: "INBANK_SHOP_UUID is required"},
		{drop: "CALLBACK_BASE_URL", want: "CALLBACK_BASE_URL is required"},
		{drop: "CALLBACK_SECRET", want: "CALLBACK_SECRET is required"},
		{set: "ACTIVATION_POLICY=sometimes", want: "activation policy"},
		{set: "SESSION_TTL=forever", want: "SESSION_TTL"},
		{want: "cannot reach NATS"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			delete(env, tt.drop)
			if k, v, ok := strings.Cut(tt.set, "="); ok {
				env[k] = v
			}
			err := RunBridge(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line with %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "k\"") {
				t.Fatal("the API key is in the error")
			}
		})
	}
}

func TestBridgeOpsEndpoints(t *testing.T) {
	w := newWorld(t, inbanktest.Config{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan BridgeStarted, 1)
	done := make(chan error, 1)
	go func() { done <- RunBridge(ctx, nil, func(k string) string { return w.env[k] }, io.Discard, started) }()
	s := <-started
	w.place("ORD-M", 500)
	w.sessionOf("ORD-M")
	for path, want := range map[string]string{
		"/healthz": "ok", "/readyz": "ready",
		"/metrics": `smartrent_inbank_requests_total{code="201",operation="create_session",shop="default"} 1`,
	} {
		resp, err := http.Get("http://" + s.Ops.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d, want %q", path, resp.StatusCode, want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestE2EUnknownOrderWaitsTenSeconds measures, against a real nats-server
// and the default ACK_WAIT, the contract's wait for a shipment of an order
// never placed: ORDER_UNKNOWN 10 to 12 s after the shipment was stored.
// (Consumer BackOff once stretched this to 34 s.)
func TestE2EUnknownOrderWaitsTenSeconds(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 10 s")
	}
	w := newWorld(t, inbanktest.Config{}, map[string]string{"ACK_WAIT": "30s"})
	w.bridge()
	e, err := w.pub.Codec().New("urn:shop:test", events.TypeDeviceShipped, "ORD-NEVER", events.DeviceShipped{OrderID: "ORD-NEVER", AssetIdentifiers: imei})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := w.pub.Publish(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	s, err := w.js.Stream(context.Background(), streams.StreamIn)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := s.GetMsg(context.Background(), ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if !w.out.Wait("ORD-NEVER", events.TypeOrderRejected, 1, 20*time.Second) {
		t.Fatal("no order.rejected within 20 s")
	}
	rejectedAt := w.out.Events("ORD-NEVER", events.TypeOrderRejected)[0].Time
	if r := w.out.of("ORD-NEVER", events.TypeOrderRejected)[0]["reason"]; r != events.ReasonOrderUnknown {
		t.Fatalf("reason %v", r)
	}
	waited := rejectedAt.Sub(stored.Time)
	t.Logf("ORDER_UNKNOWN %v after the shipment was stored", waited.Round(time.Millisecond))
	if waited < 10*time.Second || waited > 12*time.Second {
		t.Fatalf("ORDER_UNKNOWN after %v, the contract says 10 s (10–12 s)", waited)
	}
}

// callbacksStored returns when the order's callback events were stored.
func (w *world) callbacksStored(orderID string) []time.Time {
	w.t.Helper()
	return w.callbacksStoredIn(streams.StreamCallbacks, orderID)
}

// callbacksStoredIn returns when the order's callback events were stored
// in stream.
func (w *world) callbacksStoredIn(stream, orderID string) []time.Time {
	w.t.Helper()
	_, msgs, err := streams.StreamMessages(context.Background(), w.js, stream)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []time.Time
	for _, m := range msgs {
		var e struct{ Data events.CallbackReceived }
		if m.Subject == events.SubjectCallbackReceived && json.Unmarshal(m.Data, &e) == nil && e.Data.OrderID == orderID {
			out = append(out, m.Time)
		}
	}
	return out
}

// completedAt waits for the order's session.status_changed to completed,
// published once, and returns its time.
func (w *world) completedAt(orderID string, within time.Duration) time.Time {
	w.t.Helper()
	var at time.Time
	if !w.out.waitUntil(within, func() bool {
		for _, d := range w.out.OfLocked(orderID, events.TypeSessionStatusChange) {
			if d["status"] == "completed" {
				return true
			}
		}
		return false
	}) {
		w.t.Fatalf("%s: no session.status_changed(completed) within %v: %v", orderID, within, w.out.of(orderID, events.TypeSessionStatusChange))
	}
	n := 0
	for _, e := range w.out.Events(orderID, events.TypeSessionStatusChange) {
		if e.Data["status"] == "completed" {
			at = e.Time
			n++
		}
	}
	if n != 1 {
		w.t.Fatalf("%s: %d status_changed(completed)", orderID, n)
	}
	return at
}

// TestE2EMinimalCallbacks: Inbank's callbacks carry only {"uuid"}, so the
// "granted" and "completed" callbacks have one body. Each must reach the
// bridge: the completed status is published within RECONCILE_INTERVAL/3
// of its callback (so not by reconciliation), on path A and path B. The
// fake sends the completed callback within a second of the granted one's
// read, so the bridge serves it order.RefreshEvery (1 s) after that
// read: the interval leaves room for it.
func TestE2EMinimalCallbacks(t *testing.T) {
	const interval = 6 * time.Second
	for _, path := range []string{"A", "B"} {
		t.Run("path "+path, func(t *testing.T) {
			env := map[string]string{"RECONCILE_INTERVAL": interval.String()}
			if path == "B" {
				env["ACTIVATION_POLICY"] = "portal"
			}
			w := newWorld(t, inbanktest.Config{Callbacks: inbanktest.CallbackPolicy{Minimal: true}}, env)
			w.bridge()
			id := "ORD-MIN-" + path
			w.place(id, 500)
			s := w.sessionOf(id)
			if _, err := w.fake.Sign(s); err != nil {
				t.Fatal(err)
			}
			w.out.wait(id, events.TypeSessionStatusChange, 1)
			if path == "A" {
				w.ship(id, imei)
				w.deliver(id)
			} else if err := w.fake.PortalApprove(s); err != nil {
				t.Fatal(err)
			}
			w.out.wait(id, events.TypeContractActivated, 1)
			completed := w.completedAt(id, 2*interval)
			w.fake.WaitCallbacks()
			cbs := w.callbacksStored(id)
			if len(cbs) != 2 {
				t.Fatalf("%d callback events stored, want 2 (granted, completed with one body)", len(cbs))
			}
			lag := completed.Sub(cbs[1])
			t.Logf("path %s: status_changed(completed) %v after its callback", path, lag.Round(time.Millisecond))
			if lag > interval/3 || lag < -interval/3 {
				t.Fatalf("status_changed(completed) %v after its callback, want within RECONCILE_INTERVAL/3 = %v", lag, interval/3)
			}
			if via := w.out.of(id, events.TypeContractActivated)[0]["activatedVia"]; (path == "A") != (via == "api") {
				t.Fatalf("activatedVia %v on path %s", via, path)
			}
		})
	}
}

// TestE2ESessionCompletedWithoutCallbacks: with every callback lost, the
// session's final status is still published, within 2 × RECONCILE_INTERVAL,
// also after an API activation has made the order final.
func TestE2ESessionCompletedWithoutCallbacks(t *testing.T) {
	const interval = time.Second
	for _, path := range []string{"A", "B"} {
		t.Run("path "+path, func(t *testing.T) {
			env := map[string]string{"RECONCILE_INTERVAL": interval.String()}
			if path == "B" {
				env["ACTIVATION_POLICY"] = "portal"
			}
			w := newWorld(t, inbanktest.Config{Callbacks: inbanktest.CallbackPolicy{DropRate: 1}}, env)
			w.bridge()
			id := "ORD-NOCB-" + path
			w.place(id, 500)
			s := w.sessionOf(id)
			if _, err := w.fake.Sign(s); err != nil {
				t.Fatal(err)
			}
			w.out.wait(id, events.TypeSessionStatusChange, 1)
			var moved time.Time // when Inbank moved the session to completed
			if path == "A" {
				w.ship(id, imei)
				w.deliver(id)
				w.out.wait(id, events.TypeContractActivated, 1)
				moved = w.out.Events(id, events.TypeContractActivated)[0].Time
			} else {
				moved = time.Now()
				if err := w.fake.PortalApprove(s); err != nil {
					t.Fatal(err)
				}
			}
			completed := w.completedAt(id, 4*interval)
			t.Logf("path %s: status_changed(completed) %v after the session completed", path, completed.Sub(moved).Round(time.Millisecond))
			if lag := completed.Sub(moved); lag > 2*interval {
				t.Fatalf("completed published %v after the session completed, want within 2 × RECONCILE_INTERVAL", lag)
			}
			if st := w.fake.CallbackStats(); st.Sent != 0 {
				t.Fatalf("callbacks sent: %+v", st)
			}
		})
	}
}

// TestE2EWritesPerNewOrder counts, on the server, the JetStream writes
// new orders cost: each order's state is written twice (created with the
// session's claim; the session recorded with session.created in its
// outbox) and its open-index entry once, naming session.created as
// published, before order.placed is acknowledged. No write empties the
// outbox; the order's next input learns from the entry that it is out.
func TestE2EWritesPerNewOrder(t *testing.T) {
	w := newWorld(t, inbanktest.Config{}, nil)
	w.bridge()
	const n = 20
	for i := range n {
		w.place(fmt.Sprintf("ORD-W%02d", i), 500)
	}
	sessions := map[string]string{}
	for i := range n {
		id := fmt.Sprintf("ORD-W%02d", i)
		sessions[id] = w.sessionOf(id)
	}
	ctx := context.Background()
	cons, err := w.js.Consumer(ctx, streams.StreamIn, streams.ConsumerOrders)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for { // every order.placed acknowledged: its index entry is written
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.AckFloor.Stream >= uint64(n) && info.NumAckPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order.placed not all acknowledged: ack floor %d, pending %d", info.AckFloor.Stream, info.NumAckPending)
		}
		<-time.After(20 * time.Millisecond)
	}
	orders, err := w.js.Stream(ctx, "KV_"+streams.BucketOrders)
	if err != nil {
		t.Fatal(err)
	}
	if s := orders.CachedInfo().State; s.LastSeq != 2*n || s.Msgs != n {
		t.Errorf("orders bucket: %d writes, %d values for %d orders; want %d writes", s.LastSeq, s.Msgs, n, 2*n)
	}
	open, err := w.js.KeyValue(ctx, streams.BucketOpen)
	if err != nil {
		t.Fatal(err)
	}
	state, err := w.js.KeyValue(ctx, streams.BucketOrders)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("ORD-W%02d", i)
		key := order.StoreKey("", id)
		e, err := open.Get(ctx, key)
		if err != nil {
			t.Fatalf("%s: index entry: %v", id, err)
		}
		if e.Revision() == 0 {
			t.Fatalf("%s: no index entry", id)
		}
		eventID := order.EventID(key, events.TypeSessionCreated, sessions[id])
		if !strings.Contains(string(e.Value()), eventID) {
			t.Errorf("%s: index entry %s does not name session.created %s", id, e.Value(), eventID)
		}
		se, err := state.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		var o order.Order
		if err := json.Unmarshal(se.Value(), &o); err != nil {
			t.Fatal(err)
		}
		if o.State != order.StatePending || len(o.Outbox) != 1 || o.Outbox[0].ID != eventID {
			t.Errorf("%s: stored %s with outbox %v", id, o.State, o.Outbox)
		}
	}
	openInfo, err := w.js.Stream(ctx, "KV_"+streams.BucketOpen)
	if err != nil {
		t.Fatal(err)
	}
	// One entry per order, and at most the backfill marker besides.
	if last := openInfo.CachedInfo().State.LastSeq; last < n || last > n+1 {
		t.Errorf("open index: %d writes for %d orders", last, n)
	}
}
