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

// Restore reads snapshots partition p of topic to its end (read_committed) and returns the
// shard's latest snapshots and checkpoint. Records it cannot decode are ignored (counted,
// logged once per call) and make the checkpoint unusable: snapshots are a cache, and the
// events are the truth. opts are extra franz-go client options (TLS, SASL).
func Restore(ctx context.Context, seeds []string, topic string, p int32, logger *slog.Logger, opts ...kgo.Opt) (*Shard, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Shard{Topic: topic, Partition: p, Snapshots: map[string]Record{}, Checkpoint: -1}
	var firstBad error
	st, err := partition.ReadToEnd(ctx, seeds, topic, p, 0, func(r *kgo.Record) error {
		key := string(r.Key)
		if key == CheckpointKey {
			if r.Value == nil {
				s.Checkpoint = -1
				return nil
			}
			off, err := decodeCheckpoint(r.Value)
			if err != nil {
				s.Ignored++
				firstBad = badRecord(firstBad, r, TypeCheckpoint, err)
				return nil
			}
			s.Checkpoint = off
			return nil
		}
		if r.Value == nil { // a tombstone: the snapshot was deleted
			delete(s.Snapshots, key)
			return nil
		}
		rec, err := decodeSnapshot(key, r.Value)
		if err != nil {
			s.Ignored++
			delete(s.Snapshots, key)
			firstBad = badRecord(firstBad, r, TypeSnapshot, err)
			return nil
		}
		s.Snapshots[key] = rec
		return nil
	}, opts...)
	s.Read = st
	if err != nil {
		return nil, fmt.Errorf("snapshot: restore %s/%d: %w", topic, p, err)
	}
	if s.Ignored > 0 {
		s.Checkpoint = -1
		logger.Warn("snapshot records ignored; the shard's events are replayed from the start",
			"topic", topic, "partition", p, "ignored", s.Ignored, "first", firstBad)
	}
	return s, nil
}

func badRecord(first error, r *kgo.Record, what string, err error) error {
	if first != nil {
		return first
	}
	return &kastor.UndecodableError{What: "snapshot", Type: what, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
}
