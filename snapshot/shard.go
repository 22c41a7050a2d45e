package snapshot

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Shard is the snapshot bookkeeping of one owned shard: which aggregates changed since the
// shard's last checkpoint, how many events it had since, when that checkpoint was, and the
// offset of its last event. Store.Restore returns one; its owner then drives it with a Txn
// per transaction and Handover when it hands the shard over. It decides what goes to the
// snapshots topic, and builds those records, so the owner keeps no snapshot logic of its
// own (decision 11: a checkpoint bounds recovery).
//
// A Shard is not safe for concurrent use: the gateway uses it from its loop, and from the
// revoke callback while no transaction is open.
type Shard struct {
	store     *Store
	policy    Policy // with defaults
	partition int32
	// dirty aggregates changed since the last checkpoint; the next checkpoint snapshots them.
	dirty map[string]struct{}
	// lastEventOffset is the offset of the last event (or its transaction's marker)
	// written to the shard's events partition; -1: none.
	lastEventOffset int64
	sinceCheckpoint int64
	lastCheckpoint  time.Time
}

func (s *Store) newShard(p int32) *Shard {
	return &Shard{store: s, policy: s.Policy.withDefaults(), partition: p, dirty: map[string]struct{}{},
		lastEventOffset: -1, lastCheckpoint: time.Now()}
}

// Source is the owner's side of a shard's aggregates, which snapshots are taken of: the
// gateway's entries, as its transaction has them. It is asked for what a record needs, the
// state last and only when the record is written, so the owner keeps the state's codec
// and the snapshot package its format.
type Source interface {
	// Aggregate returns aggregate id's snapshot record as it stands, without its state
	// (StateType, StateFingerprint and State unset), and false when there is nothing to
	// write: the aggregate is unknown, or its latest snapshot is current (restored and
	// unchanged).
	Aggregate(id string) (Record, bool)
	// EncodeState sets rec's StateType, StateFingerprint and State to the encoding of
	// aggregate rec.AggregateID's state. An error skips that snapshot, and the checkpoint
	// that would claim it.
	EncodeState(rec *Record) error
}

// Txn is the snapshot side of one transaction in a shard: what the transaction does to
// the shard's aggregates, and so which snapshots and checkpoint it writes. Begin one per
// transaction and shard with Shard.Begin, tell it what the transaction does, ask it for
// the records (Records) once the events have their offsets, and call Committed once the
// transaction has committed; an aborted transaction's Txn is dropped.
type Txn struct {
	sh *Shard
	// held are the aggregates the transaction has a working copy of: a checkpoint
	// snapshots them all.
	held map[string]struct{}
	// due are the aggregates whose snapshot this transaction writes, checkpoint or not.
	due    map[string]struct{}
	events []written
	// checkpointed: Records included a checkpoint.
	checkpointed bool
}

// written is an event the transaction writes, and the aggregate it belongs to.
type written struct {
	id  string
	rec *kgo.Record
}

// Begin starts the bookkeeping of a transaction in the shard.
func (sh *Shard) Begin() *Txn {
	return &Txn{sh: sh, held: map[string]struct{}{}, due: map[string]struct{}{}}
}

// Hold says that the transaction works on aggregate id (a command reached it): if it
// writes a checkpoint, it snapshots id as the transaction leaves it.
func (t *Txn) Hold(id string) { t.held[id] = struct{}{} }

// Wrote records the events one command wrote for aggregate id, taking it from version
// before to version after; the transaction holds id (Hold). They count towards the shard's
// next checkpoint (Policy.CheckpointEvery), and make the aggregate's snapshot due when its
// version crosses a multiple of Policy.Every. recs are the event records, whose offsets
// are read once produced (Records, Committed).
func (t *Txn) Wrote(id string, before, after int64, recs []*kgo.Record) {
	t.Hold(id)
	for _, r := range recs {
		t.events = append(t.events, written{id: id, rec: r})
	}
	if t.sh.policy.due(before, after) {
		t.MarkDue(id)
	}
}

// MarkDue makes aggregate id's snapshot due in this transaction: for a refusal, which
// writes no event and is remembered only in the snapshot (decision 27), or on request.
func (t *Txn) MarkDue(id string) { t.due[id] = struct{}{} }

// Due reports whether the transaction writes snapshots or a checkpoint. Their records name
// the offset of the last event they include, so its owner must then have the events
// produced, and their offsets known, before calling Records.
func (t *Txn) Due() bool { return len(t.due) > 0 || t.checkpointDue() }

