package pgsink

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/consumer"
)

// Config configures a PostgreSQL sink: the projection it records offsets for and the
// function that writes an event's read-model rows.
type Config[E any] struct {
	// Name identifies the projection in the offsets table. Use the reader's
	// consumer.Config.Name.
	Name string
	// Version is the projection's version, 1 or more. Use the reader's
	// consumer.Config.Version: each version keeps its own offsets, so a rebuild (version
	// v+1 reading from the earliest offsets) does not disturb the version serving reads.
	Version int
	// Apply writes the read-model rows of one event in tx, the sink's transaction for the
	// batch. It must write through tx only and must not commit or roll it back (it may
	// open savepoints with tx.Begin). It may run more than once for an event whose
	// transaction was rolled back (a later event failed, the database failed, a conflict
	// with another transaction), so it must have no effects outside tx.
	//
	// An error blames the event: the reader retries it alone, then parks it on the
	// dead-letter topic. Errors of the database itself (see Unreachable) are not blamed
	// on the event: the partition waits for the database. Return an error wrapped with
	// consumer.Unavailable to make the partition wait for another reason.
	Apply func(ctx context.Context, tx pgx.Tx, ev kastor.Envelope[E]) error
	// Queue, set instead of Apply, queues the statements of one event's read-model rows
	// on batch. The sink sends the statements of all the events of a batch together
	// (pgx.Batch: one round trip for them all, where Apply takes one per statement) in
	// the transaction that records the offsets, so each event still takes effect
	// exactly once. Use it when an event's statements need no result of the statements
	// before them; results can be read with the QueuedQuery callbacks (Exec, Query,
	// QueryRow), which run in order. A failing statement, or an error from Queue or
	// from a callback, blames the event, as an error from Apply does; Queue must have
	// no effects outside batch, as it may run more than once for an event.
	Queue func(batch *pgx.Batch, ev kastor.Envelope[E]) error

	// OffsetsTable is the table of offsets, "table" or "schema.table" (default
	// DefaultOffsetsTable). New creates it when missing (OffsetsTableDDL).
	OffsetsTable string
	// IsoLevel is the isolation level of the sink's transactions (default
	// pgx.ReadCommitted). Read committed is enough for read models written with upserts
	// and UPDATE ... SET x = x + $1, which are atomic per row; the sink serializes
	// the batches of one partition itself (see the package documentation). Choose
	// RepeatableRead or Serializable when Apply reads rows other partitions write and
	// decides on them; serialization failures are then retried (ConflictRetries).
	IsoLevel pgx.TxIsoLevel
	// Timeout bounds one transaction, from BEGIN to COMMIT (default 30s). When it runs
	// out the transaction is rolled back and the batch reported unavailable (the reader
	// retries it): a database that hangs (a network partition, a paused server) makes
	// the partition wait instead of blocking it forever. Set it above the time your
	// largest batch takes (at most 1000 events, or consumer.Config.MaxPollRecords when
	// that is lower).
	Timeout time.Duration
	// ConflictRetries is how many times a transaction that failed on a conflict with
	// another transaction (serialization failure, deadlock, lock timeout) is run again
	// before the batch is reported unavailable (default 5). Conflicts are never blamed on
	// an event.
	ConflictRetries int
}

// Sink is a consumer.Sink that applies events to PostgreSQL tables and records the
// reader's offsets in the same transaction (consumer.OffsetStore): each event takes
// effect in the database exactly once, across crashes, restarts and rebalances. Its
// methods are safe for concurrent use; one call of Apply holds one connection of the
// pool.
type Sink[E any] struct {
	pool    *pgxpool.Pool
	cfg     Config[E]
	table   string // quoted
	lock    string // statements, with the table name in
	update  string
	advance string
	stored  string
	all     string

	afterCommit func() // tests: called after each commit (export_test.go)
}

var (
	_ consumer.Sink[struct{}] = (*Sink[struct{}])(nil)
	_ consumer.OffsetStore    = (*Sink[struct{}])(nil)
)

