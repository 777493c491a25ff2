// Package app wires the binaries: configuration from flags and the
// environment, connections, and the run loop of the bridge and the webhook
// ingress. cmd/* call it; the demo runs both in one process.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/smartrent-bridge/bridge/internal/activation"
	"github.com/smartrent-bridge/bridge/internal/callbacktoken"
	"github.com/smartrent-bridge/bridge/internal/cli"
	"github.com/smartrent-bridge/bridge/internal/ctl"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/handlers"
	"github.com/smartrent-bridge/bridge/internal/ids"
	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/inbankapi"
	"github.com/smartrent-bridge/bridge/internal/natsconn"
	"github.com/smartrent-bridge/bridge/internal/order"
	"github.com/smartrent-bridge/bridge/internal/orderstore"
	"github.com/smartrent-bridge/bridge/internal/quote"
	"github.com/smartrent-bridge/bridge/internal/shops"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/internal/ttlcache"
	"github.com/smartrent-bridge/bridge/internal/version"
	"github.com/smartrent-bridge/bridge/schemas"
)

// BridgeStarted tells where a started bridge listens.
type BridgeStarted struct {
	Ops net.Addr
}

// BridgeOptions are hooks for tests; main passes none.
type BridgeOptions struct {
	Hooks handlers.Hooks
	// Reload, when not nil, works like SIGHUP: key and secret files are
	// read again.
	Reload <-chan struct{}
	// TracerProvider replaces the one the OTEL_* variables configure.
	TracerProvider trace.TracerProvider
}

// bridgeConfig is the bridge's configuration, from flags and environment.
type bridgeConfig struct {
	nats                                        *natsconn.Settings
	process                                     *processSettings
	baseURL, apiKey, shopUUID, productCode      string
	policyText, callbackBase, secret, shopsFile string
	policy                                      activation.Policy
	inbankTimeout, sessionTTL, reconcile        time.Duration
	claimTTL, settle, retention                 time.Duration
	quoteTimeout, conditionsTTL, calcTTL        time.Duration
	concurrency                                 int
	validateOutgoing                            bool // VALIDATE_OUTGOING
}

