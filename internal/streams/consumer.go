package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/smartrent-bridge/bridge/internal/events"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sethvargo/go-retry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/smartrent-bridge/bridge/internal/ids"
	"github.com/smartrent-bridge/bridge/internal/telemetry"
)

// Dead-letter headers (contract: "Dead letters").
const (
	HeaderDLQReason     = "Smartrent-Dlq-Reason"
	HeaderDLQStream     = "Smartrent-Dlq-Stream"
	HeaderDLQStreamSeq  = "Smartrent-Dlq-Stream-Seq"
	HeaderDLQDeliveries = "Smartrent-Dlq-Deliveries"
	HeaderDLQTime       = "Smartrent-Dlq-Time"
)

// Delivery describes one delivery of a message.
type Delivery struct {
	Subject      string
	Stream       string
	StreamSeq    uint64
	NumDelivered uint64
	MaxDeliver   int
	Published    time.Time // when the message was stored
}

// Last reports whether this is the last delivery the consumer allows.
func (d Delivery) Last() bool { return d.MaxDeliver > 0 && d.NumDelivered >= uint64(d.MaxDeliver) }

// Handler handles decoded events of one consumer.
type Handler interface {
	// Handle applies the event. nil acks it; an error marked with
	// [Permanent] dead-letters it; any other error retries it later
	// (after [RetryAfter]'s delay when given).
	Handle(ctx context.Context, env events.Envelope, d Delivery) error
	// Invalid is told about a message that cannot be decoded, before it
	// is dead-lettered (for example to reject the order it names).
	Invalid(ctx context.Context, d Delivery, err *events.DecodeError) error
	// GiveUp is told about an event that failed permanently or ran out of
	// deliveries, before it is dead-lettered.
	GiveUp(ctx context.Context, env events.Envelope, d Delivery, cause error) error
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying: the message is dead-lettered.
func Permanent(err error) error { return &permanentError{err} }

// IsPermanent reports whether err was marked with [Permanent].
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type retryError struct {
	err   error
	after time.Duration
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// RetryAfter asks for the message to be redelivered after d (e.g. Inbank's
// Retry-After, or the wait for an order that has not arrived yet).
func RetryAfter(err error, d time.Duration) error { return &retryError{err, d} }

// ConsumerConfig configures [Consume].
type ConsumerConfig struct {
	Stream, Consumer string
	Concurrency      int           // messages handled at once (default 16)
	MaxDeliver       int           // as on the server's consumer
	AckWait          time.Duration // as on the server's consumer; progress is reported at a third of it
	RetryBase        time.Duration // first retry delay (default 1 s), doubling per delivery
	RetryMax         time.Duration // cap of the retry delay (default 1 min)
	Logger           *slog.Logger
	Metrics          *ConsumerMetrics
	Tracer           trace.Tracer // a span per consumed event; none when nil
	// Middleware wraps the handler inside the consumer's own (metrics,
	// disposition, tracing), first outermost: tests hook in here.
	Middleware []Middleware
}

// Msg is one decoded message in a consumer's hands, as middleware sees it.
type Msg struct {
	Env      events.Envelope
	Delivery Delivery
	// Outcome is what the disposition did (ok, retry or dead_letter), and
	// Err the handler's error it acted on.
	Outcome string
	Err     error

	raw      jetstream.Msg
	consumer string
	shop     string
	traceID  string
	base     *slog.Logger
	logOnce  sync.Once
	log      *slog.Logger
}

// Log is the message's logger: it names the consumer, subject, stream
// sequence, delivery, order, type, shop and (when traced) trace. It is
// built on first use: most messages are acked and log nothing, and a
// logger's eight attributes cost about 2 KB per message.
func (m *Msg) Log() *slog.Logger {
	m.logOnce.Do(func() {
		m.log = deliveryLog(m.base, m.consumer, m.Delivery, m.Env.OrderID()).With("type", m.Env.Event.Type(), "shop", m.shop)
		if m.traceID != "" {
			m.log = m.log.With("trace_id", m.traceID)
		}
	})
	return m.log
}

// deliveryLog names one delivery of consumer's in base's lines: the
// consumer, subject, stream sequence, delivery and order.
func deliveryLog(base *slog.Logger, consumer string, d Delivery, orderID string) *slog.Logger {
	return base.With("consumer", consumer, "subject", d.Subject, "stream_seq", d.StreamSeq, "delivery", d.NumDelivered, "order_id", orderID)
}

// HandlerFunc handles one decoded message. Its error decides what happens
// to the message: see [Handler.Handle].
type HandlerFunc func(ctx context.Context, m *Msg) error

// Middleware wraps a HandlerFunc, as Watermill's router middleware does:
// the consumer's retry and dead-lettering, tracing and metrics are
// middleware around the handler, not steps inside it.
type Middleware func(HandlerFunc) HandlerFunc

// Consumer runs a durable pull consumer.
type Consumer struct {
	cfg   ConsumerConfig
	js    jetstream.JetStream
	nc    *nats.Conn
	codec *events.Codec
	pub   *Publisher
	h     Handler
	chain HandlerFunc // the handler inside its middleware

	wg      sync.WaitGroup // messages handed to workers and not yet handled
	work    chan jetstream.Msg
	workers atomic.Int64
	quit    chan struct{}
	stop    sync.Once
	cc      jetstream.ConsumeContext
	adv     *nats.Subscription
	advWork sync.WaitGroup
}

// Consume starts handling messages of an existing durable consumer until
// Stop. Messages that cannot be decoded, fail permanently or run out of
// deliveries are republished to SMARTRENT_DLQ before they are terminated;
// nothing is dropped without a trace.
func Consume(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, codec *events.Codec, h Handler, cfg ConsumerConfig) (*Consumer, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = DefaultRetryBase
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider().Tracer("")
	}
	c := &Consumer{cfg: cfg, js: js, nc: nc, codec: codec, pub: NewPublisher(js, codec), h: h, work: make(chan jetstream.Msg), quit: make(chan struct{})}
	c.chain = c.handler()
	cfg.Metrics.init(cfg.Consumer)
	// Looked up as a set-up step (Await): a cluster that has just
	// formed (or is busy) may leave a request unanswered for seconds, and
	// a bridge that gave up here exited while its peers started (soak
	// scale: 3 bridges on a new R3 cluster, half the runs). ctx bounds
	// the waiting; under WithSetupReport each wait is reported.
	var cons jetstream.Consumer
	err := Await(ctx, "consumer "+cfg.Consumer, func(ctx context.Context) error {
		var err error
		cons, err = js.Consumer(ctx, cfg.Stream, cfg.Consumer)
		return err
	})
	if err != nil {
		return nil, err
	}
	// A message whose last delivery was never answered (the process died)
	// is given up by the server with an advisory: dead-letter it then.
	subj := fmt.Sprintf("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.%s.%s", cfg.Stream, cfg.Consumer)
	c.adv, err = nc.Subscribe(subj, c.onMaxDeliveries)
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", subj, err)
	}
	c.cc, err = cons.Consume(c.dispatch, jetstream.PullMaxMessages(cfg.Concurrency), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			cfg.Logger.Warn("consume", "consumer", cfg.Consumer, "err", err)
		}
	}))
	if err != nil {
		c.adv.Unsubscribe()
		return nil, fmt.Errorf("consume %s: %w", cfg.Consumer, err)
	}
	return c, nil
}

