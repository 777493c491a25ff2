package streams_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/schemas"
)

var schemaSet = schemas.MustLoad()

// deliveryRecorder is a handler that records when each order's event was
// delivered and answers as its behaviour for that order says.
type deliveryRecorder struct {
	mu      sync.Mutex
	times   map[string][]time.Time
	gaveUp  map[string]time.Time
	answer  func(orderID string, delivery int) error
	changed chan struct{}
}

func newDeliveryRecorder(answer func(string, int) error) *deliveryRecorder {
	return &deliveryRecorder{times: map[string][]time.Time{}, gaveUp: map[string]time.Time{}, answer: answer, changed: make(chan struct{}, 1000)}
}

func (r *deliveryRecorder) Handle(_ context.Context, env events.Envelope, _ streams.Delivery) error {
	r.mu.Lock()
	id := env.OrderID()
	r.times[id] = append(r.times[id], time.Now())
	n := len(r.times[id])
	r.mu.Unlock()
	r.changed <- struct{}{}
	return r.answer(id, n)
}

func (r *deliveryRecorder) Invalid(context.Context, streams.Delivery, *events.DecodeError) error {
	return nil
}

func (r *deliveryRecorder) GiveUp(_ context.Context, env events.Envelope, _ streams.Delivery, _ error) error {
	r.mu.Lock()
	r.gaveUp[env.OrderID()] = time.Now()
	r.mu.Unlock()
	r.changed <- struct{}{}
	return nil
}

// waitFor blocks until cond holds (checked after every delivery) or the
// deadline passes.
func (r *deliveryRecorder) waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(d)
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func gaps(ts []time.Time) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(ts); i++ {
		out = append(out, ts[i].Sub(ts[i-1]).Round(time.Millisecond))
	}
	return out
}

// within reports whether got is documented ±20 %.
func within(got, documented time.Duration) bool {
	return got >= documented*8/10 && got <= documented*12/10
}

