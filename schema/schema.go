package schema

import (
	"fmt"

	"github.com/linkedin/goavro/v2"
)

// Schema is a parsed Avro schema: its JSON as written, its Parsing Canonical Form, its
// CRC-64-AVRO fingerprint and a goavro codec for it. A Schema is immutable and safe for
// concurrent use.
type Schema struct {
	text      string
	canonical string
	fp        Fingerprint
	root      *node
	codec     *goavro.Codec
}

// Parse validates an Avro schema (with kastor's parser, which applies the specification's
// naming and default rules, and with goavro, which must be able to encode and decode it)
// and computes its canonical form and fingerprint.
//
// Two rare forms are refused because goavro cannot express them: a named type with an
// explicit empty namespace inside another namespace (goavro would put it in the enclosing
// one), and a bytes decimal with a name. The goavro extension "validated-string" is
// refused as well: it is not Avro.
func Parse(text string) (*Schema, error) {
	root, err := parseNode(text)
	if err != nil {
		return nil, &ParseError{Err: err}
	}
	codec, err := newGoavroCodec(goavroForm(root))
	if err != nil {
		return nil, &ParseError{Err: fmt.Errorf("goavro: %w", err)}
	}
	canonical := canonicalForm(root)
	return &Schema{
		text:      text,
		canonical: canonical,
		fp:        FingerprintOf([]byte(canonical)),
		root:      root,
		codec:     codec,
	}, nil
}

// newGoavroCodec builds goavro's codec; goavro panics on a few malformed inputs that
// kastor's parser lets through, so a panic is an error here.
func newGoavroCodec(text string) (c *goavro.Codec, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("cannot build a codec: %v", r)
		}
	}()
	return goavro.NewCodec(text)
}

// MustParse is Parse for schemas known at compile time; it panics on error.
func MustParse(text string) *Schema {
	s, err := Parse(text)
	if err != nil {
		panic(err)
	}
	return s
}

// Name is the schema's full name for a record, enum or fixed ("bank.AccountOpened"), and
// the type's name otherwise ("string", "array", "union"). kastor uses it as the event,
// command or state type name.
func (s *Schema) Name() string {
	if s.root.kind.named() {
		return s.root.fullName
	}
	return s.root.kind.String()
}

// Kind is the schema's Avro type.
func (s *Schema) Kind() Kind { return s.root.kind }

// JSON is the schema as written. It is what _kastor.schemas stores, since the canonical
// form drops the defaults and aliases that resolution needs.
func (s *Schema) JSON() string { return s.text }

// Canonical is the schema's Parsing Canonical Form.
func (s *Schema) Canonical() string { return s.canonical }

// Fingerprint is the CRC-64-AVRO fingerprint of the canonical form.
func (s *Schema) Fingerprint() Fingerprint { return s.fp }

// Codec returns goavro's codec for the schema, for code that works with goavro's native
// values directly (to print a decoded value as Avro JSON, say). It is built from the
// schema with full names, without defaults (kastor applies defaults itself, so a record
// map given to it must have every field) and with decimals as plain bytes or fixed (their
// unscaled two's-complement value; kastor binds them to big.Rat).
func (s *Schema) Codec() *goavro.Codec { return s.codec }

// String names the schema and its fingerprint, for messages.
func (s *Schema) String() string { return s.Name() + "@" + s.fp.String() }
