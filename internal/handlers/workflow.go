package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/smartrent-bridge/bridge/internal/activation"
	"github.com/smartrent-bridge/bridge/internal/callbacktoken"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/ids"
	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
	"github.com/smartrent-bridge/bridge/internal/order"
	"github.com/smartrent-bridge/bridge/internal/orderstore"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/internal/telemetry"
)

// Inbank is the Inbank API the workflow calls: a guarded client
// ([inbank.Guard]) in production, a stub in tests.
type Inbank = inbank.API

// Store keeps order state. Save is a compare-and-set on rev. Load may
// answer from a cache (a stale value fails the next Save); LoadFresh
// always reads the store.
type Store interface {
	Load(ctx context.Context, key string) (order.Order, uint64, error)
	LoadFresh(ctx context.Context, key string) (order.Order, uint64, error)
	Create(ctx context.Context, key string, o order.Order) (uint64, error)
	Save(ctx context.Context, key string, o order.Order, rev uint64) (uint64, error)
}

// Publisher publishes a state event and waits for the PubAck.
type Publisher interface {
	Publish(ctx context.Context, e event.Event) (streams.PubAck, error)
}

// Hooks let tests stop the workflow at the worst moments.
type Hooks struct {
	// AfterInbankCall runs after a call with a side effect returned and
	// before its result is recorded. An error abandons the work there, as
	// if the process had died.
	AfterInbankCall func(step, orderID string) error
}

// Config configures a [Workflow].
type Config struct {
	Inbank     Inbank
	Store      Store
	Publisher  Publisher
	Codec      *events.Codec
	Tokens     *callbacktoken.Signer
	Conditions *inbank.Conditions // shared with the quote service; default: a private cache
	Open       OpenOrders         // the index of open orders; nil: none (tests)

	CallbackBaseURL    string
	DefaultProductCode string
	Policy             activation.Policy
	SessionTTL         time.Duration // validUntil = now + SessionTTL (24h)
	ClaimTTL           time.Duration // how long a claim holds; longer than an Inbank request (45s)
	ActivationSettle   time.Duration // wait before repeating an activation that may have reached Inbank (2m)
	ActivationPoll     time.Duration // how long a handler polls the contract after activation (10s)
	UnknownOrderWait   time.Duration // how long a shipment or callback waits for its order.placed (10s)
	DuplicateWindow    time.Duration // SMARTRENT_OUT's Nats-Msg-Id window (DUPLICATE_WINDOW, 2m)
	// RetryBase and RetryMax are the consumers' retry schedule
	// (streams.DefaultRetryBase, DefaultRetryMax):
	// after a transient failure, a step with a side effect is held for
	// RetryBase·2^(n−1) (capped at RetryMax, ±10 %) after its attempt n, or
	// Inbank's Retry-After, whichever path would try it next.
	RetryBase, RetryMax time.Duration
	// MaxAttempts bounds the session creation attempts of one order
	// (MAX_DELIVER); 0: no bound.
	MaxAttempts int

	// Shops are further Inbank shops by alias (INBANK_SHOPS_FILE).
	Shops map[string]ShopConfig

	Owner   string // this bridge's id in claims
	Source  string // CloudEvent source
	Logger  *slog.Logger
	Metrics *Metrics
	Tracer  trace.Tracer // spans for steps and publishes; none when nil
	Hooks   Hooks
	Now     func() time.Time
}

// Workflow drives orders. It is safe for concurrent use.
type Workflow struct {
	cfg   Config
	log   *slog.Logger
	shops map[string]*shop // "" is the default shop
	reads keyLocks         // session reads, one at a time per order

	published *publications // events this process saw stored
	beside    *beside       // calls made beside another
}

