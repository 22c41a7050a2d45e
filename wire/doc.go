// Package wire reads and writes the headers of kastor's Kafka records: the envelope of
// events, commands and states (kastor.Metadata, with the W3C traceparent and tracestate
// of its trace), the headers that make a record a command
// or a question and say whom to answer, the headers of replies, the writer schema's type
// and fingerprint, and the kastor.dlq.* headers of a projection's dead letters. Every
// component that reads or writes a header goes through this package, so the format
// documented in docs/wire-format.md has one implementation.
//
// Values are not here: they are Avro binary (package schema), snapshot records (package
// snapshot) and replies (package gateway).
package wire