func parseBridgeConfig(args []string, getenv cli.Getenv) (*bridgeConfig, error) {
	fs := cli.New("bridge", getenv)
	c := &bridgeConfig{nats: natsconn.Bind(fs, natsconn.InboxBridge), process: bindProcess(fs, ":9090")}
	fs.StringVar(&c.baseURL, "inbank-base-url", "INBANK_BASE_URL", "", "Inbank API base URL: scheme and host, without /partner/v3 (required)")
	fs.StringVar(&c.apiKey, "inbank-api-key", "INBANK_API_KEY", "", "Inbank partner API key (required; never logged)")
	fs.StringVar(&c.shopUUID, "inbank-shop-uuid", "INBANK_SHOP_UUID", "", "Inbank shop uuid (required)")
	fs.StringVar(&c.productCode, "inbank-product-code", "INBANK_PRODUCT_CODE", "", "product code for orders that have none")
	fs.DurationVar(&c.inbankTimeout, "inbank-timeout", "INBANK_TIMEOUT", 15*time.Second, "timeout of one Inbank request")
	fs.StringVar(&c.policyText, "activation-policy", "ACTIVATION_POLICY", string(activation.OnDelivery), "on-delivery, on-shipment, or portal (never activate via API)")
	fs.StringVar(&c.callbackBase, "callback-base-url", "CALLBACK_BASE_URL", "", "public base URL of the webhook ingress (required)")
	fs.StringVar(&c.secret, "callback-secret", "CALLBACK_SECRET", "", "callback token secret(s), comma-separated: the first signs, all verify (required)")
	fs.DurationVar(&c.sessionTTL, "session-ttl", "SESSION_TTL", 24*time.Hour, "session validity sent to Inbank as validUntil")
	fs.DurationVar(&c.reconcile, "reconcile-interval", "RECONCILE_INTERVAL", time.Minute, "how often unfinished orders are re-read from Inbank")
	fs.IntVar(&c.concurrency, "concurrency", "CONCURRENCY", 64, "events handled at once per consumer")
	fs.DurationVar(&c.claimTTL, "claim-ttl", "CLAIM_TTL", 0, "how long a bridge holds an Inbank step before another may take it over (default: 3 × INBANK_TIMEOUT)")
	fs.DurationVar(&c.settle, "activation-settle", "ACTIVATION_SETTLE", 2*time.Minute, "wait before repeating an activation that may have reached Inbank")
	fs.DurationVar(&c.retention, "order-retention", "ORDER_RETENTION", 30*24*time.Hour, "how long a finished order's state is kept before JetStream removes it")
	fs.IntVar(&c.nats.Topology.MaxDeliver, "max-deliver", "MAX_DELIVER", c.nats.Topology.MaxDeliver, "deliveries of one event before it is dead-lettered")
	fs.DurationVar(&c.nats.Topology.AckWait, "ack-wait", "ACK_WAIT", c.nats.Topology.AckWait, "time a bridge may hold an event without progress")
	fs.DurationVar(&c.quoteTimeout, "quote-timeout", "QUOTE_TIMEOUT", 5*time.Second, "deadline of one quote request, or a whole batch")
	fs.DurationVar(&c.conditionsTTL, "conditions-ttl", "CONDITIONS_TTL", 10*time.Minute, "how long rental conditions are cached")
	fs.DurationVar(&c.calcTTL, "calculation-ttl", "CALCULATION_TTL", time.Minute, "how long quote calculations are cached")
	fs.BoolVar(&c.validateOutgoing, "validate-outgoing", "VALIDATE_OUTGOING", true, "validate every state event against its JSON Schema before publishing it (false saves CPU; see README)")
	fs.StringVar(&c.shopsFile, "inbank-shops-file", "INBANK_SHOPS_FILE", "", "YAML or JSON file of further Inbank shops by alias (see README); keys by reference only")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := cli.Require(
		[2]string{"INBANK_BASE_URL", c.baseURL}, [2]string{"INBANK_API_KEY", c.apiKey}, [2]string{"INBANK_SHOP_UUID", c.shopUUID},
		[2]string{"CALLBACK_BASE_URL", c.callbackBase}, [2]string{"CALLBACK_SECRET", c.secret},
	); err != nil {
		return nil, err
	}
	policy, err := activation.Parse(c.policyText)
	if err != nil {
		return nil, fmt.Errorf("ACTIVATION_POLICY: %w", err)
	}
	c.policy = policy
	if c.claimTTL <= 0 {
		c.claimTTL = 3 * c.inbankTimeout
	}
	if c.reconcile <= 0 {
		return nil, errors.New("RECONCILE_INTERVAL must be positive")
	}
	if err := c.nats.Topology.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// inbankClients are the Inbank clients of the default shop and of the
// shops of INBANK_SHOPS_FILE by alias.
type inbankClients struct {
	defaultShop *inbank.Client
	list        []shops.Shop
	byAlias     map[string]*inbank.Client
	metrics     *inbank.Metrics // the clients' and their guards'
}

func newInbankClients(c *bridgeConfig, getenv cli.Getenv, reg prometheus.Registerer, tp trace.TracerProvider, props propagation.TextMapPropagator) (*inbankClients, error) {
	var list []shops.Shop
	if c.shopsFile != "" {
		var err error
		if list, err = shops.Load(c.shopsFile, getenv); err != nil {
			return nil, fmt.Errorf("INBANK_SHOPS_FILE %s:\n%w", c.shopsFile, err)
		}
	}
	metrics, err := inbank.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	// A transport per client keeps an idle connection for each call its
	// guard lets through at once (see inbankClients' guard below).
	newClient := func(alias, base, key, uuid string, inFlight int) (*inbank.Client, error) {
		// otelhttp costs about 5 % of the bridge's CPU per order even
		// with a no-op provider, and injects nothing then (no global
		// propagator is set): used only when traces are exported.
		var transport http.RoundTripper = inbank.Transport(inFlight)
		if !tracingOff(tp) {
			transport = otelhttp.NewTransport(transport, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(props))
		}
		return inbank.New(inbank.Config{BaseURL: base, APIKey: inbank.Secret(key), ShopUUID: uuid, Timeout: c.inbankTimeout, ShopAlias: alias},
			inbank.WithMetrics(metrics), inbank.WithHTTPClient(&http.Client{Transport: transport}))
	}
	ic := &inbankClients{list: list, byAlias: map[string]*inbank.Client{}, metrics: metrics}
	if ic.defaultShop, err = newClient(shops.Default, c.baseURL, c.apiKey, c.shopUUID, 3*c.concurrency); err != nil {
		return nil, err
	}
	for _, s := range list {
		key, err := s.APIKey(getenv)
		if err != nil {
			return nil, err
		}
		if ic.byAlias[s.Alias], err = newClient(s.Alias, s.BaseURL, key, s.ShopUUID, max(s.Concurrency, c.concurrency)); err != nil {
			return nil, fmt.Errorf("shop %s: %w", s.Alias, err)
		}
	}
	return ic, nil
}

// RunBridge runs the bridge until ctx ends, then shuts down gracefully:
// readiness turns off, then (after SHUTDOWN_DELAY) consumers stop fetching
// and finish what they hold, the reconciler stops, and the NATS connection
// is drained, within SHUTDOWN_TIMEOUT. started, when not nil, is told once
// the bridge is ready.
func RunBridge(ctx context.Context, args []string, getenv cli.Getenv, logOut io.Writer, started chan<- BridgeStarted, opts ...BridgeOptions) (err error) {
	c, err := parseBridgeConfig(args, getenv)
	if err != nil {
		return err
	}
	o := firstOption(opts)
	tokens, schemaSet, err := loadBridgeKeys(c)
	if err != nil {
		return err
	}
	p, err := startProcess(ctx, "bridge", c.process, logOut)
	if err != nil {
		return err
	}
	defer p.close()
	defer p.explain(&err)
	tp, props, flushTraces, err := tracerProvider(ctx, o.TracerProvider, "smartrent-bridge", getenv)
	if err != nil {
		return err
	}
	defer flushTraces()
	clients, err := newInbankClients(c, getenv, p.reg, tp, props)
	if err != nil {
		return err
	}
	if err := p.connect(c.nats); err != nil {
		return err
	}
	kv, err := setUpBridgeStreams(p, c)
	if err != nil {
		return err
	}
	shopAPIs, err := guardShops(p, c, clients)
	if err != nil {
		return err
	}
	codec := events.NewCodec(schemaSet)
	store, openIndex, err := openOrderStore(p, c, kv)
	if err != nil {
		return err
	}
	wf, err := handlers.New(handlers.Config{
		Inbank: shopAPIs.defaultAPI, Store: store, Open: openIndex, Publisher: statePublisher(p, c, codec), Codec: codec, Tokens: tokens,
		Conditions: shopAPIs.conditions, Shops: shopAPIs.workflow,
		CallbackBaseURL: c.callbackBase, DefaultProductCode: c.productCode, Policy: c.policy,
		SessionTTL: c.sessionTTL, ClaimTTL: c.claimTTL, ActivationSettle: c.settle, DuplicateWindow: c.nats.Topology.DuplicateWindow,
		// RetryBase and RetryMax: the consumers' defaults, as the workflow's.
		MaxAttempts: c.nats.Topology.MaxDeliver, Logger: p.log, Metrics: shopAPIs.metrics, Hooks: o.Hooks, Tracer: tp.Tracer("github.com/smartrent-bridge/bridge"),
	})
	if err != nil {
		return err
	}
	if err := backfillOpenIndex(p, c, wf, store, openIndex); err != nil {
		return err
	}
	quoteService, err := startQuotes(p, c, shopAPIs, schemaSet)
	if err != nil {
		return err
	}
	defer quoteService.Stop()
	adminSubs, err := serveAdmin(p, wf)
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range adminSubs {
			s.Unsubscribe()
		}
	}()
	consumers, err := startConsumers(p, c, wf, codec, tp)
	if err != nil {
		return err
	}
	reconciler := startReconciler(wf, openIndex, c.reconcile)
	defer reconciler.stop()
	if c.nats.Provision {
		defer moveLegacyCallbacks(p)()
	}
	// SIGHUP re-reads key and secret files, so keys rotate without a restart.
	defer onReload(ctx, o.Reload, func() { reloadKeys(getenv, clients, tokens, p.log) })()
	announceBridge(p, c, len(clients.list)+1, started)
	<-p.ctx.Done()
	return stopBridge(p, quoteService, consumers, reconciler)
}

