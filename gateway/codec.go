package gateway

// Encoded is a payload in its stored form: the Avro bytes with the type name and writer
// schema fingerprint that travel in the record's headers.
type Encoded struct {
	Type        string
	Fingerprint uint64
	Data        []byte
}

// Codec encodes and decodes the payloads of one kind (commands, events or states).
// Package schema provides the Avro implementation; any other must keep Decode total: an
// error for bad input, never a panic.
type Codec[T any] interface {
	Encode(v T) (Encoded, error)
	Decode(e Encoded) (T, error)
}
