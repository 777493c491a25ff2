package telemetry

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// LogHandler adds trace_id and span_id to records logged with a context
// that carries a span (slog's *Context methods), and the attributes
// [WithLogAttrs] put in the context. It writes each key once per line:
// strict JSON log pipelines drop lines with duplicate names, and the same
// key can come from a logger's With, the context and the call itself. The
// last of them wins, in that order (the call is the most specific).
type LogHandler struct {
	inner slog.Handler
	attrs []slog.Attr // from WithAttrs, applied at Handle so they can be de-duplicated
}

// NewLogHandler wraps inner (a handler with no attributes of its own).
func NewLogHandler(inner slog.Handler) LogHandler { return LogHandler{inner: inner} }

type logAttrsKey struct{}

// WithLogAttrs returns ctx carrying attrs for every record logged with it
// through a [LogHandler] (e.g. the order's shop).
func WithLogAttrs(ctx context.Context, attrs ...slog.Attr) context.Context {
	prev, _ := ctx.Value(logAttrsKey{}).([]slog.Attr)
	return context.WithValue(ctx, logAttrsKey{}, append(append([]slog.Attr(nil), prev...), attrs...))
}

// Enabled implements slog.Handler.
func (h LogHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h LogHandler) Handle(ctx context.Context, r slog.Record) error {
	all := make([]slog.Attr, 0, len(h.attrs)+4+r.NumAttrs())
	all = append(all, h.attrs...)
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		all = append(all, slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	if attrs, ok := ctx.Value(logAttrsKey{}).([]slog.Attr); ok {
		all = append(all, attrs...)
	}
	r.Attrs(func(a slog.Attr) bool { all = append(all, a); return true })
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(lastOfEachKey(all)...)
	return h.inner.Handle(ctx, out)
}

// lastOfEachKey keeps each key once, at its first place, with its last
// value. Lines have a handful of attributes: a quadratic scan beats a map.
func lastOfEachKey(attrs []slog.Attr) []slog.Attr {
	out := attrs[:0:0]
	for i, a := range attrs {
		if a.Equal(slog.Attr{}) {
			continue
		}
		seen := false
		for _, o := range out {
			if o.Key == a.Key {
				seen = true
				break
			}
		}
		if seen {
			continue
		}
		for _, later := range attrs[i+1:] {
			if later.Key == a.Key {
				a = later
			}
		}
		out = append(out, a)
	}
	return out
}

// WithAttrs implements slog.Handler.
func (h LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return LogHandler{inner: h.inner, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

// WithGroup implements slog.Handler. The attributes so far stay outside
// the group; later ones, and those of the context, go inside it.
func (h LogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return LogHandler{inner: h.inner.WithAttrs(lastOfEachKey(h.attrs)).WithGroup(name)}
}
