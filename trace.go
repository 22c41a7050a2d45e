package kastor

import (
	"context"
	"encoding/hex"
	"math/rand/v2"

	"github.com/kastor-dev/kastor/internal/tracecontext"
)

// TraceContext is a W3C Trace Context (https://www.w3.org/TR/trace-context/): the trace
// a record belongs to and the span that wrote it. It travels in the traceparent header
// (HeaderTraceParent), and the vendor data of tracestate (HeaderTraceState) rides along
// verbatim. kastor propagates it from a command to its events and reply, and from a
// saga's inputs to the commands they cause, each hop as a child span, so that a whole
// business process (a transfer and its saga) is one trace, with or without a Tracer.
//
// The zero TraceContext is "no trace": it is not written, and a component given one
// starts a new trace.
type TraceContext struct {
	// TraceID identifies the trace: every record caused, directly or not, by one request.
	TraceID [16]byte
	// SpanID is the traceparent's parent-id: the span that wrote the record, which the
	// reader's span is a child of.
	SpanID [8]byte
	// Flags are the trace-flags; bit 0 (TraceSampled) says the writer may have recorded
	// its span. Carried as received.
	Flags byte
	// State is the tracestate header's value, vendors' data carried verbatim ("": none).
	State string
}

// TraceSampled is the trace-flags bit saying the trace's spans may be recorded.
const TraceSampled byte = 0x01

// ParseTraceParent reads a traceparent header value as the W3C specification says:
// version 00 is exactly 55 characters, "00-" 32 lower-case hex digits (the trace ID) "-"
// 16 (the parent ID) "-" 2 (the flags); a later version is read from its first 55
// characters (a following field must start with '-'); version ff, upper-case hex and
// all-zero IDs are invalid. The result has no State.
func ParseTraceParent(s string) (TraceContext, error) {
	t, sp, f, err := tracecontext.Parse(s)
	if err != nil {
		return TraceContext{}, err
	}
	return TraceContext{TraceID: t, SpanID: sp, Flags: f}, nil
}

// IsValid reports whether t names a trace and a span: both IDs are not all zeros.
func (t TraceContext) IsValid() bool { return t.TraceID != [16]byte{} && t.SpanID != [8]byte{} }

// TraceParent returns t as a version-00 traceparent header value
// ("00-<trace ID>-<span ID>-<flags>"), or "" when t is not valid.
func (t TraceContext) TraceParent() string {
	if !t.IsValid() {
		return ""
	}
	return string(tracecontext.Append(make([]byte, 0, tracecontext.Len), t.TraceID, t.SpanID, t.Flags))
}

// String returns the traceparent form of t, as TraceParent does.
func (t TraceContext) String() string { return t.TraceParent() }

// MarshalText returns the traceparent form of t ("" when not valid), so that JSON and
// logs show the header rather than byte arrays. State is not included.
func (t TraceContext) MarshalText() ([]byte, error) { return []byte(t.TraceParent()), nil }

// UnmarshalText reads a traceparent as ParseTraceParent does; "" is the zero
// TraceContext.
func (t *TraceContext) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*t = TraceContext{}
		return nil
	}
	tc, err := ParseTraceParent(string(b))
	if err != nil {
		return err
	}
	*t = tc
	return nil
}

// TraceIDString returns the trace ID in 32 lower-case hex digits, the form tracing
// back ends search by.
func (t TraceContext) TraceIDString() string { return hex.EncodeToString(t.TraceID[:]) }

// SpanIDString returns the span ID in 16 lower-case hex digits.
func (t TraceContext) SpanIDString() string { return hex.EncodeToString(t.SpanID[:]) }

// Child returns the context of a new span in t's trace: a random span ID, t's trace ID,
// flags and state. Without a Tracer, that is what a component writes on the records a
// record caused; the span is named on the wire only.
func (t TraceContext) Child() TraceContext {
	t.SpanID = newSpanID()
	return t
}

// NewTrace returns the context of a new trace's root span: random trace and span IDs,
// flags TraceSampled, so that a process downstream that records spans with a
// parent-based sampler (OpenTelemetry's default) records this trace.
func NewTrace() TraceContext {
	var t TraceContext
	for t.TraceID == [16]byte{} {
		a, b := rand.Uint64(), rand.Uint64()
		for i := range 8 {
			t.TraceID[i], t.TraceID[8+i] = byte(a>>(56-8*i)), byte(b>>(56-8*i))
		}
	}
	t.SpanID, t.Flags = newSpanID(), TraceSampled
	return t
}

func newSpanID() [8]byte {
	var id [8]byte
	for id == [8]byte{} {
		n := rand.Uint64()
		for i := range 8 {
			id[i] = byte(n >> (56 - 8*i))
		}
	}
	return id
}

type traceKey struct{}

// WithTrace returns a copy of ctx carrying t: a Sender given it writes its commands as
// children of t (the caller's span), so that an incoming request's trace (the
// traceparent of an HTTP request, say) continues through the commands it sends. A t
// that is not valid is ignored.
func WithTrace(ctx context.Context, t TraceContext) context.Context {
	if !t.IsValid() {
		return ctx
	}
	return context.WithValue(ctx, traceKey{}, t)
}

// TraceFrom returns the TraceContext WithTrace put in ctx, and whether there is one.
func TraceFrom(ctx context.Context) (TraceContext, bool) {
	t, ok := ctx.Value(traceKey{}).(TraceContext)
	return t, ok
}

// SpanKind says what a span does, with OpenTelemetry's meaning.
type SpanKind int

const (
	// SpanInternal is a step inside a process.
	SpanInternal SpanKind = iota
	// SpanProducer writes a message that another process handles later (a Sender's
	// command).
	SpanProducer
	// SpanConsumer handles a message another process wrote (a gateway handling a
	// command, a saga applying an input).
	SpanConsumer
)

// Attribute is a key and value of a span: a string, int64 or bool.
type Attribute struct {
	Key   string
	Value any
}

// SpanStart describes a span to start.
type SpanStart struct {
	// Name is the span's name, "<operation> <topic>" as OpenTelemetry's messaging
	// conventions say ("send demo.bank.account.commands").
	Name string
	// Kind is what the span does: SpanProducer for a Sender, SpanConsumer for a gateway
	// handling a command and for a saga's transition.
	Kind SpanKind
	// Attributes are set when the span starts.
	Attributes []Attribute
}

// Tracer records spans for kastor's components: a hook for a tracing library, set once
// for every component with cluster.Tracer. Nil (the default) records nothing: the
// components still propagate the traceparent header, starting each hop's span ID
// themselves. Package github.com/kastor-dev/kastor/otel (a module of its own, so that
// only programs that use it depend on OpenTelemetry) implements it.
//
// Implementations must be safe for concurrent use and cheap: a gateway starts a span per
// command it handles.
type Tracer interface {
	// Start starts a span. Its parent is parent when parent is valid (the trace context
	// of the record being handled); otherwise the span in ctx, if the tracing library
	// keeps one there, else none: a new trace.
	Start(ctx context.Context, parent TraceContext, s SpanStart) Span
}

// Span is a span a Tracer started.
type Span interface {
	// TraceContext is the span's own context: its trace ID and span ID, which kastor
	// writes as the traceparent of the records the span writes.
	TraceContext() TraceContext
	// SetAttributes adds attributes (an outcome known at the end).
	SetAttributes(attrs ...Attribute)
	// End ends the span; a non-nil err marks it failed.
	End(err error)
}
