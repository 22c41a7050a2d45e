package pgsink_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/consumer/pgsink"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
)

// These tests call Apply directly with batches made by hand, against real PostgreSQL.

const topic = "app.bank.account.events"

// batch returns a batch of partition p with an event per offset, aggregate "a<offset%3>",
// version = offset+1 (aggregates and versions only label the rows), Next = last+1.
func batch(p int32, offsets ...int64) consumer.Batch[kastor.Event] {
	b := consumer.Batch[kastor.Event]{Topic: topic, Partition: p}
	for _, o := range offsets {
		b.Events = append(b.Events, kastor.Envelope[kastor.Event]{
			Metadata: kastor.Metadata{AggregateType: bank.Type, AggregateID: fmt.Sprintf("p%d-a%d", p, o%3), Version: o + 1, Type: "bank.MoneyDeposited"},
			Event:    bank.Deposited{Amount: 1}, Topic: topic, Partition: p, Offset: o,
		})
		b.Next = o + 1
	}
	return b
}

// checkBlamed applies b and wants the event at index blamed (an *ApplyError wrapping
// wantErr when set, never reported as the database being unavailable) and the partition's
// stored offset at wantNext: the prefix before the event recorded, nothing after it.
func checkBlamed(t *testing.T, ctx context.Context, s *pgsink.Sink[kastor.Event], b consumer.Batch[kastor.Event], index int, wantErr error, wantNext int64) {
	t.Helper()
	err := s.Apply(ctx, b)
	var ae *consumer.ApplyError
	if !errors.As(err, &ae) || ae.Index != index {
		t.Fatalf("Apply: %v, want *ApplyError{Index: %d}", err, index)
	}
	if wantErr != nil && !errors.Is(err, wantErr) {
		t.Errorf("Apply: %v, want %v", err, wantErr)
	}
	if errors.Is(err, consumer.ErrUnavailable) {
		t.Errorf("an event's error reported as unavailable: %v", err)
	}
	if got := stored(t, s); got[b.Partition] != wantNext {
		t.Errorf("stored %v, want partition %d at %d", got, b.Partition, wantNext)
	}
}

func stored(t *testing.T, s *pgsink.Sink[kastor.Event]) map[int32]int64 {
	t.Helper()
	got, err := s.StoredOffsets(testCtx(t, 10*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func appliedOffsets(t *testing.T, pool *pgxpool.Pool, p int32) []int64 {
	t.Helper()
	rows, _ := pool.Query(testCtx(t, 10*time.Second), `SELECT off FROM applied WHERE part = $1 ORDER BY off`, p)
	offs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return offs
}

func sameOffsets(got []int64, want ...int64) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, err := pgsink.New(ctx, nil, pgsink.Config[kastor.Event]{Name: "bad name", Version: 0, Timeout: -1, IsoLevel: "chaos"})
	if err == nil {
		t.Fatal("New accepted a bad configuration")
	}
	for _, want := range []string{"pool is nil", "Config.Name", "Config.Version", "Config.Apply", "Config.Timeout", "Config.IsoLevel"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not mention %s: %v", want, err)
		}
	}
	if _, err := pgsink.OffsetsTableDDL("a.b.c"); err == nil {
		t.Error("OffsetsTableDDL accepted a.b.c")
	}
}

// New creates the offsets table (also in a schema of its own) and refuses a table that
// is not one.
func TestOffsetsTable(t *testing.T) {
	t.Parallel()
	_, pool := newDB(t)
	migrate(t, pool, countingSchema...)
	ctx := testCtx(t, 30*time.Second)
	s := newSink(t, pool)
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM kastor_projection_offsets`).Scan(&n); err != nil {
		t.Fatalf("the default offsets table: %v", err)
	}
	if err := s.Apply(ctx, batch(0, 0, 1)); err != nil {
		t.Fatal(err)
	}
	// New again on an existing table: nothing changes.
	s = newSink(t, pool)
	if got := stored(t, s); got[0] != 2 {
		t.Errorf("stored %v, want partition 0 at 2", got)
	}

	migrate(t, pool, `CREATE SCHEMA IF NOT EXISTS rm`)
	s2 := newSink(t, pool, func(c *pgsink.Config[kastor.Event]) { c.OffsetsTable = "rm.offsets" })
	if got := stored(t, s2); len(got) != 0 {
		t.Errorf("a new offsets table holds %v", got)
	}
	if err := s2.Apply(ctx, batch(1, 5)); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT next_offset FROM rm.offsets WHERE partition = 1`).Scan(&n); err != nil || n != 6 {
		t.Errorf("rm.offsets: %d, %v; want 6", n, err)
	}

	migrate(t, pool, `CREATE TABLE wrong (x int)`)
	_, err := pgsink.New(ctx, pool, pgsink.Config[kastor.Event]{Name: projName, Version: 1, Apply: countEvent, OffsetsTable: "wrong"})
	if err == nil || !strings.Contains(err.Error(), "expected columns") {
		t.Errorf("New on a table without the columns: %v", err)
	}
}

