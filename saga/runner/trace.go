package runner

import (
	"context"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/internal/tracing"
	"github.com/kastor-dev/kastor/wire"
)

// transitionSpan starts the span of applying one input to instance inst: a child of
// parent, the input's trace (an event's or a reply's traceparent; for a fired deadline,
// the trace of the instance's last transition in this process), or the root of a new
// trace when there is none (a record written without one, a malformed one, logged at
// debug level, a deadline fired after a restore). Its context is the traceparent of the
// commands the transition sends. rec is the input record, nil for a fired deadline.
func (r *Runner[S, C, E]) transitionSpan(rec *kgo.Record, inst, inputID string, parent kastor.TraceContext) kastor.Span {
	if rec != nil && !parent.IsValid() {
		if _, err := wire.ParseTrace(rec.Headers); err != nil {
			r.cfg.logger.Debug("saga input with a malformed traceparent: a new trace starts", "instance", inst,
				"partition", rec.Partition, "offset", rec.Offset, "err", err)
		}
	}
	tr := r.cluster.Tracer()
	if tr == nil {
		return tracing.Fallback(parent)
	}
	attrs := []kastor.Attribute{
		{Key: "messaging.system", Value: "kafka"}, {Key: "messaging.operation.type", Value: "process"},
		{Key: "messaging.destination.name", Value: r.cfg.inputs},
		{Key: "kastor.saga.type", Value: r.cfg.Saga.Type}, {Key: "kastor.saga.id", Value: inst},
		{Key: "kastor.saga.input", Value: inputID},
	}
	if rec != nil {
		attrs = append(attrs, kastor.Attribute{Key: "messaging.destination.partition.id", Value: strconv.FormatInt(int64(rec.Partition), 10)},
			kastor.Attribute{Key: "messaging.kafka.offset", Value: rec.Offset})
	}
	return tracing.Start(tr, context.Background(), parent, kastor.SpanStart{
		Name: "process " + r.cfg.inputs, Kind: kastor.SpanConsumer, Attributes: attrs,
	})
}

// endSpans ends the spans of the batch's inputs once its transaction ended; err, when
// it did not commit, marks them failed.
func (b *batch[S, C]) endSpans(err error) {
	for _, sp := range b.spans {
		sp.End(err)
	}
	b.spans = nil
}

// outcome sets a transition span's outcome: applied, ignored or parked.
func outcome(sp kastor.Span, what string) {
	sp.SetAttributes(kastor.Attribute{Key: "kastor.outcome", Value: what})
}
