package app

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
	"github.com/smartrent-bridge/bridge/internal/order"
)

// sessionAttempts records when each session creation request reached the
// fake Inbank, by order (purchaseReference), whatever the fake answered.
type sessionAttempts struct {
	mu sync.Mutex
	at map[string][]time.Time
}

func (a *sessionAttempts) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/pos-sessions") {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var req inbankapi.SessionRequest
			if json.Unmarshal(body, &req) == nil {
				a.mu.Lock()
				a.at[req.Purchase.PurchaseReference] = append(a.at[req.Purchase.PurchaseReference], time.Now())
				a.mu.Unlock()
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (a *sessionAttempts) of(orderID string) []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.at[orderID]...)
}

// TestE2ESessionRetriesKeepTheScheduleOnEveryPath: Inbank answers every
// session creation 503 (no Retry-After) for 25 s. Two bridges consume the
// orders and reconcile every second, and every path that could retry an
// order (its order.placed redelivered to either bridge, either bridge's
// reconciler) is held by the order's state: consecutive attempts are at
// least 80 % of the documented delay apart (1 s · 2^(n−1) after attempt
// n, ±10 % jitter), never more than MAX_DELIVER in all, and each order
// gets one session once Inbank is back. Before, the reconciler could retry
// an order waiting out its backoff (two attempts 9 ms apart, 21 in all).
//
// 25 s, not 30: the sixth attempt comes 27.9–34.1 s after the first, so
// it is the one that succeeds, and the test takes about 35 s.
func TestE2ESessionRetriesKeepTheScheduleOnEveryPath(t *testing.T) {
	const outage = 25 * time.Second
	w := newWorld(t, inbanktest.Config{}, map[string]string{"RECONCILE_INTERVAL": "1s", "ACK_WAIT": "30s", "MAX_DELIVER": "20"})
	attempts := &sessionAttempts{at: map[string][]time.Time{}}
	recorded := httptest.NewServer(attempts.wrap(w.fake))
	t.Cleanup(recorded.Close)
	w.env["INBANK_BASE_URL"] = recorded.URL
	w.fake.SetFault(inbank.OpCreateSession, inbanktest.Fault{Status: 503})
	back := time.AfterFunc(outage, w.fake.ClearFaults)
	t.Cleanup(func() { back.Stop() })
	w.bridge()
	w.bridge()

	orders := []string{"RT-1", "RT-2", "RT-3"}
	for _, id := range orders {
		w.place(id, 500)
	}
	for _, id := range orders {
		if !w.out.Wait(id, events.TypeSessionCreated, 1, 2*time.Minute) {
			t.Fatalf("%s: no session.created within 2 min; attempts at %v", id, attempts.of(id))
		}
	}
	for _, id := range orders {
		at := attempts.of(id)
		var gaps []string
		for i := 1; i < len(at); i++ {
			gap := at[i].Sub(at[i-1])
			gaps = append(gaps, gap.Round(time.Millisecond).String())
			// After attempt i (1-based) the schedule is 1 s · 2^(i−1), capped at 1 min.
			scheduled := min(time.Second<<(i-1), time.Minute)
			if gap < scheduled*8/10 {
				t.Errorf("%s: attempt %d came %v after attempt %d; the schedule says %v (±20 %%)", id, i+1, gap, i, scheduled)
			}
		}
		t.Logf("%s: %d session creation attempts, %v after the first; gaps %s", id, len(at), at[len(at)-1].Sub(at[0]).Round(time.Millisecond), strings.Join(gaps, ", "))
		if len(at) > 20 {
			t.Errorf("%s: %d attempts, more than MAX_DELIVER (20)", id, len(at))
		}
		if n := w.fake.SessionsCreated(id); n != 1 {
			t.Errorf("%s: %d sessions created at Inbank, want 1", id, n)
		}
		if n := len(w.out.of(id, events.TypeSessionCreated)); n != 1 {
			t.Errorf("%s: %d × session.created, want 1", id, n)
		}
	}
}

// TestE2ESessionAttemptsStopAtMaxDeliver: Inbank answers 503 with
// Retry-After: 1 and never recovers. Two bridges reconcile every second
// beside the consumers' redeliveries; the order gets MAX_DELIVER (5)
// attempts in all, at least 0.8 s apart, then one order.failed at the
// session step and one dead letter of its order.placed.
func TestE2ESessionAttemptsStopAtMaxDeliver(t *testing.T) {
	w := newWorld(t, inbanktest.Config{}, map[string]string{"RECONCILE_INTERVAL": "1s", "ACK_WAIT": "30s", "MAX_DELIVER": "5"})
	attempts := &sessionAttempts{at: map[string][]time.Time{}}
	recorded := httptest.NewServer(attempts.wrap(w.fake))
	t.Cleanup(recorded.Close)
	w.env["INBANK_BASE_URL"] = recorded.URL
	w.fake.SetFault(inbank.OpCreateSession, inbanktest.Fault{Status: 503, RetryAfterSeconds: 1})
	w.bridge()
	w.bridge()

	w.place("RT-MAX", 500)
	w.out.wait("RT-MAX", events.TypeOrderFailed, 1)
	if f := w.out.of("RT-MAX", events.TypeOrderFailed)[0]; f["step"] != order.StepSession {
		t.Errorf("order.failed = %v, want the session step", f)
	}
	w.oneDeadLetter(events.SubjectDLQPrefix + events.SubjectOrderPlaced)
	at := attempts.of("RT-MAX")
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < 800*time.Millisecond {
			t.Errorf("attempt %d came %v after attempt %d; Retry-After said 1 s", i+1, gap, i)
		}
	}
	t.Logf("%d attempts in %v", len(at), at[len(at)-1].Sub(at[0]).Round(time.Millisecond))
	if len(at) != 5 {
		t.Errorf("%d session creation attempts, want MAX_DELIVER (5)", len(at))
	}
	if n := len(w.out.of("RT-MAX", events.TypeOrderFailed)); n != 1 {
		t.Errorf("%d × order.failed, want 1", n)
	}
}