// Several instances starting at once create the table once, without errors.
func TestNewConcurrently(t *testing.T) {
	t.Parallel()
	_, pool := newDB(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := pgsink.New(context.Background(), pool, pgsink.Config[kastor.Event]{Name: projName, Version: 1, Apply: countEvent})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// A batch applies its events and records Next in one transaction; versions keep
// separate offsets; a batch of skipped records only moves the offset.
func TestApplyRecordsNext(t *testing.T) {
	t.Parallel()
	_, pool := newDB(t)
	migrate(t, pool, countingSchema...)
	ctx := testCtx(t, 30*time.Second)
	v1 := newSink(t, pool)
	v2 := newSink(t, pool, func(c *pgsink.Config[kastor.Event]) { c.Version = 2 })
	if err := v1.Apply(ctx, batch(0, 0, 1, 2)); err != nil {
		t.Fatal(err)
	}
	if err := v1.Apply(ctx, batch(3, 7)); err != nil {
		t.Fatal(err)
	}
	skipped := consumer.Batch[kastor.Event]{Topic: topic, Partition: 0, Next: 5,
		Skipped: []consumer.Skipped{{Offset: 3}, {Offset: 4}}}
	if err := v1.Apply(ctx, skipped); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, v1); len(got) != 2 || got[0] != 5 || got[3] != 8 {
		t.Errorf("v1 stored %v, want map[0:5 3:8]", got)
	}
	if got := stored(t, v2); len(got) != 0 {
		t.Errorf("v2 stored %v, want nothing", got)
	}
	if got, _ := v1.StoredOffsets(ctx, "other.topic"); len(got) != 0 {
		t.Errorf("another topic: %v", got)
	}
	all, err := v1.Offsets(ctx)
	if err != nil || len(all) != 2 || all[consumer.TopicPartition{Topic: topic, Partition: 3}] != 8 {
		t.Errorf("Offsets: %v, %v", all, err)
	}
	if _, total, dups := counted(t, pool); total != 4 || dups != 0 {
		t.Errorf("%d events applied (%d twice), want 4", total, dups)
	}
	// An offset never moves back.
	if err := v1.Apply(ctx, consumer.Batch[kastor.Event]{Topic: topic, Partition: 0, Next: 2}); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, v1); got[0] != 5 {
		t.Errorf("stored %v after an older empty batch, want partition 0 at 5", got)
	}
}

