package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/smartrent-bridge/bridge/internal/callbacktoken"
	"github.com/smartrent-bridge/bridge/internal/cli"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/ingress"
	"github.com/smartrent-bridge/bridge/internal/natsconn"
	"github.com/smartrent-bridge/bridge/internal/ops"
	"github.com/smartrent-bridge/bridge/schemas"
)

// IngressStarted tells where a started ingress listens.
type IngressStarted struct {
	Callbacks, Ops net.Addr
}

// RunIngress serves callbacks until ctx ends, then shuts down gracefully:
// it stops accepting, finishes requests in flight, and drains the NATS
// connection.
// IngressOptions are hooks for tests; main passes none.
type IngressOptions struct {
	// TracerProvider replaces the one the OTEL_* variables configure.
	TracerProvider trace.TracerProvider
}

func RunIngress(ctx context.Context, args []string, getenv cli.Getenv, logOut io.Writer, started chan<- IngressStarted, opts ...IngressOptions) error {
	fs := cli.New("webhook-ingress", getenv)
	natsSettings := natsconn.Bind(fs)
	secret := fs.String("callback-secret", "CALLBACK_SECRET", "", "token secret(s), comma-separated: the first signs, all verify (required)")
	listen := fs.String("listen-addr", "LISTEN_ADDR", ":8080", "callback listener")
	metricsAddr := fs.String("metrics-addr", "METRICS_ADDR", ":9091", "/metrics, /healthz and /readyz")
	sigMode := fs.String("inbank-callback-signature", "INBANK_CALLBACK_SIGNATURE", ingress.SignatureOptional, "Inbank's callback signature: off, optional (verify when present) or required")
	sigTolerance := fs.Duration("inbank-callback-signature-tolerance", "INBANK_CALLBACK_SIGNATURE_TOLERANCE", 5*time.Minute, "maximum age of a signed callback timestamp")
	apiKey := fs.String("inbank-api-key", "INBANK_API_KEY", "", "Inbank API key(s), comma-separated, to verify callback signatures (never logged)")
	publishTimeout := fs.Duration("publish-timeout", "PUBLISH_TIMEOUT", 5*time.Second, "how long to wait for JetStream before answering 503")
	logLevel := fs.String("log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	pprof := fs.Bool("pprof", "PPROF", false, "serve the Go profiler under /debug/pprof/ on METRICS_ADDR")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cli.Require([2]string{"CALLBACK_SECRET", *secret}); err != nil {
		return err
	}
	switch *sigMode {
	case ingress.SignatureOff, ingress.SignatureOptional, ingress.SignatureRequired:
	default:
		return fmt.Errorf("INBANK_CALLBACK_SIGNATURE: %q: want off, optional or required", *sigMode)
	}
	log, err := newLogger(logOut, *logLevel, "webhook-ingress")
	if err != nil {
		return err
	}
	var o IngressOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	tp, flushTraces, err := tracerProvider(ctx, o.TracerProvider, "smartrent-webhook-ingress", getenv)
	if err != nil {
		return err
	}
	defer flushTraces()
	tokens, err := callbacktoken.New(callbacktoken.Parse(*secret))
	if err != nil {
		return fmt.Errorf("CALLBACK_SECRET: %w", err)
	}
	schemaSet, err := schemas.Load()
	if err != nil {
		return err
	}
	// A connection NATS closes for good ends the process with an error,
	// so that its supervisor restarts it.
	ctx, lost := context.WithCancelCause(ctx)
	defer lost(nil)
	nc, js, err := natsconn.Connect(ctx, natsSettings, "smartrent-webhook-ingress", log, lost)
	if err != nil {
		return err
	}
	defer nc.Close()
	setupCtx, cancel := context.WithTimeout(ctx, natsSettings.SetupTimeout)
	if natsSettings.Provision {
		err = events.ProvisionStreams(setupCtx, js, natsSettings.Topology)
	} else {
		err = events.VerifyStreams(setupCtx, js, natsSettings.Topology, events.StreamIn) // it only publishes there
	}
	cancel()
	if err != nil {
		return fmt.Errorf("set up streams: %w", err)
	}

	reg := ops.NewRegistry()
	metrics, err := ingress.NewMetrics(reg)
	if err != nil {
		return err
	}
	var keys []string
	for _, k := range strings.Split(*apiKey, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	codec := events.NewCodec(schemaSet)
	handler, err := ingress.New(ingress.Config{
		Tokens: tokens, Publisher: events.NewPublisher(js, codec), Codec: codec,
		Signature: *sigMode, SignatureKeys: keys, SignatureTolerance: *sigTolerance,
		PublishTimeout: *publishTimeout, Metrics: metrics, Logger: log,
	})
	if err != nil {
		return err
	}

	opsCtx, stopOps := context.WithCancel(context.Background())
	defer stopOps()
	opsAddr, waitOps, err := ops.Serve(opsCtx, *metricsAddr, ops.Handler(reg, func(ctx context.Context) error {
		return natsconn.Ready(ctx, nc, js, events.StreamIn)
	}, *pprof), log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("callback listener on %s: %w", *listen, err)
	}
	srv := &http.Server{
		Handler:           traceCallbacks(tp, handler),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      *publishTimeout + 10*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	// SIGHUP re-reads CALLBACK_SECRET_FILE, so the secret rotates without a restart.
	defer onReload(ctx, nil, func() {
		path := getenv("CALLBACK_SECRET_FILE")
		if path == "" {
			return
		}
		b, err := os.ReadFile(path)
		if err == nil {
			err = tokens.Replace(callbacktoken.Parse(strings.TrimSpace(string(b))))
		}
		if err != nil {
			log.Error("reload: CALLBACK_SECRET_FILE", "err", err)
			return
		}
		log.Info("callback secrets re-read")
	})()
	log.Info("webhook ingress ready", "listen", ln.Addr().String(), "metrics", opsAddr.String(), "signature", *sigMode)
	if started != nil {
		started <- IngressStarted{Callbacks: ln.Addr(), Ops: opsAddr}
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("callback listener: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("callback listener shutdown", "err", err)
	}
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

// traceCallbacks starts a server span per request that joins the caller's
// W3C trace context and names the route, never the path: the path holds
// the callback token, which an otelhttp span recorded as url.path. With
// tracing off it adds nothing to the hot path.
func traceCallbacks(tp trace.TracerProvider, next http.Handler) http.Handler {
	if _, off := tp.(noop.TracerProvider); off {
		return next
	}
	tracer := tp.Tracer("github.com/smartrent-bridge/bridge/internal/ingress")
	prop := propagation.TraceContext{}
	route := callbacktoken.PathPrefix + "{token}"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, "inbank callback", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("http.route", route)))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(ctx))
		span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
	})
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}