// New checks cfg and fills defaults.
func New(cfg Config) (*Workflow, error) {
	if cfg.Inbank == nil || cfg.Store == nil || cfg.Publisher == nil || cfg.Codec == nil || cfg.Tokens == nil {
		return nil, errors.New("handlers: inbank, store, publisher, codec and tokens are required")
	}
	if cfg.CallbackBaseURL == "" {
		return nil, errors.New("handlers: callback base URL is required")
	}
	if cfg.Policy == "" {
		cfg.Policy = activation.OnDelivery
	}
	if !cfg.Policy.Valid() {
		return nil, fmt.Errorf("handlers: activation policy %q: want on-delivery, on-shipment or portal", cfg.Policy)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.SessionTTL, 24*time.Hour)
	def(&cfg.ClaimTTL, 45*time.Second)
	def(&cfg.ActivationSettle, 2*time.Minute)
	def(&cfg.ActivationPoll, 10*time.Second)
	def(&cfg.UnknownOrderWait, 10*time.Second)
	def(&cfg.DuplicateWindow, 2*time.Minute)
	def(&cfg.RetryBase, streams.DefaultRetryBase)
	def(&cfg.RetryMax, streams.DefaultRetryMax)
	if cfg.Conditions == nil {
		cfg.Conditions = inbank.NewConditions(cfg.Inbank, nil)
	}
	if cfg.Owner == "" {
		cfg.Owner = uuid.NewString()
	}
	if cfg.Source == "" {
		cfg.Source = "urn:smartrent:bridge"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider().Tracer("")
	}
	if cfg.Hooks.AfterInbankCall == nil {
		cfg.Hooks.AfterInbankCall = func(string, string) error { return nil }
	}
	w := &Workflow{cfg: cfg, log: cfg.Logger, published: newPublications(), beside: newBeside(), shops: map[string]*shop{
		"": {alias: "", api: cfg.Inbank, conditions: cfg.Conditions, productCode: cfg.DefaultProductCode, policy: cfg.Policy, ttl: cfg.SessionTTL},
	}}
	w.cfg.Store = publishedFilter{Store: cfg.Store, w: w}
	for alias, sc := range cfg.Shops {
		alias = ids.ShopAlias(alias)
		if alias == "" || sc.Inbank == nil {
			return nil, fmt.Errorf("handlers: shop %q needs an alias other than the default's and an Inbank client", alias)
		}
		s := &shop{alias: alias, api: sc.Inbank, conditions: sc.Conditions, productCode: sc.ProductCode, policy: sc.Policy, ttl: sc.SessionTTL}
		if s.conditions == nil {
			s.conditions = inbank.NewConditions(sc.Inbank, nil)
		}
		if s.policy == "" {
			s.policy = cfg.Policy
		}
		if !s.policy.Valid() {
			return nil, fmt.Errorf("handlers: shop %s: activation policy %q: want on-delivery, on-shipment or portal", alias, s.policy)
		}
		if s.ttl <= 0 {
			s.ttl = cfg.SessionTTL
		}
		w.shops[alias] = s
	}
	return w, nil
}

// errWait means another bridge holds the step or Inbank needs time; the
// input is retried after the delay.
type waitError struct {
	why   string
	after time.Duration
}

func (e *waitError) Error() string { return "waiting: " + e.why }

func wait(after time.Duration, format string, args ...any) error {
	return &waitError{why: fmt.Sprintf(format, args...), after: max(after, 100*time.Millisecond)}
}

// StepError is an Inbank call that failed. After, when set, is how long
// the step is held before it may be tried again (see [Workflow.callFailed]):
// the input comes back then, not on the consumer's own schedule.
type StepError struct {
	Step  string
	Err   error
	After time.Duration
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// ErrAbandoned is returned when a hook stopped the work.
var ErrAbandoned = errors.New("abandoned by hook")

// AsConsumerError maps a workflow error onto what the consumer does with
// the message: wait and transient errors are retried later (Inbank's
// Retry-After honoured), permanent ones dead-lettered. It is the one place
// that decides: handlers return what happened (a wait, a StepError with
// Inbank's failure, an unprocessable input), never a disposition.
func AsConsumerError(err error) error {
	var w *waitError
	var se *StepError
	var u *unprocessableError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &u):
		return streams.Permanent(err)
	case errors.As(err, &w):
		return streams.RetryAfter(err, w.after)
	case errors.Is(err, ErrAbandoned):
		return streams.RetryAfter(err, time.Second)
	case errors.As(err, &se) && !inbankapi.IsTransient(se.Err):
		return streams.Permanent(err)
	case errors.As(err, &se) && se.After > 0:
		return streams.RetryAfter(err, se.After)
	case inbankapi.IsTransient(err):
		return streams.RetryAfter(err, inbankapi.RetryAfter(err))
	}
	return err
}

// maxLoops bounds one Advance; each loop makes progress or returns.
const maxLoops = 30

