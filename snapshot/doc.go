// Package snapshot keeps aggregate snapshots and shard checkpoints in a compacted topic
// co-partitioned with the events topic, and restores a shard from the two.
//
// A snapshot lives in its aggregate's shard (the partition number of its events), keyed by
// aggregate ID, so compaction keeps the latest. A shard checkpoint is the events offset up
// to which every aggregate of the shard has a snapshot: a restore reads the snapshots, then
// only the events after the checkpoint, so its cost does not grow with the history.
// Snapshots are a cache: one that does not decode is ignored, and its aggregate is rebuilt
// from its events.
//
// Store.Restore fills a Target (the owner's aggregates) and returns the shard's
// bookkeeping, a Shard. Each transaction gets a Txn (Shard.Begin), which applies the
// Policy to decide which snapshots and checkpoint it writes, and builds them from a
// Source; Shard.Handover builds the checkpoint written on revoke. Package gateway is the
// one driver; gateway/shard.go shows a Target and a Source.
//
// "See decision N" in this package's comments refers to docs/decisions.md; decisions 11
// (checkpoints), 13 and 16 (restore) and 32 (one owner) explain this design.
package snapshot
