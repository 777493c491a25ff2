// Package ingress turns Inbank's server-to-server callbacks into
// smartrent.inbank.callback.received.v1 events on JetStream.
//
// It is the only part of the product on the internet, so it is strict: a
// request whose path token is not ours gets 404 and publishes nothing; a
// body that is too large or not a JSON object is refused; 200 "OK" is
// answered only after JetStream acknowledged the event. Otherwise the
// answer says what is known, with Retry-After so that Inbank retries: 503
// when the event was certainly not stored and never will be (NATS
// unreachable: the connection keeps no reconnect buffer, see
// natsconn.Settings.NoReconnectBuffer; no stream; JetStream refused it),
// 504 when it was sent and no acknowledgement came in time, so it may
// have been stored and the retry may be stored as a second event.
//
// Every authenticated POST becomes its own event: Inbank's callbacks are
// minimal triggers, so two different transitions (contract granted, then
// activated) may carry the same body, and de-duplicating by body lost the
// second. Only what is provably the same delivery is stored once: a
// callback with a verified signature gets an id derived from the token,
// the signed timestamp and the signature, so Inbank's retry of that
// delivery is a duplicate; any other callback gets a random id. The
// bridge is idempotent, so an extra event costs one session read.
package ingress

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/smartrent-bridge/bridge/internal/callbacktoken"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/internal/telemetry"
)

// MaxBody is the largest callback body accepted.
const MaxBody = 64 << 10

// Signature modes (INBANK_CALLBACK_SIGNATURE).
const (
	SignatureOff      = "off"
	SignatureOptional = "optional"
	SignatureRequired = "required"
)

// Headers of Inbank's (unconfirmed) signature scheme.
const (
	HeaderTimestamp = "X-Inbank-Timestamp"
	HeaderSignature = "X-Inbank-Signature"
)

// Outcomes counted in smartrent_ingress_callbacks_total.
const (
	OutcomeAccepted     = "accepted"
	OutcomeDuplicate    = "duplicate"
	OutcomeForged       = "forged"
	OutcomeBadSignature = "bad_signature"
	OutcomeTooLarge     = "too_large"
	OutcomeBadBody      = "bad_body"
	OutcomeBadMethod    = "bad_method"
	OutcomeUnavailable  = "unavailable"  // 503: not stored, and never will be
	OutcomeUnconfirmed  = "unconfirmed"  // 504: sent, not acknowledged in time: may be stored
	OutcomeRateLimited  = "rate_limited" // 429: over the order's callback limit, not stored
)

// Publisher stores an event and returns once JetStream acknowledged it.
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg) (streams.PubAck, error)
}

// Config configures a [Handler].
type Config struct {
	Tokens    *callbacktoken.Signer
	Publisher Publisher
	Codec     *events.Codec
	// Signature is off, optional (verify when present) or required.
	Signature string
	// SignatureKeys verify Inbank's signatures (the API keys); required
	// unless Signature is off.
	SignatureKeys []string
	// SignatureTolerance bounds how far a signed timestamp may be from now
	// (1 minute). Keep it at most half of SMARTRENT_IN's duplicate window:
	// the first and the last accepted copy of a delivery are then within
	// the window, and the last is stored as a duplicate.
	SignatureTolerance time.Duration
	// PublishTimeout bounds the wait for the PubAck (5 s).
	PublishTimeout time.Duration
	// RetryAfter is sent with 503 (5 s).
	RetryAfter time.Duration
	// CallbackBurst and CallbackRate bound the callbacks accepted per
	// order: CallbackBurst at once, then CallbackRate a second; more are
	// answered 429 with Retry-After and not stored (20 and 0.2/s; a
	// negative burst turns the limit off).
	CallbackBurst int
	CallbackRate  rate.Limit
	Source        string // CloudEvent source; "urn:smartrent:webhook-ingress"
	Metrics       *Metrics
	Logger        *slog.Logger
	Now           func() time.Time
}

