package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/smartrent-bridge/bridge/internal/callbacktoken"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/handlers"
	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
	"github.com/smartrent-bridge/bridge/internal/order"
	"github.com/smartrent-bridge/bridge/internal/orderstore"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/internal/telemetry"
	"github.com/smartrent-bridge/bridge/schemas"
)

var schemaSet = schemas.MustLoad()

// memStore is a map-backed Store with revisions, like the KV bucket.
type memStore struct {
	mu   sync.Mutex
	data map[string][]byte
	revs map[string]uint64
	seq  uint64
	open map[string]bool // the open-order index (handlers.OpenOrders)
	// published holds the ids each index entry names as published.
	published map[string][]string
	writes    map[string]int // successful creates and saves per key
	// decoded, when not nil, keeps each order as written and hands out
	// deep copies, as orderstore.StateStore does, instead of decoding
	// the JSON on every load (benchmarks).
	decoded map[string]order.Order
	// addFail, when set, fails every write to the index.
	addFail error
	// failSave, when > 0, counts successful saves down; the save that
	// finds it at 1 fails (as a NATS outage would), once.
	failSave int
}

func newMemStore() *memStore {
	return &memStore{data: map[string][]byte{}, revs: map[string]uint64{}, open: map[string]bool{}, published: map[string][]string{}, writes: map[string]int{}}
}

func (s *memStore) Add(_ context.Context, key string, published []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addFail != nil {
		return s.addFail
	}
	s.open[key] = true
	s.published[key] = slices.Clone(published)
	return nil
}

func (s *memStore) Published(_ context.Context, key string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.published[key]), nil
}

func (s *memStore) Remove(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, key)
	delete(s.published, key)
	return nil
}

func (s *memStore) Keys(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.open))
	for k := range s.open {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

func (s *memStore) Lease(context.Context, string, time.Duration) (bool, error) { return true, nil }

func (s *memStore) Load(_ context.Context, id string) (order.Order, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var o order.Order
	b, ok := s.data[id]
	if !ok {
		return o, 0, fmt.Errorf("order %s: %w", id, orderstore.ErrNotFound)
	}
	if d, ok := s.decoded[id]; ok {
		return d.DeepCopy(), s.revs[id], nil
	}
	return o, s.revs[id], json.Unmarshal(b, &o)
}

func (s *memStore) LoadFresh(ctx context.Context, id string) (order.Order, uint64, error) {
	return s.Load(ctx, id)
}

func (s *memStore) Create(_ context.Context, id string, o order.Order) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.data[id]; ok {
		return 0, orderstore.ErrExists
	}
	return s.put(id, o), nil
}

func (s *memStore) Save(_ context.Context, id string, o order.Order, rev uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failSave > 0 {
		s.failSave--
		if s.failSave == 0 {
			return 0, errors.New("nats: no responders available for request")
		}
	}
	if s.revs[id] != rev {
		return 0, orderstore.ErrConflict
	}
	return s.put(id, o), nil
}

func (s *memStore) put(id string, o order.Order) uint64 {
	b, err := json.Marshal(o)
	if err != nil {
		panic(err)
	}
	s.seq++
	s.data[id], s.revs[id] = b, s.seq
	s.writes[id]++
	if s.decoded != nil {
		s.decoded[id] = o.DeepCopy()
	}
	return s.seq
}

func (s *memStore) All(ctx context.Context) iter.Seq2[order.Order, error] {
	return func(yield func(order.Order, error) bool) {
		s.mu.Lock()
		ids := make([]string, 0, len(s.data))
		for id := range s.data {
			ids = append(ids, id)
		}
		s.mu.Unlock()
		slices.Sort(ids)
		for _, id := range ids {
			o, _, err := s.Load(ctx, id)
			if !yield(o, err) {
				return
			}
		}
	}
}