var legalName = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// New returns a sink writing through pool. It checks the configuration, creates the
// offsets table when it is missing (through Migrate) and checks that an existing one has
// the expected columns. It fails when the database cannot be reached (Unreachable holds
// for the error then: a service may retry).
//
// Size the pool for the reader: each partition applied concurrently
// (consumer.Config.Concurrency, default 8) holds a connection for its transaction.
func New[E any](ctx context.Context, pool *pgxpool.Pool, cfg Config[E]) (*Sink[E], error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf("pgsink: "+format, args...)) }
	if pool == nil {
		fail("the pool is nil")
	}
	switch {
	case cfg.Name == "":
		fail("Config.Name is empty")
	case !legalName.MatchString(cfg.Name):
		fail("Config.Name %q: use the reader's consumer.Config.Name (letters, digits, '.', '_' and '-')", cfg.Name)
	}
	if cfg.Version < 1 {
		fail("Config.Version is %d; versions start at 1", cfg.Version)
	}
	switch {
	case cfg.Apply == nil && cfg.Queue == nil:
		fail("Config.Apply and Config.Queue are nil: set one")
	case cfg.Apply != nil && cfg.Queue != nil:
		fail("Config.Apply and Config.Queue are both set: set one")
	}
	if cfg.Timeout < 0 {
		fail("Config.Timeout is negative (%v)", cfg.Timeout)
	}
	if cfg.ConflictRetries < 0 {
		fail("Config.ConflictRetries is negative (%d)", cfg.ConflictRetries)
	}
	switch cfg.IsoLevel {
	case "", pgx.ReadCommitted, pgx.RepeatableRead, pgx.Serializable:
	default:
		fail("Config.IsoLevel %q: use pgx.ReadCommitted, pgx.RepeatableRead or pgx.Serializable", cfg.IsoLevel)
	}
	id, err := tableIdentifier(cfg.OffsetsTable)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.OffsetsTable == "" {
		cfg.OffsetsTable = DefaultOffsetsTable
	}
	if cfg.IsoLevel == "" {
		cfg.IsoLevel = pgx.ReadCommitted
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.ConflictRetries == 0 {
		cfg.ConflictRetries = 5
	}
	t := id.Sanitize()
	s := &Sink[E]{pool: pool, cfg: cfg, table: t,
		// Locks the partition's row (creating it when new) for the transaction and
		// returns the offset stored: batches of one partition are serialized, and events
		// before the stored offset, already applied, are dropped.
		lock: `INSERT INTO ` + t + ` AS o (projection, version, topic, partition, next_offset, updated_at)
VALUES ($1, $2, $3, $4, -1, now())
ON CONFLICT (projection, version, topic, partition) DO UPDATE SET next_offset = o.next_offset
RETURNING next_offset`,
		update: `UPDATE ` + t + ` SET next_offset = $5, updated_at = now()
WHERE projection = $1 AND version = $2 AND topic = $3 AND partition = $4`,
		// A batch with no event records its offset in one statement; offsets never move
		// back.
		advance: `INSERT INTO ` + t + ` AS o (projection, version, topic, partition, next_offset, updated_at)
VALUES ($1, $2, $3, $4, $5, now())
ON CONFLICT (projection, version, topic, partition) DO UPDATE
SET next_offset = GREATEST(o.next_offset, EXCLUDED.next_offset), updated_at = now()`,
		stored: `SELECT partition, next_offset FROM ` + t + `
WHERE projection = $1 AND version = $2 AND topic = $3 AND next_offset >= 0`,
		all: `SELECT topic, partition, next_offset FROM ` + t + `
WHERE projection = $1 AND version = $2 AND next_offset >= 0`,
	}
	if err := s.setup(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// setup creates the offsets table when missing and checks its columns.
func (s *Sink[E]) setup(ctx context.Context) error {
	var exists bool
	if err := s.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", s.table).Scan(&exists); err != nil {
		return fmt.Errorf("pgsink: looking for the offsets table %s: %w", s.table, err)
	}
	if !exists {
		ddl, err := OffsetsTableDDL(s.cfg.OffsetsTable)
		if err != nil {
			return err
		}
		if err := Migrate(ctx, s.pool, ddl); err != nil {
			return fmt.Errorf("pgsink: creating the offsets table: %w", err)
		}
	}
	_, err := s.pool.Exec(ctx, "SELECT projection, version, topic, partition, next_offset, updated_at FROM "+s.table+" LIMIT 0")
	if err != nil {
		return fmt.Errorf("pgsink: the offsets table %s does not have the expected columns (see OffsetsTableDDL): %w", s.table, err)
	}
	return nil
}

// Name returns the projection's name.
func (s *Sink[E]) Name() string { return s.cfg.Name }

// Version returns the projection's version.
func (s *Sink[E]) Version() int { return s.cfg.Version }

// Apply applies a batch of one partition in one transaction (consumer.Sink): it locks the
// partition's offsets row, applies each event at or after the stored offset (Config.Apply,
// or Config.Queue's statements), sets the row's next_offset to Batch.Next and commits.
// Events before the stored offset are already in the database and are skipped.
//
// When Events[i] fails, the prefix Events[:i] is applied again in a new transaction that
// records Events[i].Offset, and Apply returns *consumer.ApplyError{Index: i}. When the
// database fails (Unreachable), or a transaction conflicts more than
// Config.ConflictRetries times, nothing took effect and the error matches
// consumer.ErrUnavailable. When COMMIT fails for another reason (a deferred constraint),
// nothing took effect and the error is returned as is (the reader then finds the culprit
// one event at a time). A replay (Batch.Replay, Next -1) is applied in one transaction
// that leaves the offsets alone. See the package documentation and decision 21.
func (s *Sink[E]) Apply(ctx context.Context, b consumer.Batch[E]) error {
	record := !b.Replay && b.Next >= 0
	n, next := len(b.Events), int64(-1)
	if record {
		next = b.Next
	}
	var blamed *eventError
	conflicts := 0
	for {
		err := s.attempt(ctx, b, n, next)
		var ee *eventError
		switch {
		case err == nil:
			if blamed != nil {
				return &consumer.ApplyError{Index: blamed.index, Err: blamed.err}
			}
			return nil
		case errors.As(err, &ee):
			// Record the prefix before the failed event, then blame it.
			blamed, n = ee, ee.index
			if record {
				next = b.Events[ee.index].Offset
			}
			conflicts = 0
		case conflict(err):
			conflicts++
			if conflicts > s.cfg.ConflictRetries {
				return consumer.Unavailable(fmt.Errorf("pgsink: %s/%d: the transaction still conflicts after %d retries: %w",
					b.Topic, b.Partition, s.cfg.ConflictRetries, err))
			}
			if !pause(ctx, time.Duration(conflicts)*10*time.Millisecond) {
				return consumer.Unavailable(ctx.Err())
			}
		default:
			return err
		}
	}
}

// eventError is Config.Apply failing for Events[index].
type eventError struct {
	index int
	err   error
}

func (e *eventError) Error() string { return fmt.Sprintf("event %d: %v", e.index, e.err) }

// attempt runs one transaction applying b.Events[:n] and, when next >= 0, recording next.
// It returns nil, an *eventError, a conflict (retry), an error wrapped with
// consumer.Unavailable, or a plain error when COMMIT failed and the culprit is unknown.
func (s *Sink[E]) attempt(ctx context.Context, b consumer.Batch[E], n int, next int64) (err error) {
	if n == 0 {
		if next < 0 {
			return nil
		}
		// Nothing to apply: only record the offset.
		ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		defer cancel()
		if _, err := s.pool.Exec(ctx, s.advance, s.cfg.Name, s.cfg.Version, b.Topic, b.Partition, next); err != nil {
			return s.sinkError(b, "recording the offset in "+s.table, err)
		}
		if s.afterCommit != nil {
			s.afterCommit()
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	tx, err := s.begin(ctx)
	if err != nil {
		return s.sinkError(b, "beginning a transaction", err)
	}
	done := false
	defer func() {
		if !done {
			// Rollback on a broken connection fails; the server rolls back anyway.
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	stored := int64(-1)
	if next >= 0 {
		if err := tx.QueryRow(ctx, s.lock, s.cfg.Name, s.cfg.Version, b.Topic, b.Partition).Scan(&stored); err != nil {
			return s.sinkError(b, "locking the partition's row in "+s.table, err)
		}
	}
	// eventFailed classifies the failure of Events[i]'s statements.
	eventFailed := func(i int, err error) error {
		switch {
		case conflict(err):
			return err
		case Unreachable(err) || tx.Conn().IsClosed():
			return consumer.Unavailable(fmt.Errorf("pgsink: %s/%d: applying the event at offset %d: %w", b.Topic, b.Partition, b.Events[i].Offset, err))
		}
		return &eventError{index: i, err: err}
	}
	last := -1 // the last event applied
	if s.cfg.Queue != nil {
		var err error
		if last, err = s.sendQueued(ctx, tx, b.Events[:n], stored, eventFailed); err != nil {
			return err
		}
	} else {
		utx := userTx{tx}
		for i, ev := range b.Events[:n] {
			if ev.Offset < stored {
				continue // applied by an earlier transaction
			}
			last = i
			if err := s.call(ctx, utx, ev); err != nil {
				return eventFailed(i, err)
			}
		}
	}
	if next >= 0 {
		if _, err := tx.Exec(ctx, s.update, s.cfg.Name, s.cfg.Version, b.Topic, b.Partition, max(next, stored)); err != nil {
			if aborted(err) && last >= 0 {
				// A statement of Apply failed and Apply returned nil: blame the last event
				// (applying shorter prefixes finds the one that did it).
				return &eventError{index: last, err: fmt.Errorf("pgsink: a statement failed and Apply returned nil: %w", err)}
			}
			return s.sinkError(b, "recording the offset in "+s.table, err)
		}
	}
	done = true
	if err := tx.Commit(ctx); err != nil {
		switch {
		case conflict(err):
			return err
		case errors.Is(err, pgx.ErrTxCommitRollback):
			return fmt.Errorf("pgsink: %s/%d: the transaction was aborted by a failed statement whose error Apply did not return; nothing was committed: %w", b.Topic, b.Partition, err)
		case Unreachable(err):
			// The outcome is unknown: the retry finds the offset stored if it committed.
			return consumer.Unavailable(fmt.Errorf("pgsink: %s/%d: commit: %w", b.Topic, b.Partition, err))
		}
		return fmt.Errorf("pgsink: %s/%d: commit (nothing was applied): %w", b.Topic, b.Partition, err)
	}
	if s.afterCommit != nil {
		s.afterCommit()
	}
	return nil
}

// aborted reports whether err says the transaction was aborted by an earlier failed
// statement (SQLSTATE 25P02).
func aborted(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "25P02"
}

// sinkError classifies the failure of one of the sink's own statements: never an
// event's fault, so the partition waits (unless it is a conflict, retried).
func (s *Sink[E]) sinkError(b consumer.Batch[E], what string, err error) error {
	if conflict(err) {
		return err
	}
	return consumer.Unavailable(fmt.Errorf("pgsink: %s/%d: %s: %w", b.Topic, b.Partition, what, err))
}

// call runs Config.Apply, turning a panic into the event's error.
func (s *Sink[E]) call(ctx context.Context, tx pgx.Tx, ev kastor.Envelope[E]) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("pgsink: Apply panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return s.cfg.Apply(ctx, tx, ev)
}

// sendQueued queues the statements of the events at or after offset stored (Config.Queue)
// and sends them in one pgx.Batch. It returns the index of the last event queued, or the
// failure of the first event whose statement (or callback) failed, through failed.
func (s *Sink[E]) sendQueued(ctx context.Context, tx pgx.Tx, evs []kastor.Envelope[E], stored int64, failed func(int, error) error) (last int, err error) {
	last = -1
	var batch pgx.Batch
	var owner []int // index in evs of the event that queued each statement
	for i, ev := range evs {
		if ev.Offset < stored {
			continue // applied by an earlier transaction
		}
		last = i
		if err := s.queue(&batch, ev); err != nil {
			return last, failed(i, err) // nothing was sent: the prefix is applied again alone
		}
		for len(owner) < batch.Len() {
			owner = append(owner, i)
		}
	}
	if batch.Len() == 0 {
		return last, nil
	}
	br := tx.SendBatch(ctx, &batch)
	for q, qq := range batch.QueuedQueries {
		// What BatchResults.Close does, one statement at a time, to know whose failed.
		var err error
		if qq.Fn != nil {
			err = s.callback(qq, br)
		} else {
			_, err = br.Exec()
		}
		if err != nil {
			_ = br.Close() // reads what is left; the failure is err
			return last, failed(owner[q], err)
		}
	}
	if err := br.Close(); err != nil {
		return last, failed(last, err)
	}
	return last, nil
}

// queue runs Config.Queue, turning a panic into the event's error.
func (s *Sink[E]) queue(batch *pgx.Batch, ev kastor.Envelope[E]) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("pgsink: Queue panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return s.cfg.Queue(batch, ev)
}

// callback runs a QueuedQuery callback, turning a panic into the event's error.
func (s *Sink[E]) callback(qq *pgx.QueuedQuery, br pgx.BatchResults) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("pgsink: a QueuedQuery callback panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return qq.Fn(br)
}

// errEndTx is what Commit and Rollback return inside Config.Apply.
var errEndTx = errors.New("pgsink: Apply must not commit or roll back the sink's transaction (use tx.Begin for a savepoint)")

// userTx is the transaction handed to Config.Apply: it cannot be ended there.
type userTx struct{ pgx.Tx }

func (userTx) Commit(context.Context) error   { return errEndTx }
func (userTx) Rollback(context.Context) error { return errEndTx }

func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// StoredOffsets returns the next offset to read of each partition of topic the
// projection version has recorded (consumer.OffsetStore). Errors of an unreachable
// database match consumer.ErrUnavailable.
func (s *Sink[E]) StoredOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	out := map[int32]int64{}
	err := s.read(ctx, func(ctx context.Context) error {
		clear(out)
		rows, _ := s.pool.Query(ctx, s.stored, s.cfg.Name, s.cfg.Version, topic)
		var p int32
		var o int64
		_, err := pgx.ForEachRow(rows, []any{&p, &o}, func() error {
			out[p] = o
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Offsets returns the next offset to read of every partition the projection version has
// recorded, of all its topics: where its read model stands.
func (s *Sink[E]) Offsets(ctx context.Context) (map[consumer.TopicPartition]int64, error) {
	out := map[consumer.TopicPartition]int64{}
	err := s.read(ctx, func(ctx context.Context) error {
		clear(out)
		rows, _ := s.pool.Query(ctx, s.all, s.cfg.Name, s.cfg.Version)
		var tp consumer.TopicPartition
		var o int64
		_, err := pgx.ForEachRow(rows, []any{&tp.Topic, &tp.Partition, &o}, func() error {
			out[tp] = o
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// read runs a query within Config.Timeout, again at once when it failed on a connection
// that broke while idle in the pool (see stale).
func (s *Sink[E]) read(ctx context.Context, query func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	var err error
	for range s.pool.Config().MaxConns + 1 {
		if err = query(ctx); !s.stale(ctx, err) {
			break
		}
	}
	if err != nil {
		return s.readError(err)
	}
	return nil
}

// begin starts a transaction, again at once when BEGIN failed on a connection that
// broke while idle in the pool (see stale).
func (s *Sink[E]) begin(ctx context.Context) (pgx.Tx, error) {
	var err error
	for range s.pool.Config().MaxConns + 1 {
		var tx pgx.Tx
		if tx, err = s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: s.cfg.IsoLevel}); !s.stale(ctx, err) {
			return tx, err
		}
	}
	return nil, err
}

// stale reports whether err is a pooled connection found broken (the server restarted
// or a proxy dropped it while it sat idle): trying another connection may succeed at
// once. After a database restart every idle connection of the pool is broken; pgx
// learns it only when it uses them, and drops each one that failed. A connection that
// cannot be opened, or a context that ended, is not stale: the database is down.
func (s *Sink[E]) stale(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil || !Unreachable(err) || errors.Is(err, consumer.ErrUnavailable) {
		return false
	}
	var ce *pgconn.ConnectError
	return !errors.As(err, &ce)
}

func (s *Sink[E]) readError(err error) error {
	err = fmt.Errorf("pgsink: reading offsets from %s: %w", s.table, err)
	if Unreachable(err) {
		return consumer.Unavailable(err)
	}
	return err
}

// WaitFor waits until the read model has reached offsets (next offsets, as a topic's end
// offsets are given: every partition listed has applied or skipped the records before
// them), or ctx ends. It is read-your-writes for a caller that knows where its events
// were written, and how a rebuild knows it has caught up with the end offsets captured
// when it started. It polls the offsets table; errors reading it are retried until ctx
// ends.
func (s *Sink[E]) WaitFor(ctx context.Context, offsets map[consumer.TopicPartition]int64) error {
	d := 10 * time.Millisecond
	var last error
	for {
		got, err := s.Offsets(ctx)
		last = err
		if err == nil {
			done := true
			for tp, want := range offsets {
				if want > 0 && got[tp] < want {
					done = false
					break
				}
			}
			if done {
				return nil
			}
		}
		if !pause(ctx, d) {
			if last != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		}
		d = min(2*d, 250*time.Millisecond)
	}
}
