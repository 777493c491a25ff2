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
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/smartrent-bridge/bridge/internal/callbacktoken"
	"github.com/smartrent-bridge/bridge/internal/cli"
	"github.com/smartrent-bridge/bridge/internal/ctl"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/handlers"
	"github.com/smartrent-bridge/bridge/internal/ids"
	"github.com/smartrent-bridge/bridge/internal/inbank"
	"github.com/smartrent-bridge/bridge/internal/natsconn"
	"github.com/smartrent-bridge/bridge/internal/ops"
	"github.com/smartrent-bridge/bridge/internal/quote"
	"github.com/smartrent-bridge/bridge/internal/shops"
	"github.com/smartrent-bridge/bridge/internal/ttlcache"
	"github.com/smartrent-bridge/bridge/schemas"
)

// Version is the binaries' version, as the quote service reports it.
const Version = "0.1.0"

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

// RunBridge runs the bridge until ctx ends, then shuts down gracefully:
// consumers stop fetching and finish what they hold, the reconciler stops,
// and the NATS connection is drained. started, when not nil, is told once
// the bridge is ready.
func RunBridge(ctx context.Context, args []string, getenv cli.Getenv, logOut io.Writer, started chan<- BridgeStarted, opts ...BridgeOptions) error {
	fs := cli.New("bridge", getenv)
	natsSettings := natsconn.Bind(fs)
	baseURL := fs.String("inbank-base-url", "INBANK_BASE_URL", "", "Inbank API base URL: scheme and host, without /partner/v3 (required)")
	apiKey := fs.String("inbank-api-key", "INBANK_API_KEY", "", "Inbank partner API key (required; never logged)")
	shopUUID := fs.String("inbank-shop-uuid", "INBANK_SHOP_UUID", "", "Inbank shop uuid (required)")
	productCode := fs.String("inbank-product-code", "INBANK_PRODUCT_CODE", "", "product code for orders that have none")
	inbankTimeout := fs.Duration("inbank-timeout", "INBANK_TIMEOUT", 15*time.Second, "timeout of one Inbank request")
	policy := fs.String("activation-policy", "ACTIVATION_POLICY", handlers.PolicyOnDelivery, "on-delivery, on-shipment, or portal (never activate via API)")
	callbackBase := fs.String("callback-base-url", "CALLBACK_BASE_URL", "", "public base URL of the webhook ingress (required)")
	secret := fs.String("callback-secret", "CALLBACK_SECRET", "", "callback token secret(s), comma-separated: the first signs, all verify (required)")
	sessionTTL := fs.Duration("session-ttl", "SESSION_TTL", 24*time.Hour, "session validity sent to Inbank as validUntil")
	reconcileEvery := fs.Duration("reconcile-interval", "RECONCILE_INTERVAL", time.Minute, "how often unfinished orders are re-read from Inbank")
	metricsAddr := fs.String("metrics-addr", "METRICS_ADDR", ":9090", "/metrics, /healthz and /readyz")
	concurrency := fs.Int("concurrency", "CONCURRENCY", 64, "events handled at once per consumer")
	claimTTL := fs.Duration("claim-ttl", "CLAIM_TTL", 0, "how long a bridge holds an Inbank step before another may take it over (default: 3 × INBANK_TIMEOUT)")
	settle := fs.Duration("activation-settle", "ACTIVATION_SETTLE", 2*time.Minute, "wait before repeating an activation that may have reached Inbank")
	retention := fs.Duration("order-retention", "ORDER_RETENTION", 30*24*time.Hour, "how long a finished order's state is kept before JetStream removes it")
	fs.IntVar(&natsSettings.Topology.MaxDeliver, "max-deliver", "MAX_DELIVER", natsSettings.Topology.MaxDeliver, "deliveries of one event before it is dead-lettered")
	fs.DurationVar(&natsSettings.Topology.AckWait, "ack-wait", "ACK_WAIT", natsSettings.Topology.AckWait, "time a bridge may hold an event without progress")
	quoteTimeout := fs.Duration("quote-timeout", "QUOTE_TIMEOUT", 5*time.Second, "deadline of one quote request, or a whole batch")
	conditionsTTL := fs.Duration("conditions-ttl", "CONDITIONS_TTL", 10*time.Minute, "how long rental conditions are cached")
	calculationTTL := fs.Duration("calculation-ttl", "CALCULATION_TTL", time.Minute, "how long quote calculations are cached")
	shopsFile := fs.String("inbank-shops-file", "INBANK_SHOPS_FILE", "", "YAML or JSON file of further Inbank shops by alias (see README); keys by reference only")
	pprof := fs.Bool("pprof", "PPROF", false, "serve the Go profiler under /debug/pprof/ on METRICS_ADDR")
	logLevel := fs.String("log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cli.Require(
		[2]string{"INBANK_BASE_URL", *baseURL}, [2]string{"INBANK_API_KEY", *apiKey}, [2]string{"INBANK_SHOP_UUID", *shopUUID},
		[2]string{"CALLBACK_BASE_URL", *callbackBase}, [2]string{"CALLBACK_SECRET", *secret},
	); err != nil {
		return err
	}
	switch *policy {
	case handlers.PolicyOnDelivery, handlers.PolicyOnShipment, handlers.PolicyPortal:
	default:
		return fmt.Errorf("ACTIVATION_POLICY: activation policy %q: want on-delivery, on-shipment or portal", *policy)
	}
	log, err := newLogger(logOut, *logLevel, "bridge")
	if err != nil {
		return err
	}
	var o BridgeOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	tp, flushTraces, err := tracerProvider(ctx, o.TracerProvider, "smartrent-bridge", getenv)
	if err != nil {
		return err
	}
	defer flushTraces()
	tracer := tp.Tracer("github.com/smartrent-bridge/bridge")
	tokens, err := callbacktoken.New(callbacktoken.Parse(*secret))
	if err != nil {
		return fmt.Errorf("CALLBACK_SECRET: %w", err)
	}
	var shopList []shops.Shop
	if *shopsFile != "" {
		if shopList, err = shops.Load(*shopsFile, getenv); err != nil {
			return fmt.Errorf("INBANK_SHOPS_FILE %s:\n%w", *shopsFile, err)
		}
	}
	if *claimTTL <= 0 {
		*claimTTL = 3 * *inbankTimeout
	}
	if *reconcileEvery <= 0 {
		return errors.New("RECONCILE_INTERVAL must be positive")
	}
	reg := ops.NewRegistry()
	inbankMetrics, err := inbank.NewMetrics(reg)
	if err != nil {
		return err
	}
	newClient := func(alias, base, key, uuid string) (*inbank.Client, error) {
		return inbank.New(inbank.Config{BaseURL: base, APIKey: inbank.Secret(key), ShopUUID: uuid, Timeout: *inbankTimeout, ShopAlias: alias},
			inbank.WithMetrics(inbankMetrics),
			inbank.WithHTTPClient(&http.Client{Transport: otelhttp.NewTransport(inbank.DefaultTransport(), otelhttp.WithTracerProvider(tp))}))
	}
	client, err := newClient(shops.Default, *baseURL, *apiKey, *shopUUID)
	if err != nil {
		return err
	}
	shopClients := map[string]*inbank.Client{}
	for _, s := range shopList {
		key, err := s.APIKey(getenv)
		if err != nil {
			return err
		}
		if shopClients[s.Alias], err = newClient(s.Alias, s.BaseURL, key, s.ShopUUID); err != nil {
			return fmt.Errorf("shop %s: %w", s.Alias, err)
		}
	}
	schemaSet, err := schemas.Load()
	if err != nil {
		return err
	}
	if err := natsSettings.Topology.Validate(); err != nil {
		return err
	}

	// A connection NATS closes for good ends the process with an error,
	// so that its supervisor restarts it.
	ctx, lost := context.WithCancelCause(ctx)
	defer lost(nil)
	nc, js, err := natsconn.Connect(ctx, natsSettings, "smartrent-bridge", log, lost)
	if err != nil {
		return err
	}
	defer nc.Close()
	setupCtx, cancel := context.WithTimeout(ctx, natsSettings.SetupTimeout)
	setUp := events.ProvisionBridge
	if !natsSettings.Provision {
		setUp = events.VerifyBridge
	}
	kv, err := setUp(setupCtx, js, natsSettings.Topology)
	cancel()
	if err != nil {
		return fmt.Errorf("set up streams: %w", err)
	}
	// Orders of non-default shops written by an earlier version under the
	// ambiguous key "shop/orderId" move to their own keys.
	migrateCtx, cancel := context.WithTimeout(ctx, time.Minute)
	moved, err := events.MigrateStateKeys(migrateCtx, kv)
	cancel()
	if err != nil {
		return fmt.Errorf("migrate order state keys: %w", err)
	}
	if moved > 0 {
		log.Info("moved orders of non-default shops to their own state keys", "orders", moved)
	}
	codec := events.NewCodec(schemaSet)
	store := events.NewStateStore[handlers.Order](kv)
	// A finished order keeps no customer data and expires after
	// ORDER_RETENTION (a per-key TTL: JetStream removes it).
	store.ExpireWith(js, handlers.Retention(*retention, time.Now))
	openIndex, err := events.OpenIndexOf(ctx, js, events.NewID())
	if err != nil {
		return err
	}
	wfMetrics, err := handlers.NewMetrics(reg)
	if err != nil {
		return err
	}
	consumerMetrics, err := events.NewConsumerMetrics(reg)
	if err != nil {
		return err
	}
	cacheMetrics, err := ttlcache.NewMetrics(reg)
	if err != nil {
		return err
	}
	// Each shop's Inbank calls have their own budget and circuit breaker,
	// so one shop's outage does not take the handlers from the others.
	defaultAPI := handlers.Guard(shops.Default, client, handlers.GuardOptions{Concurrency: 3 * *concurrency, Logger: log, Metrics: wfMetrics})
	conditions := handlers.NewConditions(defaultAPI, ttlcache.New[inbank.RentalConditions]("conditions", *conditionsTTL, 10000, *inbankTimeout*2, cacheMetrics))
	wfShops, quoteShops := map[string]handlers.ShopConfig{}, map[string]quote.Shop{}
	for _, s := range shopList {
		api := handlers.Guard(s.Alias, shopClients[s.Alias], handlers.GuardOptions{Concurrency: max(s.Concurrency, *concurrency), Logger: log, Metrics: wfMetrics})
		cond := handlers.NewConditions(api, ttlcache.New[inbank.RentalConditions]("conditions", *conditionsTTL, 10000, *inbankTimeout*2, cacheMetrics))
		wfShops[s.Alias] = handlers.ShopConfig{Inbank: api, Conditions: cond, ProductCode: s.ProductCode, Policy: s.ActivationPolicy, SessionTTL: s.SessionTTL}
		quoteShops[s.Alias] = quote.Shop{Inbank: api, Conditions: cond, ProductCode: s.ProductCode}
	}
	wf, err := handlers.New(handlers.Config{
		Inbank: defaultAPI, Store: store, Open: openIndex, Publisher: events.NewPublisher(js, codec), Codec: codec, Tokens: tokens, Conditions: conditions, Shops: wfShops,
		CallbackBaseURL: *callbackBase, DefaultProductCode: *productCode, Policy: *policy,
		SessionTTL: *sessionTTL, ClaimTTL: *claimTTL, ActivationSettle: *settle,
		Logger: log, Metrics: wfMetrics, Hooks: o.Hooks, Tracer: tracer,
	})
	if err != nil {
		return err
	}
	// A bucket written before the open-order index existed is indexed
	// once (the orders still open) and its finished orders get their
	// retention.
	backfillCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	indexed, retired, err := wf.Backfill(backfillCtx, store, openIndex)
	cancel()
	if err != nil {
		return fmt.Errorf("index open orders: %w", err)
	}
	if indexed+retired > 0 {
		log.Info("indexed the open orders of an earlier version's bucket", "open", indexed, "finished", retired)
	}

	quotes, err := quote.New(quote.Config{
		Inbank: defaultAPI, Conditions: conditions, DefaultProductCode: *productCode, Shops: quoteShops, CalculationTTL: *calculationTTL,
		Timeout: *quoteTimeout, Schemas: schemaSet, Cache: cacheMetrics, Registerer: reg, Logger: log,
	})
	if err != nil {
		return err
	}
	quoteService, err := quotes.Register(nc, Version)
	if err != nil {
		return err
	}
	defer quoteService.Stop()

	// Operators reconcile one order now with `smartrentctl orders reconcile`.
	adminSub, err := nc.QueueSubscribe(ctl.SubjectReconcile, "smartrent-admin", func(m *nats.Msg) {
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
			state, err := wf.ReconcileNow(rctx, handlers.StoreKey(handlers.NormalizeShop(req.Shop), req.OrderID))
			cancel()
			reply.Found = !errors.Is(err, events.ErrNotFound)
			reply.State = state
			if err != nil && reply.Found {
				reply.Error = err.Error()
			}
			log.Info("operator reconcile", "order_id", req.OrderID, "state", state, "err", err)
		}
		b, _ := json.Marshal(reply)
		m.Respond(b)
	})
	if err != nil {
		return err
	}
	defer adminSub.Unsubscribe()

	var consumerNames []string
	for _, cc := range natsSettings.Topology.Consumers() {
		consumerNames = append(consumerNames, cc.Durable)
	}
	if err := reg.Register(events.NewLagCollector(js, consumerNames)); err != nil {
		return err
	}

	var consumers []*events.Consumer
	for _, cc := range natsSettings.Topology.Consumers() {
		c, err := events.Consume(ctx, nc, js, codec, wf, events.ConsumerConfig{
			Stream: events.StreamIn, Consumer: cc.Durable, Concurrency: *concurrency,
			MaxDeliver: cc.MaxDeliver, AckWait: cc.AckWait, Logger: log, Metrics: consumerMetrics, Tracer: tracer,
		})
		if err != nil {
			return err
		}
		consumers = append(consumers, c)
	}
	reconcileCtx, stopReconcile := context.WithCancel(context.Background())
	defer stopReconcile()
	reconcileDone := make(chan struct{})
	go func() { wf.RunReconciler(reconcileCtx, openIndex, *reconcileEvery); close(reconcileDone) }()

	opsCtx, stopOps := context.WithCancel(context.Background())
	defer stopOps()
	opsAddr, waitOps, err := ops.Serve(opsCtx, *metricsAddr, ops.Handler(reg, func(ctx context.Context) error {
		return natsconn.Ready(ctx, nc, js, events.StreamIn)
	}, *pprof), log)
	if err != nil {
		return err
	}
	// SIGHUP re-reads key and secret files, so keys rotate without a restart.
	defer onReload(ctx, o.Reload, func() { reloadKeys(getenv, client, shopList, shopClients, tokens, log) })()
	log.Info("bridge ready", "shops", len(shopList)+1, "metrics", opsAddr.String(), "activation_policy", *policy, "inbank", *baseURL)
	if started != nil {
		started <- BridgeStarted{Ops: opsAddr}
	}

	<-ctx.Done()
	log.Info("shutting down: finishing events in flight")
	stopCtx, cancelStop := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelStop()
	stopReconcile()
	if err := quoteService.Stop(); err != nil {
		log.Warn("quote service stop", "err", err)
	}
	for _, c := range consumers {
		c.Stop(stopCtx)
	}
	<-reconcileDone
	if err := natsconn.Drain(nc, 10*time.Second); err != nil {
		log.Warn("nats drain", "err", err)
	}
	stopOps()
	if err := waitOps(); err != nil {
		log.Warn("ops server", "err", err)
	}
	if cause := context.Cause(ctx); errors.Is(cause, natsconn.ErrConnectionLost) {
		return cause
	}
	log.Info("stopped")
	return nil
}