// loadBridgeKeys reads the callback secret and the event schemas: both
// are checked before anything starts.
func loadBridgeKeys(c *bridgeConfig) (*callbacktoken.Signer, *schemas.Set, error) {
	tokens, err := callbacktoken.New(callbacktoken.Parse(c.secret))
	if err != nil {
		return nil, nil, fmt.Errorf("CALLBACK_SECRET: %w", err)
	}
	schemaSet, err := schemas.Load()
	return tokens, schemaSet, err
}

// announceBridge marks the bridge ready (/readyz), logs it and tells a
// test harness where its ops endpoint is.
func announceBridge(p *process, c *bridgeConfig, shops int, started chan<- BridgeStarted) {
	p.ready(streams.StreamIn, streams.StreamCallbacks)
	p.log.Info("bridge ready", "shops", shops, "metrics", p.opsAddr.String(), "activation_policy", c.policy, "inbank", c.baseURL)
	if started != nil {
		started <- BridgeStarted{Ops: p.opsAddr}
	}
}

// setUpBridgeStreams creates (PROVISION) or checks the streams, consumers
// and buckets, waiting while JetStream cannot yet; it returns the orders'
// bucket.
func setUpBridgeStreams(p *process, c *bridgeConfig) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := p.setUp(c.nats, func(ctx context.Context) (err error) {
		if c.nats.Provision {
			kv, err = streams.ProvisionBridge(ctx, p.js, c.nats.Topology)
		} else {
			kv, err = streams.VerifyBridge(ctx, p.js, c.nats.Topology)
		}
		return err
	})
	return kv, err
}

