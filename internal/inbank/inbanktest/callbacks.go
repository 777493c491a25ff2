package inbanktest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Duration is a time.Duration that reads and writes JSON as "250ms".
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "250ms" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration must be a string like \"250ms\" or nanoseconds: %w", err)
	}
	*d = Duration(n)
	return nil
}

// CallbackPolicy decides how callbacks are delivered, to imitate Inbank's
// "not guaranteed, late, more than once, or out of order" (05).
type CallbackPolicy struct {
	// DropRate is the share of callbacks never sent (1 = all).
	DropRate float64 `json:"dropRate"`
	// Duplicates is how many extra copies of each callback are sent.
	Duplicates int `json:"duplicates"`
	// Delay postpones each copy; with Reorder each copy waits a random
	// time up to Delay, so copies and callbacks overtake each other.
	Delay   Duration `json:"delay"`
	Reorder bool     `json:"reorder"`
	// Sign adds X-Inbank-Timestamp and X-Inbank-Signature.
	Sign bool `json:"sign"`
	// Minimal sends only {"uuid": "<session uuid>"}: 05 calls callbacks
	// "lightweight triggers with minimal information", so two different
	// transitions may carry the same body.
	Minimal bool `json:"minimal"`
	// Attempts is how often a copy is tried while the receiver answers
	// non-2xx or cannot be reached (default 5), with a doubling pause from
	// 100 ms.
	Attempts int `json:"attempts"`
}

// Callback signature headers (the scheme 05 calls unconfirmed).
const (
	HeaderTimestamp = "X-Inbank-Timestamp"
	HeaderSignature = "X-Inbank-Signature"
)

// Sign returns the hex HMAC-SHA512, keyed with the API key, over
// "<timestamp>.<body>".
func Sign(apiKey, timestamp string, body []byte) string {
	m := hmac.New(sha512.New, []byte(apiKey))
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// CallbackBody is what the fake posts to a callback URL.
type CallbackBody struct {
	PosSessionUUID string `json:"posSessionUuid"`
	Status         string `json:"status"`
}

// MinimalCallbackBody is what the fake posts with [CallbackPolicy.Minimal].
type MinimalCallbackBody struct {
	UUID string `json:"uuid"`
}

// CallbackStats counts callbacks by fate.
type CallbackStats struct {
	Sent     int // copies whose POST got a 2xx
	Dropped  int // callbacks not sent on purpose
	Failed   int // copies given up after every attempt
	Attempts int // POSTs made
}

type dispatcher struct {
	apiKey string
	log    *slog.Logger
	hc     *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	policy CallbackPolicy
	stats  CallbackStats
}

func newDispatcher(apiKey string, p CallbackPolicy, log *slog.Logger) *dispatcher {
	ctx, cancel := context.WithCancel(context.Background())
	return &dispatcher{apiKey: apiKey, log: log, policy: p, ctx: ctx, cancel: cancel, hc: &http.Client{Timeout: 5 * time.Second}}
}

// SetCallbackPolicy changes how later callbacks are delivered.
func (f *Fake) SetCallbackPolicy(p CallbackPolicy) {
	f.cb.mu.Lock()
	defer f.cb.mu.Unlock()
	f.cb.policy = p
}

// CallbackStats returns how callbacks have fared so far.
func (f *Fake) CallbackStats() CallbackStats {
	f.cb.mu.Lock()
	defer f.cb.mu.Unlock()
	return f.cb.stats
}

// WaitCallbacks blocks until every callback in flight has been delivered or
// given up.
func (f *Fake) WaitCallbacks() { f.cb.wg.Wait() }

func (d *dispatcher) send(url, sessionUUID, status string) {
	d.mu.Lock()
	p := d.policy
	if p.DropRate > 0 && (p.DropRate >= 1 || rand.Float64() < p.DropRate) {
		d.stats.Dropped++
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	var body []byte
	if p.Minimal {
		body, _ = json.Marshal(MinimalCallbackBody{UUID: sessionUUID})
	} else {
		body, _ = json.Marshal(CallbackBody{PosSessionUUID: sessionUUID, Status: status})
	}
	for range 1 + max(0, p.Duplicates) {
		delay := time.Duration(p.Delay)
		if p.Reorder && delay > 0 {
			delay = rand.N(delay + 1)
		}
		d.wg.Add(1)
		go d.deliver(url, body, delay, p)
	}
}

func (d *dispatcher) deliver(url string, body []byte, delay time.Duration, p CallbackPolicy) {
	defer d.wg.Done()
	if !sleep(d.ctx, delay) {
		return
	}
	attempts := p.Attempts
	if attempts <= 0 {
		attempts = 5
	}
	pause := 100 * time.Millisecond
	for i := range attempts {
		if i > 0 && !sleep(d.ctx, pause) {
			return
		}
		pause *= 2
		d.mu.Lock()
		d.stats.Attempts++
		d.mu.Unlock()
		if d.post(url, body, p.Sign) {
			d.mu.Lock()
			d.stats.Sent++
			d.mu.Unlock()
			return
		}
	}
	d.mu.Lock()
	d.stats.Failed++
	d.mu.Unlock()
	d.log.Warn("inbanktest: callback given up", "attempts", attempts)
}

func (d *dispatcher) post(url string, body []byte, sign bool) bool {
	req, err := http.NewRequestWithContext(d.ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	if sign {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req.Header.Set(HeaderTimestamp, ts)
		req.Header.Set(HeaderSignature, Sign(d.apiKey, ts, body))
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

func (d *dispatcher) close() {
	d.cancel()
	d.wg.Wait()
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
