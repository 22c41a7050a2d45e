// Package kastor is a toolkit for event-sourced DDD/CQRS services whose only infrastructure
// is Apache Kafka: Kafka is the event store, the command router, the snapshot store, the
// checkpoint store and the message bus.
//
// Aggregate IDs are Kafka partition keys, so a partition is a shard with exactly one writer:
// the command gateway instance that owns it in the gateway's consumer group. Gateways append
// Avro-encoded events with transactional producers; readers are consumer groups with
// committed offsets; snapshots live in compacted topics.
//
// The packages, from the bottom up:
//
//   - cluster: one handle on Kafka, the user's franz-go client with a namespace
//   - schema: Avro codecs, fingerprints, the schema topic and schema evolution
//   - producer: keyed idempotent and transactional appenders
//   - snapshot: the compacted snapshot store
//   - gateway: shard ownership, recovery, command processing, request/reply
//   - consumer: readers, their sinks and dead letters; consumer/pgsink: a PostgreSQL sink
//   - projection: projections by name over readers: registry, rebuilds, replays
//   - topics: the topic layout of an application and its reconciliation with a cluster
//   - devbroker: an embedded Kafka-protocol broker for development and unit tests
//   - kafkatest: real Kafka clusters (and the embedded broker) for tests; pgtest:
//     PostgreSQL servers for tests
//
// The command-line tool lives in cmd/tool and is built as `kastor`.
package kastor
