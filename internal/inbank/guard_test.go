package inbank_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
)

// sessionStub answers Session as told; it counts the calls that reached it.
type sessionStub struct {
	inbank.API // other calls are not used
	calls      atomic.Int32
	answer     func() error
	entered    chan struct{} // closed by the first call, when set
	release    chan struct{} // a call waits for it, when set
}

func (s *sessionStub) Session(ctx context.Context, _ string) (inbankapi.Session, error) {
	s.calls.Add(1)
	if s.entered != nil {
		close(s.entered)
		s.entered = nil
	}
	if s.release != nil {
		<-s.release
	}
	return inbankapi.Session{Status: "pending"}, s.answer()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestCircuitBreakerHalfOpenProbe: five transient failures open the
// circuit (calls refused locally, shown as state 2 and logged); after the
// cooldown one probe reaches Inbank while others are refused; a probe
// that never reached Inbank (its caller gave up) leaves the circuit as it
// was; a successful probe closes it.
func TestCircuitBreakerHalfOpenProbe(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := inbank.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	var failing atomic.Bool
	failing.Store(true)
	stub := &sessionStub{answer: func() error {
		if failing.Load() {
			return &inbankapi.APIError{Op: inbank.OpGetSession, Status: 503}
		}
		return nil
	}}
	const cooldown = 100 * time.Millisecond
	g := inbank.Guard("lv-web", stub, inbank.GuardOptions{Concurrency: 4, Cooldown: cooldown, Logger: slog.New(slog.NewJSONHandler(logs, nil)), Metrics: m})
	state := func() float64 { return testutil.ToFloat64(m.CircuitState("lv-web")) }
	ctx := context.Background()

	for range 5 {
		if _, err := g.Session(ctx, "s"); !inbankapi.IsTransient(err) {
			t.Fatalf("err = %v", err)
		}
	}
	_, err = g.Session(ctx, "s")
	var notSent *inbankapi.NotSentError
	if !errors.As(err, &notSent) || !strings.Contains(err.Error(), "circuit open") {
		t.Fatalf("sixth call: %v, want refused locally (NotSentError)", err)
	}
	// Refused here: transient, with a delay, and no Inbank answer to
	// report (no HTTP status in an order.failed).
	var api *inbankapi.APIError
	if !inbankapi.IsTransient(err) || inbankapi.RetryAfter(err) <= 0 || errors.As(err, &api) {
		t.Fatalf("refusal %v: transient %v, retry after %v, poses as an Inbank answer %v", err, inbankapi.IsTransient(err), inbankapi.RetryAfter(err), errors.As(err, &api))
	}
	if n := stub.calls.Load(); n != 5 || state() != 2 {
		t.Fatalf("calls %d, state %v: want 5 and open (2)", n, state())
	}

	// After the cooldown: a probe whose caller gives up before a slot is
	// free never reaches Inbank and changes nothing.
	time.Sleep(cooldown + 20*time.Millisecond) // the breaker's own clock: nothing to await
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := g.Session(gone, "s"); !errors.Is(err, context.Canceled) && (err == nil || !strings.Contains(err.Error(), "half-open")) {
		t.Fatalf("cancelled probe: %v", err)
	}
	if state() == 0 {
		t.Fatal("a probe that never reached Inbank closed the circuit")
	}

	// The real probe reaches Inbank; a call meanwhile is refused.
	failing.Store(false)
	stub.entered, stub.release = make(chan struct{}), make(chan struct{})
	entered := stub.entered
	probeDone := make(chan error, 1)
	go func() { _, err := g.Session(ctx, "s"); probeDone <- err }()
	<-entered
	if state() != 1 {
		t.Fatalf("state during the probe %v, want half-open (1)", state())
	}
	if _, err := g.Session(ctx, "s"); err == nil || !strings.Contains(err.Error(), "half-open") {
		t.Fatalf("call during the probe: %v, want refused", err)
	}
	close(stub.release)
	if err := <-probeDone; err != nil {
		t.Fatalf("probe: %v", err)
	}
	stub.release = nil
	if state() != 0 {
		t.Fatalf("state after a good probe %v, want closed (0)", state())
	}
	if _, err := g.Session(ctx, "s"); err != nil {
		t.Fatalf("after closing: %v", err)
	}
	for _, want := range []string{`"msg":"inbank circuit open"`, `"msg":"inbank circuit half-open"`, `"msg":"inbank circuit closed"`, `"shop":"lv-web"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no log line with %s:\n%s", want, logs.String())
		}
	}
}
