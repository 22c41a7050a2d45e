package kastor

// Record header names of kastor's envelope. Metadata travels in headers so tools (kcat,
// the kastor CLI, other languages) can route and filter records without decoding the Avro
// value, and so the value stays the plain Avro encoding of the payload.
const (
	HeaderAggregateType = "kastor.aggregate.type"
	HeaderAggregateID   = "kastor.aggregate.id"
	// HeaderVersion is the event's version in its aggregate, in decimal.
	HeaderVersion = "kastor.version"
	// HeaderType is the payload's type name (an event, command or state type).
	HeaderType = "kastor.type"
	// HeaderSchema is the writer schema's CRC-64-AVRO fingerprint, 16 lower-case hex digits.
	HeaderSchema        = "kastor.schema"
	HeaderCommandID     = "kastor.command.id"
	HeaderCorrelationID = "kastor.correlation.id"
	HeaderCausationID   = "kastor.causation.id"
	// HeaderTag is repeated, once per tag: Kafka headers may repeat a key, and a tag may
	// contain any character.
	HeaderTag = "kastor.tag"
	// HeaderTraceParent is the W3C Trace Context traceparent (TraceContext): the trace
	// the record belongs to and the span that wrote it, "00-<32 hex>-<16 hex>-<2 hex>".
	// Named as the specification names it, without kastor's prefix, so that tracing
	// libraries of other languages (OpenTelemetry's Kafka instrumentations) continue the
	// trace. A malformed value is ignored, never an error.
	HeaderTraceParent = "traceparent"
	// HeaderTraceState is the W3C tracestate that goes with HeaderTraceParent: vendors'
	// data, carried verbatim; dropped when the traceparent is absent or malformed.
	HeaderTraceState = "tracestate"
)

// Metadata is the envelope of an event (or a command, which uses the subset that applies).
// Package wire writes it as record headers and reads it back.
type Metadata struct {
	AggregateType string
	AggregateID   string
	// Version is the event's position in its aggregate's history, 1 for the first event;
	// 0 when not applicable (commands).
	Version int64
	// Type is the payload's type name (Event.EventType for events).
	Type string
	// Fingerprint is the CRC-64-AVRO fingerprint of the payload's writer schema.
	Fingerprint uint64
	// CommandID is the command that produced the event, or the command's own ID.
	CommandID string
	// CorrelationID is the business request the message belongs to.
	CorrelationID string
	// CausationID is the message that directly caused this one.
	CausationID string
	// Tags are free labels, one kastor.tag header each, for filtering without decoding.
	Tags []string
	// Trace is the trace the message belongs to and the span that wrote it (headers
	// traceparent and tracestate); zero when it carries none or a malformed one.
	Trace TraceContext
}
