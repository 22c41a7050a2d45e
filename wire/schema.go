package wire

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
)

// HeaderSchemaType is set on _kastor.schemas records to the schema's full name, so that
// the topic can be browsed by type without parsing values.
const HeaderSchemaType = "kastor.schema.type"

// Errors of ReadSchemaHeaders.
var (
	// ErrMissingHeader: a header a record needs is absent.
	ErrMissingHeader = errors.New("kastor: missing header")
	// ErrBadHeader: a header is present but malformed.
	ErrBadHeader = errors.New("kastor: bad header")
)

// SchemaHeaders returns the headers that name a record's writer schema: its full name
// (kastor.type) and its fingerprint (kastor.schema, 16 hexadecimal digits).
func SchemaHeaders(typeName string, fingerprint uint64) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: kastor.HeaderType, Value: []byte(typeName)},
		{Key: kastor.HeaderSchema, Value: appendFingerprint(make([]byte, 0, 16), fingerprint)},
	}
}

// ReadSchemaHeaders returns the type name and writer fingerprint from a record's headers.
// The fingerprint is required (an error wrapping ErrMissingHeader or ErrBadHeader
// otherwise); the type name is empty when absent. When a header repeats, the last one
// counts.
func ReadSchemaHeaders(hs []kgo.RecordHeader) (typeName string, fingerprint uint64, err error) {
	var fp []byte
	found := false
	for _, h := range hs {
		switch h.Key {
		case kastor.HeaderType:
			typeName = string(h.Value)
		case kastor.HeaderSchema:
			fp, found = h.Value, true
		}
	}
	if !found {
		return typeName, 0, fmt.Errorf("%w: no %s header (the writer schema's fingerprint)", ErrMissingHeader, kastor.HeaderSchema)
	}
	n, ok := parseFingerprint(fp)
	if !ok {
		return typeName, 0, fmt.Errorf("%w: %s header %q is not 16 hexadecimal digits", ErrBadHeader, kastor.HeaderSchema, fp)
	}
	return typeName, n, nil
}
