package app

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/smartrent-bridge/bridge/internal/callbacktoken"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/ingress"
	"github.com/smartrent-bridge/bridge/internal/order"
	"github.com/smartrent-bridge/bridge/internal/streams"
)

// sessionReads counts the session reads that reached the fake Inbank, by
// session uuid.
type sessionReads struct {
	mu sync.Mutex
	n  map[string]int
}

func (s *sessionReads) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			if _, uuid, ok := strings.Cut(r.URL.Path, "/pos-sessions/"); ok {
				s.mu.Lock()
				s.n[uuid]++
				s.mu.Unlock()
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (s *sessionReads) of(uuid string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[uuid]
}

// TestCallbackFloodOnOneURLCannotStopOrders: 20,000 POSTs on one order's
// callback URL (a leaked URL, unsigned bodies, 16 clients on loopback)
// while 20 other orders are placed. The real ingress accepts what the
// order's limit allows (CALLBACK_BURST at once, CALLBACK_RATE a second)
// and answers 429 with Retry-After to the rest; SMARTRENT_CALLBACKS holds no
// more than that; the bridge re-reads that session no more often; every
// other order gets its session.
func TestCallbackFloodOnOneURLCannotStopOrders(t *testing.T) {
	const (
		posts   = 20_000
		clients = 16
		orders  = 20
	)
	w := newWorld(t, inbanktest.Config{}, map[string]string{"RECONCILE_INTERVAL": "1h"})
	reads := &sessionReads{n: map[string]int{}}
	recorded := httptest.NewServer(reads.wrap(w.fake))
	t.Cleanup(recorded.Close)
	w.env["INBANK_BASE_URL"] = recorded.URL
	addrs, cancel, done := startIngress(t, map[string]string{
		"NATS_URL": w.env["NATS_URL"], "CALLBACK_SECRET": testSecret, "LISTEN_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0", "LOG_LEVEL": "error",
	})
	defer func() {
		cancel()
		<-done
	}()
	w.env["CALLBACK_BASE_URL"] = "http://" + addrs.Callbacks.String()
	w.bridge()
	w.place("FLOOD", 500)
	flooded := w.sessionOf("FLOOD")

	tokens, _ := callbacktoken.New([]string{testSecret})
	url := "http://" + addrs.Callbacks.String() + callbacktoken.PathPrefix + tokens.Token("FLOOD")
	var accepted, limited, other atomic.Int64
	var retryAfterMissing atomic.Bool
	next := atomic.Int64{}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	start := time.Now()
	var flood sync.WaitGroup
	for range clients {
		flood.Go(func() {
			for next.Add(1) <= posts {
				resp, err := client.Post(url, "application/json", strings.NewReader(`{"uuid":"`+flooded+`"}`))
				if err != nil {
					other.Add(1)
					continue
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					accepted.Add(1)
				case http.StatusTooManyRequests:
					limited.Add(1)
					if resp.Header.Get("Retry-After") == "" {
						retryAfterMissing.Store(true)
					}
				default:
					other.Add(1)
				}
			}
		})
	}
	for i := range orders {
		w.place(fmt.Sprintf("CALM-%02d", i), 500)
	}
	for i := range orders {
		w.sessionOf(fmt.Sprintf("CALM-%02d", i))
	}
	flood.Wait()
	elapsed := time.Since(start)
	bound := int64(ingress.DefaultCallbackBurst) + int64(float64(ingress.DefaultCallbackRate)*elapsed.Seconds()) + 1
	t.Logf("%d POSTs in %v: %d accepted (bound %d), %d answered 429, %d other", posts, elapsed.Round(time.Millisecond), accepted.Load(), bound, limited.Load(), other.Load())
	if accepted.Load() > bound || accepted.Load() < int64(ingress.DefaultCallbackBurst) {
		t.Errorf("%d callbacks accepted, want from %d to %d", accepted.Load(), ingress.DefaultCallbackBurst, bound)
	}
	if other.Load() != 0 || accepted.Load()+limited.Load() != posts {
		t.Errorf("%d answers neither 200 nor 429", other.Load())
	}
	if retryAfterMissing.Load() {
		t.Error("a 429 without Retry-After")
	}
	s, err := w.js.Stream(context.Background(), streams.StreamCallbacks)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(events.SubjectCallbackReceived))
	if err != nil {
		t.Fatal(err)
	}
	if stored := info.State.Subjects[events.SubjectCallbackReceived]; int64(stored) != accepted.Load() {
		t.Errorf("SMARTRENT_CALLBACKS holds %d callbacks, %d were accepted", stored, accepted.Load())
	}
	// The bridge reads the session at most once per accepted callback, and
	// at most once per order.RefreshEvery while it works on them.
	if !w.out.waitUntil(60*time.Second, func() bool { return w.consumerIdle(streams.ConsumerCallbacks) }) {
		t.Fatal("the bridge did not work through the accepted callbacks")
	}
	worked := time.Since(start)
	n := int64(reads.of(flooded))
	t.Logf("session reads for the flooded order: %d in %v", n, worked.Round(time.Millisecond))
	if n > accepted.Load() {
		t.Errorf("the bridge read the flooded session %d times for %d accepted callbacks", n, accepted.Load())
	}
	if limit := int64(worked/order.RefreshEvery) + 1; n > limit {
		t.Errorf("the bridge read the flooded session %d times in %v: more than one per %v", n, worked, order.RefreshEvery)
	}
}

