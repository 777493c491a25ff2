// Package ingress turns Inbank's server-to-server callbacks into
// smartrent.inbank.callback.received.v1 events on JetStream.
//
// It is the only part of the product on the internet, so it is strict: a
// request whose path token is not ours gets 404 and publishes nothing; a
// body that is too large or not a JSON object is refused; 200 "OK" is
// answered only after JetStream acknowledged the event, and 503 with
// Retry-After when it did not, so Inbank retries.
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
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartrent-bridge/bridge/internal/callbacktoken"
	"github.com/smartrent-bridge/bridge/internal/events"
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
	OutcomeUnavailable  = "unavailable"
)

// Publisher stores an event and returns once JetStream acknowledged it.
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg) (events.PubAck, error)
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
	// SignatureTolerance bounds the age of a signed timestamp (5 minutes).
	SignatureTolerance time.Duration
	// PublishTimeout bounds the wait for the PubAck (5 s).
	PublishTimeout time.Duration
	// RetryAfter is sent with 503 (5 s).
	RetryAfter time.Duration
	Source     string // CloudEvent source; "urn:smartrent:webhook-ingress"
	Metrics    *Metrics
	Logger     *slog.Logger
	Now        func() time.Time
}

// Handler serves POST /v1/inbank/callbacks/{token}.
type Handler struct {
	cfg Config
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
		cfg.SignatureTolerance = 5 * time.Minute
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
	return &Handler{cfg: cfg}, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	outcome, orderID := h.serve(w, r)
	h.cfg.Metrics.count(outcome)
	level := slog.LevelInfo
	switch outcome {
	case OutcomeForged:
		level = slog.LevelDebug // scanners: counted, not worth a log line each
	case OutcomeUnavailable:
		level = slog.LevelError
	case OutcomeBadSignature, OutcomeTooLarge, OutcomeBadBody, OutcomeBadMethod:
		level = slog.LevelWarn
	}
	h.cfg.Logger.Log(r.Context(), level, "inbank callback", "outcome", outcome, "order_id", orderID) // trace_id comes from the context
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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			plain(w, http.StatusRequestEntityTooLarge, "body larger than 64 KiB\n")
			return OutcomeTooLarge, orderID
		}
		plain(w, http.StatusBadRequest, "cannot read body\n")
		return OutcomeBadBody, orderID
	}
	var fields callbackFields
	if !isObject(body) || json.Unmarshal(body, &fields) != nil {
		plain(w, http.StatusBadRequest, "body must be a JSON object\n")
		return OutcomeBadBody, orderID
	}
	timestamp, err := h.checkSignature(r.Header, body)
	if err != nil {
		plain(w, http.StatusUnauthorized, "bad signature: "+err.Error()+"\n")
		return OutcomeBadSignature, orderID
	}
	id := events.NewID()
	if timestamp != "" { // verified: the same delivery again has the same id
		id = deliveryID(token, timestamp, r.Header.Get(HeaderSignature))
	}
	e, err := h.event(id, orderID, shop, telemetry.TraceParent(r.Context()), body, fields)
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
		h.cfg.Logger.Error("store callback", "order_id", orderID, "err", err)
		h.unavailable(w)
		return OutcomeUnavailable, orderID
	}
	plain(w, http.StatusOK, "OK")
	if ack.Duplicate {
		return OutcomeDuplicate, orderID
	}
	return OutcomeAccepted, orderID
}

func (h *Handler) unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", strconv.Itoa(int(h.cfg.RetryAfter.Round(time.Second)/time.Second)))
	plain(w, http.StatusServiceUnavailable, "cannot store the callback now; retry later\n")
}