// Advance drives the order stored under key ([order.StoreKey]) as far as it
// can go now. refresh re-reads the
// session (and, once activation was called, the contract) from Inbank even
// without a callback.
func (w *Workflow) Advance(ctx context.Context, key string, refresh bool) error {
	// The first look is fresh: deciding that there is nothing to do is
	// checked by no compare-and-set. Later looks follow our own writes.
	return w.advance(ctx, key, refresh, nil)
}

// advance drives the order stored under key, or first (not stored yet:
// its first write creates it) when given.
func (w *Workflow) advance(ctx context.Context, key string, refresh bool, first *order.Order) error {
	var outcome error // a step's permanent failure, returned once the order is at rest
	load := w.cfg.Store.LoadFresh
	// One order for every loop: step takes its address, so each would be
	// a heap allocation of the whole order. Every loop sets all of it, and
	// nothing keeps it past a step (the calculation beside the session is
	// awaited).
	var o order.Order
	for range maxLoops {
		var rev uint64
		var err error
		if first != nil {
			o, first = *first, nil
		} else if o, rev, err = load(ctx, key); err != nil {
			return err
		}
		load = w.cfg.Store.Load
		progressed, failure, err := w.step(ctx, &o, rev, refresh)
		switch {
		case errors.Is(err, orderstore.ErrConflict):
			continue // someone else moved the order: look again
		case err != nil:
			return err
		case failure != nil:
			outcome = failure // publish order.failed, then report the failure
		case !progressed:
			return outcome
		}
		refresh = false // once per Advance is enough
	}
	return fmt.Errorf("order %s: no rest after %d steps", key, maxLoops)
}

// flush publishes the outbox, then removes what was acknowledged: by
// writing the order, or, for an open order whose placing input writes
// its index entry next, by naming the events there (one write fewer for
// every new order; see "What an order costs in JetStream writes").
func (w *Workflow) flush(ctx context.Context, o *order.Order, rev uint64) error {
	ids := make([]string, 0, len(o.Outbox))
	for _, ev := range o.Outbox {
		if err := w.publishOutbox(ctx, o, ev); err != nil {
			return err
		}
		w.published.add(ev.ID)
		ids = append(ids, ev.ID)
	}
	o.OutboxPublished()
	if indexed := publicationsIndexed(ctx); indexed != nil && w.cfg.Open != nil && !order.Final(o.State) {
		indexed.add(ids...)
		return nil
	}
	_, err := w.cfg.Store.Save(ctx, o.Key(), *o, rev)
	return err
}

// publishOutbox publishes one outbox event in a producer span that joins
// the trace of the input that caused it.
func (w *Workflow) publishOutbox(ctx context.Context, o *order.Order, ev order.OutboxEvent) error {
	if ev.TraceParent != "" {
		ctx = telemetry.ContextWithTraceParent(ctx, ev.TraceParent)
	}
	ctx, span := w.cfg.Tracer.Start(ctx, "publish "+ev.Type, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("smartrent.order_id", o.OrderID), attribute.String("cloudevents.event_id", ev.ID)))
	defer span.End()
	tp := telemetry.TraceParent(ctx) // the producer span's
	if tp == "" {
		tp = ev.TraceParent
	}
	// json.RawMessage, not []byte: sdk-go marks []byte as binary and would
	// write data_base64, which no JSON consumer reads as data.
	e, err := w.newEvent(o.OrderID, ev.Type, ev.ID, json.RawMessage(ev.Data), tp)
	if err != nil {
		return fmt.Errorf("outbox %s: %w", ev.Type, err)
	}
	if _, err := w.cfg.Publisher.Publish(ctx, e); err != nil {
		span.SetStatus(codes.Error, err.Error())
		return fmt.Errorf("publish %s for order %s: %w", ev.Type, o.OrderID, err)
	}
	w.cfg.Metrics.published(ev.Type)
	return nil
}

// newEvent is a state event of the order with its fixed id, in the trace
// of traceParent ("" for none).
func (w *Workflow) newEvent(orderID, typ, id string, data any, traceParent string) (event.Event, error) {
	e, err := w.cfg.Codec.NewWithID(id, w.cfg.Source, typ, orderID, data)
	if err != nil {
		return e, err
	}
	e.SetTime(w.now())
	if traceParent != "" {
		e.SetExtension(events.ExtensionTraceParent, traceParent)
	}
	return e, nil
}