// dispatch hands m to an idle worker, starts one while there are fewer
// than Concurrency, or waits for one to be free: at most Concurrency
// messages are handled at once. Workers live as long as the consumer, so
// a message does not start a goroutine whose stack grows again through
// the whole handler each time.
func (c *Consumer) dispatch(m jetstream.Msg) {
	c.wg.Add(1)
	select {
	case c.work <- m:
		return
	default:
	}
	if c.workers.Add(1) <= int64(c.cfg.Concurrency) {
		go c.worker(m)
		return
	}
	c.workers.Add(-1)
	c.work <- m
}

// worker handles m, then every message handed to it, until Stop.
func (c *Consumer) worker(m jetstream.Msg) {
	for {
		c.handle(m)
		c.wg.Done()
		select {
		case m = <-c.work:
		case <-c.quit:
			return
		}
	}
}

// Stop stops fetching, lets buffered and in-flight messages finish (or
// ctx end), and returns.
func (c *Consumer) Stop(ctx context.Context) {
	c.adv.Unsubscribe()
	c.cc.Drain()
	select {
	case <-c.cc.Closed():
	case <-ctx.Done():
		c.cc.Stop()
	}
	done := make(chan struct{})
	go func() { c.wg.Wait(); c.advWork.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	c.stop.Do(func() { close(c.quit) }) // idle workers end; busy ones after their message
}

func delivery(m jetstream.Msg, maxDeliver int) Delivery {
	d := Delivery{Subject: m.Subject(), MaxDeliver: maxDeliver}
	if md, err := m.Metadata(); err == nil {
		d.Stream, d.StreamSeq, d.NumDelivered, d.Published = md.Stream, md.Sequence.Stream, md.NumDelivered, md.Timestamp
	}
	return d
}

// handler is the Handler inside the consumer's middleware: metrics
// outermost (they see the disposition's outcome and the whole time), then
// tracing (the span covers the dead letter and order.failed too), then the
// disposition (ack, retry or dead letter), then the configured middleware.
func (c *Consumer) handler() HandlerFunc {
	h := HandlerFunc(func(ctx context.Context, m *Msg) error { return c.h.Handle(ctx, m.Env, m.Delivery) })
	for i := len(c.cfg.Middleware) - 1; i >= 0; i-- {
		h = c.cfg.Middleware[i](h)
	}
	return c.measured(c.traced(c.disposed(h)))
}

func (c *Consumer) handle(raw jetstream.Msg) {
	start := time.Now()
	d := delivery(raw, c.cfg.MaxDeliver)
	defer c.heartbeat(raw)()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	env, err := c.codec.Decode(raw.Headers(), raw.Data())
	var de *events.DecodeError
	if errors.As(err, &de) {
		c.invalid(ctx, raw, d, de, deliveryLog(c.cfg.Logger, c.cfg.Consumer, d, de.OrderID), start)
		return
	}
	shop := ids.ShopName(events.ShopOf(env.Data))
	ctx = telemetry.WithLogAttrs(ctx, slog.String("shop", shop))
	_ = c.chain(ctx, &Msg{Env: env, Delivery: d, raw: raw, consumer: c.cfg.Consumer, shop: shop, base: c.cfg.Logger})
}

// invalid reports an undecodable message to the handler, then
// dead-letters it.
func (c *Consumer) invalid(ctx context.Context, raw jetstream.Msg, d Delivery, de *events.DecodeError, log *slog.Logger, start time.Time) {
	if herr := c.h.Invalid(ctx, d, de); herr != nil {
		log.Error("could not report an invalid message; will retry", "err", herr)
		c.retry(raw, d, herr, log)
		c.cfg.Metrics.observe(c.cfg.Consumer, "", "retry", start)
		return
	}
	c.deadLetter(ctx, raw, d, "invalid message: "+de.Error(), log)
	c.cfg.Metrics.observe(c.cfg.Consumer, de.Type, "invalid", start)
}

// measured counts each message by type and outcome, with its handling time.
func (c *Consumer) measured(next HandlerFunc) HandlerFunc {
	return func(ctx context.Context, m *Msg) error {
		start := time.Now()
		err := next(ctx, m)
		c.cfg.Metrics.observe(c.cfg.Consumer, m.Env.Event.Type(), m.Outcome, start)
		return err
	}
}

// disposed answers the server for the handler: ack on nil; dead letter
// (after the handler's GiveUp) on a permanent error or the last delivery;
// otherwise a NAK with the retry schedule's delay.
func (c *Consumer) disposed(next HandlerFunc) HandlerFunc {
	return func(ctx context.Context, m *Msg) error {
		err := next(ctx, m)
		m.Err = err
		d := m.Delivery
		switch {
		case err == nil:
			m.Outcome = "ok"
			if aerr := m.raw.Ack(); aerr != nil {
				m.Log().Warn("ack failed; the message will come again and is handled idempotently", "err", aerr)
			}
		case IsPermanent(err) || d.Last():
			reason := err.Error()
			if !IsPermanent(err) {
				reason = fmt.Sprintf("gave up after %d deliveries: %s", d.NumDelivered, reason)
			}
			if herr := c.h.GiveUp(ctx, m.Env, d, err); herr != nil {
				m.Log().Error("could not report a failed message; will retry", "err", herr, "cause", err)
				m.Outcome = "retry"
				_ = m.raw.NakWithDelay(c.cfg.RetryBase)
				return nil
			}
			m.Outcome = "dead_letter"
			c.deadLetter(ctx, m.raw, d, reason, m.Log())
		default:
			m.Outcome = "retry"
			c.retry(m.raw, d, err, m.Log())
		}
		return nil
	}
}

// traced runs the rest in a consumer span joined to the trace the event
// carries: the span's context flows into the Inbank calls and the events
// this one causes. The span fails when the handler did.
func (c *Consumer) traced(next HandlerFunc) HandlerFunc {
	return func(ctx context.Context, m *Msg) error {
		d := m.Delivery
		ctx, span := c.cfg.Tracer.Start(telemetry.ContextWithTraceParent(ctx, events.TraceParent(m.Env.Event)), "consume "+m.Env.Event.Type(),
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", d.Subject),
				attribute.String("smartrent.order_id", m.Env.OrderID()), attribute.Int64("messaging.nats.stream_sequence", int64(d.StreamSeq))))
		defer span.End()
		if sc := span.SpanContext(); sc.IsValid() {
			m.traceID = sc.TraceID().String()
		}
		err := next(ctx, m)
		if m.Err != nil {
			span.SetStatus(codes.Error, m.Err.Error())
		}
		return err
	}
}

