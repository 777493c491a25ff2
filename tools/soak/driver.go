package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
)

// orderDriver is the load of the benchmarks: it places an order and waits
// for its session.created, as an order service would.
type orderDriver struct {
	js     jetstream.JetStream
	prefix string
	seq    atomic.Int64
	sub    *nats.Subscription

	mu      sync.Mutex
	waiting map[string]chan struct{}
}

func newOrderDriver(nc *nats.Conn, js jetstream.JetStream, prefix string) (*orderDriver, error) {
	d := &orderDriver{js: js, prefix: prefix, waiting: map[string]chan struct{}{}}
	sub, err := nc.Subscribe(events.SubjectSessionCreated, func(m *nats.Msg) {
		var e struct {
			Subject string `json:"subject"`
		}
		json.Unmarshal(m.Data, &e)
		d.mu.Lock()
		ch := d.waiting[e.Subject]
		delete(d.waiting, e.Subject)
		d.mu.Unlock()
		if ch != nil {
			close(ch)
		}
	})
	if err != nil {
		return nil, err
	}
	d.sub = sub
	return d, nil
}

func (d *orderDriver) close() { d.sub.Unsubscribe() }

// place publishes one order.placed and returns when its session exists.
func (d *orderDriver) place(ctx context.Context) (time.Duration, error) {
	id := fmt.Sprintf("%s-%08d", d.prefix, d.seq.Add(1))
	ch := make(chan struct{})
	d.mu.Lock()
	d.waiting[id] = ch
	d.mu.Unlock()
	body, _ := json.Marshal(map[string]any{
		"specversion": "1.0", "id": uuid.NewString(), "source": "urn:bench", "type": events.TypeOrderPlaced, "subject": id,
		"time": time.Now().UTC().Format(time.RFC3339Nano), "datacontenttype": "application/json",
		"data": map[string]any{"orderId": id, "period": 24, "locale": "et-EE", "description": "bench", "returnUrl": "https://s.example/r", "cancelUrl": "https://s.example/c",
			"heroDevice": map[string]any{"identifierType": "EAN", "identifier": inbanktest.EANPhone, "modelId": inbanktest.ModelPhone, "modelName": "iPhone", "netPrice": 500}},
	})
	start := time.Now()
	msg := &nats.Msg{Subject: events.SubjectOrderPlaced, Data: body, Header: nats.Header{"Content-Type": {"application/cloudevents+json"}}}
	if _, err := d.js.PublishMsg(ctx, msg); err != nil {
		return 0, err
	}
	select {
	case <-ch:
		return time.Since(start), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// closedLoop keeps inFlight orders in flight until the measurement ends:
// after warmup it calls atStart, measures for measure, calls atEnd, and
// returns the latencies of the orders completed in that window and its
// length.
func (d *orderDriver) closedLoop(ctx context.Context, inFlight int, warmup, measure time.Duration, atStart, atEnd func()) ([]time.Duration, time.Duration) {
	var mu sync.Mutex
	var lat []time.Duration
	var measuring atomic.Bool
	wctx, stop := context.WithTimeout(ctx, warmup+measure+5*time.Second)
	defer stop()
	var wg sync.WaitGroup
	for range inFlight {
		wg.Go(func() {
			for wctx.Err() == nil {
				took, err := d.place(wctx)
				if err == nil && measuring.Load() {
					mu.Lock()
					lat = append(lat, took)
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(warmup) // at full load: the measurement starts warm
	atStart()
	measuring.Store(true)
	t0 := time.Now()
	time.Sleep(measure)
	measuring.Store(false)
	elapsed := time.Since(t0)
	atEnd()
	stop()
	wg.Wait()
	return lat, elapsed
}

// completion is one order of a counted run: when its session.created
// arrived and how long after its order.placed.
type completion struct {
	at   time.Time
	took time.Duration
}

// countedLoop places total orders, inFlight at a time, and returns their
// completions in the order they completed: the method, where the
// steady state starts after the first 2·C.
func (d *orderDriver) countedLoop(ctx context.Context, inFlight, total int) ([]completion, error) {
	var mu sync.Mutex
	done := make([]completion, 0, total)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range inFlight {
		wg.Go(func() {
			for next.Add(1) <= int64(total) && ctx.Err() == nil {
				took, err := d.place(ctx)
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				mu.Lock()
				done = append(done, completion{at: time.Now(), took: took})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		return done, *err
	}
	return done, ctx.Err()
}