// Handler serves POST /v1/inbank/callbacks/{token}.
type Handler struct {
	cfg    Config
	limits *orderLimits // nil: no limit
	// keys verify signatures; SetSignatureKeys replaces them (SIGHUP
	// after the API key file changed) while requests are served.
	keys atomic.Pointer[[]string]
	// Buffers and body scanners are reused: at thousands of callbacks a
	// second, allocation and GC were a fifth of the ingress's CPU.
	buffers  sync.Pool // *bytes.Buffer: request bodies and events
	scanners sync.Pool // *bodyScanner
}

func (h *Handler) buffer() *bytes.Buffer {
	if b, ok := h.buffers.Get().(*bytes.Buffer); ok {
		b.Reset()
		return b
	}
	return new(bytes.Buffer)
}

func (h *Handler) release(b *bytes.Buffer) {
	if b.Cap() <= 2*MaxBody { // a rare huge one is left to the GC
		h.buffers.Put(b)
	}
}

// New checks cfg and returns a handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Tokens == nil || cfg.Publisher == nil || cfg.Codec == nil {
		return nil, errors.New("ingress: tokens, publisher and codec are required")
	}
	switch cfg.Signature {
	case "":
		cfg.Signature = SignatureOptional
	case SignatureOff, SignatureOptional, SignatureRequired:
	default:
		return nil, fmt.Errorf("ingress: signature mode %q: want off, optional or required", cfg.Signature)
	}
	if cfg.Signature == SignatureRequired && len(cfg.SignatureKeys) == 0 {
		return nil, errors.New("ingress: INBANK_CALLBACK_SIGNATURE=required needs the Inbank API key to verify signatures")
	}
	if cfg.SignatureTolerance <= 0 {
		cfg.SignatureTolerance = time.Minute
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 5 * time.Second
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 5 * time.Second
	}
	if cfg.Source == "" {
		cfg.Source = "urn:smartrent:webhook-ingress"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CallbackBurst == 0 {
		cfg.CallbackBurst = DefaultCallbackBurst
	}
	if cfg.CallbackRate <= 0 {
		cfg.CallbackRate = DefaultCallbackRate
	}
	h := &Handler{cfg: cfg}
	keys := slices.Clone(cfg.SignatureKeys)
	h.keys.Store(&keys)
	if cfg.CallbackBurst > 0 {
		h.limits = newOrderLimits(cfg.CallbackRate, cfg.CallbackBurst, maxLimitedOrders)
	}
	return h, nil
}

// SetSignatureKeys replaces the keys that verify Inbank's signatures
// (the API keys, after a rotation). With signatures required it refuses
// an empty list and keeps the keys it has.
func (h *Handler) SetSignatureKeys(keys []string) error {
	if h.cfg.Signature == SignatureRequired && len(keys) == 0 {
		return errors.New("ingress: INBANK_CALLBACK_SIGNATURE=required needs the Inbank API key to verify signatures")
	}
	keys = slices.Clone(keys)
	h.keys.Store(&keys)
	return nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	outcome, orderID := h.serve(w, r)
	h.cfg.Metrics.count(outcome)
	level := slog.LevelInfo
	switch outcome {
	case OutcomeForged, OutcomeRateLimited:
		level = slog.LevelDebug // scanners and floods: counted, not worth a log line each
	case OutcomeUnavailable, OutcomeUnconfirmed:
		level = slog.LevelError
	case OutcomeBadSignature, OutcomeTooLarge, OutcomeBadBody, OutcomeBadMethod:
		level = slog.LevelWarn
	}
	// Checked first: the arguments would be boxed for every request even
	// when the level is off (accepted callbacks are Info, and production
	// runs at Info, but a busy ingress can run at Warn).
	if ctx := r.Context(); h.cfg.Logger.Enabled(ctx, level) {
		h.cfg.Logger.Log(ctx, level, "inbank callback", "outcome", outcome, "order_id", orderID) // trace_id comes from the context
	}
}