// retry naks with the delay of the README's schedule: Inbank's
// Retry-After (or a handler's wait) as asked, up to 10 % later; otherwise
// RetryBase·2^(n−1) after delivery n, capped at RetryMax, ±10 % jitter so
// that messages failed together do not come back together. A bare Nak
// would burn MaxDeliver at once. The consumers have no BackOff: the
// server would add BackOff[n] − AckWait to every delay asked here.
func (c *Consumer) retry(m jetstream.Msg, d Delivery, err error, log *slog.Logger) {
	delay := RetryDelay(d.NumDelivered, c.cfg.RetryBase, c.cfg.RetryMax)
	var re *retryError
	if errors.As(err, &re) && re.after > 0 {
		delay = AskedDelay(re.after)
	}
	log.Info("retrying later", "after", delay.Round(time.Millisecond).String(), "err", err)
	if nerr := m.NakWithDelay(delay); nerr != nil {
		log.Warn("nak failed; the message will come again after the ack wait", "err", nerr)
	}
}

// MaxRetryAfter bounds a Retry-After (or a handler's wait): a message
// asked to wait longer comes again after this.
const MaxRetryAfter = 15 * time.Minute

// The default retry schedule of [RetryDelay] (ConsumerConfig's RetryBase
// and RetryMax).
const (
	DefaultRetryBase = time.Second
	DefaultRetryMax  = time.Minute
)

