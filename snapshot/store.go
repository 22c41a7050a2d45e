package snapshot

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/internal/partition"
)

// Store is the snapshots topic of one aggregate type beside its events topic, seen from the
// owner of their shards (the gateway): it restores a shard from the two (Restore) and
// returns the shard's bookkeeping (Shard), which says what each transaction and each
// handover writes to the snapshots topic. The gateway makes one per aggregate type (see
// decision 32).
type Store struct {
	// Client is the client whose options (seeds, TLS, SASL, dialer, tuning) a restore's
	// reader is built from, with read_committed isolation. Required. It is not used for
	// the read itself nor closed: the reader needs an isolation level of its own.
	Client *kgo.Client
	// Snapshots and Events are the topic names (topics.TopicName). Required: a partition
	// number is a shard in both.
	Snapshots, Events string
	// Policy decides when snapshots and checkpoints are written; zero fields take their
	// defaults (see Policy).
	Policy Policy
	// TransactionTimeout is the transaction timeout of the shards' writers, overriding the
	// default 10 s (the gateway passes its own, 20 s by default). A restore waits up to it
	// plus a minute for a previous owner's open transaction in the events partition, which
	// the broker aborts after the timeout, at its next check for timed-out transactions
	// (transaction.abort.timed.out.transaction.cleanup.interval.ms, default 10 s).
	TransactionTimeout time.Duration
	// Logger receives what a restore waits for and what it ignores, and the snapshots
	// that cannot be written (default slog.Default()), so that operators see why a shard
	// is slow to restore or replays more than its tail.
	Logger *slog.Logger
}

// Target is the shard state a restore fills (the gateway's map of aggregates): Store.Restore
// hands it the snapshots partition's records, then the event tail. Its methods are called
// from the restoring goroutine, in this order: Reserve, then Snapshot and Delete in the
// snapshots' offset order, then Event in the events' offset order.
type Target interface {
	// Reserve is called first, with a bound on the number of snapshots to come: the
	// snapshots partition's end offset, which compaction only lowers. Sizing a map from it
	// saves rehashing it as it grows.
	Reserve(n int64)
	// Snapshot hands over the latest snapshot record of aggregate id so far, undecoded:
	// DecodeValue decodes it when the aggregate is first needed, so a restore decodes
	// nothing for the aggregates that get no command. A later call for the same id
	// replaces it. id and value alias the fetched record, whose buffer is never written
	// again: keep them rather than copy them (decision 16).
	Snapshot(id string, value []byte)
	// Delete says that aggregate id has no snapshot (anymore): a tombstone.
	Delete(id string)
	// Event applies an event of the tail, from the shard's checkpoint on, to aggregate id,
	// and reports whether it changed the aggregate (false when the aggregate's snapshot
	// already includes it): a changed aggregate is snapshotted by the next checkpoint. An
	// error ends the restore and is returned as it is.
	Event(ctx context.Context, id string, r *kgo.Record) (changed bool, err error)
}

// Restored tells what a restore read.
type Restored struct {
	// SnapshotRecords and EventRecords count the records read in each partition. The
	// event tail is bounded by the checkpoint policy, however long the history
	// (invariant W5).
	SnapshotRecords, EventRecords int
	// Checkpoint is the events offset the shard's checkpoint covers, which the tail was read
	// after; -1 when there was none (or it could not be decoded): the events were read from
	// the start.
	Checkpoint int64
	// Ignored counts snapshot records that could not be decoded and were ignored.
	Ignored int
}

