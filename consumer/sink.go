package consumer

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
)

// Sink receives a projection's events: it is where they are applied (a handler, a model
// in memory, database rows, a Kafka table).
//
// The reader calls Apply with the events of one partition at a time, in offset order,
// and never calls it again for that partition before the previous call returned. Calls
// for different partitions may run concurrently (Config.Concurrency).
//
// A sink that does not implement OffsetStore is at-least-once: the reader commits a
// batch's offsets to the group after Apply returned, so after a crash the events since
// the last commit come again (drop them by aggregate ID and version). A sink that
// implements OffsetStore records Batch.Next atomically with the batch's effects, and each
// event takes effect exactly once.
//
// Apply returns nil when the whole batch is applied (and, for an OffsetStore, Next
// recorded); an *ApplyError when a prefix of the batch was applied and recorded and the
// event after it failed; any other error when nothing of the batch took effect. An error
// matching ErrUnavailable (see Unavailable) says the sink itself is down: the reader
// retries without limit and parks nothing. Other errors blame an event, which the reader
// retries alone (Config.Retry) and then parks on the dead-letter topic.
type Sink[E any] interface {
	Apply(ctx context.Context, b Batch[E]) error
}

// Batch is a run of consecutive records of one partition, as handed to a sink.
type Batch[E any] struct {
	Topic     string
	Partition int32
	// Events are the decoded events to apply, in offset order. It may be empty when
	// every record of the run was skipped: an OffsetStore still records Next.
	Events []kastor.Envelope[E]
	// Skipped lists the records of the run that are not in Events: filtered out, or
	// parked on the dead-letter topic. Sinks may ignore it; the in-memory sink uses it to
	// know which aggregate versions the projection has passed.
	Skipped []Skipped
	// Next is the offset after the run: every record before it has been applied or
	// skipped once this batch is applied. An OffsetStore records it with the batch's
	// effects. It is -1 for a replay, which must not move offsets.
	Next int64
	// Replay is true when the events come back from the dead-letter topic (a replay,
	// projection.Replay): they are older than what the sink already applied, and no
	// offset is to be recorded.
	Replay bool
}

// Skipped is a record a reader did not hand to the sink.
type Skipped struct {
	// Metadata is the envelope read from the record's headers (possibly incomplete for
	// an undecodable record).
	kastor.Metadata
	Offset int64
	// Parked is true for a record sent to the dead-letter topic, false for one the
	// projection's filter left out.
	Parked bool
}

// ApplyError reports a batch that was applied in part: Events[:Index] took effect (and,
// for an OffsetStore, their offsets were recorded up to Events[Index].Offset, with the
// Skipped records before it), and Events[Index] failed with Err. Index 0 is allowed: it
// blames the first event.
type ApplyError struct {
	Index int
	Err   error
}

// Error gives the index and the cause.
func (e *ApplyError) Error() string {
	return fmt.Sprintf("consumer: event %d of the batch failed: %v", e.Index, e.Err)
}

// Unwrap returns the cause.
func (e *ApplyError) Unwrap() error { return e.Err }

// ErrUnavailable marks a failure of the sink rather than of an event: a database down, a
// broker unreachable. The reader retries the batch without limit (pacing retries up to
// Retry.MaxBackoff) and never parks an event because of it; the partition waits, which
// shows as lag. Wrap such errors with Unavailable.
var ErrUnavailable = errors.New("consumer: sink unavailable")

// Unavailable wraps err so that errors.Is(err, ErrUnavailable) holds, keeping err's own
// chain for errors.Is and errors.As.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	return &unavailableError{err}
}

type unavailableError struct{ err error }

func (e *unavailableError) Error() string        { return "consumer: sink unavailable: " + e.err.Error() }
func (e *unavailableError) Unwrap() error        { return e.err }
func (e *unavailableError) Is(target error) bool { return target == ErrUnavailable }

// OffsetStore is implemented by sinks that record their offsets themselves, atomically
// with what they applied (see Sink). When a partition is assigned, the reader resumes it
// from the sink's offset instead of the group's committed one; it still commits to the
// group, after the sink, so tools see the group's progress.
type OffsetStore interface {
	// StoredOffsets returns the next offset to read per partition of topic, as recorded
	// by Apply. A partition it does not return starts at the earliest offset.
	StoredOffsets(ctx context.Context, topic string) (map[int32]int64, error)
}

// TxSink is a sink that writes to Kafka in the reader's transaction (a Kafka table). The
// reader then consumes through a transactional group session: each round's records
// produced through the client (the sink's output and any dead-letter records) and the
// consumed offsets commit in one Kafka transaction, or abort together, in which case the
// round is read again. That gives exactly-once output without an OffsetStore.
//
// Check an event before producing anything for it: a record produced in the open
// transaction cannot be taken back except by aborting the whole round, so output produced
// for an event that is then blamed would be committed. Compute everything first, produce
// only when the event is accepted, and report a failed produce with Unavailable (the
// round is then aborted and read again). If the producer is fenced (another instance took
// the transactional ID), the reader's Run returns an error.
type TxSink[E any] interface {
	Sink[E]
	// Transactional is called once, before the first Apply, with the client of the
	// reader's session. Apply produces through it (Produce or ProduceSync) inside the
	// transaction the reader began; it must not begin or end transactions itself.
	Transactional(cl *kgo.Client)
	// TransactionalID is the producer's transactional ID: stable per reader instance,
	// distinct across instances (a restarted instance reusing it fences its
	// predecessor at once).
	TransactionalID() string
}

// Handler returns an at-least-once sink that calls fn for each event in order within a
// partition; fn runs concurrently for different partitions (set Config.Concurrency to 1
// for one call at a time). An error from fn blames that event (retried, then parked);
// wrap it with Unavailable when the failure is fn's dependency being down. Offsets
// are committed to the group after fn returned for the round's events, so after a crash
// fn sees again the events since the last commit: drop them by aggregate ID and version.
// After a replay from the dead-letter topic (projection.Replay), fn sees events older
// than what it applied (Batch.Replay is not visible to fn; use a custom Sink to tell
// them apart).
func Handler[E any](fn func(ctx context.Context, ev kastor.Envelope[E]) error) Sink[E] {
	return handler[E](fn)
}

type handler[E any] func(ctx context.Context, ev kastor.Envelope[E]) error

// keepsNoBatch: fn gets each envelope by value (batchBorrower).
func (h handler[E]) keepsNoBatch() {}

func (h handler[E]) Apply(ctx context.Context, b Batch[E]) error {
	for i, ev := range b.Events {
		if err := h(ctx, ev); err != nil {
			return &ApplyError{Index: i, Err: err}
		}
	}
	return nil
}