// AskedDelay is the wait for a delay asked for (Inbank's Retry-After, a
// handler's wait): d, at most MaxRetryAfter, up to 10 % later so that
// messages asked together do not come back together.
func AskedDelay(d time.Duration) time.Duration {
	d = min(d, MaxRetryAfter)
	return d + rand.N(d/10+1)
}

// RetryDelay is the wait after delivery n (n ≥ 1) failed transiently:
// base·2^(n−1), capped at maxDelay, ±10 % jitter.
func RetryDelay(n uint64, base, maxDelay time.Duration) time.Duration {
	b := retry.WithJitterPercent(10, retry.WithCappedDuration(maxDelay, retry.NewExponential(base)))
	var d time.Duration
	for range min(max(n, 1), 32) {
		d, _ = b.Next()
	}
	return d
}

// heartbeat tells the server every AckWait/3 that m is still being
// worked on, until the returned stop is called. A timer, not a goroutine
// with a ticker: thousands of messages in flight then cost no goroutine
// stacks to grow and scan while they wait.
func (c *Consumer) heartbeat(m jetstream.Msg) (stop func()) {
	every := c.cfg.AckWait / 3
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock() // t is read by the timer's function
	defer mu.Unlock()
	t = time.AfterFunc(every, func() {
		_ = m.InProgress()
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(every)
		}
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// deadLetter republishes m to the DLQ, then terminates it. If the DLQ
// publish fails the message is left for redelivery: nothing is dropped.
func (c *Consumer) deadLetter(ctx context.Context, m jetstream.Msg, d Delivery, reason string, log *slog.Logger) {
	if err := DeadLetter(ctx, c.pub, d, m.Headers(), m.Data(), reason); err != nil {
		log.Error("dead-letter failed; will retry", "err", err)
		_ = m.NakWithDelay(c.cfg.RetryBase)
		return
	}
	log.Warn("dead-lettered", "reason", oneLine(reason))
	c.cfg.Metrics.deadLetter(c.cfg.Consumer)
	if err := m.TermWithReason(oneLine(reason)); err != nil {
		log.Warn("term failed", "err", err)
	}
}

// DeadLetter republishes a message to smartrent.dlq.<subject> with the
// contract's headers. Its Nats-Msg-Id is the original's, or
// <stream>-<seq>, so dead-lettering the same message twice stores it once.
func DeadLetter(ctx context.Context, pub *Publisher, d Delivery, hdr nats.Header, data []byte, reason string) error {
	out := &nats.Msg{Subject: events.SubjectDLQPrefix + d.Subject, Data: data, Header: nats.Header{}}
	for k, v := range hdr {
		out.Header[k] = append([]string(nil), v...)
	}
	if out.Header.Get(HeaderMsgID) == "" {
		out.Header.Set(HeaderMsgID, fmt.Sprintf("%s-%d", d.Stream, d.StreamSeq))
	}
	out.Header.Set(HeaderDLQReason, oneLine(reason))
	out.Header.Set(HeaderDLQStream, d.Stream)
	out.Header.Set(HeaderDLQStreamSeq, strconv.FormatUint(d.StreamSeq, 10))
	out.Header.Set(HeaderDLQDeliveries, strconv.FormatUint(d.NumDelivered, 10))
	out.Header.Set(HeaderDLQTime, time.Now().UTC().Format(time.RFC3339))
	_, err := pub.PublishMsg(ctx, out)
	return err
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 500 {
		s = s[:500]
	}
	return s
}

// onMaxDeliveries dead-letters a message the server gave up on.
func (c *Consumer) onMaxDeliveries(advisory *nats.Msg) {
	var a struct {
		Stream     string `json:"stream"`
		Consumer   string `json:"consumer"`
		StreamSeq  uint64 `json:"stream_seq"`
		Deliveries uint64 `json:"deliveries"`
	}
	if err := json.Unmarshal(advisory.Data, &a); err != nil || a.StreamSeq == 0 {
		return
	}
	// Anyone allowed to publish on the advisory subject could fail a live
	// order (deploy/nats/nats-server-secure.conf allows nobody): believe
	// only an advisory that matches this consumer, its MAX_DELIVER and a
	// message it has not acknowledged.
	if a.Stream != c.cfg.Stream || a.Consumer != c.cfg.Consumer || (c.cfg.MaxDeliver > 0 && a.Deliveries < uint64(c.cfg.MaxDeliver)) {
		c.cfg.Logger.Warn("max deliveries advisory does not match the consumer; ignored", "consumer", c.cfg.Consumer, "stream_seq", a.StreamSeq)
		return
	}
	c.advWork.Add(1)
	go func() {
		defer c.advWork.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		log := c.cfg.Logger.With("consumer", c.cfg.Consumer, "stream_seq", a.StreamSeq)
		if cons, err := c.js.Consumer(ctx, c.cfg.Stream, c.cfg.Consumer); err == nil && a.StreamSeq <= cons.CachedInfo().AckFloor.Stream {
			log.Warn("max deliveries advisory for an acknowledged message; ignored")
			return
		}
		s, err := c.js.Stream(ctx, c.cfg.Stream)
		if err != nil {
			log.Error("max deliveries: cannot read the stream", "err", err)
			return
		}
		raw, err := s.GetMsg(ctx, a.StreamSeq)
		if err != nil {
			log.Error("max deliveries: cannot read the message", "err", err)
			return
		}
		d := Delivery{Subject: raw.Subject, Stream: c.cfg.Stream, StreamSeq: a.StreamSeq, NumDelivered: a.Deliveries, MaxDeliver: c.cfg.MaxDeliver, Published: raw.Time}
		reason := fmt.Sprintf("gave up after %d deliveries without an answer", a.Deliveries)
		if env, err := c.codec.Decode(raw.Header, raw.Data); err == nil {
			if err := c.h.GiveUp(ctx, env, d, errors.New(reason)); err != nil {
				log.Error("max deliveries: could not report", "err", err)
			}
		}
		if err := DeadLetter(ctx, c.pub, d, raw.Header, raw.Data, reason); err != nil {
			log.Error("max deliveries: dead-letter failed", "err", err)
			return
		}
		c.cfg.Metrics.deadLetter(c.cfg.Consumer)
		log.Warn("dead-lettered", "reason", reason)
	}()
}

// ConsumerMetrics counts handled messages. A nil *ConsumerMetrics records
// nothing.
type ConsumerMetrics struct {
	handled  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	dlq      *prometheus.CounterVec
}

// NewConsumerMetrics registers the consumer metrics with reg.
func NewConsumerMetrics(reg prometheus.Registerer) (*ConsumerMetrics, error) {
	m := &ConsumerMetrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartrent_events_handled_total",
			Help: "Consumed events by consumer, event type and outcome (ok, retry, invalid, dead_letter).",
		}, []string{"consumer", "type", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "smartrent_handler_duration_seconds",
			Help:    "Time to handle one event, by consumer.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"consumer"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartrent_dead_letters_total",
			Help: "Messages republished to SMARTRENT_DLQ, by consumer.",
		}, []string{"consumer"}),
	}
	for _, c := range []prometheus.Collector{m.handled, m.duration, m.dlq} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// TypeOther is the type label of an event whose type is not one of the
// contract's: label values come from a fixed set, never from a publisher
// (an undecodable event's type is any string, up to a message's size).
const TypeOther = "other"

func (m *ConsumerMetrics) observe(consumer, typ, outcome string, start time.Time) {
	if m == nil {
		return
	}
	if _, known := events.SubjectOf(typ); !known && typ != "" {
		typ = TypeOther
	}
	m.handled.WithLabelValues(consumer, typ, outcome).Inc()
	m.duration.WithLabelValues(consumer).Observe(time.Since(start).Seconds())
}

// init exports the consumer's dead-letter counter at zero, so alerts see
// the series before the first dead letter.
func (m *ConsumerMetrics) init(consumer string) {
	if m != nil {
		m.dlq.WithLabelValues(consumer)
	}
}

func (m *ConsumerMetrics) deadLetter(consumer string) {
	if m != nil {
		m.dlq.WithLabelValues(consumer).Inc()
	}
}
