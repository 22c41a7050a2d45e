package pgsink_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/consumer/pgsink"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/pgtest"
	"github.com/kastor-dev/kastor/projection"
	"github.com/kastor-dev/kastor/wire"
)

// These tests run readers on real Kafka with the sink on real PostgreSQL.

// spy is the sink as the reader sees it, noting the first offset of each partition the
// reader hands it.
type spy struct {
	*pgsink.Sink[kastor.Event]
	mu    sync.Mutex
	first map[consumer.TopicPartition]int64
}

func newSpy(s *pgsink.Sink[kastor.Event]) *spy {
	return &spy{Sink: s, first: map[consumer.TopicPartition]int64{}}
}

func (s *spy) Apply(ctx context.Context, b consumer.Batch[kastor.Event]) error {
	lo := int64(-1)
	if len(b.Events) > 0 {
		lo = b.Events[0].Offset
	}
	if len(b.Skipped) > 0 && (lo < 0 || b.Skipped[0].Offset < lo) {
		lo = b.Skipped[0].Offset
	}
	if lo >= 0 && !b.Replay {
		s.mu.Lock()
		tp := consumer.TopicPartition{Topic: b.Topic, Partition: b.Partition}
		if f, ok := s.first[tp]; !ok || lo < f {
			s.first[tp] = lo
		}
		s.mu.Unlock()
	}
	return s.Sink.Apply(ctx, b)
}

