package snapshot

import "time"

// Policy decides when snapshots and shard checkpoints are written (Txn.Due, Txn.Records,
// Shard.Handover). The zero Policy is the defaults below; the gateway takes one in its
// Config.
type Policy struct {
	// Every snapshots an aggregate each time its version crosses a multiple of Every
	// (default 100). Negative: never by count (checkpoints still snapshot changed aggregates).
	Every int64
	// CheckpointEvery writes a shard checkpoint after this many events in the shard
	// (default 10,000): recovery then reads at most about this many events per shard.
	CheckpointEvery int64
	// CheckpointInterval writes a shard checkpoint at least this often while the shard
	// changes (default 1 minute).
	CheckpointInterval time.Duration
	// OnRevoke writes a checkpoint of every shard the instance hands over in a rebalance
	// or a graceful shutdown: snapshots of the aggregates changed since the shard's last
	// checkpoint, then the checkpoint, in one transaction. The next owner then restores
	// from snapshots alone, reading no event tail: what rolling restarts want. It costs
	// the handover the time to write those snapshots (bounded by CheckpointEvery and
	// CheckpointInterval). Not done when partitions are lost (the session timed out):
	// the instance is no longer their owner then.
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
