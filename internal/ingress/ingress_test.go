package ingress_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartrent-bridge/bridge/internal/callbacktoken"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/ingress"
	"github.com/smartrent-bridge/bridge/internal/natstest"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/schemas"
)

const (
	secret = "test-callback-secret-0123"
	apiKey = "test-api-key"
)

var schemaSet = schemas.MustLoad()

type env struct {
	srv     *natstest.Server
	js      jetstream.JetStream
	tokens  *callbacktoken.Signer
	handler *ingress.Handler
	reg     *prometheus.Registry
	codec   *events.Codec
}

func setup(t testing.TB, mutate func(*ingress.Config)) *env {
	t.Helper()
	srv := natstest.Run(t, natstest.Options{})
	_, js := natstest.Connect(t, srv.ClientURL())
	if err := streams.ProvisionStreams(context.Background(), js, streams.DefaultTopology()); err != nil {
		t.Fatal(err)
	}
	tokens, _ := callbacktoken.New([]string{secret})
	reg := prometheus.NewRegistry()
	m, _ := ingress.NewMetrics(reg)
	codec := events.NewCodec(schemaSet)
	cfg := ingress.Config{
		Tokens: tokens, Publisher: streams.NewPublisher(js, codec), Codec: codec,
		SignatureKeys: []string{apiKey}, PublishTimeout: time.Second, Metrics: m,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := ingress.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, js: js, tokens: tokens, handler: h, reg: reg, codec: codec}
}

func (e *env) post(method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec
}

func (e *env) path(orderID string) string { return callbacktoken.PathPrefix + e.tokens.Token(orderID) }

// stored returns the callback events in SMARTRENT_CALLBACKS.
func (e *env) stored(t testing.TB) []events.Envelope {
	t.Helper()
	_, msgs, err := streams.StreamMessages(context.Background(), e.js, streams.StreamCallbacks)
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Envelope
	for _, m := range msgs {
		env, err := e.codec.Decode(m.Header, m.Data)
		if err != nil {
			t.Fatalf("stored message %d is not a valid event: %v", m.Sequence, err)
		}
		out = append(out, env)
	}
	return out
}

const body = `{"posSessionUuid":"5e3a459a-aada-4d81-b6ad-09cb9483c8bf","status":"granted"}`

// TestSignedDeliveryStoredOnce: Inbank's retry of one signed delivery
// (same timestamp and signature) is stored once.
func TestSignedDeliveryStoredOnce(t *testing.T) {
	e := setup(t, nil)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	signed := map[string]string{ingress.HeaderTimestamp: ts, ingress.HeaderSignature: sign(ts, body)}
	for i := range 3 {
		rec := e.post(http.MethodPost, e.path("ORD-1"), body, signed)
		if rec.Code != 200 || rec.Body.String() != "OK" {
			t.Fatalf("attempt %d: %d %q, want 200 OK", i, rec.Code, rec.Body.String())
		}
	}
	got := e.stored(t)
	if len(got) != 1 {
		t.Fatalf("%d events stored, want 1", len(got))
	}
	d := got[0].Data.(*events.CallbackReceived)
	if d.OrderID != "ORD-1" || d.SessionUUID != "5e3a459a-aada-4d81-b6ad-09cb9483c8bf" || d.Status != "granted" || string(d.Body) != body {
		t.Fatalf("event data = %+v", d)
	}
	if got[0].Event.Type() != events.TypeCallbackReceived || got[0].OrderID() != "ORD-1" {
		t.Fatalf("event = %s for %s", got[0].Event.Type(), got[0].OrderID())
	}
	if v := outcomes(t, e.reg, "accepted"); v != 1 {
		t.Errorf("accepted = %v, want 1", v)
	}
	if v := outcomes(t, e.reg, "duplicate"); v != 2 {
		t.Errorf("duplicate = %v, want 2", v)
	}
}

