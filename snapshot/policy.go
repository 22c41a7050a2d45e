package snapshot

import "time"

// Policy decides when snapshots and shard checkpoints are written (Txn.Due, Txn.Records,
// Shard.Handover). The zero Policy takes the defaults below; the gateway takes one in its
// Config.
type Policy struct {
	// Every makes an aggregate's snapshot due each time its version crosses a multiple of
	// Every, overriding the default 100, so that a hot aggregate's snapshot stays recent
	// between checkpoints. Negative: never by count (checkpoints still snapshot changed
	// aggregates).
	Every int64
	// CheckpointEvery writes a shard checkpoint after this many events in the shard,
	// overriding the default 10,000: a restore then reads at most about this many events
	// per shard (see decision 11).
	CheckpointEvery int64
	// CheckpointInterval writes a shard checkpoint at least this often while the shard
	// changes, overriding the default 1 minute.
	CheckpointInterval time.Duration
	// OnRevoke writes, for every shard the instance hands over (a rebalance, a graceful
	// stop), the snapshots of its aggregates changed since its last checkpoint and then a
	// checkpoint, in one transaction (default false). The next owner then restores from
	// snapshots alone, with no event tail; the handover takes the time to write them,
	// bounded by CheckpointEvery and CheckpointInterval. Not done when partitions are lost
	// (a session timeout): the instance no longer owns them. See decision 17.
	OnRevoke bool
}

// withDefaults returns p with zero fields set to their defaults.
func (p Policy) withDefaults() Policy {
	if p.Every == 0 {
		p.Every = 100
	}
	if p.CheckpointEvery <= 0 {
		p.CheckpointEvery = 10_000
	}
	if p.CheckpointInterval <= 0 {
		p.CheckpointInterval = time.Minute
	}
	return p
}

// due reports whether an aggregate going from version before to version after (one
// command's events) crosses a multiple of Every and so needs a snapshot.
func (p Policy) due(before, after int64) bool {
	p = p.withDefaults()
	if p.Every < 0 || after <= before {
		return false
	}
	return after/p.Every > before/p.Every
}