// update loads the order, applies change and saves, again on conflicts.
// change reports whether there is anything to write; written is false
// when, on the store's latest value, there was not.
func (w *Workflow) update(ctx context.Context, key string, change func(o *order.Order) (bool, error)) (o order.Order, written bool, err error) {
	fresh := false
	for range maxLoops {
		load := w.cfg.Store.Load
		if fresh {
			load = w.cfg.Store.LoadFresh
		}
		o, rev, err := load(ctx, key)
		if err != nil {
			return o, false, err
		}
		from := o.State
		write, err := change(&o)
		switch {
		case err != nil:
			return o, false, err
		case !write && !fresh:
			// Writing nothing is a decision no compare-and-set checks:
			// make it on the store's own value.
			fresh = true
			continue
		case !write:
			return o, false, nil
		}
		if tp := traceParentFrom(ctx); tp != "" {
			o.TraceParent = tp
		}
		if err := w.write(ctx, &o, rev, from); err != nil {
			if errors.Is(err, orderstore.ErrConflict) {
				fresh = true
				continue
			}
			return o, false, err
		}
		return o, true, nil
	}
	return order.Order{}, false, fmt.Errorf("order %s: too many concurrent changes", key)
}

// holdForRetry records, best effort, that owner's call of step failed
// transiently: its claim becomes a hold until the retry is due
// ([order.Order.HoldForRetry]). The step is retried either way; when the
// write fails the retry waits for the claim to expire (CLAIM_TTL), which
// the log line says.
func (w *Workflow) holdForRetry(ctx context.Context, key, step, owner string, after time.Duration, notApplied bool) {
	_, _, err := w.update(ctx, key, func(o *order.Order) (bool, error) {
		return o.HoldForRetry(step, owner, w.now().Add(after), notApplied), nil
	})
	if err != nil {
		w.log.WarnContext(ctx, "could not release the step's claim; its retry waits for CLAIM_TTL", "step", step, "err", err)
	}
}

type traceKey struct{}

// withTraceParent keeps the input's trace context for the state it writes
// and the events it causes.
func withTraceParent(ctx context.Context, tp string) context.Context {
	if tp == "" {
		return ctx
	}
	return context.WithValue(ctx, traceKey{}, tp)
}

func traceParentFrom(ctx context.Context) string {
	tp, _ := ctx.Value(traceKey{}).(string)
	return tp
}

// attemptID names one attempt at a step. Claims are per attempt, not per
// process: two deliveries of one message in the same bridge (after an ack
// timeout) must not both call Inbank either.
func (w *Workflow) attemptID() string { return w.cfg.Owner + "/" + uuid.NewString() }

func (w *Workflow) now() time.Time { return w.cfg.Now().UTC() }

// fail ends the order stored under key after a permanent Inbank refusal
// and queues order.failed. The failure it returns is what the input ends
// with once the order is at rest (see advance).
func (w *Workflow) fail(ctx context.Context, key, step string, cause error, attempts int) (*StepError, error) {
	if err := stopped(ctx, cause); err != nil {
		return nil, fmt.Errorf("order %s, step %s: %w", key, step, err)
	}
	_, _, err := w.update(ctx, key, func(o *order.Order) (bool, error) {
		return o.Fail(step, cause, attempts, w.now()), nil
	})
	if err != nil {
		return nil, err
	}
	w.log.ErrorContext(ctx, "order failed", "order_id", key, "step", step, "err", cause)
	return &StepError{Step: step, Err: cause}, nil
}

// stopped returns the cancellation when ctx was cancelled or cause is
// one: the work was stopped (the process shutting down, a reconcile pass
// cut short), and no Inbank answer is to be judged from it. It is left
// as if the process had died there, for the next attempt.
func stopped(ctx context.Context, cause error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

// unprocessableError is an input or a state this bridge cannot process
// however often it is tried (an event type without a handler, a shop not
// configured, a state key holding another order). Handlers say what went
// wrong; AsConsumerError alone decides what the consumer does with it.
type unprocessableError struct{ err error }

func unprocessable(err error) error { return &unprocessableError{err} }

func (e *unprocessableError) Error() string { return e.err.Error() }
func (e *unprocessableError) Unwrap() error { return e.err }

// certainlyNotApplied reports that Inbank certainly did not act: it answered
// 429 or 502–504, or the call was never sent (inbankapi.NotSentError).
func certainlyNotApplied(err error) bool {
	var api *inbankapi.APIError
	var notSent *inbankapi.NotSentError
	return errors.As(err, &api) && api.Retryable() || errors.As(err, &notSent)
}
