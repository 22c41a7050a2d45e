package snapshot

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/internal/partition"
)

// Shard is what a snapshots partition holds: the latest snapshot of each aggregate and
// the shard's checkpoint.
type Shard struct {
	Topic     string
	Partition int32
	// Snapshots maps aggregate IDs to their latest snapshot.
	Snapshots map[string]Record
	// Checkpoint is the events offset up to which every aggregate of the shard is covered,
	// or -1 when there is none: then the events partition is read from its start.
	Checkpoint int64
	// Read describes the read of the snapshots partition (records read, end offset).
	Read partition.Stats
	// Ignored counts snapshot records that could not be decoded and were ignored.
	Ignored int
}

// EventsFrom is the events offset recovery reads the events partition from.
func (s *Shard) EventsFrom() int64 { return s.Checkpoint + 1 }

// Drop discards an aggregate's snapshot, typically one whose state no longer resolves to
// the current state schema. The checkpoint no longer covers that aggregate, so it is
// dropped too and recovery replays the shard's events from the start: slower, never wrong.
func (s *Shard) Drop(aggregateID string) {
	delete(s.Snapshots, aggregateID)
	s.Checkpoint = -1
}

// Scan folds the records of one snapshots partition, fed to Add in offset order, into the
// latest snapshot of each aggregate and the shard's checkpoint. Restore uses it to fill a
// map; the gateway uses it to restore straight into its own shard state, without a map in
// between.
type Scan struct {
	// Put receives each aggregate's snapshot as it is read; a later call for the same
	// aggregate replaces the earlier one. The record comes by value: a pointer would
	// escape and cost an allocation per snapshot, 100,000s in a restore.
	Put func(rec Record)
	// Delete is called for a tombstone, and for a record that cannot be decoded: the
	// aggregate has no usable snapshot (anymore).
	Delete func(aggregateID string)
	// PutEncoded, when set, receives each snapshot undecoded instead of Put: the caller
	// decodes it with DecodeValue when the aggregate is first needed, so a restore costs
	// no decoding for the aggregates that get no command. A record that then fails to
	// decode is the caller's to handle (replaying the aggregate's events); it does not
	// void the checkpoint as a record Put could not decode does. The value aliases the
	// Kafka record's buffer.
	PutEncoded func(aggregateID string, value []byte)

	// Checkpoint is the shard's checkpoint so far (-1: none). After the last record it is
	// the checkpoint recovery may use: -1 once any record was ignored.
	Checkpoint int64
	// Ignored counts records that could not be decoded.
	Ignored  int
	firstBad error
}

// NewScan returns a Scan handing snapshots to put and deletions to del.
func NewScan(put func(Record), del func(aggregateID string)) *Scan {
	return &Scan{Put: put, Delete: del, Checkpoint: -1}
}

// Add folds the next record of the partition in.
//
// The records' buffers must not change afterwards: the snapshots handed to Put alias them
// (IDs and states), as fetched Kafka records can be, rather than copying them.
func (s *Scan) Add(r *kgo.Record) {
	key := alias(r.Key)
	if key == CheckpointKey {
		if r.Value == nil {
			s.Checkpoint = -1
			return
		}
		off, err := decodeCheckpoint(r.Value)
		if err != nil {
			s.bad(r, TypeCheckpoint, err)
			return
		}
		s.Checkpoint = off
		return
	}
	if r.Value == nil { // a tombstone: the snapshot was deleted
		s.Delete(key)
		return
	}
	if s.PutEncoded != nil {
		s.PutEncoded(key, r.Value)
		return
	}
	rec, err := decodeSnapshot(key, r.Value)
	if err != nil {
		s.Delete(key)
		s.bad(r, TypeSnapshot, err)
		return
	}
	s.Put(rec)
}

// DecodeValue decodes the value of a snapshot record of aggregateID, as Scan.PutEncoded
// hands it over. The record's strings and state alias value.
func DecodeValue(aggregateID string, value []byte) (Record, error) {
	return decodeSnapshot(aggregateID, value)
}

// Err is the first record that could not be decoded, as an *kastor.UndecodableError, or
// nil. Once there is one, the checkpoint is unusable: snapshots are a cache, and the
// events are the truth.
func (s *Scan) Err() error { return s.firstBad }

// UsableCheckpoint is the checkpoint recovery may start the events from (-1: none).
func (s *Scan) UsableCheckpoint() int64 {
	if s.Ignored > 0 {
		return -1
	}
	return s.Checkpoint
}

func (s *Scan) bad(r *kgo.Record, what string, err error) {
	s.Ignored++
	if s.firstBad == nil {
		s.firstBad = &kastor.UndecodableError{What: "snapshot", Type: what, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
	}
}

// Restore reads snapshots partition p of topic to its end (read_committed) and returns the
// shard's latest snapshots and checkpoint. Records it cannot decode are ignored (counted,
// logged once per call) and make the checkpoint unusable: snapshots are a cache, and the
// events are the truth.
//
// The read goes over a client of its own built from base's options (seed brokers, TLS,
// SASL, dialer) followed by read_committed isolation, so snapshots of aborted transactions
// are never seen; base itself is not used for the read and is not closed. A nil logger
// means slog.Default().
func Restore(ctx context.Context, base *kgo.Client, topic string, p int32, logger *slog.Logger) (*Shard, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Shard{Topic: topic, Partition: p, Snapshots: map[string]Record{}, Checkpoint: -1}
	scan := NewScan(func(r Record) { s.Snapshots[r.AggregateID] = r }, func(id string) { delete(s.Snapshots, id) })
	st, err := partition.ReadToEnd(ctx, base, topic, p, 0, func(r *kgo.Record) error { scan.Add(r); return nil })
	s.Read = st
	if err != nil {
		return nil, fmt.Errorf("snapshot: restore %s/%d: %w", topic, p, err)
	}
	s.Checkpoint, s.Ignored = scan.UsableCheckpoint(), scan.Ignored
	if s.Ignored > 0 {
		logger.Warn("snapshot records ignored; the shard's events are replayed from the start",
			"topic", topic, "partition", p, "ignored", s.Ignored, "first", scan.Err())
	}
	return s, nil
}