// A batch, or part of one, that is already applied is not applied again: a retry after a
// commit whose acknowledgement was lost, or a second reader on the same partition.
func TestApplyDropsAppliedEvents(t *testing.T) {
	t.Parallel()
	_, pool := newDB(t)
	migrate(t, pool, countingSchema...)
	ctx := testCtx(t, 30*time.Second)
	s := newSink(t, pool)
	for _, b := range []consumer.Batch[kastor.Event]{batch(0, 0, 1, 2, 3), batch(0, 0, 1, 2, 3), batch(0, 2, 3, 4, 5), batch(0, 1)} {
		if err := s.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if got := appliedOffsets(t, pool, 0); !sameOffsets(got, 0, 1, 2, 3, 4, 5) {
		t.Errorf("applied offsets %v, want 0..5 once each", got)
	}
	if got := stored(t, s); got[0] != 6 {
		t.Errorf("stored %v, want partition 0 at 6", got)
	}
}

// Two appliers of one partition at the same time (a zombie reader and its successor)
// apply every event once, in order: the offsets row serializes them.
func TestConcurrentAppliersOfOnePartition(t *testing.T) {
	t.Parallel()
	_, pool := newDB(t)
	migrate(t, pool, countingSchema...)
	slow := func(ctx context.Context, tx pgx.Tx, ev kastor.Envelope[kastor.Event]) error {
		time.Sleep(time.Millisecond)
		return countEvent(ctx, tx, ev)
	}
	a := newSink(t, pool, func(c *pgsink.Config[kastor.Event]) { c.Apply = slow })
	b := newSink(t, pool, func(c *pgsink.Config[kastor.Event]) { c.Apply = slow })
	const n = 200
	var wg sync.WaitGroup
	for i, s := range []*pgsink.Sink[kastor.Event]{a, b} {
		wg.Go(func() {
			// Different batch sizes, so their boundaries differ.
			size := int64(7 + 6*i)
			for start := int64(0); start < n; start += size {
				var offs []int64
				for o := start; o < min(start+size, n); o++ {
					offs = append(offs, o)
				}
				if err := s.Apply(context.Background(), batch(0, offs...)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	// Other partitions meanwhile, in parallel.
	for p := int32(1); p <= 4; p++ {
		wg.Go(func() {
			for o := int64(0); o < 50; o += 10 {
				if err := a.Apply(context.Background(), batch(p, o, o+1, o+2, o+3, o+4, o+5, o+6, o+7, o+8, o+9)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	want := make([]int64, n)
	for i := range want {
		want[i] = int64(i)
	}
	if got := appliedOffsets(t, pool, 0); !sameOffsets(got, want...) {
		t.Errorf("partition 0: %d applications, want %d (each offset once)", len(got), n)
	}
	if _, total, dups := counted(t, pool); total != n+4*50 || dups != 0 {
		t.Errorf("%d events applied (%d twice), want %d", total, dups, n+4*50)
	}
	if got := stored(t, a); got[0] != n || got[4] != 50 {
		t.Errorf("stored %v", got)
	}
}

// An event whose Apply fails: the batch before it is applied and recorded up to its
// offset, nothing of it is in the database, and Apply returns *ApplyError with its index.
func TestApplyErrorRecordsPrefix(t *testing.T) {
	t.Parallel()
	_, pool := newDB(t)
	migrate(t, pool, countingSchema...)
	ctx := testCtx(t, 30*time.Second)
	poison := errors.New("poison")
	var calls atomic.Int32
	s := newSink(t, pool, func(c *pgsink.Config[kastor.Event]) {
		c.Apply = func(ctx context.Context, tx pgx.Tx, ev kastor.Envelope[kastor.Event]) error {
			calls.Add(1)
			if err := countEvent(ctx, tx, ev); err != nil { // writes, then fails
				return err
			}
			switch ev.Offset {
			case 13:
				return poison
			case 20:
				panic("boom")
			case 30:
				_, err := tx.Exec(ctx, `SELECT 1/0`) // an SQL error, the transaction aborted
				return err
			}
			return nil
		}
	})
	check := func(b consumer.Batch[kastor.Event], index int, wantErr error, wantNext int64) {
		t.Helper()
		checkBlamed(t, ctx, s, b, index, wantErr, wantNext)
	}
	b := batch(0, 10, 11, 12, 13, 14, 15)
	b.Skipped = []consumer.Skipped{{Offset: 9}}
	check(b, 3, poison, 13)
	if got := appliedOffsets(t, pool, 0); !sameOffsets(got, 10, 11, 12) {
		t.Errorf("applied %v, want 10 11 12 (nothing of 13, nothing after)", got)
	}
	// The reader retries the event alone: still blamed, nothing recorded past it.
	check(batch(0, 13), 0, poison, 13)
	// It parks it and goes on with a batch that lists it as skipped.
	b = batch(0, 14, 15, 16, 17, 18, 19, 20, 21)
	b.Skipped = []consumer.Skipped{{Offset: 13, Parked: true}}
	check(b, 6, nil, 20) // the panic
	check(batch(0, 21, 30, 31), 1, nil, 30)
	var pe *pgconn.PgError
	if err := s.Apply(ctx, batch(0, 30)); !errors.As(err, &pe) || pe.Code != "22012" {
		t.Errorf("the SQL error of Apply: %v", err)
	}
	if got := appliedOffsets(t, pool, 0); !sameOffsets(got, 10, 11, 12, 14, 15, 16, 17, 18, 19, 21) {
		t.Errorf("applied %v", got)
	}
	if _, _, dups := counted(t, pool); dups != 0 {
		t.Errorf("%d events applied twice", dups)
	}
	// The first event failing: the skipped records before it are recorded.
	b = batch(1, 13)
	b.Skipped = []consumer.Skipped{{Offset: 11}, {Offset: 12}}
	check(b, 0, poison, 13)
	if got := appliedOffsets(t, pool, 1); len(got) != 0 {
		t.Errorf("partition 1 applied %v", got)
	}
}

// An Apply that swallows the error of a failed statement (the transaction is then
// aborted) gets its event blamed, not the database.
func TestApplySwallowingAnError(t *testing.T) {
	t.Parallel()
	_, pool := newDB(t)
	migrate(t, pool, countingSchema...)
	ctx := testCtx(t, 30*time.Second)
	s := newSink(t, pool, func(c *pgsink.Config[kastor.Event]) {
		c.Apply = func(ctx context.Context, tx pgx.Tx, ev kastor.Envelope[kastor.Event]) error {
			if ev.Offset == 5 {
				_, _ = tx.Exec(ctx, `SELECT 1/0`)
				return nil
			}
			return countEvent(ctx, tx, ev)
		}
	})
	for _, b := range []consumer.Batch[kastor.Event]{batch(0, 3, 4, 5, 6, 7), batch(0, 3, 4, 5)} {
		err := s.Apply(ctx, b)
		var ae *consumer.ApplyError
		if !errors.As(err, &ae) || ae.Index != 2 || errors.Is(err, consumer.ErrUnavailable) {
			t.Errorf("Apply: %v, want *ApplyError{Index: 2}", err)
		}
	}
	if got := appliedOffsets(t, pool, 0); !sameOffsets(got, 3, 4) {
		t.Errorf("applied %v, want 3 4", got)
	}
	if got := stored(t, s); got[0] != 5 {
		t.Errorf("stored %v, want partition 0 at 5", got)
	}
}

// A replay applies its event without moving the offsets; a failing one is blamed.
func TestReplayLeavesOffsets(t *testing.T) {
	t.Parallel()
	_, pool := newDB(t)
	migrate(t, pool, countingSchema...)
	ctx := testCtx(t, 30*time.Second)
	s := newSink(t, pool, func(c *pgsink.Config[kastor.Event]) {
		c.Apply = func(ctx context.Context, tx pgx.Tx, ev kastor.Envelope[kastor.Event]) error {
			if err := countEvent(ctx, tx, ev); err != nil {
				return err
			}
			if ev.Offset == 4 {
				return errors.New("still poison")
			}
			return nil
		}
	})
	if err := s.Apply(ctx, batch(0, 0, 1, 2, 3, 4, 5, 6)); err == nil {
		t.Fatal("no error for offset 4")
	}
	if err := s.Apply(ctx, batch(0, 5, 6)); err != nil {
		t.Fatal(err)
	}
	replay := batch(0, 2) // older than the stored offset: applied anyway
	replay.Next, replay.Replay = -1, true
	if err := s.Apply(ctx, replay); err != nil {
		t.Fatal(err)
	}
	replay = batch(0, 4)
	replay.Next, replay.Replay = -1, true
	var ae *consumer.ApplyError
	if err := s.Apply(ctx, replay); !errors.As(err, &ae) || ae.Index != 0 {
		t.Errorf("replaying a failing event: %v", err)
	}
	if got := stored(t, s); got[0] != 7 {
		t.Errorf("stored %v, want partition 0 at 7", got)
	}
	if got := appliedOffsets(t, pool, 0); !sameOffsets(got, 0, 1, 2, 2, 3, 5, 6) {
		t.Errorf("applied %v, want 0 1 2 2 3 5 6", got)
	}
}

// Apply cannot end the sink's transaction; savepoints work.
func TestApplyCannotEndTransaction(t *testing.T) {
	t.Parallel()
	_, pool := newDB(t)
	migrate(t, pool, countingSchema...)
	ctx := testCtx(t, 30*time.Second)
	s := newSink(t, pool, func(c *pgsink.Config[kastor.Event]) {
		c.Apply = func(ctx context.Context, tx pgx.Tx, ev kastor.Envelope[kastor.Event]) error {
			if ev.Offset == 0 {
				return tx.Commit(ctx)
			}
			sp, err := tx.Begin(ctx)
			if err != nil {
				return err
			}
			if _, err := sp.Exec(ctx, `SELECT 1/0`); err == nil {
				return errors.New("no error")
			}
			if err := sp.Rollback(ctx); err != nil {
				return err
			}
			return countEvent(ctx, tx, ev)
		}
	})
	if err := s.Apply(ctx, batch(0, 0)); err == nil || !strings.Contains(err.Error(), "must not commit") {
		t.Errorf("Commit in Apply: %v", err)
	}
	if err := s.Apply(ctx, batch(0, 1)); err != nil {
		t.Errorf("a savepoint rolled back in Apply: %v", err)
	}
	if got := appliedOffsets(t, pool, 0); !sameOffsets(got, 1) {
		t.Errorf("applied %v", got)
	}
}

// Conflicts between transactions are retried, never blamed on an event; past
// ConflictRetries the batch is unavailable.
func TestConflictsRetried(t *testing.T) {
	t.Parallel()
	_, pool := newDB(t)
	migrate(t, pool, countingSchema...)
	ctx := testCtx(t, 30*time.Second)
	var conflicts atomic.Int32
	s := newSink(t, pool, func(c *pgsink.Config[kastor.Event]) {
		c.ConflictRetries = 3
		c.Apply = func(ctx context.Context, tx pgx.Tx, ev kastor.Envelope[kastor.Event]) error {
			if ev.Offset == 1 && conflicts.Add(-1) >= 0 {
				return fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "40001", Message: "could not serialize access"})
			}
			return countEvent(ctx, tx, ev)
		}
	})
	conflicts.Store(3)
	if err := s.Apply(ctx, batch(0, 0, 1, 2)); err != nil {
		t.Fatalf("3 conflicts with 3 retries: %v", err)
	}
	conflicts.Store(4)
	err := s.Apply(ctx, batch(1, 0, 1))
	if !errors.Is(err, consumer.ErrUnavailable) {
		t.Errorf("4 conflicts with 3 retries: %v, want unavailable", err)
	}
	var ae *consumer.ApplyError
	if errors.As(err, &ae) {
		t.Errorf("a conflict blamed on an event: %v", err)
	}
	if got := appliedOffsets(t, pool, 1); len(got) != 0 {
		t.Errorf("partition 1 applied %v after failing", got)
	}

	// A real deadlock between two partitions' transactions.
	migrate(t, pool, `CREATE TABLE shared (k int PRIMARY KEY, n int)`, `INSERT INTO shared VALUES (1, 0), (2, 0)`)
	var ready sync.WaitGroup
	ready.Add(2)
	first := map[int32]bool{}
	var mu sync.Mutex
	dl := newSink(t, pool, func(c *pgsink.Config[kastor.Event]) {
		c.Name = "deadlock"
		c.Apply = func(ctx context.Context, tx pgx.Tx, ev kastor.Envelope[kastor.Event]) error {
			a, b := 1, 2
			if ev.Partition == 1 {
				a, b = 2, 1
			}
			if _, err := tx.Exec(ctx, `UPDATE shared SET n = n + 1 WHERE k = $1`, a); err != nil {
				return err
			}
			mu.Lock()
			f := !first[ev.Partition]
			first[ev.Partition] = true
			mu.Unlock()
			if f {
				ready.Done()
				ready.Wait() // both hold their first row: each now waits for the other's
			}
			_, err := tx.Exec(ctx, `UPDATE shared SET n = n + 1 WHERE k = $1`, b)
			return err
		}
	})
	var wg sync.WaitGroup
	for p := int32(0); p < 2; p++ {
		wg.Go(func() {
			if err := dl.Apply(ctx, batch(p, 0)); err != nil {
				t.Errorf("partition %d: %v", p, err)
			}
		})
	}
	wg.Wait()
	var n1, n2 int
	if err := pool.QueryRow(ctx, `SELECT (SELECT n FROM shared WHERE k = 1), (SELECT n FROM shared WHERE k = 2)`).Scan(&n1, &n2); err != nil || n1 != 2 || n2 != 2 {
		t.Errorf("after a deadlock retried: %d %d %v, want 2 2", n1, n2, err)
	}
}

// A failure at COMMIT (a deferred constraint) is not blamed on an event nor on the
// database: nothing took effect, and the reader isolates the culprit.
func TestCommitFailure(t *testing.T) {
	t.Parallel()
	_, pool := newDB(t)
	migrate(t, pool, countingSchema...)
	migrate(t, pool, `CREATE TABLE parent (id int PRIMARY KEY)`,
		`CREATE TABLE child (id int PRIMARY KEY, parent int REFERENCES parent DEFERRABLE INITIALLY DEFERRED)`)
	ctx := testCtx(t, 30*time.Second)
	s := newSink(t, pool, func(c *pgsink.Config[kastor.Event]) {
		c.Apply = func(ctx context.Context, tx pgx.Tx, ev kastor.Envelope[kastor.Event]) error {
			if err := countEvent(ctx, tx, ev); err != nil {
				return err
			}
			if ev.Offset == 1 {
				_, err := tx.Exec(ctx, `INSERT INTO child VALUES (1, 42)`) // no parent 42: fails at commit
				return err
			}
			return nil
		}
	})
	err := s.Apply(ctx, batch(0, 0, 1, 2))
	var ae *consumer.ApplyError
	if err == nil || errors.As(err, &ae) || errors.Is(err, consumer.ErrUnavailable) {
		t.Fatalf("a deferred constraint failing at commit: %v, want a plain error", err)
	}
	if got := appliedOffsets(t, pool, 0); len(got) != 0 {
		t.Errorf("applied %v after a failed commit", got)
	}
	if got := stored(t, s); len(got) != 0 {
		t.Errorf("stored %v after a failed commit", got)
	}
	// The reader then applies one event at a time.
	if err := s.Apply(ctx, batch(0, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, batch(0, 1)); err == nil {
		t.Fatal("the culprit alone committed")
	}
}

// A database that cannot be reached, or hangs, or lost the offsets table, makes Apply
// and StoredOffsets report ErrUnavailable; nothing is blamed on an event, and nothing of
// the batch is applied.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	dsn, direct := newDB(t)
	migrate(t, direct, countingSchema...)
	pool, px := proxiedPool(t, dsn)
	ctx := testCtx(t, 60*time.Second)
	s := newSink(t, pool, func(c *pgsink.Config[kastor.Event]) { c.Timeout = time.Second })
	if err := s.Apply(ctx, batch(0, 0, 1)); err != nil {
		t.Fatal(err)
	}
	unavailable := func(what string, err error) {
		t.Helper()
		var ae *consumer.ApplyError
		if !errors.Is(err, consumer.ErrUnavailable) || errors.As(err, &ae) {
			t.Errorf("%s: %v, want an error matching ErrUnavailable only", what, err)
		}
	}

	px.set("down")
	start := time.Now()
	unavailable("Apply, server down", s.Apply(ctx, batch(0, 2, 3)))
	_, err := s.StoredOffsets(ctx, topic)
	unavailable("StoredOffsets, server down", err)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a refused connection took %v to report", d)
	}

	px.set("hang")
	start = time.Now()
	unavailable("Apply, server hanging", s.Apply(ctx, batch(0, 2, 3)))
	if d := time.Since(start); d < time.Second || d > 10*time.Second {
		t.Errorf("a hanging server reported after %v, want Timeout (1s)", d)
	}

	// The connection breaks in the middle of the transaction.
	px.set("up")
	var n atomic.Int32
	s2 := newSink(t, pool, func(c *pgsink.Config[kastor.Event]) {
		c.Apply = func(ctx context.Context, tx pgx.Tx, ev kastor.Envelope[kastor.Event]) error {
			if n.Add(1) == 2 {
				px.set("down")
			}
			return countEvent(ctx, tx, ev)
		}
	})
	unavailable("Apply, connection broken in the transaction", s2.Apply(ctx, batch(0, 2, 3, 4)))
	px.set("up")

	// The offsets table dropped: the sink's own statement fails.
	if _, err := direct.Exec(ctx, `DROP TABLE kastor_projection_offsets`); err != nil {
		t.Fatal(err)
	}
	unavailable("Apply, offsets table dropped", s.Apply(ctx, batch(0, 2, 3)))

	// The events of the failed batches were never applied; once it is back, they are.
	if got := appliedOffsets(t, direct, 0); !sameOffsets(got, 0, 1) {
		t.Errorf("applied %v, want 0 1", got)
	}
	migrate(t, direct, mustDDL(t))
	if err := s.Apply(ctx, batch(0, 2, 3)); err != nil {
		t.Errorf("after the outage: %v", err)
	}
	// Apply may report unavailability itself.
	s3 := newSink(t, pool, func(c *pgsink.Config[kastor.Event]) {
		c.Apply = func(context.Context, pgx.Tx, kastor.Envelope[kastor.Event]) error {
			return consumer.Unavailable(errors.New("the exchange rate service is down"))
		}
	})
	unavailable("Apply returning Unavailable", s3.Apply(ctx, batch(2, 0)))
}

func mustDDL(t *testing.T) string {
	ddl, err := pgsink.OffsetsTableDDL("")
	if err != nil {
		t.Fatal(err)
	}
	return ddl
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("boom"), false},
		{&pgconn.PgError{Code: "23505"}, false},
		{&pgconn.PgError{Code: "22012"}, false},
		{&pgconn.PgError{Code: "40001"}, false},
		{&pgconn.PgError{Code: "08006"}, true},
		{&pgconn.PgError{Code: "57P01"}, true},
		{&pgconn.PgError{Code: "53300"}, true},
		{&pgconn.PgError{Code: "25006"}, true},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		{consumer.Unavailable(errors.New("down")), true},
	} {
		if got := pgsink.Unreachable(c.err); got != c.want {
			t.Errorf("Unreachable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// Config.Queue: an event's statements are sent with the batch's, and a failure (a
// statement, Queue itself, a callback) blames the event that queued it, with the prefix
// before it recorded, as with Apply.
func TestQueueBlamesTheEventThatQueued(t *testing.T) {
	t.Parallel()
	_, pool := newDB(t)
	migrate(t, pool, countingSchema...)
	ctx := testCtx(t, 30*time.Second)
	poison := errors.New("poison")
	s := newSink(t, pool, func(c *pgsink.Config[kastor.Event]) {
		c.Apply = nil
		c.Queue = func(b *pgx.Batch, ev kastor.Envelope[kastor.Event]) error {
			b.Queue(`INSERT INTO applied VALUES ($1, $2, $3, $4, $5)`, ev.AggregateID, ev.Version, ev.Topic, ev.Partition, ev.Offset)
			b.Queue(`INSERT INTO counts VALUES ($1, 1, $2)
				ON CONFLICT (aggregate_id) DO UPDATE SET applied = counts.applied + 1, last_version = EXCLUDED.last_version`,
				ev.AggregateID, ev.Version)
			switch ev.Offset {
			case 13:
				return poison
			case 20:
				b.Queue(`SELECT 1/0`) // fails in the database, after this event's rows
			case 25:
				b.Queue(`SELECT 1`).QueryRow(func(row pgx.Row) error { return poison })
			}
			return nil
		}
	})
	check := func(b consumer.Batch[kastor.Event], index int, wantErr error, wantNext int64) {
		t.Helper()
		checkBlamed(t, ctx, s, b, index, wantErr, wantNext)
	}
	check(batch(0, 10, 11, 12, 13, 14), 3, poison, 13)
	check(batch(0, 14, 15, 20, 21), 2, nil, 20)
	var pe *pgconn.PgError
	if err := s.Apply(ctx, batch(0, 20)); !errors.As(err, &pe) || pe.Code != "22012" {
		t.Errorf("the SQL error of a queued statement: %v", err)
	}
	check(batch(0, 21, 22, 25, 26), 2, poison, 25)
	if err := s.Apply(ctx, batch(0, 26, 27)); err != nil {
		t.Fatal(err)
	}
	if got := appliedOffsets(t, pool, 0); !sameOffsets(got, 10, 11, 12, 14, 15, 21, 22, 26, 27) {
		t.Errorf("applied %v", got)
	}
	if got := stored(t, s); got[0] != 28 {
		t.Errorf("stored %v, want 28", got)
	}
	if _, total, dups := counted(t, pool); dups != 0 || total != 9 {
		t.Errorf("%d events counted, %d applied twice; want 9 and 0", total, dups)
	}
}