// TestRedeliveryScheduleAsDocumented runs a consumer against a real
// nats-server and records when each delivery happens: an always-failing
// handler, a Retry-After answer, and a handler that died holding the
// message. The gaps must be the README's schedule (±20 %):
//   - a transient failure after delivery n waits RetryBase·2^(n−1), capped at
//     RetryMax, each ±10 % jitter;
//   - Retry-After waits what Inbank asked (up to 10 % more);
//   - a message whose handler died is delivered again after ACK_WAIT;
//   - after MAX_DELIVER deliveries the message is given up.
func TestRedeliveryScheduleAsDocumented(t *testing.T) {
	nc, js, topo, pub := bridgeStreams(t, func(topo *streams.Topology) { topo.AckWait, topo.MaxDeliver = 2*time.Second, 6 })
	ctx := context.Background()
	transient := errors.New("inbank: 503")
	rec := newDeliveryRecorder(func(orderID string, n int) error {
		switch orderID {
		case "ALWAYS-FAILS":
			return transient
		case "RETRY-AFTER":
			if n == 1 {
				return streams.RetryAfter(transient, 1500*time.Millisecond)
			}
		}
		return nil
	})

	// A bridge that died holding a message: fetched, never answered.
	publishShipped(t, pub, "DIED")
	cons, err := js.Consumer(ctx, streams.StreamIn, streams.ConsumerDevices)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var died time.Time
	for range batch.Messages() {
		died = time.Now()
	}
	if died.IsZero() {
		t.Fatal("the first delivery of DIED never came")
	}

	consumeDevices(t, nc, js, topo, rec, streams.ConsumerConfig{
		// Delays long enough that a loaded CI machine's scheduling noise
		// stays well inside the ±20 % the test allows.
		RetryBase: 500 * time.Millisecond, RetryMax: 2 * time.Second,
	})
	publishShipped(t, pub, "ALWAYS-FAILS")
	publishShipped(t, pub, "RETRY-AFTER")

	rec.waitFor(t, 60*time.Second, "every schedule", func() bool {
		return !rec.gaveUp["ALWAYS-FAILS"].IsZero() && len(rec.times["RETRY-AFTER"]) >= 2 && len(rec.times["DIED"]) >= 1
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()

	documented := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second}
	got := gaps(rec.times["ALWAYS-FAILS"])
	t.Logf("always failing: gaps between deliveries %v (documented %v)", got, documented)
	if len(got) != len(documented) {
		t.Fatalf("%d deliveries, want MAX_DELIVER = %d", len(got)+1, topo.MaxDeliver)
	}
	for i := range got {
		if !within(got[i], documented[i]) {
			t.Errorf("delay after delivery %d: %v, documented %v ±20%%", i+1, got[i], documented[i])
		}
	}
	ra := gaps(rec.times["RETRY-AFTER"])
	t.Logf("Retry-After 1.5s: gap %v", ra)
	if ra[0] < 1500*time.Millisecond || !within(ra[0], 1500*time.Millisecond) {
		t.Errorf("Retry-After 1.5s: redelivered after %v", ra[0])
	}
	redelivered := rec.times["DIED"][0].Sub(died).Round(time.Millisecond)
	t.Logf("handler died: redelivered after %v (ACK_WAIT %v)", redelivered, topo.AckWait)
	if !within(redelivered, topo.AckWait) {
		t.Errorf("a message whose handler died came again after %v, documented ACK_WAIT %v ±20%%", redelivered, topo.AckWait)
	}
}

func publishShipped(t *testing.T, pub *streams.Publisher, orderID string) {
	t.Helper()
	e, err := pub.Codec().New("urn:test", events.TypeDeviceShipped, orderID, events.DeviceShipped{
		OrderID: orderID, AssetIdentifiers: []events.AssetIdentifier{{Identifier: "356938035643809", IdentifierType: "IMEI"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(context.Background(), e); err != nil {
		t.Fatal(fmt.Errorf("publish %s: %w", orderID, err))
	}
}

// TestProvisionRemovesOldBackOff upgrades consumers created by an earlier
// version, whose BackOff stretched every NAK delay: start-up removes it.
func TestProvisionRemovesOldBackOff(t *testing.T) {
	srv := natstest.Run(t, natstest.Options{})
	_, js := natstest.Connect(t, srv.ClientURL())
	ctx := context.Background()
	topo := streams.DefaultTopology()
	if err := streams.ProvisionStreams(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range topo.Consumers() {
		cfg.BackOff = []time.Duration{topo.AckWait, 2 * topo.AckWait, 4 * topo.AckWait} // as the earlier version made them
		if _, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, cfg.ConsumerConfig); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := streams.ProvisionBridge(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range topo.Consumers() {
		c, err := js.Consumer(ctx, cfg.Stream, cfg.Durable)
		if err != nil {
			t.Fatal(err)
		}
		if info := c.CachedInfo(); len(info.Config.BackOff) != 0 || info.Config.AckWait != topo.AckWait {
			t.Errorf("%s after start-up: BackOff %v, AckWait %v", cfg.Durable, info.Config.BackOff, info.Config.AckWait)
		}
	}
}

// TestMiddlewareWrapsTheHandler runs a consumer with a test middleware
// against a real nats-server: the middleware sees every message before the
// handler, its error is disposed of as the handler's would be (a permanent
// one is given up and dead-lettered without reaching the handler), and it
// runs inside the disposition (no outcome is decided when it returns).
func TestMiddlewareWrapsTheHandler(t *testing.T) {
	nc, js, topo, pub := bridgeStreams(t, nil)
	ctx := context.Background()
	rec := newDeliveryRecorder(func(string, int) error { return nil })

	var mu sync.Mutex
	outcomes := map[string]string{}
	blocked := errors.New("blocked by the test middleware")
	hook := func(next streams.HandlerFunc) streams.HandlerFunc {
		return func(ctx context.Context, m *streams.Msg) error {
			if m.Env.OrderID() == "BLOCKED" {
				return streams.Permanent(blocked)
			}
			return next(ctx, m)
		}
	}
	// The configured middleware runs inside the disposition: when it
	// returns, nothing has been decided for the message yet.
	seen := func(next streams.HandlerFunc) streams.HandlerFunc {
		return func(ctx context.Context, m *streams.Msg) error {
			err := next(ctx, m)
			mu.Lock()
			outcomes[m.Env.OrderID()] = m.Outcome
			mu.Unlock()
			return err
		}
	}
	consumeDevices(t, nc, js, topo, rec, streams.ConsumerConfig{Middleware: []streams.Middleware{seen, hook}})
	publishShipped(t, pub, "PASSES")
	publishShipped(t, pub, "BLOCKED")

	rec.waitFor(t, 30*time.Second, "both messages", func() bool {
		return len(rec.times["PASSES"]) == 1 && !rec.gaveUp["BLOCKED"].IsZero()
	})
	rec.mu.Lock()
	if n := len(rec.times["BLOCKED"]); n != 0 {
		t.Errorf("the handler saw the blocked message %d times", n)
	}
	rec.mu.Unlock()
	mu.Lock()
	if outcomes["PASSES"] != "" || outcomes["BLOCKED"] != "" {
		t.Errorf("the configured middleware runs inside the disposition, yet saw outcomes %v", outcomes)
	}
	mu.Unlock()

	// The blocked message is in the dead-letter stream with the reason.
	dlq, err := js.Stream(ctx, streams.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := dlq.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	if got := msg.Headers().Get(streams.HeaderDLQReason); got != blocked.Error() {
		t.Errorf("dead-letter reason %q, want %q", got, blocked.Error())
	}
	// The message that passed is acknowledged and the blocked one
	// terminated: nothing stays pending.
	cons2, err := js.Consumer(ctx, streams.StreamIn, streams.ConsumerDevices)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ci, err := cons2.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ci.NumAckPending == 0 && ci.NumPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ack pending %d, pending %d: a message was not answered", ci.NumAckPending, ci.NumPending)
		}
		time.Sleep(20 * time.Millisecond) // polling the server's count: there is no event to await
	}
}

// consumeDevices runs h as the devices consumer with the topology's
// MAX_DELIVER and ACK_WAIT and cfg's other settings, until the test ends.
func consumeDevices(t *testing.T, nc *nats.Conn, js jetstream.JetStream, topo streams.Topology, h streams.Handler, cfg streams.ConsumerConfig) {
	t.Helper()
	cfg.Stream, cfg.Consumer, cfg.MaxDeliver, cfg.AckWait = streams.StreamIn, streams.ConsumerDevices, topo.MaxDeliver, topo.AckWait
	c, err := streams.Consume(context.Background(), nc, js, events.NewCodec(schemaSet), h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
}

// TestMetricLabelsComeFromAFixedSet: an undecodable event's type, any
// string a publisher chose, is counted as "other", never as a label value
// of its own.
func TestMetricLabelsComeFromAFixedSet(t *testing.T) {
	srv := natstest.Run(t, natstest.Options{})
	nc, js := natstest.Connect(t, srv.ClientURL())
	topo := streams.DefaultTopology()
	if _, err := streams.ProvisionBridge(context.Background(), js, topo); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	metrics, err := streams.NewConsumerMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	consumeDevices(t, nc, js, topo, newDeliveryRecorder(func(string, int) error { return nil }), streams.ConsumerConfig{Metrics: metrics})
	evil := "evil-" + strings.Repeat("x", 4096)
	raw := `{"specversion":"1.0","id":"e-1","source":"urn:x","type":"` + evil + `","subject":"O-1","data":{"orderId":"O-1"}}`
	if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: events.SubjectDeviceShipped, Data: []byte(raw), Header: nats.Header{streams.HeaderMsgID: {"e-1"}}}); err != nil {
		t.Fatal(err)
	}
	var types []string
	deadline := time.Now().Add(10 * time.Second)
	for len(types) == 0 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "smartrent_events_handled_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "type" {
						types = append(types, l.GetValue())
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the invalid event was not counted")
		}
		time.Sleep(20 * time.Millisecond) // polling the registry: there is no event to await
	}
	if len(types) != 1 || types[0] != streams.TypeOther {
		t.Fatalf("type labels %.80q, want only %q", types, streams.TypeOther)
	}
}

// TestSlowHandlerKeepsItsMessage: a handler working for several times
// ACK_WAIT (a slow Inbank, a long activation poll) keeps its message;
// the consumer tells the server it is in progress, so no second delivery
// starts the same work beside it.
func TestSlowHandlerKeepsItsMessage(t *testing.T) {
	srv := natstest.Run(t, natstest.Options{})
	nc, js := natstest.Connect(t, srv.ClientURL())
	ctx := context.Background()
	topo := streams.DefaultTopology()
	topo.AckWait = time.Second
	if _, err := streams.ProvisionBridge(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	hold := 4 * topo.AckWait
	finished := make(chan struct{})
	rec := newDeliveryRecorder(func(orderID string, n int) error {
		if n == 1 {
			<-time.After(hold) // the work itself takes this long
			close(finished)
		}
		return nil
	})
	consumeDevices(t, nc, js, topo, rec, streams.ConsumerConfig{})
	publishShipped(t, streams.NewPublisher(js, events.NewCodec(schemaSet)), "SLOW")
	select {
	case <-finished:
	case <-time.After(hold + 30*time.Second):
		t.Fatal("the slow handler never finished")
	}
	cons, err := js.Consumer(ctx, streams.StreamIn, streams.ConsumerDevices)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 {
			if info.NumRedelivered != 0 {
				t.Errorf("redelivered %d while its handler worked", info.NumRedelivered)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the message was not acknowledged: %d pending", info.NumAckPending)
		}
		<-time.After(20 * time.Millisecond)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if n := len(rec.times["SLOW"]); n != 1 {
		t.Errorf("%d deliveries of a message held %v with ACK_WAIT %v, want 1", n, hold, topo.AckWait)
	}
}

// TestConsumerHandlesAtMostConcurrency: however many messages wait, at
// most Concurrency are handled at once, and every one is handled.
func TestConsumerHandlesAtMostConcurrency(t *testing.T) {
	srv := natstest.Run(t, natstest.Options{})
	nc, js := natstest.Connect(t, srv.ClientURL())
	topo := streams.DefaultTopology()
	if _, err := streams.ProvisionBridge(context.Background(), js, topo); err != nil {
		t.Fatal(err)
	}
	const limit, total = 4, 14
	var mu sync.Mutex
	active, most := 0, 0
	held := make(chan chan struct{}, total) // handlers at work, each waiting to be let go
	finished := make(chan struct{}, total)
	rec := newDeliveryRecorder(func(string, int) error {
		mu.Lock()
		active++
		most = max(most, active)
		mu.Unlock()
		letGo := make(chan struct{})
		held <- letGo
		<-letGo
		mu.Lock()
		active--
		mu.Unlock()
		finished <- struct{}{}
		return nil
	})
	pub := streams.NewPublisher(js, events.NewCodec(schemaSet))
	for i := range total {
		publishShipped(t, pub, fmt.Sprintf("C-%02d", i))
	}
	consumeDevices(t, nc, js, topo, rec, streams.ConsumerConfig{Concurrency: limit})
	// Let handlers go one at a time, each only once the limit is reached
	// (or all that is left is at work): a consumer that started more than
	// the limit would be seen doing so while they are held.
	for done := 0; done < total; done++ {
		deadline := time.After(30 * time.Second)
		for len(held) < min(limit, total-done) {
			select {
			case <-time.After(5 * time.Millisecond):
			case <-deadline:
				t.Fatalf("%d handled, %d at work, want %d at work", done, len(held), min(limit, total-done))
			}
		}
		close(<-held)
		select {
		case <-finished:
		case <-deadline:
			t.Fatalf("a handler let go did not finish")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if most != limit {
		t.Errorf("at most %d handled at once, want exactly Concurrency = %d", most, limit)
	}
}

// TestConsumeWaitsForItsConsumer: looking the durable up is a set-up
// step. While JetStream cannot answer it (here: not there yet; on a
// cluster that has just formed: no answer in time) Consume waits and
// reports the wait instead of failing, so a bridge starting beside its
// peers stays up (soak scale lost one of three bridges in half its runs).
func TestConsumeWaitsForItsConsumer(t *testing.T) {
	srv := natstest.Run(t, natstest.Options{})
	nc, js := natstest.Connect(t, srv.ClientURL())
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "WAITS", Subjects: []string{"waits.>"}}); err != nil {
		t.Fatal(err)
	}
	reported := make(chan string, 100)
	rctx := streams.WithSetupReport(ctx, func(step string, _ error) {
		select {
		case reported <- step:
		default:
		}
	})
	type started struct {
		c   *streams.Consumer
		err error
	}
	done := make(chan started, 1)
	go func() {
		c, err := streams.Consume(rctx, nc, js, events.NewCodec(schemaSet), newDeliveryRecorder(nil), streams.ConsumerConfig{Stream: "WAITS", Consumer: "late"})
		done <- started{c, err}
	}()
	select {
	case step := <-reported:
		if step != "consumer late" {
			t.Fatalf("reported a wait for %q", step)
		}
	case s := <-done:
		t.Fatalf("Consume returned (%v) before its consumer existed", s.err)
	case <-time.After(10 * time.Second):
		t.Fatal("no wait reported")
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, "WAITS", jetstream.ConsumerConfig{Durable: "late", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-done:
		if s.err != nil {
			t.Fatalf("Consume = %v once the consumer exists", s.err)
		}
		s.c.Stop(ctx)
	case <-time.After(10 * time.Second):
		t.Fatal("Consume still waiting after the consumer was created")
	}
}

// bridgeStreams runs a nats-server with the bridge's streams and
// consumers as topo (changed by adjust, if given) defines them, and returns
// a connection, the topology and a publisher of events.
func bridgeStreams(t *testing.T, adjust func(*streams.Topology)) (*nats.Conn, jetstream.JetStream, streams.Topology, *streams.Publisher) {
	t.Helper()
	srv := natstest.Run(t, natstest.Options{})
	nc, js := natstest.Connect(t, srv.ClientURL())
	topo := streams.DefaultTopology()
	if adjust != nil {
		adjust(&topo)
	}
	if _, err := streams.ProvisionBridge(context.Background(), js, topo); err != nil {
		t.Fatal(err)
	}
	return nc, js, topo, streams.NewPublisher(js, events.NewCodec(schemaSet))
}
