// Package otel records kastor's spans with OpenTelemetry: NewTracer returns a
// kastor.Tracer to give to cluster.Tracer, and every component of the cluster (Senders,
// gateways, saga runners) records its spans with it, in the traces the traceparent
// headers carry from one to the next.
//
// It is a Go module of its own, github.com/kastor-dev/kastor/otel, so that only the
// programs that use it depend on OpenTelemetry; kastor itself propagates the headers
// without it.
//
//	tp := sdktrace.NewTracerProvider(...)
//	c, err := cluster.New(cl, "demo", cluster.Tracer(otel.NewTracer(otel.WithTracerProvider(tp))))
//
// The spans:
//
//   - send <commands topic> (producer): a Sender's Send, Submit or Outcome, child of the
//     span in the caller's context (or of kastor.WithTrace's); it ends with the result.
//   - process <commands topic> (consumer): a gateway handling a command, child of the
//     command's traceparent; it ends when the command's transaction ends, with the
//     reply's status in kastor.outcome.
//   - process <saga inputs topic> (consumer): a saga runner applying an input (a routed
//     event, an outcome, a fired deadline), child of the input's traceparent; its commands
//     carry it as their traceparent.
package otel

import (
	"context"
	"fmt"

	global "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/kastor-dev/kastor"
)

// ScopeName is the instrumentation scope of kastor's spans.
const ScopeName = "github.com/kastor-dev/kastor"

// An Option configures NewTracer.
type Option func(*config)

type config struct {
	provider trace.TracerProvider
}

// WithTracerProvider sets the provider of the tracer (default: the global provider,
// otel.GetTracerProvider(), looked up when NewTracer is called).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.provider = tp }
}

// Tracer is a kastor.Tracer that records spans with OpenTelemetry.
type Tracer struct {
	tr trace.Tracer
}

var _ kastor.Tracer = (*Tracer)(nil)

// NewTracer returns a Tracer of the provider set by WithTracerProvider, or of the global
// provider.
func NewTracer(opts ...Option) *Tracer {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if c.provider == nil {
		c.provider = global.GetTracerProvider()
	}
	return &Tracer{tr: c.provider.Tracer(ScopeName)}
}

// Start starts a span: a child of parent when it is valid (a record's traceparent, as a
// remote parent), else of the span in ctx, else a root.
func (t *Tracer) Start(ctx context.Context, parent kastor.TraceContext, s kastor.SpanStart) kastor.Span {
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, SpanContext(parent))
	}
	kind := trace.SpanKindInternal
	switch s.Kind {
	case kastor.SpanProducer:
		kind = trace.SpanKindProducer
	case kastor.SpanConsumer:
		kind = trace.SpanKindConsumer
	}
	_, sp := t.tr.Start(ctx, s.Name, trace.WithSpanKind(kind), trace.WithAttributes(attributes(s.Attributes)...))
	return span{sp}
}

type span struct{ sp trace.Span }

func (s span) TraceContext() kastor.TraceContext { return TraceContext(s.sp.SpanContext()) }

func (s span) SetAttributes(attrs ...kastor.Attribute) { s.sp.SetAttributes(attributes(attrs)...) }

func (s span) End(err error) {
	if err != nil {
		s.sp.RecordError(err)
		s.sp.SetStatus(codes.Error, err.Error())
	}
	s.sp.End()
}

func attributes(as []kastor.Attribute) []attribute.KeyValue {
	kvs := make([]attribute.KeyValue, len(as))
	for i, a := range as {
		switch v := a.Value.(type) {
		case string:
			kvs[i] = attribute.String(a.Key, v)
		case int64:
			kvs[i] = attribute.Int64(a.Key, v)
		case int:
			kvs[i] = attribute.Int(a.Key, v)
		case int32:
			kvs[i] = attribute.Int64(a.Key, int64(v))
		case bool:
			kvs[i] = attribute.Bool(a.Key, v)
		default:
			kvs[i] = attribute.String(a.Key, fmt.Sprint(v))
		}
	}
	return kvs
}

// TraceContext converts an OpenTelemetry span context to a kastor.TraceContext: the
// traceparent a record written in that span carries.
func TraceContext(sc trace.SpanContext) kastor.TraceContext {
	if !sc.IsValid() {
		return kastor.TraceContext{}
	}
	return kastor.TraceContext{TraceID: sc.TraceID(), SpanID: sc.SpanID(), Flags: byte(sc.TraceFlags()), State: sc.TraceState().String()}
}

// SpanContext converts a kastor.TraceContext (a record's traceparent) to a remote
// OpenTelemetry span context. A tracestate OpenTelemetry does not accept is dropped.
func SpanContext(t kastor.TraceContext) trace.SpanContext {
	ts, err := trace.ParseTraceState(t.State)
	if err != nil {
		ts = trace.TraceState{}
	}
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: t.TraceID, SpanID: t.SpanID, TraceFlags: trace.TraceFlags(t.Flags), TraceState: ts, Remote: true,
	})
}

// FromContext returns the trace context of the span in ctx, for kastor.WithTrace when a
// Sender's cluster has no Tracer but the caller records spans.
func FromContext(ctx context.Context) kastor.TraceContext {
	return TraceContext(trace.SpanContextFromContext(ctx))
}
