package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smartrent-bridge/bridge/internal/cli"
	"github.com/smartrent-bridge/bridge/internal/natsconn"
	"github.com/smartrent-bridge/bridge/internal/ops"
	"github.com/smartrent-bridge/bridge/internal/streams"
	"github.com/smartrent-bridge/bridge/internal/version"
)

// processSettings are the settings every binary has besides NATS.
type processSettings struct {
	MetricsAddr     string
	LogLevel        string
	Pprof           bool
	ShutdownDelay   time.Duration
	ShutdownTimeout time.Duration
}

func bindProcess(fs *cli.Flags, metricsAddr string) *processSettings {
	s := &processSettings{}
	fs.StringVar(&s.MetricsAddr, "metrics-addr", "METRICS_ADDR", metricsAddr, "/metrics, /healthz and /readyz")
	fs.StringVar(&s.LogLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	fs.BoolVar(&s.Pprof, "pprof", "PPROF", false, "serve the Go profiler under /debug/pprof/ on METRICS_ADDR")
	fs.DurationVar(&s.ShutdownDelay, "shutdown-delay", "SHUTDOWN_DELAY", 0,
		"on SIGTERM, answer /readyz 503 for this long before stopping, so load balancers stop sending first")
	fs.DurationVar(&s.ShutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", 25*time.Second,
		"after SHUTDOWN_DELAY, the limit for finishing work in flight and draining NATS; keep delay + timeout below the pod's grace period")
	return s
}

// process is what both binaries set up alike: the log, the metrics
// registry, the ops endpoints (up from the start, ready only once the
// binary is), the NATS connection and the JetStream set-up, and the order
// of shutdown.
type process struct {
	name     string
	settings *processSettings
	log      *slog.Logger
	reg      *prometheus.Registry
	gate     *ops.Gate
	opsAddr  net.Addr
	stopOps  context.CancelFunc
	waitOps  func() error
	nc       *nats.Conn
	js       jetstream.JetStream
	// ctx ends on the caller's stop, or when NATS closes the connection
	// for good (cause natsconn.ErrConnectionLost).
	ctx  context.Context
	lost context.CancelCauseFunc
}

// startProcess opens the log and the ops endpoints (not ready yet).
func startProcess(ctx context.Context, name string, s *processSettings, logOut io.Writer) (*process, error) {
	log, err := newLogger(logOut, s.LogLevel, name)
	if err != nil {
		return nil, err
	}
	v := version.Get()
	log.Info("starting", "version", v.Version, "revision", v.Revision, "go", v.GoVersion)
	reg := ops.NewRegistry()
	if err := reg.Register(version.Collector(name)); err != nil {
		return nil, err
	}
	p := &process{name: name, settings: s, log: log, reg: reg, gate: ops.NewGate("starting: connecting to NATS")}
	p.ctx, p.lost = context.WithCancelCause(ctx)
	opsCtx, stopOps := context.WithCancel(context.Background())
	p.opsAddr, p.waitOps, err = ops.Serve(opsCtx, s.MetricsAddr, ops.Handler(reg, p.gate.Check, s.Pprof), log)
	if err != nil {
		stopOps()
		p.lost(nil)
		return nil, err
	}
	p.stopOps = stopOps
	return p, nil
}

// connect opens the NATS connection; one NATS closes for good ends p.ctx,
// so that the binary exits and its supervisor restarts it.
func (p *process) connect(s *natsconn.Settings) error {
	nc, js, err := natsconn.Connect(p.ctx, s, "smartrent-"+p.name, p.log, p.lost)
	if err != nil {
		return err
	}
	p.nc, p.js = nc, js
	return nil
}

// setUp runs set-up (creating or checking streams, buckets, consumers)
// until it succeeds, the process stops, or NATS_SETUP_TIMEOUT (when set)
// passes. While JetStream cannot answer yet (a new cluster elects leaders
// and places replicas; a GitOps controller has not created a stream yet)
// the process stays up, /readyz says what it waits for, and the log says
// so every 10 s.
func (p *process) setUp(s *natsconn.Settings, setUp func(ctx context.Context) error) error {
	ctx := p.ctx
	if s.SetupTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.SetupTimeout)
		defer cancel()
	}
	var mu sync.Mutex
	var lastLog time.Time
	ctx = streams.WithSetupReport(ctx, func(step string, err error) {
		reason := fmt.Sprintf("starting: waiting for JetStream: %s: %v", step, err)
		p.gate.NotReady(reason)
		mu.Lock()
		defer mu.Unlock()
		if time.Since(lastLog) >= 10*time.Second {
			lastLog = time.Now()
			p.log.Warn("waiting for JetStream before becoming ready", "step", step, "err", err)
		}
	})
	p.gate.NotReady("starting: setting up JetStream")
	if err := setUp(ctx); err != nil {
		return fmt.Errorf("set up streams: %w", err)
	}
	return nil
}