func plain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, msg)
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) (outcome, orderID string) {
	token, ok := strings.CutPrefix(r.URL.EscapedPath(), callbacktoken.PathPrefix)
	var shop string
	if ok {
		orderID, shop, ok = h.cfg.Tokens.Verify(token)
	}
	if !ok {
		http.NotFound(w, r)
		return OutcomeForged, ""
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		plain(w, http.StatusMethodNotAllowed, "method not allowed: use POST\n")
		return OutcomeBadMethod, orderID
	}
	if h.limits != nil {
		// Before the body is read: a flood on one leaked URL costs little.
		if wait, ok := h.limits.allow(shop, orderID, h.cfg.Now()); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
			plain(w, http.StatusTooManyRequests, "too many callbacks for this order; retry later\n")
			return OutcomeRateLimited, orderID
		}
	}
	bodyBuf := h.buffer()
	defer h.release(bodyBuf)
	_, err := bodyBuf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxBody))
	body := bodyBuf.Bytes()
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			plain(w, http.StatusRequestEntityTooLarge, "body larger than 64 KiB\n")
			return OutcomeTooLarge, orderID
		}
		plain(w, http.StatusBadRequest, "cannot read body\n")
		return OutcomeBadBody, orderID
	}
	sc, _ := h.scanners.Get().(*bodyScanner)
	if sc == nil {
		sc = newBodyScanner()
	}
	fields, ok := sc.scan(body)
	h.scanners.Put(sc)
	if !ok {
		plain(w, http.StatusBadRequest, "body must be a JSON object\n")
		return OutcomeBadBody, orderID
	}
	timestamp, signature, err := h.checkSignature(r.Header, body)
	if err != nil {
		plain(w, http.StatusUnauthorized, "bad signature: "+err.Error()+"\n")
		return OutcomeBadSignature, orderID
	}
	id := events.NewID()
	if timestamp != "" { // verified: the same delivery again has the same id
		id = deliveryID(timestamp, signature)
	}
	eventBuf := h.buffer()
	defer h.release(eventBuf)
	e, err := h.event(eventBuf, id, orderID, shop, telemetry.TraceParent(r.Context()), body, fields)
	if err != nil { // our own encoding failed: a bug, not the sender's fault
		h.cfg.Logger.Error("encode callback event", "order_id", orderID, "err", err)
		h.unavailable(w)
		return OutcomeUnavailable, orderID
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.PublishTimeout)
	defer cancel()
	start := h.cfg.Now()
	ack, err := h.cfg.Publisher.PublishMsg(ctx, e)
	h.cfg.Metrics.observePublish(h.cfg.Now().Sub(start))
	if err != nil {
		if mayBeStored(err) {
			h.cfg.Logger.Error("callback sent to JetStream but not acknowledged in time; it may be stored, and the sender's retry may be stored again", "order_id", orderID, "err", err)
			h.unconfirmed(w)
			return OutcomeUnconfirmed, orderID
		}
		h.cfg.Logger.Error("cannot store callback", "order_id", orderID, "err", err)
		h.unavailable(w)
		return OutcomeUnavailable, orderID
	}
	// 200 "OK" with only the headers net/http writes itself (Content-Type
	// text/plain; charset=utf-8 by sniffing): setting headers costs a
	// header map clone per request.
	w.WriteHeader(http.StatusOK)
	w.Write(okBody)
	if ack.Duplicate {
		return OutcomeDuplicate, orderID
	}
	return OutcomeAccepted, orderID
}

var (
	okBody = []byte("OK")
	// structuredContentType is shared by every event's headers; nats.go
	// only reads it.
	structuredContentType = []string{events.ContentTypeStructured}
)

func (h *Handler) unavailable(w http.ResponseWriter) {
	h.retryLater(w, http.StatusServiceUnavailable, "cannot store the callback now; retry later\n")
}

