package kastor

// AnyVersion, as a command's ExpectedVersion, skips the version check.
const AnyVersion int64 = -1

// Command carries a command payload C with the metadata that routes and guards it. The
// metadata travels in Kafka record headers and the key; C alone is Avro-encoded.
type Command[C any] struct {
	// AggregateID is the target aggregate and the record key: it selects the partition,
	// so every command for one aggregate is handled by the same single writer, in order.
	AggregateID string
	// ID identifies the command for deduplication: re-sending a command with the same ID
	// returns the first result and writes nothing new. Generated when empty.
	ID string
	// ExpectedVersion, unless AnyVersion, rejects the command with a *VersionConflictError
	// when the aggregate is at another version: optimistic concurrency for callers that
	// decided on what they read. Use 0 to require a new aggregate.
	ExpectedVersion int64
	// CorrelationID ties together everything done for one business request; it is copied
	// to the command's events. Defaults to the command ID.
	CorrelationID string
	// Payload is the command itself.
	Payload C
}

// NewCommand returns a command for aggregate id with no version expectation.
func NewCommand[C any](aggregateID string, payload C) Command[C] {
	return Command[C]{AggregateID: aggregateID, ExpectedVersion: AnyVersion, Payload: payload}
}