// ready turns /readyz on: from now on it checks the connection and streams.
func (p *process) ready(streams ...string) {
	p.gate.Ready(func(ctx context.Context) error { return natsconn.Ready(ctx, p.nc, p.js, streams...) })
}

// stoppedByNATS is why NATS ended the process (its connection closed for
// good, or a permission its user lacks), or nil.
func (p *process) stoppedByNATS() error {
	cause := context.Cause(p.ctx)
	if errors.Is(cause, natsconn.ErrConnectionLost) || errors.Is(cause, natsconn.ErrPermissionDenied) {
		return cause
	}
	return nil
}

// explain replaces an error that only says the work was cancelled (a
// set-up step, a write) with why NATS ended the process, when it did.
func (p *process) explain(err *error) {
	if cause := p.stoppedByNATS(); *err != nil && cause != nil && !errors.Is(*err, cause) {
		*err = fmt.Errorf("%w (%v)", cause, *err)
	}
}

// shutdown begins the stop: /readyz turns 503 at once, and after
// SHUTDOWN_DELAY the returned context gives the work in flight
// SHUTDOWN_TIMEOUT to finish (the caller stops its listener or consumers
// under it, then calls finish).
func (p *process) shutdown() (context.Context, context.CancelFunc) {
	p.gate.NotReady("shutting down")
	lost := p.stoppedByNATS() != nil
	p.log.Info("shutting down: readiness off", "delay", p.settings.ShutdownDelay.String(), "timeout", p.settings.ShutdownTimeout.String())
	if p.settings.ShutdownDelay > 0 && !lost {
		time.Sleep(p.settings.ShutdownDelay) // a fixed wait is the point: load balancers poll /readyz
	}
	p.log.Info("shutting down: finishing work in flight")
	return context.WithTimeout(context.Background(), p.settings.ShutdownTimeout)
}

// finish drains NATS within what is left of stopCtx, stops the ops
// endpoints, and returns why the process ended (nil for a requested stop).
func (p *process) finish(stopCtx context.Context) error {
	if p.nc != nil {
		left := time.Second
		if d, ok := stopCtx.Deadline(); ok && time.Until(d) > left {
			left = time.Until(d)
		}
		if err := natsconn.Drain(p.nc, left); err != nil {
			p.log.Warn("nats drain", "err", err)
		}
	}
	p.close()
	if cause := p.stoppedByNATS(); cause != nil {
		return cause
	}
	if stopCtx.Err() != nil {
		p.log.Warn("stopped after SHUTDOWN_TIMEOUT; work not finished is redelivered by JetStream")
		return nil
	}
	p.log.Info("stopped")
	return nil
}

// close releases what startProcess and connect opened; safe to call more
// than once (finish calls it, and every return path defers it).
func (p *process) close() {
	if p.stopOps == nil {
		return
	}
	if p.nc != nil {
		p.nc.Close()
	}
	p.stopOps()
	if err := p.waitOps(); err != nil {
		p.log.Warn("ops server", "err", err)
	}
	p.stopOps = nil
	p.lost(nil)
}

// firstOption is the options a Run function was given, or none: the
// variadic parameter lets main pass nothing.
func firstOption[T any](opts []T) T {
	var o T
	if len(opts) > 0 {
		o = opts[0]
	}
	return o
}
