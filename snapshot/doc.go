// Package snapshot stores aggregate snapshots in a compacted topic co-partitioned with the
// events topic, so recovering a shard reads its latest snapshots and then only the event
// tail. Snapshots are a cache, never the truth: one that cannot be decoded is ignored and
// the aggregate replays from its events.
//
// Not implemented yet: this package is part of issue #3.
package snapshot
