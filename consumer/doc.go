// Package consumer is kastor's reader core: consumer groups over events topics that
// decode events through a kastor.Codec (writer schema, reader schema, upcasters) and
// apply them to a Sink, in offset order per partition — so in version order per
// aggregate — with partitions applied in parallel; the sinks; and dead letters as data.
// Running a projection across its versions, rebuilding it, and replaying or purging its
// dead letters is package projection's, which builds on this one (consumer never imports
// it; see decision 31).
//
// A Reader is one projection version: Config names it, lists its topics (by aggregate
// type or by name), its codec and an optional Filter on headers (event types, tags,
// aggregate IDs; filtered events are never decoded). It joins the consumer group
// GroupName(ns, name, version) with read_committed isolation, or, with
// Config.AllPartitions, reads every partition itself.
//
// Every function that talks to Kafka takes a *cluster.Cluster: the shared franz-go
// client, the namespace ns of the topic names, the logger and the metrics registerer.
// Admin requests go over the shared client; the clients a reader must own (its group
// member, its fetchers, its dead-letter producer) are made from the shared client's
// options with the reader's own added (cluster.Cluster.NewClient), so brokers, TLS and
// SASL are given once:
//
//	cl, err := kgo.NewClient(kgo.SeedBrokers("localhost:9092"))
//	...
//	defer cl.Close()
//	c, err := cluster.New(cl, "shop")
//	...
//	// version 1 of "balances", reading shop.bank.account.events
//	reader, err := consumer.New(c, consumer.ConfigFor("balances", codecs.Events, "bank.account"), sink)
//
// LocalConfigFor is the configuration of a read model each process holds whole (an
// in-memory Memory queried in every instance). Start runs a reader in the background once
// its topics are checked, for a process that queries it beside other work.
//
// # Offsets
//
// A Reader works in rounds: poll, apply every partition's records, commit the offsets of
// what was applied (or filtered, or durably parked), then let the group rebalance
// (kgo.BlockRebalanceOnPoll; see decision 15). Offsets are never committed for an event
// that was neither applied nor parked, and a revoked partition has everything its owner
// applied committed before the new owner starts. Sinks choose who owns offsets:
//
//   - Handler: the group does; at-least-once. After a crash the events since the last
//     commit (at most one round, MaxPollRecords) are applied again; envelopes carry the
//     aggregate ID and version to drop them.
//   - Memory and other OffsetStore sinks record Batch.Next with what they applied and
//     the reader resumes from their offsets: exactly once into the sink. A new Memory
//     starts from the earliest offsets.
//   - TxSink sinks write in the reader's Kafka transaction, with the consumed offsets
//     and the round's dead letters. KafkaTable (NewKafkaTable, NewKafkaTableCodec) is
//     one: a compacted output topic of rows, tombstones for deletes, exactly once for
//     read_committed readers; ReadTable reads it back into a map.
//
// # Failures
//
// An event whose Apply fails is retried alone with exponential backoff (Config.Retry),
// then parked on the dead-letter topic DLQTopic(ns, name) with its original key, value
// and headers plus kastor.dlq.* headers (reason, error, attempts, origin, projection), and
// the partition goes on. With ParkAggregate the aggregate's later events are parked too,
// marked held, until a replay (projection.Replay) applies them in order; other aggregates
// keep flowing. Undecodable records (headers missing or malformed, unknown type or
// schema, bad Avro) are parked at once. A sink error wrapped with Unavailable, or a
// dead-letter topic that cannot be written, makes the partition wait and retry without
// limit: nothing is skipped and nothing committed past it.
//
// ReadDeadLetters and ParseDeadLetter read the dead-letter topic; a letter is resolved by
// the marker ResolutionMarker builds, which projection.Replay writes after re-applying
// the letter and projection.Purge writes without applying it. Reader.ReloadDeadLetters
// makes a running reader read its letters again, so a resolved aggregate flows.
//
// # Progress
//
// Reader.Progress gives a running reader's positions, end offsets and lag per partition;
// GroupProgress gives a group's from its committed offsets, with no reader running;
// Progress.CaughtUp compares either with end offsets captured earlier (a rebuild's
// switch-over point). Metrics, registered on the cluster's registerer when it has one
// (cluster.Registerer): kastor_consumer_events_total, parked_total, failures_total,
// lag_records and apply_seconds, labelled with the projection and its version.
//
// # Throughput
//
// While a reader applies what one poll returned, franz-go fetches and decodes the next
// data, so catching up (a new projection, a rebuild) keeps every core busy. Readers fetch
// at most 256 KiB per partition at a time, so that what a round applies is still in the
// CPU caches, and recycle the decoded records after each round. franz-go decodes a
// client's fetches on one goroutine, so a reader with AllPartitions deals its partitions
// to two clients (Config.Fetchers). Config.Concurrency bounds how many partitions are
// applied at once. See decision 26; docs/BENCHMARKS.md has the figures.
package consumer
