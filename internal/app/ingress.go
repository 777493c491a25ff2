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
	"golang.org/x/time/rate"

	"github.com/smartrent-bridge/bridge/internal/callbacktoken"
	"github.com/smartrent-bridge/bridge/internal/cli"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/ingress"
	"github.com/smartrent-bridge/bridge/internal/natsconn"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/schemas"
)

// IngressStarted tells where a started ingress listens.
type IngressStarted struct {
	Callbacks, Ops net.Addr
}

// IngressOptions are hooks for tests; main passes none.
type IngressOptions struct {
	// TracerProvider replaces the one the OTEL_* variables configure.
	TracerProvider trace.TracerProvider
	// Reload, when not nil, works like SIGHUP: secret files are read again.
	Reload <-chan struct{}
}

// RunIngress serves callbacks until ctx ends, then shuts down gracefully:
// readiness turns off, then (after SHUTDOWN_DELAY) it stops accepting,
// finishes requests in flight and drains the NATS connection, within
// SHUTDOWN_TIMEOUT.
func RunIngress(ctx context.Context, args []string, getenv cli.Getenv, logOut io.Writer, started chan<- IngressStarted, opts ...IngressOptions) (err error) {
	c, err := parseIngressConfig(args, getenv)
	if err != nil {
		return err
	}
	tokens, err := callbacktoken.New(callbacktoken.Parse(c.secret))
	if err != nil {
		return fmt.Errorf("CALLBACK_SECRET: %w", err)
	}
	o := firstOption(opts)
	p, err := startProcess(ctx, "webhook-ingress", c.process, logOut)
	if err != nil {
		return err
	}
	defer p.explain(&err)
	defer p.close()
	tp, _, flushTraces, err := tracerProvider(ctx, o.TracerProvider, "smartrent-webhook-ingress", getenv) // it calls nobody over HTTP
	if err != nil {
		return err
	}
	defer flushTraces()
	if err := p.connect(c.nats); err != nil {
		return err
	}
	err = p.setUp(c.nats, func(ctx context.Context) error {
		if c.nats.Provision {
			return streams.ProvisionStreams(ctx, p.js, c.nats.Topology)
		}
		return streams.VerifyStreams(ctx, p.js, c.nats.Topology, streams.StreamCallbacks) // it only publishes there
	})
	if err != nil {
		return err
	}
	srv, handler, err := newCallbackServer(p, c, tokens, tp)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("callback listener on %s: %w", c.listen, err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	// SIGHUP re-reads CALLBACK_SECRET_FILE and INBANK_API_KEY_FILE (the
	// keys that verify signatures), so both rotate without a restart.
	defer onReload(ctx, o.Reload, func() {
		reloadCallbackSecret(getenv, tokens, p.log)
		reloadSignatureKeys(getenv, handler, p.log)
	})()
	p.ready(streams.StreamCallbacks)
	p.log.Info("webhook ingress ready", "listen", ln.Addr().String(), "metrics", p.opsAddr.String(), "signature", c.sigMode)
	if started != nil {
		started <- IngressStarted{Callbacks: ln.Addr(), Ops: p.opsAddr}
	}
	return serveUntilStopped(p, srv, serveErr)
}

// ingressConfig is the ingress's settings from flags and environment.
type ingressConfig struct {
	nats                         *natsconn.Settings
	process                      *processSettings
	secret, listen, sigMode      string
	apiKey                       string
	sigTolerance, publishTimeout time.Duration
	callbackBurst                int
	callbackRate                 *float64
}

func parseIngressConfig(args []string, getenv cli.Getenv) (*ingressConfig, error) {
	fs := cli.New("webhook-ingress", getenv)
	c := &ingressConfig{nats: natsconn.Bind(fs, natsconn.InboxIngress), process: bindProcess(fs, ":9091")}
	// A 503 promises the callback is not stored: nothing may wait in a
	// reconnect buffer to be stored after we answered.
	c.nats.NoReconnectBuffer = true
	fs.StringVar(&c.secret, "callback-secret", "CALLBACK_SECRET", "", "token secret(s), comma-separated: the first signs, all verify (required)")
	fs.StringVar(&c.listen, "listen-addr", "LISTEN_ADDR", ":8080", "callback listener")
	fs.StringVar(&c.sigMode, "inbank-callback-signature", "INBANK_CALLBACK_SIGNATURE", ingress.SignatureOptional, "Inbank's callback signature: off, optional (verify when present) or required")
	fs.DurationVar(&c.sigTolerance, "inbank-callback-signature-tolerance", "INBANK_CALLBACK_SIGNATURE_TOLERANCE", 0, "how far a signed callback's timestamp may be from now; at most half of DUPLICATE_WINDOW, so that a replay of a signed delivery is always within the window and stored once (0: half of DUPLICATE_WINDOW)")
	fs.StringVar(&c.apiKey, "inbank-api-key", "INBANK_API_KEY", "", "Inbank API key(s), comma-separated, to verify callback signatures (never logged)")
	fs.DurationVar(&c.publishTimeout, "publish-timeout", "PUBLISH_TIMEOUT", 5*time.Second, "how long to wait for JetStream's acknowledgement before answering 504 (stored or not is then unknown)")
	fs.IntVar(&c.callbackBurst, "callback-burst", "CALLBACK_BURST", ingress.DefaultCallbackBurst, "callbacks accepted at once per order before 429; -1: no limit")
	c.callbackRate = fs.Float("callback-rate", "CALLBACK_RATE", float64(ingress.DefaultCallbackRate), "callbacks accepted per second per order after the burst")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if c.callbackBurst == 0 || *c.callbackRate <= 0 {
		return nil, errors.New("CALLBACK_BURST must be positive (or -1: no limit) and CALLBACK_RATE positive")
	}
	if err := cli.Require([2]string{"CALLBACK_SECRET", c.secret}); err != nil {
		return nil, err
	}
	switch c.sigMode {
	case ingress.SignatureOff, ingress.SignatureOptional, ingress.SignatureRequired:
	default:
		return nil, fmt.Errorf("INBANK_CALLBACK_SIGNATURE: %q: want off, optional or required", c.sigMode)
	}
	// A signed delivery is accepted from tolerance before its timestamp to
	// tolerance after: its first and its last copy are at most 2·tolerance
	// apart, and JetStream stores the second once only within its window.
	window := c.nats.Topology.DuplicateWindow
	switch {
	case c.sigTolerance <= 0:
		c.sigTolerance = window / 2
	case 2*c.sigTolerance > window:
		return nil, fmt.Errorf("INBANK_CALLBACK_SIGNATURE_TOLERANCE %s is more than half of DUPLICATE_WINDOW %s: a signed delivery replayed late would be stored again; raise DUPLICATE_WINDOW to %s or lower the tolerance", c.sigTolerance, window, 2*c.sigTolerance)
	}
	return c, nil
}

// newCallbackServer is the HTTP server of the callback handler, with
// limits on every phase of a request.
func newCallbackServer(p *process, c *ingressConfig, tokens *callbacktoken.Signer, tp trace.TracerProvider) (*http.Server, *ingress.Handler, error) {
	schemaSet, err := schemas.Load()
	if err != nil {
		return nil, nil, err
	}
	metrics, err := ingress.NewMetrics(p.reg)
	if err != nil {
		return nil, nil, err
	}
	codec := events.NewCodec(schemaSet)
	handler, err := ingress.New(ingress.Config{
		Tokens: tokens, Publisher: streams.NewPublisher(p.js, codec), Codec: codec,
		Signature: c.sigMode, SignatureKeys: splitKeys(c.apiKey), SignatureTolerance: c.sigTolerance,
		PublishTimeout: c.publishTimeout, Metrics: metrics, Logger: p.log,
		CallbackBurst: c.callbackBurst, CallbackRate: rate.Limit(*c.callbackRate),
	})
	if err != nil {
		return nil, nil, err
	}
	return &http.Server{
		Handler:           traceCallbacks(tp, handler),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      c.publishTimeout + 10*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}, handler, nil
}

// serveUntilStopped waits for SIGTERM (or the listener's failure), then
// shuts the server down. Shutdown closes the listener, then waits for each
// request in flight: each answers only after its PubAck (or its 503), so
// no callback is answered 200 without being stored.
func serveUntilStopped(p *process, srv *http.Server, serveErr <-chan error) error {
	select {
	case err := <-serveErr:
		return fmt.Errorf("callback listener: %w", err)
	case <-p.ctx.Done():
	}
	stopCtx, cancel := p.shutdown()
	defer cancel()
	if err := srv.Shutdown(stopCtx); err != nil {
		p.log.Warn("callback listener shutdown: requests still in flight were cut off; Inbank retries them", "err", err)
	}
	return p.finish(stopCtx)
}

// splitKeys splits a comma-separated key list, dropping blanks.
func splitKeys(list string) []string {
	var keys []string
	for _, k := range strings.Split(list, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// reloadCallbackSecret re-reads CALLBACK_SECRET_FILE, if set.
// reloadSignatureKeys reads INBANK_API_KEY_FILE again for the keys that
// verify Inbank's callback signatures.
func reloadSignatureKeys(getenv cli.Getenv, h *ingress.Handler, log *slog.Logger) {
	path := getenv("INBANK_API_KEY_FILE")
	if path == "" {
		return
	}
	b, err := os.ReadFile(path)
	if err == nil {
		err = h.SetSignatureKeys(splitKeys(strings.TrimSpace(string(b))))
	}
	if err != nil {
		log.Error("reload: INBANK_API_KEY_FILE", "err", err)
		return
	}
	log.Info("signature keys re-read")
}

func reloadCallbackSecret(getenv cli.Getenv, tokens *callbacktoken.Signer, log *slog.Logger) {
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
}

// traceCallbacks starts a server span per request that joins the caller's
// W3C trace context and names the route, never the path: the path holds
// the callback token, which an otelhttp span recorded as url.path. With
// tracing off it adds nothing to the hot path.
func traceCallbacks(tp trace.TracerProvider, next http.Handler) http.Handler {
	if tracingOff(tp) {
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