// reloadKeys reads the key and secret files again. A file that cannot be
// read leaves the key in use and is logged.
func reloadKeys(getenv cli.Getenv, client *inbank.Client, list []shops.Shop, clients map[string]*inbank.Client, tokens *callbacktoken.Signer, log *slog.Logger) {
	if path := getenv("INBANK_API_KEY_FILE"); path != "" {
		if b, err := os.ReadFile(path); err != nil {
			log.Error("reload: INBANK_API_KEY_FILE", "err", err)
		} else {
			client.SetAPIKey(inbank.Secret(strings.TrimSpace(string(b))))
		}
	}
	for _, s := range list {
		if s.APIKeyFile == "" {
			continue
		}
		key, err := s.APIKey(getenv)
		if err != nil {
			log.Error("reload: shop key", "shop", s.Alias, "err", err)
			continue
		}
		clients[s.Alias].SetAPIKey(inbank.Secret(key))
	}
	if path := getenv("CALLBACK_SECRET_FILE"); path != "" {
		b, err := os.ReadFile(path)
		if err == nil {
			err = tokens.Replace(callbacktoken.Parse(strings.TrimSpace(string(b))))
		}
		if err != nil {
			log.Error("reload: CALLBACK_SECRET_FILE", "err", err)
		}
	}
	log.Info("keys and secrets re-read")
}
