package gateway

import (
	"context"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/internal/tracing"
	"github.com/kastor-dev/kastor/wire"
)

// commandSpan starts the span of handling command record r: a child of the command's
// traceparent, or the root of a new trace when the command has none (or one that does
// not parse, which is logged at debug level and otherwise ignored). Its context is the
// traceparent of the command's events and reply.
func (g *Gateway[S, C, E]) commandSpan(ctx context.Context, r *kgo.Record, ch *wire.Command) kastor.Span {
	if !ch.Trace.IsValid() {
		if _, err := wire.ParseTrace(r.Headers); err != nil {
			g.cfg.logger.Debug("command with a malformed traceparent: a new trace starts", "command_id", ch.CommandID,
				"partition", r.Partition, "offset", r.Offset, "err", err)
		}
	}
	tr := g.cluster.Tracer()
	if tr == nil {
		return tracing.Fallback(ch.Trace)
	}
	return tracing.Start(tr, ctx, ch.Trace, kastor.SpanStart{
		Name: "process " + r.Topic, Kind: kastor.SpanConsumer,
		Attributes: []kastor.Attribute{
			{Key: "messaging.system", Value: "kafka"}, {Key: "messaging.operation.type", Value: "process"},
			{Key: "messaging.destination.name", Value: r.Topic},
			{Key: "messaging.destination.partition.id", Value: strconv.FormatInt(int64(r.Partition), 10)},
			{Key: "messaging.kafka.offset", Value: r.Offset},
			{Key: "kastor.aggregate.type", Value: g.cfg.Aggregate.Type}, {Key: "kastor.aggregate.id", Value: string(r.Key)},
			{Key: "kastor.command.id", Value: ch.CommandID},
		},
	})
}

// handledSpan is the span of a command of a batch, ended with the batch's transaction.
type handledSpan struct {
	span   kastor.Span
	status Status
}

// endSpans ends the spans of the batch's commands with their outcome (the reply's
// status); err, when the transaction did not commit, marks them failed.
func (b *batch[S, E]) endSpans(err error) {
	for _, h := range b.spans {
		h.span.SetAttributes(kastor.Attribute{Key: "kastor.outcome", Value: string(h.status)})
		h.span.End(err)
	}
	b.spans = nil
}