func (s *memStore) get(t *testing.T, id string) order.Order {
	t.Helper()
	o, _, err := s.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// capture is a Publisher that keeps events, storing an id once as
// JetStream does within its duplicate window.
type capture struct {
	mu     sync.Mutex
	codec  *events.Codec
	seen   map[string]bool
	events []event.Event
	fail   error
	// attempts counts every publication of an id, stored or not: beyond
	// the server's duplicate window each would be stored.
	attempts map[string]int
}

func (c *capture) Publish(_ context.Context, e event.Event) (streams.PubAck, error) {
	if _, err := c.codec.Encode(e); err != nil {
		return streams.PubAck{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return streams.PubAck{}, c.fail
	}
	c.attempts[e.ID()]++
	if c.seen[e.ID()] {
		return streams.PubAck{Duplicate: true}, nil
	}
	c.seen[e.ID()] = true
	c.events = append(c.events, e)
	return streams.PubAck{}, nil
}

// of returns the data of the events of one type for one order.
func (c *capture) of(orderID, typ string) []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]any
	for _, e := range c.events {
		if e.Subject() == orderID && e.Type() == typ {
			var m map[string]any
			json.Unmarshal(e.Data(), &m)
			out = append(out, m)
		}
	}
	return out
}

type harness struct {
	t      *testing.T
	fake   *inbanktest.Fake
	client *inbank.Client
	store  *memStore
	pub    *capture
	codec  *events.Codec
	wf     *handlers.Workflow
	cfg    handlers.Config
	now    time.Time
	nowMu  sync.Mutex
	// publishedAt, when set, is the stored time of delivered inputs.
	publishedAt time.Time
}

