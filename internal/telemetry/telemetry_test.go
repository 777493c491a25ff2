package telemetry_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/smartrent-bridge/bridge/internal/telemetry"
)

// received is what a collector got: service name → span names.
type received struct {
	mu    sync.Mutex
	spans map[string][]string
	got   chan struct{}
}

func newReceived() *received {
	return &received{spans: map[string][]string{}, got: make(chan struct{}, 16)}
}

func (r *received) add(req *collectortrace.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		service := ""
		for _, a := range rs.Resource.Attributes {
			if a.Key == "service.name" {
				service = a.Value.GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				r.spans[service] = append(r.spans[service], s.Name)
			}
		}
	}
	r.got <- struct{}{}
}

// grpcCollector is the OTLP/gRPC trace service.
type grpcCollector struct {
	collectortrace.UnimplementedTraceServiceServer
	r *received
}

func (c grpcCollector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.r.add(req)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// export sets up tracing from the process environment (as the binaries
// do), ends one span and flushes.
func export(t *testing.T) propagation.TextMapPropagator {
	t.Helper()
	tp, props, shutdown, err := telemetry.Setup(context.Background(), "smartrent-bridge", "v-test", os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("test").Start(context.Background(), "handle order.placed")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	return props
}

func wait(t *testing.T, r *received) map[string][]string {
	t.Helper()
	select {
	case <-r.got:
	case <-time.After(10 * time.Second):
		t.Fatal("the collector received nothing")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.spans
}

// TestExportsOverOTLPHTTP: OTEL_EXPORTER_OTLP_ENDPOINT alone exports over
// OTLP/HTTP (the spec's default protocol); OTEL_SERVICE_NAME names the
// service.
func TestExportsOverOTLPHTTP(t *testing.T) {
	r := newReceived()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var msg collectortrace.ExportTraceServiceRequest
		if req.URL.Path != "/v1/traces" || proto.Unmarshal(body, &msg) != nil {
			t.Errorf("collector got %s %s", req.Method, req.URL.Path)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.add(&msg)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "shop-a-bridge")
	export(t)
	if got := wait(t, r); len(got["shop-a-bridge"]) != 1 || got["shop-a-bridge"][0] != "handle order.placed" {
		t.Fatalf("collector got %v, want one span of service shop-a-bridge", got)
	}
}

// TestExportsOverOTLPGRPC: OTEL_EXPORTER_OTLP_PROTOCOL=grpc exports over
// gRPC; without OTEL_SERVICE_NAME the compiled-in name is used.
func TestExportsOverOTLPGRPC(t *testing.T) {
	r := newReceived()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(s, grpcCollector{r: r})
	go s.Serve(ln)
	defer s.Stop()
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+ln.Addr().String())
	export(t)
	if got := wait(t, r); len(got["smartrent-bridge"]) != 1 {
		t.Fatalf("collector got %v, want one span of service smartrent-bridge", got)
	}
}

// TestPropagatorsFollowOTELPropagators: the outgoing HTTP propagators are
// tracecontext and baggage by default, and what OTEL_PROPAGATORS names.
func TestPropagatorsFollowOTELPropagators(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	for env, want := range map[string]string{"": "traceparent", "b3": "b3", "b3multi": "x-b3-traceid", "tracecontext": "traceparent"} {
		t.Setenv("OTEL_PROPAGATORS", env)
		_, props, shutdown, err := telemetry.Setup(context.Background(), "smartrent-bridge", "v-test", os.Getenv)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		props.Inject(ctx, propagation.HeaderCarrier(h))
		shutdown(context.Background())
		if h.Get(want) == "" || (env == "b3" && h.Get("traceparent") != "") {
			t.Errorf("OTEL_PROPAGATORS=%q injected %v, want %s", env, h, want)
		}
	}
}

// TestTracingOffByDefault: with no OTEL_* variable nothing is exported,
// nowhere.
func TestTracingOffByDefault(t *testing.T) {
	getenv := func(string) string { return "" }
	tp, _, _, err := telemetry.Setup(context.Background(), "smartrent-bridge", "v-test", getenv)
	if _, off := tp.(noop.TracerProvider); err != nil || !off {
		t.Fatalf("tracing on with no OTEL_* variable: %T %v", tp, err)
	}
	if telemetry.Enabled(func(k string) string {
		return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}[k]
	}) {
		t.Error("OTEL_SDK_DISABLED=true leaves tracing on")
	}
}
