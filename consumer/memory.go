package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/kastor-dev/kastor"
)

// TopicPartition names a partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// ErrParked is matched (errors.Is) by the error WaitForVersion returns when an event the
// caller waits for, or one before it, was parked on the dead-letter topic: the model
// does not reflect it until it is replayed.
var ErrParked = errors.New("consumer: event parked on the dead-letter topic")

// ParkedError tells which aggregate version was parked.
type ParkedError struct {
	AggregateID string
	Version     int64
}

// Error names the parked version.
func (e *ParkedError) Error() string {
	return fmt.Sprintf("consumer: version %d of aggregate %q is parked on the dead-letter topic; the model does not include it until it is replayed", e.Version, e.AggregateID)
}

// Is matches ErrParked.
func (e *ParkedError) Is(target error) bool { return target == ErrParked }

// Memory is an in-memory read model: a value of type M that apply folds the events into,
// guarded by a read-write lock, with the offsets it has applied. It stores its offsets
// itself (it implements OffsetStore): a new Memory starts every partition at the
// earliest offset, whatever the group committed, since its model starts empty.
//
// In a service with several instances, each holding its own model of every aggregate,
// run the reader with Config.AllPartitions; in a group, each instance's model covers
// the partitions it owns (and keeps, stale, those it owned before).
type Memory[M, E any] struct {
	apply func(m *M, ev kastor.Envelope[E]) error

	mu      sync.RWMutex
	model   M
	offsets map[TopicPartition]int64
	// passedAt maps an aggregate ID to its highest version applied or skipped, in
	// versions: one map lookup per event instead of a read and a write.
	passedAt map[string]int
	versions []int64
	parked   map[string][]int64 // aggregate ID -> parked versions not yet replayed, ascending
	changed  chan struct{}      // closed and replaced on every change, to wake waiters
}

// NewMemory returns an in-memory sink holding initial, into which apply folds each
// event. apply runs under the write lock, one event at a time; when it returns an error
// it must leave the model unchanged (check first, then mutate), since the event will be
// retried or parked.
func NewMemory[M, E any](initial M, apply func(m *M, ev kastor.Envelope[E]) error) *Memory[M, E] {
	return &Memory[M, E]{
		apply:    apply,
		model:    initial,
		offsets:  map[TopicPartition]int64{},
		passedAt: map[string]int{},
		parked:   map[string][]int64{},
		changed:  make(chan struct{}),
	}
}

// keepsNoBatch tells the reader that Apply keeps nothing of a batch (batchBorrower): apply
// gets each envelope by value.
func (m *Memory[M, E]) keepsNoBatch() {}

// Apply folds the batch's events into the model (Sink).
func (m *Memory[M, E]) Apply(_ context.Context, b Batch[E]) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.notifyLocked()
	tp := TopicPartition{b.Topic, b.Partition}
	skipped := b.Skipped
	// passSkipped records the skipped records before offset: they are behind the projection.
	passSkipped := func(before int64) {
		for len(skipped) > 0 && (before < 0 || skipped[0].Offset < before) {
			s := skipped[0]
			skipped = skipped[1:]
			if s.AggregateID == "" {
				continue
			}
			if s.Parked && s.Version > 0 {
				m.parked[s.AggregateID] = insertSorted(m.parked[s.AggregateID], s.Version)
			}
			m.pass(s.AggregateID, s.Version)
		}
	}
	for i := range b.Events {
		ev := &b.Events[i] // not a copy: envelopes are large, and the loop runs per event
		passSkipped(ev.Offset)
		if err := m.apply(&m.model, *ev); err != nil {
			if !b.Replay {
				m.offsets[tp] = ev.Offset // the prefix and the skipped records before ev are in
			}
			return &ApplyError{Index: i, Err: err}
		}
		id := ev.AggregateID
		if b.Replay {
			if vs := m.parked[id]; len(vs) > 0 {
				if j, ok := slices.BinarySearch(vs, ev.Version); ok {
					m.parked[id] = slices.Delete(vs, j, j+1)
				}
				if len(m.parked[id]) == 0 {
					delete(m.parked, id)
				}
			}
		}
		m.pass(id, ev.Version)
	}
	passSkipped(-1)
	if !b.Replay && b.Next >= 0 {
		m.offsets[tp] = b.Next
	}
	return nil
}

// pass records that the model has passed version v of aggregate id.
func (m *Memory[M, E]) pass(id string, v int64) {
	if i, ok := m.passedAt[id]; ok {
		m.versions[i] = max(m.versions[i], v)
		return
	}
	m.passedAt[id] = len(m.versions)
	m.versions = append(m.versions, v)
}

// passed returns the highest version of aggregate id the model has passed, 0 for none.
func (m *Memory[M, E]) passed(id string) int64 {
	if i, ok := m.passedAt[id]; ok {
		return m.versions[i]
	}
	return 0
}

func insertSorted(vs []int64, v int64) []int64 {
	j, ok := slices.BinarySearch(vs, v)
	if ok {
		return vs
	}
	return slices.Insert(vs, j, v)
}

func (m *Memory[M, E]) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// StoredOffsets returns the next offset of each partition of topic the model has
// applied (OffsetStore).
func (m *Memory[M, E]) StoredOffsets(_ context.Context, topic string) (map[int32]int64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := map[int32]int64{}
	for tp, o := range m.offsets {
		if tp.Topic == topic {
			out[tp.Partition] = o
		}
	}
	return out, nil
}

// Read calls fn with the model under the read lock. fn must not modify the model nor
// keep references into it after returning; copy what it needs.
func (m *Memory[M, E]) Read(fn func(m *M)) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	fn(&m.model)
}

// Offsets returns the next offset of every partition the model has applied: every
// record before it has been applied or skipped.
func (m *Memory[M, E]) Offsets() map[TopicPartition]int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make(map[TopicPartition]int64, len(m.offsets))
	for tp, o := range m.offsets {
		out[tp] = o
	}
	return out
}

// WaitFor waits until the model has reached offsets (next offsets, as Offsets returns
// and as a topic's end offsets are given), or ctx ends. It is read-your-writes for a
// caller that knows where its events were written.
func (m *Memory[M, E]) WaitFor(ctx context.Context, offsets map[TopicPartition]int64) error {
	return m.wait(ctx, func() (bool, error) {
		for tp, want := range offsets {
			if m.offsets[tp] < want {
				return false, nil
			}
		}
		return true, nil
	})
}

// WaitForVersion waits until the model has passed version of aggregateID (what
// gateway's Send reports for a command's events), or ctx ends. Events the projection's
// filter leaves out count as passed. It returns a *ParkedError when that version, or an
// earlier one, of the aggregate is parked on the dead-letter topic and not yet replayed:
// the model is then behind for that aggregate.
func (m *Memory[M, E]) WaitForVersion(ctx context.Context, aggregateID string, version int64) error {
	return m.wait(ctx, func() (bool, error) {
		if m.passed(aggregateID) < version {
			return false, nil
		}
		if vs := m.parked[aggregateID]; len(vs) > 0 && vs[0] <= version {
			return true, &ParkedError{AggregateID: aggregateID, Version: vs[0]}
		}
		return true, nil
	})
}

// Version returns the highest version of aggregateID the model has passed (applied, or
// skipped by the filter or parked), 0 for none.
func (m *Memory[M, E]) Version(aggregateID string) int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.passed(aggregateID)
}

func (m *Memory[M, E]) wait(ctx context.Context, done func() (bool, error)) error {
	for {
		m.mu.RLock()
		ok, err := done()
		ch := m.changed
		m.mu.RUnlock()
		if ok {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
