// Package schema holds kastor's Avro layer: schemas and their CRC-64-AVRO fingerprints,
// Go bindings, Avro schema resolution, upcasters, the backward-compatibility check, and the
// _kastor.schemas topic.
//
// # Envelope
//
// Every event, command and state value is the Avro binary encoding of one datum (goavro/v2).
// Its record carries two headers: kastor.type, the type name (the schema's full name), and
// kastor.schema, the writer schema's fingerprint as 16 hexadecimal digits. The fingerprint
// is the CRC-64-AVRO (Rabin) hash of the schema's Parsing Canonical Form, as Java's
// SchemaNormalization.parsingFingerprint64 computes it, so any Avro implementation can
// find the schema again.
//
// # Writing
//
// A service parses its schemas, binds each Go type with NewCodec, and at startup calls
// Publish: it loads _kastor.schemas, refuses any schema that cannot read the data of every
// earlier schema of its type (naming the type and the field), and writes the new ones.
// Codec.Encode and Codec.Headers then make the record.
//
// # Deriving schemas
//
// The schemas need not be written by hand: Derive writes the schema of a Go struct (the
// record named by its EventType method, fields named as bindings name them, tag options
// for defaults and logical types), and DeriveTypes registers a family of Go types with
// their derived schemas in one call:
//
//	events, err := schema.DeriveTypes[kastor.Event](reg, "event",
//		schema.Of[Opened](), schema.Of[Deposited](), schema.Of[Closed]())
//
// A derived schema is an ordinary Schema: its canonical form and fingerprint are those of
// the same schema written by hand, and it evolves by the same rules, so a field added to
// a type in use needs a default (`avro:"currency,default=EUR"`).
//
// # Reading
//
// Decoding never needs the producer's code: the writer schema is looked up by fingerprint
// in a Registry (filled by Load from _kastor.schemas), the bytes are decoded with it,
// upcasters registered for the writer type rewrite what Avro resolution cannot express
// (a field or type renamed without an alias, a restructured value), and the result is
// resolved to the reader schema by the Avro specification's rules: fields matched by name
// or alias, defaults for fields the writer lacks, numeric promotion, enum and union rules.
// Errors are *kastor.UndecodableError values naming the type and the fingerprint.
//
// goavro does not resolve schemas; kastor does, over goavro's native values, with the
// analysis done once per (writer, reader) pair. goavro also trusts the lengths it reads,
// so kastor checks the bytes against the writer schema first (see Limits): hostile input
// gives an error, not a huge allocation.
//
// goavro validates every schema and decodes data written with schemas other than a
// codec's own. The two hot paths skip its intermediate maps: a Codec encodes a Go value to
// Avro binary directly, and reads data written with its own schema directly into the Go
// value. The tests hold both to goavro: the encoding byte for byte, and the direct decoder
// by fuzzing it against the goavro path on the same inputs.
//
// # Compatibility with other Avro implementations
//
// Fingerprints and canonical forms are checked against Apache Avro's Java implementation,
// and so are resolution and the compatibility verdicts (testdata/*.java write the golden
// files). kastor departs from Java's reader in one place: a record whose name changed
// without an alias is not read (the specification's rule; Java does not check record
// names), because an event type's name is part of its meaning.
package schema
