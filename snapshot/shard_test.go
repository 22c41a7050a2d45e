package snapshot

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// fakeSource is a Source over a map of records; current aggregates are unknown to it.
type fakeSource struct {
	recs    map[string]Record
	bad     map[string]bool // state encoding fails
	encoded []string
}

func (s *fakeSource) Aggregate(id string) (Record, bool) {
	r, ok := s.recs[id]
	return r, ok
}

func (s *fakeSource) EncodeState(rec *Record) error {
	s.encoded = append(s.encoded, rec.AggregateID)
	if s.bad[rec.AggregateID] {
		return errors.New("no codec for it")
	}
	rec.StateType, rec.State = "t", []byte(rec.AggregateID)
	return nil
}

func testShard(pol Policy) *Shard {
	s := &Store{Snapshots: "snaps", Events: "events", Policy: pol, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return s.newShard(3)
}

// eventRecs returns records of events produced at offsets.
func eventRecs(offsets ...int64) []*kgo.Record {
	var out []*kgo.Record
	for _, o := range offsets {
		out = append(out, &kgo.Record{Offset: o})
	}
	return out
}

// writtenRecs splits records into the snapshots' aggregate IDs (sorted) and the checkpoint's
// offset (-1: none).
func writtenRecs(t *testing.T, recs []*kgo.Record) ([]string, int64) {
	t.Helper()
	var ids []string
	cp := int64(-1)
	for _, r := range recs {
		if r.Topic != "snaps" || r.Partition != 3 {
			t.Fatalf("record for %s/%d", r.Topic, r.Partition)
		}
		if string(r.Key) == CheckpointKey {
			off, err := decodeCheckpoint(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			cp = off
			continue
		}
		if _, err := DecodeValue(string(r.Key), r.Value); err != nil {
			t.Fatalf("snapshot of %s: %v", r.Key, err)
		}
		ids = append(ids, string(r.Key))
	}
	slices.Sort(ids)
	return ids, cp
}

// A transaction writes the snapshots due (a version crossing Policy.Every, a refusal, a
// request) and nothing else until a checkpoint is due; then it snapshots every aggregate
// changed since the last checkpoint or held by the transaction, and writes the checkpoint
// at the shard's last event. Only a committed transaction counts.
func TestTxnSnapshotsAndCheckpoints(t *testing.T) {
	sh := testShard(Policy{Every: 10, CheckpointEvery: 5, CheckpointInterval: time.Hour})
	src := &fakeSource{recs: map[string]Record{
		"a": {Version: 3, EventOffset: 2},
		"b": {Version: 10, EventOffset: 3},
		"r": {Version: 0, EventOffset: -1, Refusals: []Refusal{{ID: "x", Status: "REJECTED"}}},
		"z": {Version: 0, EventOffset: -1}, // nothing to remember
	}}

	tx := sh.Begin()
	tx.Hold("a")
	tx.Hold("b")
	tx.Hold("r")
	tx.Hold("z")
	tx.Wrote("a", 0, 3, eventRecs(0, 1, 2))
	tx.Wrote("b", 9, 10, eventRecs(3)) // crosses 10
	tx.MarkDue("r")                    // a refusal
	if !tx.Due() {
		t.Fatal("snapshots due, Due false")
	}
	recs, n := tx.Records(src)
	if ids, cp := writtenRecs(t, recs); !slices.Equal(ids, []string{"b", "r"}) || cp != -1 || n != 2 {
		t.Fatalf("wrote %v (%d snapshots), checkpoint %d; want b and r, no checkpoint", ids, n, cp)
	}
	tx.Committed()
	if len(sh.dirty) != 2 || sh.sinceCheckpoint != 4 || sh.lastEventOffset != 3 {
		t.Fatalf("after the commit: dirty %v, %d since the checkpoint, last event %d", sh.dirty, sh.sinceCheckpoint, sh.lastEventOffset)
	}

	// An aborted transaction leaves no trace.
	tx = sh.Begin()
	tx.Wrote("a", 3, 4, eventRecs(4))
	if sh.sinceCheckpoint != 4 {
		t.Fatal("an uncommitted transaction counted")
	}

	// The fifth event makes a checkpoint due: the dirty aggregates and the held ones.
	tx = sh.Begin()
	if tx.Due() {
		t.Fatal("Due with nothing to write")
	}
	tx.Hold("r")
	tx.Hold("z")
	src.recs["a"] = Record{Version: 4, EventOffset: 9}
	tx.Wrote("a", 3, 4, eventRecs(9))
	if !tx.Due() {
		t.Fatal("checkpoint due, Due false")
	}
	recs, n = tx.Records(src)
	if ids, cp := writtenRecs(t, recs); !slices.Equal(ids, []string{"a", "b", "r"}) || cp != 9 || n != 3 {
		t.Fatalf("wrote %v (%d snapshots), checkpoint %d; want a, b, r and a checkpoint at 9", ids, n, cp)
	}
	if slices.Contains(src.encoded, "z") {
		t.Fatal("the state of an aggregate with nothing to remember was encoded")
	}
	tx.Committed()
	if len(sh.dirty) != 0 || sh.sinceCheckpoint != 0 || sh.lastEventOffset != 9 {
		t.Fatalf("after the checkpoint: dirty %v, %d since it, last event %d", sh.dirty, sh.sinceCheckpoint, sh.lastEventOffset)
	}

	// A snapshot that cannot be written is skipped, and so is the checkpoint.
	sh.lastCheckpoint = time.Now().Add(-2 * time.Hour) // due by time
	src.bad = map[string]bool{"a": true}
	tx = sh.Begin()
	tx.Wrote("a", 4, 5, eventRecs(10))
	tx.Wrote("b", 10, 11, eventRecs(11))
	src.recs["b"] = Record{Version: 11, EventOffset: 11}
	recs, n = tx.Records(src)
	if ids, cp := writtenRecs(t, recs); !slices.Equal(ids, []string{"b"}) || cp != -1 || n != 1 {
		t.Fatalf("wrote %v, checkpoint %d; want b alone", ids, cp)
	}
	tx.Committed()
	if len(sh.dirty) != 2 || sh.sinceCheckpoint != 2 || sh.lastEventOffset != 11 {
		t.Fatalf("after a failed checkpoint: dirty %v, %d since it, last event %d", sh.dirty, sh.sinceCheckpoint, sh.lastEventOffset)
	}
}

// Handover snapshots the aggregates changed since the last checkpoint and writes a
// checkpoint at the shard's last event; nothing when nothing changed; no checkpoint when
// a snapshot cannot be written. Current aggregates (unknown to the source) are skipped.
func TestHandover(t *testing.T) {
	sh := testShard(Policy{Every: -1, CheckpointEvery: 1 << 40, CheckpointInterval: time.Hour, OnRevoke: true})
	src := &fakeSource{recs: map[string]Record{"a": {Version: 1, EventOffset: 0}, "b": {Version: 2, EventOffset: 2}}}
	if recs, ok := sh.Handover(src); recs != nil || ok {
		t.Fatalf("an unchanged shard: %d records, checkpoint %v", len(recs), ok)
	}
	tx := sh.Begin()
	tx.Wrote("a", 0, 1, eventRecs(0))
	tx.Wrote("b", 0, 2, eventRecs(1, 2))
	tx.Wrote("c", 0, 1, eventRecs(3)) // current: not in the source
	tx.Committed()
	recs, ok := sh.Handover(src)
	if ids, cp := writtenRecs(t, recs); !ok || !slices.Equal(ids, []string{"a", "b"}) || cp != 3 {
		t.Fatalf("handover: %v, checkpoint %d (%v); want a, b and a checkpoint at 3", ids, cp, ok)
	}
	src.bad = map[string]bool{"a": true, "b": true}
	if recs, ok := sh.Handover(src); ok || len(recs) != 0 {
		t.Fatalf("a snapshot that cannot be written: %d records, checkpoint %v", len(recs), ok)
	}
}