// TestSignedDeliveryReplayedInAnotherFormIsStoredOnce: the same signed
// delivery with its signature's hex upper-cased, or posted to another
// order's callback URL (the signature does not cover the URL), is the same
// event: stored once.
func TestSignedDeliveryReplayedInAnotherFormIsStoredOnce(t *testing.T) {
	e := setup(t, nil)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	sig := sign(ts, body)
	for _, try := range []struct {
		order, sig string
	}{{"ORD-1", sig}, {"ORD-1", strings.ToUpper(sig)}, {"ORD-2", sig}, {"ORD-2", strings.ToUpper(sig)}} {
		rec := e.post(http.MethodPost, e.path(try.order), body, map[string]string{ingress.HeaderTimestamp: ts, ingress.HeaderSignature: try.sig})
		if rec.Code != 200 {
			t.Fatalf("%s: %d %s", try.order, rec.Code, rec.Body.String())
		}
	}
	got := e.stored(t)
	if len(got) != 1 || got[0].OrderID() != "ORD-1" {
		t.Fatalf("%d events stored, want 1 (for ORD-1, the first)", len(got))
	}
}

// TestSignedDeliveryOutsideTheToleranceIsRefused: a signed delivery is
// accepted only within the tolerance of its timestamp (the binary keeps it
// at most half of the duplicate window), so a replay that JetStream would
// no longer recognise as a duplicate is refused.
func TestSignedDeliveryOutsideTheToleranceIsRefused(t *testing.T) {
	now := time.Now()
	clock := now
	e := setup(t, func(c *ingress.Config) {
		c.SignatureTolerance = time.Minute
		c.Now = func() time.Time { return clock }
	})
	ts := strconv.FormatInt(now.Unix(), 10)
	signed := map[string]string{ingress.HeaderTimestamp: ts, ingress.HeaderSignature: sign(ts, body)}
	if rec := e.post(http.MethodPost, e.path("ORD-1"), body, signed); rec.Code != 200 {
		t.Fatalf("in time: %d", rec.Code)
	}
	clock = now.Add(2*time.Minute + time.Second) // past the duplicate window
	if rec := e.post(http.MethodPost, e.path("ORD-1"), body, signed); rec.Code != http.StatusUnauthorized {
		t.Fatalf("replayed after the window: %d, want 401", rec.Code)
	}
	if n := len(e.stored(t)); n != 1 {
		t.Fatalf("%d stored, want 1", n)
	}
}

// TestEveryCallbackIsItsOwnEvent: Inbank's callbacks are minimal
// triggers, so two transitions can carry the same body ({"uuid": …});
// each authenticated POST that is not provably the same delivery reaches
// the bridge, signed a second apart or unsigned.
func TestEveryCallbackIsItsOwnEvent(t *testing.T) {
	e := setup(t, nil)
	minimal := `{"uuid":"5e3a459a-aada-4d81-b6ad-09cb9483c8bf"}`
	now := time.Now()
	for _, hdr := range []map[string]string{
		nil, nil,
		{ingress.HeaderTimestamp: strconv.FormatInt(now.Unix(), 10), ingress.HeaderSignature: sign(strconv.FormatInt(now.Unix(), 10), minimal)},
		{ingress.HeaderTimestamp: strconv.FormatInt(now.Unix()+1, 10), ingress.HeaderSignature: sign(strconv.FormatInt(now.Unix()+1, 10), minimal)},
	} {
		if rec := e.post(http.MethodPost, e.path("ORD-1"), minimal, hdr); rec.Code != 200 {
			t.Fatalf("%d %s", rec.Code, rec.Body.String())
		}
	}
	got := e.stored(t)
	if len(got) != 4 {
		t.Fatalf("%d events stored for 4 callbacks with one body, want 4", len(got))
	}
	if d := got[0].Data.(*events.CallbackReceived); d.SessionUUID != "5e3a459a-aada-4d81-b6ad-09cb9483c8bf" {
		t.Fatalf("sessionUuid from {uuid}: %+v", d)
	}
}

// outcomes reads smartrent_ingress_callbacks_total{outcome}.
func outcomes(t testing.TB, reg *prometheus.Registry, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "smartrent_ingress_callbacks_total" {
			continue
		}
		for _, m := range mf.Metric {
			if m.Label[0].GetValue() == outcome {
				return m.Counter.GetValue()
			}
		}
	}
	t.Fatalf("no series for %s", outcome)
	return 0
}