// unconfirmed answers a publish whose fate is unknown: 504, so that the
// sender retries, and a body that does not claim the callback was lost.
func (h *Handler) unconfirmed(w http.ResponseWriter) {
	h.retryLater(w, http.StatusGatewayTimeout, "the callback was not confirmed stored in time; it may have been stored; retry later\n")
}

func (h *Handler) retryLater(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(h.cfg.RetryAfter.Round(time.Second)/time.Second)))
	plain(w, status, msg)
}

// mayBeStored tells a failed publish that may still be stored from one
// that certainly was not. Certainly not: the message never left this
// process (no connection, and no reconnect buffer to hold it), nobody
// listened on the subject (no stream), JetStream answered with an error,
// or it was refused before sending. Anything else (a timeout waiting for
// the PubAck, a connection lost after the send) may have reached the
// stream.
func mayBeStored(err error) bool {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrReconnectBufExceeded),
		errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrMaxPayload),
		errors.Is(err, nats.ErrBadSubject),
		errors.As(err, &apiErr):
		return false
	}
	return true
}

// checkSignature verifies Inbank's HMAC-SHA512 over "<timestamp>.<body>"
// as the mode demands, and returns the signed timestamp and the signature
// as bytes (none if unsigned).
func (h *Handler) checkSignature(hdr http.Header, body []byte) (string, []byte, error) {
	ts, sig := hdr.Get(HeaderTimestamp), hdr.Get(HeaderSignature)
	switch {
	case h.cfg.Signature == SignatureOff:
		return "", nil, nil
	case sig == "" && h.cfg.Signature == SignatureRequired:
		return "", nil, errors.New("missing")
	}
	keys := *h.keys.Load()
	if sig == "" || len(keys) == 0 {
		return "", nil, nil
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", nil, errors.New("timestamp missing or not Unix seconds")
	}
	if age := h.cfg.Now().Sub(time.Unix(secs, 0)); age > h.cfg.SignatureTolerance || age < -h.cfg.SignatureTolerance {
		return "", nil, errors.New("timestamp outside the tolerance")
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return "", nil, errors.New("not hex")
	}
	for _, key := range keys {
		m := hmac.New(sha512.New, []byte(key))
		m.Write([]byte(ts))
		m.Write([]byte("."))
		m.Write(body)
		if hmac.Equal(got, m.Sum(nil)) {
			return ts, got, nil
		}
	}
	return "", nil, errors.New("does not match")
}

// callbackFields are the parts of a callback body the event names. Inbank
// documents no body format; these are the keys seen or plausible.
type callbackFields struct {
	SessionUUID, Status string
}

// bodyScanner checks callback bodies; it is reused, not shared.
type bodyScanner struct {
	r bytes.Reader
	d *jsontext.Decoder
}

func newBodyScanner() *bodyScanner {
	s := &bodyScanner{}
	s.d = jsontext.NewDecoder(&s.r, jsontext.AllowDuplicateNames(true))
	return s
}

// scan checks in one pass that body is one JSON object (UTF-8; the event
// carries it as received, so other parsers must read it) and picks the
// fields the event names: the first of posSessionUuid, sessionUuid and
// uuid, and status, each only when a string of at most 100 characters. It
// replaces a json.Valid pass plus a decoding pass (a tenth of the
// ingress's CPU under load).
func (s *bodyScanner) scan(body []byte) (callbackFields, bool) {
	var f callbackFields
	var uuids [3]string // posSessionUuid, sessionUuid, uuid
	s.r.Reset(body)
	d := s.d
	d.Reset(&s.r, jsontext.AllowDuplicateNames(true))
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '{' {
		return f, false
	}
	for d.PeekKind() != '}' {
		name, err := d.ReadToken()
		if err != nil {
			return f, false
		}
		slot := -1
		switch name.String() {
		case "posSessionUuid":
			slot = 0
		case "sessionUuid":
			slot = 1
		case "uuid":
			slot = 2
		case "status":
			slot = 3
		}
		if slot < 0 || d.PeekKind() != '"' {
			if d.SkipValue() != nil {
				return f, false
			}
			continue
		}
		v, err := d.ReadToken()
		if err != nil {
			return f, false
		}
		if str := v.String(); str != "" && len(str) <= 100 {
			if slot == 3 {
				f.Status = str
			} else {
				uuids[slot] = str
			}
		}
	}
	if _, err := d.ReadToken(); err != nil { // the closing brace
		return f, false
	}
	if _, err := d.ReadToken(); err != io.EOF { // nothing after the object
		return f, false
	}
	for _, u := range uuids {
		if u != "" {
			f.SessionUUID = u
			break
		}
	}
	return f, true
}

