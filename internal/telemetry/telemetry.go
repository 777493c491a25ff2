// Package telemetry sets up OpenTelemetry tracing from the standard OTEL_*
// environment variables and carries trace context through CloudEvents'
// traceparent extension, so one trace shows callback → bridge → Inbank →
// state event.
package telemetry

import (
	"context"
	"fmt"
	"strings"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/contrib/propagators/autoprop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Enabled reports whether the environment asks for traces: an OTLP
// endpoint, or an exporter (OTEL_TRACES_EXPORTER), is set, and neither
// OTEL_SDK_DISABLED nor OTEL_TRACES_EXPORTER=none turns them off. With
// nothing set tracing is off, rather than exporting to localhost:4318.
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") || getenv("OTEL_TRACES_EXPORTER") == "none" {
		return false
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || getenv("OTEL_TRACES_EXPORTER") != ""
}

// Setup returns a tracer provider exporting as the OTEL_* environment
// says, through the OpenTelemetry contrib packages rather than our own
// reading of it: autoexport picks the exporter and protocol
// (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf or
// grpc, endpoints, headers, …), and autoprop the propagators for outgoing
// HTTP calls (OTEL_PROPAGATORS; tracecontext,baggage by default).
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the compiled-in
// service name and version. With tracing off it returns a no-op provider.
// shutdown flushes what is buffered.
func Setup(ctx context.Context, service, version string, getenv func(string) string) (tp trace.TracerProvider, props propagation.TextMapPropagator, shutdown func(context.Context) error, err error) {
	if !Enabled(getenv) {
		return noop.NewTracerProvider(), propagation.NewCompositeTextMapPropagator(), func(context.Context) error { return nil }, nil
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("trace exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service), semconv.ServiceVersion(version)))
	if err == nil {
		res, err = resource.Merge(res, resource.Environment())
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("otel resource: %w", err)
	}
	p := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return p, autoprop.NewTextMapPropagator(), p.Shutdown, nil
}

var propagator = propagation.TraceContext{}

// ContextWithTraceParent returns ctx with the remote span that a W3C
// traceparent value names, so spans started from it join that trace.
func ContextWithTraceParent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// TraceParent is the W3C traceparent of the span in ctx, or "".
func TraceParent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagator.Inject(ctx, c)
	return c["traceparent"]
}
