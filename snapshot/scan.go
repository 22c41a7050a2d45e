package snapshot

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
)

// scan folds the records of one snapshots partition, fed to add in offset order, into the
// latest snapshot of each aggregate, handed to a Target undecoded, and the shard's
// checkpoint. Snapshots go straight into the target (the gateway's shard), with no map in
// between, and are decoded when their aggregate is first needed (DecodeValue): a restore
// then costs no decoding for the aggregates that get no command (decisions 13 and 16).
type scan struct {
	into Target
	// checkpoint is the shard's checkpoint so far (-1: none).
	checkpoint int64
	// ignored counts checkpoint records that could not be decoded.
	ignored  int
	firstBad error
}

func newScan(into Target) *scan { return &scan{into: into, checkpoint: -1} }

// add folds the next record of the partition in.
//
// The records' buffers must not change afterwards: the IDs and values handed to the
// target alias them, as fetched Kafka records can be, rather than copying them.
func (s *scan) add(r *kgo.Record) {
	key := alias(r.Key)
	if key == CheckpointKey {
		if r.Value == nil {
			s.checkpoint = -1
			return
		}
		off, err := decodeCheckpoint(r.Value)
		if err != nil {
			s.bad(r, TypeCheckpoint, err)
			return
		}
		s.checkpoint = off
		return
	}
	if r.Value == nil { // a tombstone: the snapshot was deleted
		s.into.Delete(key)
		return
	}
	s.into.Snapshot(key, r.Value)
}

// err is the first record that could not be decoded, as an *kastor.UndecodableError, or
// nil.
func (s *scan) err() error { return s.firstBad }

// usableCheckpoint is the checkpoint recovery may start the events from (-1: none). Once
// a checkpoint record could not be decoded, none is: snapshots are a cache, and the events
// are the truth.
func (s *scan) usableCheckpoint() int64 {
	if s.ignored > 0 {
		return -1
	}
	return s.checkpoint
}

func (s *scan) bad(r *kgo.Record, what string, err error) {
	s.ignored++
	if s.firstBad == nil {
		s.firstBad = &kastor.UndecodableError{What: "snapshot", Type: what, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
	}
}

// DecodeValue decodes the value of a snapshot record of aggregateID, as Target.Snapshot
// hands it over. The record's strings and state alias value. A value that does not decode
// is a cache miss, not a failure: the gateway rebuilds that aggregate from its events
// (see decision 13).
func DecodeValue(aggregateID string, value []byte) (Record, error) {
	return decodeSnapshot(aggregateID, value)
}