// moveLegacyCallbacks hands the callbacks an earlier version left unhandled
// in SMARTRENT_IN to SMARTRENT_CALLBACKS, in the background (an older
// bridge may still hold some), and returns the function that stops it and
// waits for it. With PROVISION=false the operator does it
// (deploy/nats/README.md).
func moveLegacyCallbacks(p *process) (stop func()) {
	ctx, cancel := context.WithCancel(p.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		moved, err := streams.MoveLegacyCallbacks(ctx, p.js)
		switch {
		case err != nil && ctx.Err() == nil:
			p.log.Error("upgrade: cannot move the callbacks left in "+streams.StreamIn+"; the reconciler re-reads their orders", "moved", moved, "err", err)
		case moved > 0:
			p.log.Info("upgrade: moved the callbacks left in "+streams.StreamIn+" to "+streams.StreamCallbacks+" and removed its callbacks consumer", "moved", moved)
		}
	}()
	return func() { cancel(); <-done }
}

// reconciler is the reconciliation loop running in the background.
type reconciler struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func startReconciler(wf *handlers.Workflow, open *orderstore.OpenIndex, interval time.Duration) *reconciler {
	ctx, cancel := context.WithCancel(context.Background())
	r := &reconciler{cancel: cancel, done: make(chan struct{})}
	go func() { wf.RunReconciler(ctx, open, interval); close(r.done) }()
	return r
}

