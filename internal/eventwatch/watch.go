// Package eventwatch follows contract events as they are stored, for the
// demo's timeline and for tests that wait for an order to reach a state.
// It reads the streams (ordered consumers), not the subjects: a publish
// that JetStream de-duplicated is seen by plain subscribers, but is not an
// event.
package eventwatch

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/events"
)

// Seen is one stored event.
type Seen struct {
	Stream  string
	Subject string
	Type    string
	OrderID string
	Time    time.Time
	Data    map[string]any
}

// Watcher collects the events of some streams.
type Watcher struct {
	mu      sync.Mutex
	cond    *sync.Cond
	all     []Seen
	onEvent func(Seen)
	stops   []func()
}

// Watch follows the given streams from their start. onEvent, when not nil,
// is called for each event in order (under the watcher's lock: keep it
// short). Undecodable messages are reported to onError.
func Watch(ctx context.Context, js jetstream.JetStream, codec *events.Codec, streams []string, onEvent func(Seen), onError func(error)) (*Watcher, error) {
	w := &Watcher{onEvent: onEvent}
	w.cond = sync.NewCond(&w.mu)
	for _, stream := range streams {
		cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
		if err != nil {
			w.Stop()
			return nil, fmt.Errorf("watch %s: %w", stream, err)
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			env, err := codec.Decode(m.Headers(), m.Data())
			if err != nil {
				if onError != nil {
					onError(fmt.Errorf("%s: %w", m.Subject(), err))
				}
				return
			}
			s := Seen{Stream: stream, Subject: m.Subject(), Type: env.Event.Type(), OrderID: env.OrderID(), Time: env.Event.Time()}
			json.Unmarshal(env.Event.Data(), &s.Data)
			w.mu.Lock()
			w.all = append(w.all, s)
			if w.onEvent != nil {
				w.onEvent(s)
			}
			w.mu.Unlock()
			w.cond.Broadcast()
		})
		if err != nil {
			w.Stop()
			return nil, fmt.Errorf("watch %s: %w", stream, err)
		}
		w.stops = append(w.stops, cc.Stop)
	}
	return w, nil
}

// Stop ends the watch.
func (w *Watcher) Stop() {
	for _, s := range w.stops {
		s()
	}
}

func (w *Watcher) ofLocked(orderID, typ string) []map[string]any {
	var out []map[string]any
	for _, s := range w.all {
		if s.OrderID == orderID && s.Type == typ {
			out = append(out, s.Data)
		}
	}
	return out
}

// Of returns the data of the order's events of one type, in order.
func (w *Watcher) Of(orderID, typ string) []map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ofLocked(orderID, typ)
}

// Wait blocks until the order has at least n events of typ, and reports
// whether that happened within timeout.
func (w *Watcher) Wait(orderID, typ string, n int, timeout time.Duration) bool {
	return w.WaitUntil(timeout, func() bool { return len(w.ofLocked(orderID, typ)) >= n })
}

// WaitUntil waits until cond holds, checking it under the watcher's lock at
// every new event and every 50 ms (for conditions on other state). A
// timeout of 0 waits forever.
func (w *Watcher) WaitUntil(timeout time.Duration, cond func() bool) bool {
	tick := time.NewTicker(50 * time.Millisecond)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				w.cond.Broadcast()
			case <-stop:
				return
			}
		}
	}()
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for !cond() {
		if !deadline.IsZero() && time.Now().After(deadline) {
			return false
		}
		w.cond.Wait()
	}
	return true
}

// Locked runs f under the watcher's lock, so f may call the *Locked views.
func (w *Watcher) Locked(f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f()
}

// OfLocked is Of for use inside WaitUntil's condition or Locked.
func (w *Watcher) OfLocked(orderID, typ string) []map[string]any { return w.ofLocked(orderID, typ) }

// Events returns the order's stored events of one type, with their
// attributes, in order.
func (w *Watcher) Events(orderID, typ string) []Seen {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Seen
	for _, s := range w.all {
		if s.OrderID == orderID && s.Type == typ {
			out = append(out, s)
		}
	}
	return out
}
