package tracing

import (
	"context"
	"errors"
	"testing"

	"github.com/kastor-dev/kastor"
)

// fixed is a tracer whose spans have a given context: none, or the parent's, as an
// OpenTelemetry provider that is not configured gives.
type fixed struct {
	tc    func(parent kastor.TraceContext) kastor.TraceContext
	ended *[]error
}

func (f fixed) Start(_ context.Context, parent kastor.TraceContext, _ kastor.SpanStart) kastor.Span {
	return fixedSpan{f, f.tc(parent)}
}

type fixedSpan struct {
	f  fixed
	tc kastor.TraceContext
}

func (s fixedSpan) TraceContext() kastor.TraceContext { return s.tc }
func (fixedSpan) SetAttributes(...kastor.Attribute)   {}
func (s fixedSpan) End(err error)                     { *s.f.ended = append(*s.f.ended, err) }

// The context written on the wire is always a new span of the parent's trace (or of a
// new trace), whatever the tracer gives; the tracer's span is still ended.
func TestStartFallsBack(t *testing.T) {
	parent := kastor.NewTrace()
	parent.State = "a=b"
	var ended []error
	for name, tc := range map[string]func(kastor.TraceContext) kastor.TraceContext{
		"none":     func(kastor.TraceContext) kastor.TraceContext { return kastor.TraceContext{} },
		"parent's": func(p kastor.TraceContext) kastor.TraceContext { return p },
		"other":    func(kastor.TraceContext) kastor.TraceContext { return kastor.NewTrace() },
	} {
		for _, tr := range []kastor.Tracer{nil, fixed{tc, &ended}} {
			sp := Start(tr, context.Background(), parent, kastor.SpanStart{Name: "x"})
			got := sp.TraceContext()
			if got.TraceID != parent.TraceID || got.SpanID == parent.SpanID || got.State != parent.State || !got.IsValid() {
				t.Errorf("%s, tracer %v: %+v, want a child of %+v", name, tr != nil, got, parent)
			}
			sp.End(errors.New("e"))
			root := Start(tr, context.Background(), kastor.TraceContext{}, kastor.SpanStart{Name: "x"})
			if !root.TraceContext().IsValid() || root.TraceContext().TraceID == parent.TraceID {
				t.Errorf("%s, tracer %v: root %+v, want a new trace", name, tr != nil, root.TraceContext())
			}
		}
	}
	if len(ended) != 3 {
		t.Errorf("%d tracer spans ended, want 3", len(ended))
	}
	// A tracer's valid child is used as it is.
	good := fixed{func(p kastor.TraceContext) kastor.TraceContext { return p.Child() }, &ended}
	if sp := Start(good, context.Background(), parent, kastor.SpanStart{}); sp.TraceContext().TraceID != parent.TraceID {
		t.Errorf("a valid child was replaced: %+v", sp.TraceContext())
	}
}
