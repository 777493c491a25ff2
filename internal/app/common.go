package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/smartrent-bridge/bridge/internal/cli"
	"github.com/smartrent-bridge/bridge/internal/telemetry"
	"github.com/smartrent-bridge/bridge/internal/version"
)

// newLogger is a JSON logger at level for the named service, adding
// trace and shop attributes from contexts.
func newLogger(out io.Writer, level, service string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("LOG_LEVEL: %w", err)
	}
	return slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: l}))).With("service", service), nil
}

// tracerProvider is given (with W3C trace context for outgoing calls), or
// configured by the OTEL_* variables with their propagators; the
// returned function flushes it at shutdown.
func tracerProvider(ctx context.Context, given trace.TracerProvider, service string, getenv cli.Getenv) (trace.TracerProvider, propagation.TextMapPropagator, func(), error) {
	if given != nil {
		return given, propagation.TraceContext{}, func() {}, nil
	}
	tp, props, shutdown, err := telemetry.Setup(ctx, service, version.Get().Version, getenv)
	if err != nil {
		return nil, nil, nil, err
	}
	return tp, props, func() { _ = shutdown(context.Background()) }, nil
}

// tracingOff reports a no-op tracer provider (telemetry.Setup's answer when
// the environment asks for no traces): instrumentation then only costs.
func tracingOff(tp trace.TracerProvider) bool {
	_, off := tp.(noop.TracerProvider)
	return off
}

// onReload calls reload on every SIGHUP (or signal on extra) until ctx
// ends; the returned function stops listening.
func onReload(ctx context.Context, extra <-chan struct{}, reload func()) func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			case <-extra:
			}
			reload()
		}
	}()
	return func() { signal.Stop(hup) }
}