// consumerIdle reports whether the bridge's consumer has nothing pending
// or unacknowledged.
func (w *world) consumerIdle(name string) bool {
	stream := streams.StreamIn
	for _, dc := range streams.DefaultTopology().Consumers() {
		if dc.Durable == name {
			stream = dc.Stream
		}
	}
	c, err := w.js.Consumer(context.Background(), stream, name)
	if err != nil {
		return false
	}
	ci, err := c.Info(context.Background())
	return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0
}

// TestCallbackFloodStaysInItsBoundedStream: with the per-order limit off
// (as if many orders' URLs leaked), 300 callbacks of 60 KiB (18 MB) on
// an ingress and a bridge whose SMARTRENT_CALLBACKS holds 1 MiB: every
// POST is answered 200 (a full callbacks stream drops its oldest, it
// never refuses the next real callback), the stream stays within its
// bound, and orders placed meanwhile all get their sessions.
func TestCallbackFloodStaysInItsBoundedStream(t *testing.T) {
	const (
		posts   = 300
		clients = 8
		orders  = 10
		bound   = 1 << 20
	)
	limits := map[string]string{"STREAM_CALLBACKS_MAX_BYTES": fmt.Sprint(bound), "RECONCILE_INTERVAL": "1h"}
	w := newWorld(t, inbanktest.Config{}, limits)
	addrs, cancel, done := startIngress(t, map[string]string{
		"NATS_URL": w.env["NATS_URL"], "CALLBACK_SECRET": testSecret, "LISTEN_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0", "LOG_LEVEL": "error",
		"CALLBACK_BURST": "-1", "STREAM_CALLBACKS_MAX_BYTES": fmt.Sprint(bound),
	})
	defer func() {
		cancel()
		<-done
	}()
	w.env["CALLBACK_BASE_URL"] = "http://" + addrs.Callbacks.String()
	w.bridge()
	w.place("FLOOD", 500)
	flooded := w.sessionOf("FLOOD")

	tokens, _ := callbacktoken.New([]string{testSecret})
	url := "http://" + addrs.Callbacks.String() + callbacktoken.PathPrefix + tokens.Token("FLOOD")
	body := `{"uuid":"` + flooded + `","padding":"` + strings.Repeat("x", 60<<10) + `"}`
	codes := map[int]int{}
	var mu sync.Mutex
	next := atomic.Int64{}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var flood sync.WaitGroup
	for range clients {
		flood.Go(func() {
			for next.Add(1) <= posts {
				code := -1
				if resp, err := client.Post(url, "application/json", strings.NewReader(body)); err == nil {
					resp.Body.Close()
					code = resp.StatusCode
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			}
		})
	}
	for i := range orders {
		w.place(fmt.Sprintf("CALM-%02d", i), 500)
	}
	for i := range orders {
		w.sessionOf(fmt.Sprintf("CALM-%02d", i))
	}
	flood.Wait()
	if codes[http.StatusOK] != posts {
		t.Errorf("answers %v, want %d × 200", codes, posts)
	}
	s, err := w.js.Stream(context.Background(), streams.StreamCallbacks)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d callbacks of %d KiB: SMARTRENT_CALLBACKS holds %d of them, %d bytes (bound %d)", posts, len(body)>>10, info.State.Msgs, info.State.Bytes, bound)
	if info.State.Bytes > bound || info.State.LastSeq != posts || info.State.Msgs >= posts {
		t.Errorf("SMARTRENT_CALLBACKS: %d bytes, %d messages, last seq %d; want the newest within %d bytes", info.State.Bytes, info.State.Msgs, info.State.LastSeq, bound)
	}
}