// checkpointDue reports whether the shard needs a checkpoint with this transaction: events
// since the last one, and Policy.CheckpointEvery of them or Policy.CheckpointInterval
// since it.
func (t *Txn) checkpointDue() bool {
	n := t.sh.sinceCheckpoint + int64(len(t.events))
	if n == 0 {
		return false
	}
	return n >= t.sh.policy.CheckpointEvery || time.Since(t.sh.lastCheckpoint) >= t.sh.policy.CheckpointInterval
}

// Records returns the records the transaction writes to the snapshots partition, once its
// events have their offsets: the snapshots due and, when a checkpoint is due, the
// snapshots of every aggregate changed since the last checkpoint or held by the
// transaction, then the checkpoint at the shard's last event. snapshots counts the
// snapshots among them. A snapshot that cannot be written is skipped and logged, and the
// checkpoint is not written: it would claim a snapshot that is not there.
func (t *Txn) Records(src Source) (recs []*kgo.Record, snapshots int) {
	sh := t.sh
	checkpoint := t.checkpointDue()
	ids := t.due
	if checkpoint {
		ids = make(map[string]struct{}, len(sh.dirty)+len(t.held)+len(t.due))
		for _, set := range []map[string]struct{}{sh.dirty, t.held, t.due} {
			for id := range set {
				ids[id] = struct{}{}
			}
		}
	}
	last := sh.lastEventOffset
	for _, w := range t.events {
		last = max(last, w.rec.Offset)
	}
	for id := range ids {
		kr, ok, err := sh.record(src, id)
		if err != nil {
			sh.store.logger().Warn("cannot write a snapshot; skipped", "partition", sh.partition, "aggregate_id", id, "err", err)
			checkpoint = false
			continue
		}
		if ok {
			recs = append(recs, kr)
		}
	}
	snapshots = len(recs)
	if checkpoint && last >= 0 {
		cp, err := CheckpointRecord(sh.store.Snapshots, sh.partition, last)
		if err == nil {
			recs = append(recs, cp)
			t.checkpointed = true
		}
	}
	return recs, snapshots
}

// Committed applies a committed transaction to the shard's bookkeeping: after a
// checkpoint, nothing has changed since; otherwise the aggregates it wrote events for
// have.
func (t *Txn) Committed() {
	sh := t.sh
	for _, w := range t.events {
		sh.lastEventOffset = max(sh.lastEventOffset, w.rec.Offset)
	}
	if t.checkpointed {
		clear(sh.dirty)
		sh.sinceCheckpoint = 0
		sh.lastCheckpoint = time.Now()
		return
	}
	for _, w := range t.events {
		sh.dirty[w.id] = struct{}{}
		sh.sinceCheckpoint++
	}
}

// Handover returns the records of the shard's checkpoint on handover (Policy.OnRevoke),
// to write in one transaction before the shard moves: the snapshots of the aggregates
// changed since the last checkpoint, then a checkpoint at the shard's last event, so the
// next owner reads no event tail. checkpointed is false when there is no checkpoint among
// them: nothing changed since the last one (no record at all), or a snapshot could not
// be written (logged; the snapshots before it are returned, still worth writing).
func (sh *Shard) Handover(src Source) (recs []*kgo.Record, checkpointed bool) {
	if sh.sinceCheckpoint == 0 && len(sh.dirty) == 0 {
		return nil, false
	}
	for id := range sh.dirty {
		kr, ok, err := sh.record(src, id)
		if err != nil {
			sh.store.logger().Warn("no checkpoint on revoke: cannot write a snapshot", "partition", sh.partition, "aggregate_id", id, "err", err)
			return recs, false
		}
		if ok {
			recs = append(recs, kr)
		}
	}
	if sh.lastEventOffset < 0 {
		return recs, false
	}
	cp, err := CheckpointRecord(sh.store.Snapshots, sh.partition, sh.lastEventOffset)
	if err != nil {
		return recs, false
	}
	return append(recs, cp), true
}

// record is the snapshot record of aggregate id as src has it; false when there is
// nothing to write (unknown, current, or nothing to remember).
func (sh *Shard) record(src Source, id string) (*kgo.Record, bool, error) {
	rec, ok := src.Aggregate(id)
	if !ok || rec.empty() {
		return nil, false, nil
	}
	rec.AggregateID = id
	if err := src.EncodeState(&rec); err != nil {
		return nil, false, fmt.Errorf("encoding the state: %w", err)
	}
	kr, err := rec.KafkaRecord(sh.store.Snapshots, sh.partition)
	if err != nil {
		return nil, false, err
	}
	return kr, true, nil
}
