package kastor

import "time"

// Event is implemented by event payloads. The type name identifies the event in record
// headers and in the schema registry, independently of the Go type's name, so renaming a
// Go type does not change stored data. Use a stable, qualified name such as
// "bank.AccountOpened".
type Event interface {
	EventType() string
}

// Tagged is implemented by events that carry tags (for example "vip" or a tenant), which
// readers can filter on without decoding the payload: they travel in record headers.
type Tagged interface {
	Tags() []string
}

// Envelope is an event with its metadata, as stored and as delivered to readers.
type Envelope[E any] struct {
	Metadata
	// Timestamp is the Kafka record's timestamp: when the event was appended.
	Timestamp time.Time
	Event     E

	// Topic, Partition and Offset locate the record in Kafka; Offset is -1 before the
	// event is written.
	Topic     string
	Partition int32
	Offset    int64
}