// Restore restores shard p into into: it reads the snapshots partition to its last stable
// offset (read_committed), then the events partition from the shard's checkpoint to its end
// once no transaction is open there, and returns the shard's bookkeeping for the
// transactions that follow, with what it read.
//
// The events are read to their end once no transaction is open there. The caller must be
// the shard's only writer and not have begun, so an open transaction is a previous
// owner's: it settles in milliseconds, or the broker aborts it after TransactionTimeout;
// the wait is logged (see decision 20). The caller must first wait until the previous
// owner's command offsets are stable (the gateway's awaitStableOffset, see decision 10).
//
// A checkpoint record that cannot be decoded is ignored, logged, and voids the checkpoint:
// the events are read from the start, slower, never wrong. Snapshot records are not
// decoded here (see Target.Snapshot). Errors are returned without naming the shard, for the
// caller to wrap.
//
// Both partitions are read over one client, with one request for both ends, and the
// snapshots' first fetch starts before that request returns (decision 16).
func (s *Store) Restore(ctx context.Context, p int32, into Target) (*Shard, Restored, error) {
	logger := s.logger()
	rd, err := partition.NewReader(s.Client)
	if err != nil {
		return nil, Restored{}, err
	}
	defer rd.Close()
	rd.Logger = logger.With("partition", p)
	rd.Prefetch(s.Snapshots, p, 0)
	ends, err := rd.Ends(ctx, s.Snapshots, s.Events)
	if err != nil {
		return nil, Restored{}, err
	}
	snapEnd, err := partition.End(ends, s.Snapshots, p)
	if err != nil {
		return nil, Restored{}, err
	}
	eventsEnd, err := s.settledEventsEnd(ctx, rd, ends, p)
	if err != nil {
		return nil, Restored{}, err
	}
	sh := s.newShard(p)
	into.Reserve(snapEnd)
	sc := newScan(into)
	snapRead, err := rd.Read(ctx, s.Snapshots, p, 0, snapEnd, func(r *kgo.Record) error { sc.add(r); return nil })
	if err != nil {
		return nil, Restored{}, fmt.Errorf("snapshots: %w", err)
	}
	if sc.ignored > 0 {
		logger.Warn("snapshot records ignored; the shard's events are replayed from the start",
			"partition", p, "ignored", sc.ignored, "first", sc.err())
	}
	checkpoint := sc.usableCheckpoint()
	st, err := rd.Read(ctx, s.Events, p, checkpoint+1, eventsEnd, func(r *kgo.Record) error {
		id := string(r.Key)
		changed, err := into.Event(ctx, id, r)
		if changed {
			sh.dirty[id] = struct{}{}
			sh.sinceCheckpoint++
		}
		return err
	})
	if err != nil {
		return nil, Restored{}, err
	}
	// The last offset before the end is the last event, or the marker of the transaction
	// that wrote it: new events go after it.
	sh.lastEventOffset = st.End - 1
	return sh, Restored{SnapshotRecords: snapRead.Records, EventRecords: st.Records, Checkpoint: checkpoint, Ignored: sc.ignored}, nil
}

// settledEventsEnd is where the restore of shard p stops reading events: the events
// partition's last stable offset once no transaction is open there. The previous owner's
// last transaction can have stable command offsets while the marker that makes its events
// readable is not yet written or replicated; a restore stopping before them would write
// their versions again (see decision 20).
func (s *Store) settledEventsEnd(ctx context.Context, rd *partition.Reader, ends kadm.ListedOffsets, p int32) (int64, error) {
	lso, err := partition.End(ends, s.Events, p)
	if err != nil {
		return 0, err
	}
	// The broker looks for timed-out transactions every 10 s by default
	// (transaction.abort.timed.out.transaction.cleanup.interval.ms).
	sctx, cancel := context.WithTimeout(ctx, s.transactionTimeout()+time.Minute)
	defer cancel()
	start := time.Now()
	settled, err := rd.Settled(sctx, s.Events, p)
	if err != nil {
		return 0, err
	}
	if settled != lso {
		s.logger().Info("waited for a previous owner's transaction to settle before restoring", "partition", p,
			"from_offset", lso, "to_offset", settled, "took", time.Since(start).Round(time.Millisecond))
	}
	return settled, nil
}

func (s *Store) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

func (s *Store) transactionTimeout() time.Duration {
	if s.TransactionTimeout <= 0 {
		return 10 * time.Second
	}
	return s.TransactionTimeout
}