// stop ends the loop and waits for its pass in progress; it may be
// called again.
func (r *reconciler) stop() { r.cancel(); <-r.done }

// stopBridge turns readiness off, waits SHUTDOWN_DELAY, then stops the
// quote service, the consumers (their messages in flight finish) and the
// reconciler within SHUTDOWN_TIMEOUT, and drains NATS.
func stopBridge(p *process, quotes micro.Service, consumers []*streams.Consumer, r *reconciler) error {
	stopCtx, cancelStop := p.shutdown()
	defer cancelStop()
	r.cancel() // no new pass; the one in progress ends with the consumers
	if err := quotes.Stop(); err != nil {
		p.log.Warn("quote service stop", "err", err)
	}
	for _, c := range consumers {
		c.Stop(stopCtx)
	}
	<-r.done
	return p.finish(stopCtx)
}

// guardedShops are the shops' Inbank clients behind their guards (a
// concurrency budget and a circuit breaker each, so that one shop's
// outage does not take the handlers from the others) with their cached
// rental conditions, as the workflow and the quote service use them.
type guardedShops struct {
	defaultAPI inbank.API
	conditions *inbank.Conditions
	workflow   map[string]handlers.ShopConfig
	quote      map[string]quote.Shop
	metrics    *handlers.Metrics
	cache      *ttlcache.Metrics
}

func guardShops(p *process, c *bridgeConfig, clients *inbankClients) (*guardedShops, error) {
	g := &guardedShops{workflow: map[string]handlers.ShopConfig{}, quote: map[string]quote.Shop{}}
	var err error
	if g.metrics, err = handlers.NewMetrics(p.reg); err != nil {
		return nil, err
	}
	if g.cache, err = ttlcache.NewMetrics(p.reg); err != nil {
		return nil, err
	}
	guard := func(alias string, client *inbank.Client, concurrency int) (inbank.API, *inbank.Conditions) {
		api := inbank.Guard(alias, client, inbank.GuardOptions{Concurrency: concurrency, Logger: p.log, Metrics: clients.metrics})
		return api, inbank.NewConditions(api, ttlcache.New[inbankapi.RentalConditions]("conditions", c.conditionsTTL, 10000, c.inbankTimeout*2, g.cache))
	}
	g.defaultAPI, g.conditions = guard(shops.Default, clients.defaultShop, 3*c.concurrency)
	for _, s := range clients.list {
		api, cond := guard(s.Alias, clients.byAlias[s.Alias], max(s.Concurrency, c.concurrency))
		g.workflow[s.Alias] = handlers.ShopConfig{Inbank: api, Conditions: cond, ProductCode: s.ProductCode, Policy: s.ActivationPolicy, SessionTTL: s.SessionTTL}
		g.quote[s.Alias] = quote.Shop{Inbank: api, Conditions: cond, ProductCode: s.ProductCode}
	}
	return g, nil
}

// startQuotes registers the quote service (a NATS micro service).
func startQuotes(p *process, c *bridgeConfig, g *guardedShops, schemaSet *schemas.Set) (micro.Service, error) {
	quotes, err := quote.New(quote.Config{
		Inbank: g.defaultAPI, Conditions: g.conditions, DefaultProductCode: c.productCode, Shops: g.quote, CalculationTTL: c.calcTTL,
		Timeout: c.quoteTimeout, Schemas: schemaSet, Cache: g.cache, Registerer: p.reg, Logger: p.log,
	})
	if err != nil {
		return nil, err
	}
	return quotes.Register(p.nc, version.Get().SemVer())
}

