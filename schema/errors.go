package schema

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kastor-dev/kastor/wire"
)

// Sentinel errors, matched with errors.Is; the typed errors below carry the details.
var (
	// ErrInvalidSchema: a schema's JSON is not a valid Avro schema (*ParseError).
	ErrInvalidSchema = errors.New("schema: invalid Avro schema")
	// ErrIncompatible: a reader schema cannot read data written with a writer schema
	// (*IncompatibleError).
	ErrIncompatible = errors.New("schema: incompatible schemas")
	// ErrUnknownSchema: no schema with the record's fingerprint is in the registry
	// (*UnknownSchemaError). Decoders wrap it in a *kastor.UndecodableError.
	ErrUnknownSchema = errors.New("schema: unknown writer schema")
	// ErrMalformed: the bytes are not a valid Avro encoding for the writer schema, or
	// exceed the decoder's Limits.
	ErrMalformed = errors.New("schema: malformed Avro data")
	// ErrMissingHeader: a record lacks a header kastor needs to decode it.
	ErrMissingHeader = wire.ErrMissingHeader
	// ErrBadHeader: a header is present but unreadable.
	ErrBadHeader = wire.ErrBadHeader
	// ErrBinding: a Go type does not fit a schema (*BindError), found when a Codec is made,
	// or a Go value cannot be encoded with it.
	ErrBinding = errors.New("schema: Go type does not fit the schema")
	// ErrNoSchemasTopic: the schemas topic does not exist (*NoTopicError).
	ErrNoSchemasTopic = errors.New("schema: schemas topic missing")
)

// ParseError reports an invalid schema.
type ParseError struct {
	Err error
}

// Error says what is invalid, and where in the schema.
func (e *ParseError) Error() string { return "schema: invalid Avro schema: " + e.Err.Error() }

// Is matches ErrInvalidSchema.
func (e *ParseError) Is(target error) bool { return target == ErrInvalidSchema }

// Unwrap returns the parser's error.
func (e *ParseError) Unwrap() error { return e.Err }

// Problem is one reason a reader schema cannot read a writer schema's data.
type Problem struct {
	// Path locates the problem: dotted field names from the root record, with "[]" for
	// array items and "{}" for map values; empty for the root itself.
	Path string
	// Message says what changed, naming the field, as in
	// `field "amount": type changed from long to int (not a promotion)`.
	Message string
}

// String is the message.
func (p Problem) String() string { return p.Message }

// IncompatibleError lists why Reader cannot read data written with Writer, per the Avro
// specification's resolution rules.
type IncompatibleError struct {
	Writer, Reader *Schema
	Problems       []Problem
}

// Error names the reader and writer schemas and lists every problem.
func (e *IncompatibleError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Message
	}
	return fmt.Sprintf("schema: %s (%s) cannot read data written with %s (%s): %s",
		e.Reader.Name(), e.Reader.Fingerprint(), e.Writer.Name(), e.Writer.Fingerprint(), strings.Join(msgs, "; "))
}

// Is matches ErrIncompatible.
func (e *IncompatibleError) Is(target error) bool { return target == ErrIncompatible }

// UnknownSchemaError: a record names a writer schema the registry does not hold.
type UnknownSchemaError struct {
	Fingerprint Fingerprint
}

// Error names the fingerprint and says where the schema should have come from.
func (e *UnknownSchemaError) Error() string {
	return fmt.Sprintf("schema: unknown writer schema %s: not in the registry (was it published to %s, and the registry loaded from it?)", e.Fingerprint, Topic)
}

// Is matches ErrUnknownSchema.
func (e *UnknownSchemaError) Is(target error) bool { return target == ErrUnknownSchema }

// BindError: a Go type does not fit a schema, or a Go value cannot be encoded with it.
type BindError struct {
	GoType string // the Go type bound, such as "bank.Opened"
	Schema string // the schema's name
	Path   string // the field path within the schema, empty for the root
	Msg    string
}

// Error names the Go type, the schema and the field.
func (e *BindError) Error() string {
	s := fmt.Sprintf("schema: Go type %s and Avro %s", e.GoType, e.Schema)
	if e.Path != "" {
		s += fmt.Sprintf(": field %q", e.Path)
	}
	return s + ": " + e.Msg
}

// Is matches ErrBinding.
func (e *BindError) Is(target error) bool { return target == ErrBinding }

// NoTopicError: the schemas topic does not exist. kastor never creates topics implicitly:
// `kastor topics apply` creates _kastor.schemas with the rest of the plan.
type NoTopicError struct {
	Topic string
}

// Error names the topic and the command that creates it.
func (e *NoTopicError) Error() string {
	return fmt.Sprintf("schema: topic %q does not exist; create it with `kastor topics apply` (compacted, 1 partition)", e.Topic)
}

// Is matches ErrNoSchemasTopic.
func (e *NoTopicError) Is(target error) bool { return target == ErrNoSchemasTopic }

// malformed builds an ErrMalformed error at a byte offset.
func malformed(pos int, format string, args ...any) error {
	return fmt.Errorf("%w at byte %d: %s", ErrMalformed, pos, fmt.Sprintf(format, args...))
}
