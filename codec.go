package kastor

// Encoded is a payload in its stored form: the Avro bytes with the type name and writer
// schema fingerprint that travel in the record's headers (kastor.type, kastor.schema).
type Encoded struct {
	Type        string
	Fingerprint uint64
	Data        []byte
}

// Codec encodes and decodes the payloads of one kind (an aggregate's commands, events or
// state). The gateway encodes with it and readers decode with it. Package schema provides
// the Avro implementation (schema.TypesCodec, schema.ValueCodec); any other must keep
// Decode total: an error for bad input, never a panic.
type Codec[T any] interface {
	Encode(v T) (Encoded, error)
	Decode(e Encoded) (T, error)
}

// Codecs are the three codecs of one aggregate type: its commands', its events' and its
// state's. A gateway uses all three, a Sender the first, a reader the second.
// schema.ForAggregate derives them from the Go types.
type Codecs[S, C, E any] struct {
	Commands Codec[C]
	Events   Codec[E]
	States   Codec[S]
}