// serveAdmin answers `smartrentctl orders reconcile` (one order is
// re-read from Inbank now) and `smartrentctl dlq replay` (the bridge
// republishes a dead letter of an input, so that the operator's NATS user
// needs no right to publish inputs).
func serveAdmin(p *process, wf *handlers.Workflow) ([]*nats.Subscription, error) {
	reconcile, err := p.nc.QueueSubscribe(ctl.SubjectReconcile, "smartrent-admin", func(m *nats.Msg) {
		var req ctl.ReconcileRequest
		reply := ctl.ReconcileReply{}
		switch {
		case len(m.Data) > 4096 || json.Unmarshal(m.Data, &req) != nil || req.OrderID == "":
			reply.Error = "request must be {\"orderId\": \"…\", \"shop\": \"…\" (optional)}"
		case ids.CheckOrderID(req.OrderID) != nil || ids.CheckShopAlias(req.Shop) != nil:
			reply.Error = errors.Join(ids.CheckOrderID(req.OrderID), ids.CheckShopAlias(req.Shop)).Error()
		default:
			reply.OrderID = req.OrderID
			rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			state, err := wf.ReconcileNow(rctx, order.StoreKey(ids.ShopAlias(req.Shop), req.OrderID))
			cancel()
			reply.Found = !errors.Is(err, orderstore.ErrNotFound)
			reply.State = state
			if err != nil && reply.Found {
				reply.Error = err.Error()
			}
			p.log.Info("operator reconcile", "order_id", req.OrderID, "state", state, "err", err)
		}
		b, _ := json.Marshal(reply)
		m.Respond(b)
	})
	if err != nil {
		return nil, err
	}
	replay, err := p.nc.QueueSubscribe(ctl.SubjectReplay, "smartrent-admin", func(m *nats.Msg) {
		var req ctl.ReplayRequest
		reply := ctl.ReplayReply{}
		if len(m.Data) > 4096 || json.Unmarshal(m.Data, &req) != nil || req.Sequence == 0 {
			reply.Error = "request must be {\"sequence\": N}, N a dead letter's sequence in " + streams.StreamDLQ
		} else {
			reply.Sequence, reply.Found = req.Sequence, true
			rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			subject, err := streams.ReplayDeadLetter(rctx, p.js, req.Sequence)
			cancel()
			reply.Subject = subject
			if err != nil {
				reply.Found = !errors.Is(err, streams.ErrNotFound)
				reply.Error = err.Error()
			}
			p.log.Info("operator replay of a dead letter", "sequence", req.Sequence, "subject", subject, "err", err)
		}
		b, _ := json.Marshal(reply)
		m.Respond(b)
	})
	if err != nil {
		reconcile.Unsubscribe()
		return nil, err
	}
	return []*nats.Subscription{reconcile, replay}, nil
}

// startConsumers starts a consumer per durable of the topology, and the
// collector of their lag.
func startConsumers(p *process, c *bridgeConfig, wf *handlers.Workflow, codec *events.Codec, tp trace.TracerProvider) ([]*streams.Consumer, error) {
	metrics, err := streams.NewConsumerMetrics(p.reg)
	if err != nil {
		return nil, err
	}
	// Under set-up's rules (waits reported in the log and /readyz, bounded
	// by NATS_SETUP_TIMEOUT): looking a consumer up is a JetStream request
	// a cluster that has just formed may leave unanswered for a while.
	var consumers []*streams.Consumer
	err = p.setUp(c.nats, func(ctx context.Context) error {
		for _, cc := range c.nats.Topology.Consumers() {
			cons, err := streams.Consume(ctx, p.nc, p.js, codec, wf, streams.ConsumerConfig{
				Stream: cc.Stream, Consumer: cc.Durable, Concurrency: c.concurrency,
				MaxDeliver: cc.MaxDeliver, AckWait: cc.AckWait, Logger: p.log, Metrics: metrics, Tracer: tp.Tracer("github.com/smartrent-bridge/bridge"),
			})
			if err != nil {
				return err
			}
			consumers = append(consumers, cons)
		}
		return nil
	})
	if err != nil {
		return consumers, err
	}
	return consumers, p.reg.Register(streams.NewLagCollector(p.js, c.nats.Topology.Consumers()))
}

