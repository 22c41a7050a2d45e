package schema

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/wire"
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
	HeaderSchemaType = wire.HeaderSchemaType // "kastor.schema.type"
)

// Headers returns the envelope headers that identify s as a record's writer schema
// (wire.SchemaHeaders).
func Headers(s *Schema) []kgo.RecordHeader {
	return wire.SchemaHeaders(s.Name(), uint64(s.Fingerprint()))
}

// ReadHeaders returns the type name and writer fingerprint from a record's headers
// (wire.ReadSchemaHeaders): the fingerprint is required (an error wrapping
// ErrMissingHeader or ErrBadHeader otherwise); the type name is empty when absent.
func ReadHeaders(headers []kgo.RecordHeader) (typeName string, fp Fingerprint, err error) {
	name, n, err := wire.ReadSchemaHeaders(headers)
	return name, Fingerprint(n), err
}
