package events_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/natstest"
)

// TestMiddlewareWrapsTheHandler runs a consumer with a test middleware
// against a real nats-server: the middleware sees every message before the
// handler, its error is disposed of as the handler's would be (a permanent
// one is given up and dead-lettered without reaching the handler), and it
// runs inside the disposition (no outcome is decided when it returns).
func TestMiddlewareWrapsTheHandler(t *testing.T) {
	srv := natstest.Run(t, natstest.Options{})
	nc, js := natstest.Connect(t, srv.ClientURL())
	ctx := context.Background()
	topo := events.DefaultTopology()
	if _, err := events.ProvisionBridge(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	pub := events.NewPublisher(js, events.NewCodec(schemaSet))
	rec := newDeliveryRecorder(func(string, int) error { return nil })

	var mu sync.Mutex
	outcomes := map[string]string{}
	blocked := errors.New("blocked by the test middleware")
	hook := func(next events.HandlerFunc) events.HandlerFunc {
		return func(ctx context.Context, m *events.Msg) error {
			if m.Env.OrderID() == "BLOCKED" {
				return events.Permanent(blocked)
			}
			return next(ctx, m)
		}
	}
	// The configured middleware runs inside the disposition: when it
	// returns, nothing has been decided for the message yet.
	seen := func(next events.HandlerFunc) events.HandlerFunc {
		return func(ctx context.Context, m *events.Msg) error {
			err := next(ctx, m)
			mu.Lock()
			outcomes[m.Env.OrderID()] = m.Outcome
			mu.Unlock()
			return err
		}
	}
	c, err := events.Consume(ctx, nc, js, events.NewCodec(schemaSet), rec, events.ConsumerConfig{
		Stream: events.StreamIn, Consumer: events.ConsumerDevices, MaxDeliver: topo.MaxDeliver, AckWait: topo.AckWait,
		Middleware: []events.Middleware{seen, hook},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(ctx)
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
	dlq, err := js.Stream(ctx, events.StreamDLQ)
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
	if got := msg.Headers().Get(events.HeaderDLQReason); got != blocked.Error() {
		t.Errorf("dead-letter reason %q, want %q", got, blocked.Error())
	}
	// The message that passed is acknowledged and the blocked one
	// terminated: nothing stays pending.
	cons2, err := js.Consumer(ctx, events.StreamIn, events.ConsumerDevices)
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
