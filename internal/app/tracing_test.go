package app

import (
	"context"
	"io"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/smartrent-bridge/bridge/internal/callbacktoken"
	"github.com/smartrent-bridge/bridge/internal/events"
	"github.com/smartrent-bridge/bridge/internal/inbank/inbanktest"
)

// TestOneTraceFromCallbackToStateEvent follows a callback through the real
// ingress server, the bridge's consumer, the Inbank session read and the
// status event it publishes: all in one trace, and the bridge's log lines
// for it carry its trace_id.
func TestOneTraceFromCallbackToStateEvent(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())

	w := newWorld(t, inbanktest.Config{}, map[string]string{"LOG_LEVEL": "info", "RECONCILE_INTERVAL": "1h"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ingEnv := map[string]string{"NATS_URL": w.env["NATS_URL"], "CALLBACK_SECRET": testSecret, "LISTEN_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0", "LOG_LEVEL": "error"}
	ing := make(chan IngressStarted, 1)
	done := make(chan error, 2)
	go func() {
		done <- RunIngress(ctx, nil, func(k string) string { return ingEnv[k] }, io.Discard, ing, IngressOptions{TracerProvider: tp})
	}()
	w.env["CALLBACK_BASE_URL"] = "http://" + (<-ing).Callbacks.String()
	logs := &syncBuffer{}
	br := make(chan BridgeStarted, 1)
	go func() {
		done <- RunBridge(ctx, nil, func(k string) string { return w.env[k] }, logs, br, BridgeOptions{TracerProvider: tp})
	}()
	<-br

	w.place("TR-1", 500)
	if _, err := w.fake.Sign(w.sessionOf("TR-1")); err != nil {
		t.Fatal(err)
	}
	w.out.wait("TR-1", events.TypeSessionStatusChange, 1)
	cancel()
	<-done
	<-done

	spans := rec.Ended()
	var callback trace.TraceID
	for _, s := range spans {
		if s.Name() == "inbank callback" && s.SpanKind() == trace.SpanKindServer {
			callback = s.SpanContext().TraceID()
		}
	}
	if !callback.IsValid() {
		for _, s := range spans {
			t.Logf("span %q kind %v", s.Name(), s.SpanKind())
		}
		t.Fatalf("no ingress span among %d spans", len(spans))
	}
	want := map[string]bool{
		"consume " + events.TypeCallbackReceived:    false,
		"publish " + events.TypeSessionStatusChange: false,
		"Inbank call (client span)":                 false,
	}
	for _, s := range spans {
		if s.SpanContext().TraceID() != callback {
			continue
		}
		if _, ok := want[s.Name()]; ok {
			want[s.Name()] = true
		}
		if s.SpanKind() == trace.SpanKindClient {
			want["Inbank call (client span)"] = true
		}
	}
	for name, seen := range want {
		if !seen {
			t.Errorf("the callback's trace has no %q span", name)
		}
	}
	// The callback URL's token (its signature part) is in no span.
	signer, _ := callbacktoken.New([]string{testSecret})
	_, sig, _ := strings.Cut(signer.Token("TR-1"), ".")
	for _, s := range spans {
		for _, a := range s.Attributes() {
			if strings.Contains(a.Value.String(), sig) {
				t.Errorf("span %q attribute %s holds the callback token", s.Name(), a.Key)
			}
		}
		if s.Name() == "inbank callback" {
			found := false
			for _, a := range s.Attributes() {
				found = found || (a.Key == "http.route" && a.Value.AsString() == "/v1/inbank/callbacks/{token}")
			}
			if !found {
				t.Errorf("the ingress span names no route: %v", s.Attributes())
			}
		}
	}
	if out := logs.String(); !strings.Contains(out, `"trace_id":"`+callback.String()+`"`) {
		t.Errorf("no bridge log line carries the callback's trace_id %s", callback)
	}
}