func TestDifferentBodiesAreDifferentEvents(t *testing.T) {
	e := setup(t, nil)
	e.post(http.MethodPost, e.path("ORD-1"), `{"status":"granted"}`, nil)
	e.post(http.MethodPost, e.path("ORD-1"), `{"status":"completed"}`, nil)
	e.post(http.MethodPost, e.path("ORD-2"), `{"status":"granted"}`, nil)
	if n := len(e.stored(t)); n != 3 {
		t.Fatalf("%d stored, want 3", n)
	}
}

func TestRefusals(t *testing.T) {
	e := setup(t, nil)
	valid := e.path("ORD-1")
	tests := []struct {
		name, method, path, body string
		status                   int
		allow                    string
	}{
		{"no token", http.MethodPost, callbacktoken.PathPrefix, body, 404, ""},
		{"other path", http.MethodPost, "/healthz", body, 404, ""},
		{"forged token", http.MethodPost, callbacktoken.PathPrefix + "T1JELTE.AAAA", body, 404, ""},
		{"altered token", http.MethodPost, valid[:len(valid)-1] + "A", body, 404, ""},
		{"token of another secret", http.MethodPost, callbacktoken.PathPrefix + mustSigner(t, "another-secret-0123456").Token("ORD-1"), body, 404, ""},
		{"padded token", http.MethodPost, strings.Replace(valid, ".", "=.", 1), body, 404, ""},
		{"bad token with GET", http.MethodGet, callbacktoken.PathPrefix + "x.y", "", 404, ""},
		{"trailing segment", http.MethodPost, valid + "/x", body, 404, ""},
		{"GET with valid token", http.MethodGet, valid, "", 405, "POST"},
		{"PUT with valid token", http.MethodPut, valid, body, 405, "POST"},
		{"not JSON", http.MethodPost, valid, "status=granted", 400, ""},
		{"JSON array", http.MethodPost, valid, `[1,2]`, 400, ""},
		{"JSON null", http.MethodPost, valid, `null`, 400, ""},
		{"two objects", http.MethodPost, valid, `{"a":1}{"b":2}`, 400, ""},
		{"unterminated", http.MethodPost, valid, `{"uuid":"x"`, 400, ""},
		{"invalid UTF-8", http.MethodPost, valid, "{\"status\":\"gr\xffanted\"}", 400, ""},
		{"too large", http.MethodPost, valid, `{"x":"` + strings.Repeat("a", ingress.MaxBody) + `"}`, 413, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.post(tt.method, tt.path, tt.body, nil)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d", rec.Code, tt.status)
			}
			if got := rec.Header().Get("Allow"); got != tt.allow {
				t.Fatalf("Allow = %q, want %q", got, tt.allow)
			}
		})
	}
	if n := len(e.stored(t)); n != 0 {
		t.Fatalf("%d events stored from refused requests", n)
	}
}

func mustSigner(t *testing.T, s string) *callbacktoken.Signer {
	sg, err := callbacktoken.New([]string{s})
	if err != nil {
		t.Fatal(err)
	}
	return sg
}

func sign(ts, b string) string {
	m := hmac.New(sha512.New, []byte(apiKey))
	m.Write([]byte(ts + "." + b))
	return hex.EncodeToString(m.Sum(nil))
}

func TestSignatures(t *testing.T) {
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	stale := strconv.FormatInt(now.Add(-6*time.Minute).Unix(), 10)
	good := map[string]string{ingress.HeaderTimestamp: ts, ingress.HeaderSignature: sign(ts, body)}
	bad := map[string]string{ingress.HeaderTimestamp: ts, ingress.HeaderSignature: sign(ts, body+" ")}
	old := map[string]string{ingress.HeaderTimestamp: stale, ingress.HeaderSignature: sign(stale, body)}
	tests := []struct {
		mode   string
		hdr    map[string]string
		status int
	}{
		{ingress.SignatureRequired, good, 200},
		{ingress.SignatureRequired, nil, 401},
		{ingress.SignatureRequired, bad, 401},
		{ingress.SignatureRequired, old, 401},
		{ingress.SignatureOptional, nil, 200},
		{ingress.SignatureOptional, good, 200},
		{ingress.SignatureOptional, bad, 401},
		{ingress.SignatureOff, bad, 200},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.mode, tt.status), func(t *testing.T) {
			e := setup(t, func(c *ingress.Config) { c.Signature = tt.mode })
			if rec := e.post(http.MethodPost, e.path("ORD-1"), body, tt.hdr); rec.Code != tt.status {
				t.Fatalf("status = %d, want %d (%s)", rec.Code, tt.status, rec.Body.String())
			}
			want := 0
			if tt.status == 200 {
				want = 1
			}
			if n := len(e.stored(t)); n != want {
				t.Fatalf("%d stored, want %d", n, want)
			}
		})
	}
	if _, err := ingress.New(ingress.Config{Tokens: mustSigner(t, secret), Publisher: streams.NewPublisher(nil, nil), Codec: events.NewCodec(schemaSet), Signature: ingress.SignatureRequired}); err == nil {
		t.Fatal("required signatures without a key were accepted")
	}
}

