// Package tracing starts the spans of kastor's components: with the cluster's
// kastor.Tracer when there is one, else spans that record nothing and only name a new
// span ID for the traceparent of the records they write.
package tracing

import (
	"context"

	"github.com/kastor-dev/kastor"
)

// Start starts a span, child of parent when parent is valid. With a nil tr, or a span
// whose context is not a new valid span in parent's trace (a tracing library that is
// not configured returns its parent's context, or none), the span's context is
// parent.Child(), or a new trace when parent is not valid; the span is still ended
// through tr's.
func Start(tr kastor.Tracer, ctx context.Context, parent kastor.TraceContext, s kastor.SpanStart) kastor.Span {
	if tr == nil {
		return Fallback(parent)
	}
	sp := tr.Start(ctx, parent, s)
	tc := sp.TraceContext()
	if !tc.IsValid() || parent.IsValid() && (tc.TraceID != parent.TraceID || tc.SpanID == parent.SpanID) {
		return wrapped{Span: sp, tc: child(parent)}
	}
	return sp
}

// Fallback returns a span that records nothing, child of parent or the root of a new
// trace.
func Fallback(parent kastor.TraceContext) kastor.Span { return bare(child(parent)) }

func child(parent kastor.TraceContext) kastor.TraceContext {
	if parent.IsValid() {
		return parent.Child()
	}
	return kastor.NewTrace()
}

// bare is a span that records nothing.
type bare kastor.TraceContext

func (b bare) TraceContext() kastor.TraceContext { return kastor.TraceContext(b) }
func (bare) SetAttributes(...kastor.Attribute)   {}
func (bare) End(error)                           {}

// wrapped is a tracer's span with the context kastor writes instead of its own.
type wrapped struct {
	kastor.Span
	tc kastor.TraceContext
}

func (w wrapped) TraceContext() kastor.TraceContext { return w.tc }
