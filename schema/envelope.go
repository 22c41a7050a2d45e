package schema

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
)

// Header names of kastor's envelope. The record value is the Avro binary encoding of the
// event, command or state (no prefix: the writer schema is named by the header, not by a
// magic byte as in Avro's single-object encoding or Confluent's wire format).
const (
	// HeaderType carries the type name: the writer schema's full name, such as
	// "bank.AccountOpened". Consumers dispatch on it without decoding the value.
	HeaderType = kastor.HeaderType // "kastor.type"
	// HeaderSchema carries the writer schema's fingerprint as 16 hexadecimal digits; the
	// schema itself is in _kastor.schemas under that key.
	HeaderSchema = kastor.HeaderSchema // "kastor.schema"
	// HeaderSchemaType is set on _kastor.schemas records to the schema's full name, so the
	// topic can be browsed by type without parsing values.
	HeaderSchemaType = "kastor.schema.type"
)

// Headers returns the envelope headers that identify s as a record's writer schema.
func Headers(s *Schema) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: HeaderType, Value: []byte(s.Name())},
		{Key: HeaderSchema, Value: []byte(s.Fingerprint().String())},
	}
}

// ReadHeaders returns the type name and writer fingerprint from a record's headers. The
// fingerprint is required (an error wrapping ErrMissingHeader or ErrBadHeader otherwise);
// the type name is empty when absent. When a header repeats, the last one counts, as for
// Kafka headers generally.
func ReadHeaders(headers []kgo.RecordHeader) (typeName string, fp Fingerprint, err error) {
	var schema []byte
	found := false
	for _, h := range headers {
		switch h.Key {
		case HeaderType:
			typeName = string(h.Value)
		case HeaderSchema:
			schema, found = h.Value, true
		}
	}
	if !found {
		return typeName, 0, fmt.Errorf("%w: no %s header (the writer schema's fingerprint)", ErrMissingHeader, HeaderSchema)
	}
	fp, perr := ParseFingerprint(string(schema))
	if perr != nil {
		return typeName, 0, fmt.Errorf("%w: %s header %q is not 16 hexadecimal digits", ErrBadHeader, HeaderSchema, schema)
	}
	return typeName, fp, nil
}