// deliveryID names one signed delivery by its signed timestamp and its
// signature's bytes (which cover the body). Not by the header's text: hex
// in another case is the same signature. Not by the token either: the
// signature does not cover the URL, so the same delivery posted to
// another order's URL is the same event, stored once.
func deliveryID(timestamp string, signature []byte) string {
	sum := sha256.New()
	fmt.Fprintf(sum, "%d:%s", len(timestamp), timestamp)
	sum.Write(signature)
	return hex.EncodeToString(sum.Sum(nil)[:16])
}

// event builds the CloudEvent message with the given id.
func (h *Handler) event(buf *bytes.Buffer, id, orderID, shop, traceparent string, body []byte, f callbackFields) (*nats.Msg, error) {
	buf.Grow(512 + len(body)) // free for a reused buffer; the event is appended in place
	b, err := h.cfg.Codec.AppendCallback(buf.AvailableBuffer(), id, h.cfg.Source, traceparent, events.CallbackReceived{
		OrderID:     orderID,
		Shop:        shop,
		SessionUUID: f.SessionUUID,
		Status:      f.Status,
		ReceivedAt:  h.cfg.Now().UTC(),
		Body:        body,
	})
	if err != nil {
		return nil, err
	}
	// Canonical keys written directly: Header.Set canonicalises and
	// allocates per call.
	hdr := nats.Header{events.HeaderContentType: structuredContentType, streams.HeaderMsgID: {id}}
	return &nats.Msg{Subject: events.SubjectCallbackReceived, Data: b, Header: hdr}, nil
}

// Metrics of the ingress. A nil *Metrics records nothing.
type Metrics struct {
	callbacks *prometheus.CounterVec
	// byOutcome holds each outcome's counter, looked up once: a label
	// lookup hashes the label values on every request.
	byOutcome map[string]prometheus.Counter
	publish   prometheus.Histogram
}

// NewMetrics registers the ingress metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartrent_ingress_callbacks_total",
			Help: "Inbank callbacks by outcome (accepted, duplicate, forged, bad_signature, too_large, bad_body, bad_method, unavailable).",
		}, []string{"outcome"}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "smartrent_ingress_publish_duration_seconds",
			Help:    "Time from publishing a callback event to its JetStream acknowledgement.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
		}),
	}
	m.byOutcome = map[string]prometheus.Counter{}
	for _, o := range []string{OutcomeAccepted, OutcomeDuplicate, OutcomeForged, OutcomeBadSignature, OutcomeTooLarge, OutcomeBadBody, OutcomeBadMethod, OutcomeUnavailable, OutcomeUnconfirmed, OutcomeRateLimited} {
		m.byOutcome[o] = m.callbacks.WithLabelValues(o) // also exports zeros, so alerts see the series
	}
	for _, c := range []prometheus.Collector{m.callbacks, m.publish} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) count(outcome string) {
	if m == nil {
		return
	}
	if c, ok := m.byOutcome[outcome]; ok {
		c.Inc()
		return
	}
	m.callbacks.WithLabelValues(outcome).Inc()
}

func (m *Metrics) observePublish(d time.Duration) {
	if m != nil {
		m.publish.Observe(d.Seconds())
	}
}