// A reader restarted (a new process: new pool, new sink) resumes every partition from
// the offsets the sink stored, not from its group's: with a group that never committed,
// and without a group (AllPartitions). Each event is applied exactly once.
func TestResumeFromStoredOffsets(t *testing.T) {
	t.Parallel()
	r := newRig(t, 4)
	dsn, pool := newDB(t)
	migrate(t, pool, countingSchema...)
	r.write(r.deposits(200, 20, func(int) int64 { return 1 })...)

	sink := newSink(t, pool)
	_, stop := r.start(r.config(func(c *consumer.Config[kastor.Event]) { c.MaxPollRecords = 50 }), newSpy(sink))
	waitFor(t, sink, r.ends(), 60*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	before := r.ends()

	runs := []struct {
		name string
		mod  func(*consumer.Config[kastor.Event])
	}{
		{"fresh group", func(c *consumer.Config[kastor.Event]) { c.Group = r.ns + ".another-group" }},
		{"all partitions", func(c *consumer.Config[kastor.Event]) { c.AllPartitions = true }},
		{"same group", func(c *consumer.Config[kastor.Event]) {}},
	}
	for _, run := range runs {
		r.write(r.deposits(60, 20, func(int) int64 { return 1 })...)
		// A new process: its own pool and sink.
		pool2 := pgtest.Connect(t, dsn)
		sink2 := newSpy(newSink(t, pool2))
		t0 := time.Now()
		_, stop := r.start(r.config(run.mod), sink2)
		ends := r.ends()
		waitFor(t, sink2.Sink, ends, 60*time.Second)
		t1 := time.Now()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: caught up in %v, stopped in %v", run.name, t1.Sub(t0), time.Since(t1))
		for tp, end := range before {
			if f, ok := sink2.first[tp]; ok && f < end {
				t.Errorf("%s: the reader restarted %v at %d, before the stored offset %d", run.name, tp, f, end)
			}
		}
		before = ends
	}

	counts, total, dups := counted(t, pool)
	if total != 200+3*60 || dups != 0 {
		t.Errorf("%d events applied, %d twice; want %d, none twice", total, dups, 200+3*60)
	}
	for agg, v := range r.versions {
		if counts[agg] != v {
			t.Errorf("%s: %d events applied, want %d", agg, counts[agg], v)
		}
	}
	if ds := r.deadLetters(); len(ds) != 0 {
		t.Errorf("%d dead letters", len(ds))
	}
}

// An event whose Apply fails goes to the dead-letter topic with nothing of it in the
// database, and the rest flows; a replay, once the projection is fixed, applies it
// without moving the offsets.
func TestFailedEventParked(t *testing.T) {
	t.Parallel()
	r := newRig(t, 4)
	_, pool := newDB(t)
	migrate(t, pool, countingSchema...)
	const poison = 57
	recs := r.deposits(120, 10, func(i int) int64 {
		if i == poison {
			return 13
		}
		return 1
	})
	r.write(recs...)
	md, err := wire.ParseHeaders(recs[poison].Headers)
	if err != nil {
		t.Fatal(err)
	}
	badAgg, badVersion := md.AggregateID, md.Version

	apply := func(fixed bool) func(context.Context, pgx.Tx, kastor.Envelope[kastor.Event]) error {
		return func(ctx context.Context, tx pgx.Tx, ev kastor.Envelope[kastor.Event]) error {
			if err := countEvent(ctx, tx, ev); err != nil { // writes before failing
				return err
			}
			if d, ok := ev.Event.(bank.Deposited); ok && d.Amount == 13 && !fixed {
				return errors.New("unlucky amount")
			}
			return nil
		}
	}
	sink := newSink(t, pool, func(c *pgsink.Config[kastor.Event]) { c.Apply = apply(false) })
	cfg := r.config()
	_, stop := r.start(cfg, sink)
	waitFor(t, sink, r.ends(), 60*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ds := r.deadLetters()
	if len(ds) != 1 || ds[0].Offset != recs[poison].Offset || ds[0].Reason != consumer.ReasonFailed {
		t.Fatalf("dead letters %+v, want the event at offset %d", ds, recs[poison].Offset)
	}
	var n int
	if err := pool.QueryRow(testCtx(t, 10*time.Second), `SELECT count(*) FROM applied WHERE aggregate_id = $1 AND version = $2`,
		badAgg, badVersion).Scan(&n); err != nil || n != 0 {
		t.Errorf("the parked event left %d rows (%v)", n, err)
	}
	counts, total, dups := counted(t, pool)
	if total != 119 || dups != 0 {
		t.Errorf("%d events applied, %d twice; want 119", total, dups)
	}
	for agg, v := range r.versions {
		want := v
		if agg == badAgg {
			want--
		}
		if counts[agg] != want {
			t.Errorf("%s: %d applied, want %d", agg, counts[agg], want)
		}
	}
	offsets, _ := sink.Offsets(context.Background())

	// The projection fixed, the dead letter is replayed.
	fixed := newSink(t, pool, func(c *pgsink.Config[kastor.Event]) { c.Apply = apply(true) })
	res, err := projection.Replay(testCtx(t, 60*time.Second), r.kc, cfg, fixed)
	if err != nil || res.Resolved != 1 {
		t.Fatalf("Replay: %+v, %v", res, err)
	}
	if _, total, _ := counted(t, pool); total != 120 {
		t.Errorf("%d events applied after the replay, want 120", total)
	}
	after, _ := sink.Offsets(context.Background())
	if fmt.Sprint(after) != fmt.Sprint(offsets) {
		t.Errorf("the replay moved the offsets: %v, then %v", offsets, after)
	}
	if ds := r.deadLetters(); len(ds) != 0 {
		t.Errorf("%d dead letters after the replay", len(ds))
	}
}

// The database unreachable, then hanging, mid-run: the reader waits (lag grows),
// nothing is parked nor applied; once the database is back, it catches up and every
// event is applied exactly once.
func TestReaderWaitsForDatabase(t *testing.T) {
	t.Parallel()
	r := newRig(t, 4)
	dsn, direct := newDB(t)
	migrate(t, direct, countingSchema...)
	pool, px := proxiedPool(t, dsn)
	sink := newSink(t, pool, func(c *pgsink.Config[kastor.Event]) { c.Timeout = time.Second })
	rd, stop := r.start(r.config(), sink)
	defer stop()
	r.write(r.deposits(100, 10, func(int) int64 { return 1 })...)
	waitFor(t, sink, r.ends(), 60*time.Second)

	applied := int64(100)
	for _, mode := range []string{"down", "hang"} {
		px.set(mode)
		r.write(r.deposits(50, 10, func(int) int64 { return 1 })...)
		time.Sleep(2500 * time.Millisecond) // several attempts, each failing
		p, err := rd.Progress(testCtx(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		lag := int64(0)
		for _, pp := range p.Partitions {
			lag += max(pp.Lag, 0)
		}
		if lag < 50 {
			t.Errorf("database %s: lag %d, want 50 or more: %+v", mode, lag, p.Partitions)
		}
		if _, total, _ := counted(t, direct); total != applied {
			t.Errorf("database %s: %d events applied, want %d", mode, total, applied)
		}
		if ds := r.deadLetters(); len(ds) != 0 {
			t.Fatalf("database %s: %d events parked", mode, len(ds))
		}
		px.set("up")
		waitFor(t, sink, r.ends(), 60*time.Second)
		applied += 50
	}
	counts, total, dups := counted(t, direct)
	if total != 200 || dups != 0 {
		t.Errorf("%d events applied, %d twice; want 200", total, dups)
	}
	for agg, v := range r.versions {
		if counts[agg] != v {
			t.Errorf("%s: %d applied, want %d", agg, counts[agg], v)
		}
	}
}

// A reader started while the database is down waits for the sink's StoredOffsets to
// answer (in a group, within the assignment, then by rejoining; with AllPartitions, before
// it starts reading), then applies from the stored offsets.
func TestReaderStartsWhileDatabaseDown(t *testing.T) {
	t.Parallel()
	r := newRig(t, 4)
	dsn, direct := newDB(t)
	migrate(t, direct, countingSchema...)
	pool, px := proxiedPool(t, dsn)
	sink := newSink(t, pool, func(c *pgsink.Config[kastor.Event]) { c.Timeout = time.Second })
	r.write(r.deposits(40, 10, func(int) int64 { return 1 })...)

	px.set("down")
	_, stop := r.start(r.config(), sink)
	time.Sleep(3 * time.Second)
	px.set("up")
	waitFor(t, sink, r.ends(), 60*time.Second)
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}

	r.write(r.deposits(40, 10, func(int) int64 { return 1 })...)
	px.set("down")
	_, stop = r.start(r.config(func(c *consumer.Config[kastor.Event]) { c.AllPartitions = true }), sink)
	time.Sleep(2 * time.Second) // Run waits for the database meanwhile
	px.set("up")
	waitFor(t, sink, r.ends(), 60*time.Second)
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	counts, total, dups := counted(t, direct)
	if total != 80 || dups != 0 {
		t.Errorf("%d events applied, %d twice; want 80", total, dups)
	}
	for agg, v := range r.versions {
		if counts[agg] != v {
			t.Errorf("%s: %d applied, want %d", agg, counts[agg], v)
		}
	}
}