// TestNATSDownAnswers503ThenRetryIsStored: the sender's retry after an
// outage is stored exactly once.
func TestNATSDownAnswers503ThenRetryIsStored(t *testing.T) {
	e := setup(t, nil)
	// Connected as the binary connects (natsconn.Settings.NoReconnectBuffer):
	// nothing is held while NATS is down.
	nc, js := connectUnbuffered(t, e.srv.ClientURL())
	h, err := ingress.New(ingress.Config{
		Tokens: e.tokens, Publisher: streams.NewPublisher(js, e.codec), Codec: e.codec,
		SignatureKeys: []string{apiKey}, PublishTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.handler = h
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	signed := map[string]string{ingress.HeaderTimestamp: ts, ingress.HeaderSignature: sign(ts, body)}
	e.srv.Stop()
	for nc.IsConnected() {
		time.Sleep(5 * time.Millisecond) // until the client has seen the server go
	}
	rec := e.post(http.MethodPost, e.path("ORD-1"), body, signed)
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("NATS down: %d Retry-After %q, want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	e.srv = natstest.Restart(t, e.srv)
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec = e.post(http.MethodPost, e.path("ORD-1"), body, signed)
		if rec.Code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d after NATS came back", rec.Code)
		}
		time.Sleep(50 * time.Millisecond) // the sender's retry interval, shortened
	}
	e.post(http.MethodPost, e.path("ORD-1"), body, signed)
	if n := len(e.stored(t)); n != 1 {
		t.Fatalf("%d stored, want 1", n)
	}
}

// connectUnbuffered opens a connection to the test's server without a
// reconnect buffer, as the ingress binary does.
func connectUnbuffered(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// stalledPublisher sends and never hears back: JetStream connected but
// too slow to acknowledge within the publish timeout.
type stalledPublisher struct{}

func (stalledPublisher) PublishMsg(ctx context.Context, _ *nats.Msg) (streams.PubAck, error) {
	<-ctx.Done()
	return streams.PubAck{}, fmt.Errorf("publish: %w", ctx.Err())
}

// TestUnacknowledgedPublishAnswers504: a PubAck that does not come in
// time leaves it unknown whether the callback is stored. The answer is
// 504 with Retry-After, never the 503 that promises it is not stored.
func TestUnacknowledgedPublishAnswers504(t *testing.T) {
	e := setup(t, func(c *ingress.Config) {
		c.PublishTimeout = 50 * time.Millisecond
		c.Publisher = stalledPublisher{}
	})
	rec := e.post(http.MethodPost, e.path("ORD-1"), body, nil)
	if rec.Code != http.StatusGatewayTimeout || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("PubAck timeout: %d Retry-After %q, want 504 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	if got := outcomes(t, e.reg, ingress.OutcomeUnconfirmed); got != 1 {
		t.Fatalf("unconfirmed outcomes counted: %v, want 1", got)
	}
}

func TestMissingOrFullStream(t *testing.T) {
	t.Run("stream deleted", func(t *testing.T) {
		e := setup(t, nil)
		if err := e.js.DeleteStream(context.Background(), streams.StreamCallbacks); err != nil {
			t.Fatal(err)
		}
		if rec := e.post(http.MethodPost, e.path("ORD-1"), body, nil); rec.Code != 503 {
			t.Fatalf("status = %d, want 503", rec.Code)
		}
	})
	t.Run("stream full keeps the newest", func(t *testing.T) {
		// SMARTRENT_CALLBACKS drops its oldest callbacks when full: a
		// flood neither fills the server nor refuses the next real one.
		e := setup(t, nil)
		ctx := context.Background()
		s, _ := e.js.Stream(ctx, streams.StreamCallbacks)
		cfg := s.CachedInfo().Config
		cfg.MaxBytes = 2048
		if _, err := e.js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		codes := map[int]int{}
		for i := range 20 {
			codes[e.post(http.MethodPost, e.path(fmt.Sprintf("ORD-%d", i)), body, nil).Code]++
		}
		if codes[200] != 20 {
			t.Fatalf("answers %v, want 20 × 200", codes)
		}
		info, _ := s.Info(ctx)
		if info.State.Bytes > 2048 || info.State.LastSeq != 20 || info.State.Msgs == 20 {
			t.Fatalf("stream holds %d bytes, %d messages up to seq %d: want the newest within 2048 bytes", info.State.Bytes, info.State.Msgs, info.State.LastSeq)
		}
	})
}

func TestConcurrentCallbacks(t *testing.T) {
	e := setup(t, func(c *ingress.Config) { c.PublishTimeout = 10 * time.Second })
	srv := httptest.NewServer(e.handler)
	defer srv.Close()
	const n = 1000
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			resp, err := http.Post(srv.URL+e.path(fmt.Sprintf("ORD-%d", i)), "application/json", strings.NewReader(body))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				codes[-1]++
				return
			}
			resp.Body.Close()
			codes[resp.StatusCode]++
		})
	}
	wg.Wait()
	if codes[200] != n {
		t.Fatalf("answers %v, want %d × 200", codes, n)
	}
	s, _ := e.js.Stream(context.Background(), streams.StreamCallbacks)
	info, _ := s.Info(context.Background())
	if info.State.Msgs != n {
		t.Fatalf("%d stored, want %d", info.State.Msgs, n)
	}
}