// checkSignature verifies Inbank's HMAC-SHA512 over "<timestamp>.<body>"
// as the mode demands, and returns the signed timestamp ("" if none).
func (h *Handler) checkSignature(hdr http.Header, body []byte) (string, error) {
	ts, sig := hdr.Get(HeaderTimestamp), hdr.Get(HeaderSignature)
	switch {
	case h.cfg.Signature == SignatureOff:
		return "", nil
	case sig == "" && h.cfg.Signature == SignatureRequired:
		return "", errors.New("missing")
	case sig == "" || len(h.cfg.SignatureKeys) == 0:
		return "", nil
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", errors.New("timestamp missing or not Unix seconds")
	}
	if age := h.cfg.Now().Sub(time.Unix(secs, 0)); age > h.cfg.SignatureTolerance || age < -h.cfg.SignatureTolerance {
		return "", errors.New("timestamp outside the tolerance")
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return "", errors.New("not hex")
	}
	for _, key := range h.cfg.SignatureKeys {
		m := hmac.New(sha512.New, []byte(key))
		m.Write([]byte(ts))
		m.Write([]byte("."))
		m.Write(body)
		if hmac.Equal(got, m.Sum(nil)) {
			return ts, nil
		}
	}
	return "", errors.New("does not match")
}

// callbackFields are the parts of a callback body the event names. Inbank
// documents no body format; these are the keys seen or plausible.
type callbackFields struct {
	PosSessionUUID json.RawMessage `json:"posSessionUuid"`
	SessionUUID    json.RawMessage `json:"sessionUuid"`
	UUID           json.RawMessage `json:"uuid"`
	Status         json.RawMessage `json:"status"`
}

// isObject reports whether a JSON text starts as an object (json.Unmarshal
// into a struct also accepts null).
func isObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c == '{'
	}
	return false
}

// deliveryID names one signed delivery: token, signed timestamp and
// signature (which covers the body).
func deliveryID(token, timestamp, signature string) string {
	sum := sha256.New()
	for _, part := range []string{token, timestamp, signature} {
		fmt.Fprintf(sum, "%d:%s", len(part), part)
	}
	return hex.EncodeToString(sum.Sum(nil)[:16])
}

// event builds the CloudEvent message with the given id.
func (h *Handler) event(id, orderID, shop, traceparent string, body []byte, f callbackFields) (*nats.Msg, error) {
	b, err := h.cfg.Codec.EncodeCallback(id, h.cfg.Source, traceparent, events.CallbackReceived{
		OrderID:     orderID,
		Shop:        shop,
		SessionUUID: shortString(f.PosSessionUUID, f.SessionUUID, f.UUID),
		Status:      shortString(f.Status),
		ReceivedAt:  h.cfg.Now().UTC(),
		Body:        body,
	})
	if err != nil {
		return nil, err
	}
	msg := &nats.Msg{Subject: events.SubjectCallbackReceived, Data: b, Header: nats.Header{}}
	msg.Header.Set(events.HeaderContentType, events.ContentTypeStructured)
	msg.Header.Set(events.HeaderMsgID, id)
	return msg, nil
}

// shortString returns the first value that is a string of at most 100
// characters.
func shortString(values ...json.RawMessage) string {
	for _, v := range values {
		var s string
		if len(v) > 0 && json.Unmarshal(v, &s) == nil && s != "" && len(s) <= 100 {
			return s
		}
	}
	return ""
}

// Metrics of the ingress. A nil *Metrics records nothing.
type Metrics struct {
	callbacks *prometheus.CounterVec
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
	for _, o := range []string{OutcomeAccepted, OutcomeDuplicate, OutcomeForged, OutcomeBadSignature, OutcomeTooLarge, OutcomeBadBody, OutcomeBadMethod, OutcomeUnavailable} {
		m.callbacks.WithLabelValues(o) // export zeros, so alerts see the series
	}
	for _, c := range []prometheus.Collector{m.callbacks, m.publish} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) count(outcome string) {
	if m != nil {
		m.callbacks.WithLabelValues(outcome).Inc()
	}
}

func (m *Metrics) observePublish(d time.Duration) {
	if m != nil {
		m.publish.Observe(d.Seconds())
	}
}
