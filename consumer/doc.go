// Package consumer holds kastor's readers and projections: consumer groups over events
// topics with committed offsets, read_committed, decoding events through the schema
// package, applying them to sinks (in memory, a Kafka table, PostgreSQL) with retries, a
// dead-letter topic and rebuilds without downtime.
//
// Not implemented yet: this package is the subject of issue #4.
package consumer