// statePublisher publishes the workflow's state events, validating their
// data unless VALIDATE_OUTGOING=false.
func statePublisher(p *process, c *bridgeConfig, codec *events.Codec) *streams.Publisher {
	pub := streams.NewPublisher(p.js, codec)
	if !c.validateOutgoing {
		return pub.TrustingData()
	}
	return pub
}

// openOrderStore moves state keys of earlier versions, and opens the
// state store (a finished order keeps no customer data and expires after
// ORDER_RETENTION) and the open-order index.
func openOrderStore(p *process, c *bridgeConfig, kv jetstream.KeyValue) (*orderstore.StateStore[order.Order], *orderstore.OpenIndex, error) {
	// Orders of non-default shops written by an earlier version under the
	// ambiguous key "shop/orderId" move to their own keys. A set-up step:
	// a listing left unanswered by a busy cluster is tried again (the
	// migration is idempotent), not the end of the process.
	var moved int
	err := p.setUp(c.nats, func(ctx context.Context) error {
		return streams.AwaitWithin(ctx, "migrate order state keys", time.Minute, func(ctx context.Context) error {
			n, err := orderstore.MigrateStateKeys(ctx, kv)
			moved += n // an attempt that failed part way moved these
			return err
		})
	})
	if err != nil {
		return nil, nil, err
	}
	if moved > 0 {
		p.log.Info("moved orders of non-default shops to their own state keys", "orders", moved)
	}
	store := orderstore.NewStateStore[order.Order](kv)
	// A per-key TTL: JetStream removes a finished order after retention.
	store.ExpireWith(p.js, order.Retention(c.retention, time.Now))
	var openIndex *orderstore.OpenIndex
	err = p.setUp(c.nats, func(ctx context.Context) error {
		return streams.Await(ctx, "open-order index", func(ctx context.Context) error {
			var err error
			openIndex, err = orderstore.OpenIndexOf(ctx, p.js, events.NewID())
			return err
		})
	})
	if err != nil {
		return nil, nil, err
	}
	return store, openIndex, nil
}

// backfillOpenIndex indexes, once, a bucket written before the open-order
// index existed (the orders still open) and gives its finished orders
// their retention.
func backfillOpenIndex(p *process, c *bridgeConfig, wf *handlers.Workflow, store *orderstore.StateStore[order.Order], openIndex *orderstore.OpenIndex) error {
	// A set-up step, tried again when JetStream leaves a request
	// unanswered: Backfill is idempotent (an order indexed twice is one
	// entry, and the bucket is marked done only at the end).
	var indexed, retired int
	err := p.setUp(c.nats, func(ctx context.Context) error {
		return streams.AwaitWithin(ctx, "index open orders", 10*time.Minute, func(ctx context.Context) error {
			i, r, err := wf.Backfill(ctx, store, openIndex)
			indexed, retired = indexed+i, retired+r
			return err
		})
	})
	if err != nil {
		return err
	}
	if indexed+retired > 0 {
		p.log.Info("indexed the open orders of an earlier version's bucket", "open", indexed, "finished", retired)
	}
	return nil
}

// reloadKeys reads the key and secret files again. A file that cannot be
// read leaves the key in use and is logged.
func reloadKeys(getenv cli.Getenv, ic *inbankClients, tokens *callbacktoken.Signer, log *slog.Logger) {
	if path := getenv("INBANK_API_KEY_FILE"); path != "" {
		if b, err := os.ReadFile(path); err != nil {
			log.Error("reload: INBANK_API_KEY_FILE", "err", err)
		} else {
			ic.defaultShop.SetAPIKey(inbank.Secret(strings.TrimSpace(string(b))))
		}
	}
	for _, s := range ic.list {
		if s.APIKeyFile == "" {
			continue
		}
		key, err := s.APIKey(getenv)
		if err != nil {
			log.Error("reload: shop key", "shop", s.Alias, "err", err)
			continue
		}
		ic.byAlias[s.Alias].SetAPIKey(inbank.Secret(key))
	}
	reloadCallbackSecret(getenv, tokens, log)
	log.Info("keys and secrets re-read")
}
