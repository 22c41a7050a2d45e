// Package snapshot stores aggregate snapshots in a compacted topic co-partitioned with the
// events topic: the snapshot of an aggregate lives in the same partition number (shard) as
// its events, under the aggregate ID as key, so compaction keeps the latest one.
//
// Snapshots are a cache, never the truth. A snapshot whose state cannot be decoded is
// ignored and the aggregate is rebuilt from its events.
//
// Besides per-aggregate snapshots, a snapshots partition holds a shard checkpoint: the
// events offset up to which every aggregate of the shard is covered by a snapshot.
// Recovery reads the snapshots partition, then the events partition from the checkpoint,
// so its cost is bounded by the checkpoint interval and the number of aggregates, never by
// the length of history (docs/decisions.md, decision 11).
//
// The package is the one owner of snapshots; the gateway drives it. Store.Restore restores
// a shard from its two partitions into the gateway's state (a Target), and returns the
// shard's bookkeeping (a Shard). Each transaction of the shard has a Txn, which decides the
// snapshots and checkpoint it writes (Policy) and builds their records from the gateway's
// aggregates (a Source); Shard.Handover builds the checkpoint written on handover.
package snapshot