func newHarness(t *testing.T, mutate func(*handlers.Config)) *harness {
	t.Helper()
	fake, srv := inbanktest.NewServer(t, inbanktest.Config{})
	client, err := inbank.New(inbank.Config{BaseURL: srv.URL, APIKey: inbanktest.DefaultAPIKey, ShopUUID: inbanktest.DefaultShopUUID, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	codec := events.NewCodec(schemaSet)
	h := &harness{t: t, fake: fake, client: client, store: newMemStore(), codec: codec,
		pub: &capture{codec: codec, seen: map[string]bool{}, attempts: map[string]int{}}, now: time.Now().UTC()}
	tokens, _ := callbacktoken.New([]string{"handlers-test-secret-0123"})
	cfg := handlers.Config{
		Inbank: client, Store: h.store, Open: h.store, Publisher: h.pub, Codec: codec, Tokens: tokens,
		CallbackBaseURL: "http://ingress.test", DefaultProductCode: inbanktest.DefaultProductCode,
		ClaimTTL: time.Second, ActivationSettle: 5 * time.Second, ActivationPoll: time.Second,
		Now: h.clock,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	h.cfg = cfg
	h.wf, err = handlers.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// restart replaces the workflow by a new one on the same store, Inbank
// and streams: another bridge, or this one after a restart, which
// remembers nothing of what it did.
func (h *harness) restart() {
	h.t.Helper()
	wf, err := handlers.New(h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.wf = wf
}

func (h *harness) clock() time.Time {
	h.nowMu.Lock()
	defer h.nowMu.Unlock()
	return h.now
}

func (h *harness) advanceClock(d time.Duration) {
	h.nowMu.Lock()
	defer h.nowMu.Unlock()
	h.now = h.now.Add(d)
}

func placed(orderID string, net float64) *events.OrderPlaced {
	return &events.OrderPlaced{
		OrderID: orderID, Period: 24, Locale: "et-EE", Description: "iPhone rental",
		ReturnURL: "https://shop.example/r", CancelURL: "https://shop.example/c",
		HeroDevice: events.HeroDevice{IdentifierType: inbankapi.ModelIdentifierEAN, Identifier: inbanktest.EANPhone, ModelID: inbanktest.ModelPhone, ModelName: "iPhone 16", NetPrice: net},
	}
}

// deliver hands an input event to the workflow as the consumer would.
func (h *harness) deliver(data any) error {
	h.t.Helper()
	return h.deliverWithTrace(data, "")
}

// deliverWithTrace hands an input to the workflow inside the trace tp
// (none when ""), as the consumer does when tracing is on.
func (h *harness) deliverWithTrace(data any, tp string) error {
	h.t.Helper()
	var typ, orderID string
	switch d := data.(type) {
	case *events.OrderPlaced:
		typ, orderID = events.TypeOrderPlaced, d.OrderID
	case *events.DeviceShipped:
		typ, orderID = events.TypeDeviceShipped, d.OrderID
	case *events.DeviceDelivered:
		typ, orderID = events.TypeDeviceDelivered, d.OrderID
	case *events.CallbackReceived:
		typ, orderID = events.TypeCallbackReceived, d.OrderID
	}
	e, err := h.codec.New("urn:test", typ, orderID, data)
	if err != nil {
		h.t.Fatal(err)
	}
	subject, _ := events.SubjectOf(typ)
	published := h.publishedAt
	if published.IsZero() {
		published = h.clock()
	}
	return h.wf.Handle(telemetry.ContextWithTraceParent(context.Background(), tp), events.Envelope{Event: e, Data: data}, streams.Delivery{Subject: subject, Published: published, NumDelivered: 1})
}

func (h *harness) mustDeliver(data any) {
	h.t.Helper()
	if err := h.deliver(data); err != nil {
		h.t.Fatalf("deliver %T: %v", data, err)
	}
}

// callback delivers a callback for the order, RefreshEvery after the last
// one (as Inbank's transitions come: a customer takes longer than that).
func (h *harness) callback(orderID string) {
	h.t.Helper()
	h.advanceClock(order.RefreshEvery)
	h.mustDeliver(&events.CallbackReceived{OrderID: orderID, ReceivedAt: h.clock(), Body: json.RawMessage(`{}`)})
}

// crashOnce abandons the first call of step right after Inbank answered,
// before its result is recorded, as a process killed there would.
func crashOnce(step string) func(*handlers.Config) {
	crashed := false
	return func(c *handlers.Config) {
		c.Hooks.AfterInbankCall = func(s, _ string) error {
			if s != step || crashed {
				return nil
			}
			crashed = true
			return errors.New("killed")
		}
	}
}

// oneSession checks that Inbank made one session for the order and that
// one session.created told the shop.
func (h *harness) oneSession(orderID string) {
	h.t.Helper()
	if got := h.fake.SessionsCreated(orderID); got != 1 {
		h.t.Fatalf("%s: sessions at Inbank = %d, want 1", orderID, got)
	}
	h.count(orderID, events.TypeSessionCreated, 1)
}

// signed places an order and has its customer sign: the callback brings
// the order to granted.
func (h *harness) signed(orderID string, net float64) {
	h.t.Helper()
	h.mustDeliver(placed(orderID, net))
	if _, err := h.fake.Sign(h.session(orderID)); err != nil {
		h.t.Fatalf("sign %s: %v", orderID, err)
	}
	h.callback(orderID)
}

// activatedVia checks that the order has one contract.activated, via
// "api" or "portal".
func (h *harness) activatedVia(orderID, via string) {
	h.t.Helper()
	if act := h.pub.of(orderID, events.TypeContractActivated); len(act) != 1 || act[0]["activatedVia"] != via {
		h.t.Fatalf("%s: contract.activated = %v, want one via %s", orderID, act, via)
	}
}

func (h *harness) session(orderID string) string {
	h.t.Helper()
	return h.store.get(h.t, orderID).SessionUUID
}

func (h *harness) contract(orderID string) string {
	h.t.Helper()
	return h.store.get(h.t, orderID).ContractUUID
}

func imei() []events.AssetIdentifier {
	return []events.AssetIdentifier{{Identifier: "356938035643809", IdentifierType: inbankapi.AssetIdentifierIMEI}}
}

func (h *harness) count(orderID, typ string, want int) {
	h.t.Helper()
	if got := len(h.pub.of(orderID, typ)); got != want {
		h.t.Fatalf("%s: %d × %s, want %d", orderID, got, typ, want)
	}
}

// withStoreLocked runs fn with the store locked.
func (h *harness) withStoreLocked(fn func()) {
	h.store.mu.Lock()
	defer h.store.mu.Unlock()
	fn()
}