func FuzzHandler(f *testing.F) {
	e := setup(f, nil)
	valid := e.path("ORD-1")
	f.Add(http.MethodPost, valid, body, "")
	f.Add(http.MethodPost, valid+"x", body, "")
	f.Add(http.MethodGet, "/v1/inbank/callbacks/", "", "")
	f.Add(http.MethodPost, "/v1/inbank/callbacks/T1JELTE.x", `{}`, "1")
	f.Fuzz(func(t *testing.T, method, path, b, sig string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \t\r\n?#%") || method == "" || strings.ContainsAny(method, " \t\r\n") {
			return
		}
		before := len(e.stored(t))
		req, err := http.NewRequest(method, "http://ingress"+path, bytes.NewReader([]byte(b)))
		if err != nil {
			return
		}
		req.Header.Set(ingress.HeaderSignature, sig)
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		after := len(e.stored(t))
		authentic := path == valid && method == http.MethodPost
		if !authentic && after != before {
			t.Fatalf("%s %s stored an event", method, path)
		}
		if rec.Code == 200 && !json.Valid([]byte(b)) {
			t.Fatalf("200 for a body that is not JSON")
		}
	})
}

// TestLenientButValidBodies: what JSON allows is accepted: duplicate names
// (the last value counts, as with encoding/json), whitespace around the
// object, escapes, nested objects (only top-level fields are read).
func TestLenientButValidBodies(t *testing.T) {
	e := setup(t, nil)
	for _, b := range []string{
		" {\"uuid\":\"first\",\"uuid\":\"second\"}\n",
		`{"posSessionUuid":"p\u00e4","status":"gr\"anted","nested":{"uuid":"not-this"}}`,
	} {
		if rec := e.post(http.MethodPost, e.path("ORD-1"), b, nil); rec.Code != 200 {
			t.Fatalf("%q: %d %s", b, rec.Code, rec.Body.String())
		}
	}
	got := e.stored(t)
	if len(got) != 2 {
		t.Fatalf("%d stored", len(got))
	}
	first, second := got[0].Data.(*events.CallbackReceived), got[1].Data.(*events.CallbackReceived)
	if first.SessionUUID != "second" {
		t.Fatalf("uuid from duplicate names: %q", first.SessionUUID)
	}
	if second.SessionUUID != "pä" || second.Status != `gr"anted` {
		t.Fatalf("escaped fields: %+v", second)
	}
}
