package consumer

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
)

// produceFunc writes a dead letter and returns once it is acknowledged by all in-sync
// replicas (or, in a transactional reader, produced in the open transaction).
type produceFunc func(ctx context.Context, rec *kgo.Record) error

// worker applies one partition's records of a round.
type worker[E any] struct {
	r     *Reader[E]
	st    *partState
	stop  context.Context // ends at shutdown: retries and pauses stop
	hurry <-chan struct{} // closed when a rebalance waits for the round
	// work is the context of sink and dead-letter calls: a shutdown does not cancel a
	// call under way, so an applied batch is also recorded.
	work    context.Context
	produce produceFunc
	// tx is set in a transactional reader: a round there commits or aborts whole, so a
	// pending rebalance does not cut it short (it would abort everything applied).
	tx bool
	// envs are the envelopes of the window's records other than control records, in
	// offset order; a batch's Events are a slice of it when its events are consecutive
	// there (no filtered or parked record between them), so an envelope is written once
	// and never copied. A new array per window, since a sink may keep the Events it was
	// given, except for the sinks of this package that keep nothing of a batch
	// (batchBorrower): those get one array per partition, reused.
	envs []kastor.Envelope[E]
}

// batchBorrower is implemented by this package's sinks that keep nothing of a Batch
// (its Events and Skipped arrays) once Apply returned, so that the reader may reuse
// the arrays: allocating a window's envelopes anew each time is most of what a reader
// allocates per event beside the headers.
type batchBorrower interface{ keepsNoBatch() }

// maxBatch caps the events of one Sink.Apply call. A round may hold many more (all the
// client had buffered): a bounded batch keeps a sink's lock or transaction short, and
// between batches a worker notices a pending rebalance and ends its share of the round.
const maxBatch = 1000

// item is a record with what the worker learnt of it; decoding is lazy so that filtered
// and held records are never decoded. Its envelope is w.envs[env]: the metadata read
// from the headers from the start (also for records never decoded), and the event once
// decoded. Items are scratch reused across windows and rounds (partState.items); they
// hold nothing generic, so they stay small.
type item struct {
	rec      *kgo.Record
	env      int32 // index in w.envs; -1 for a control record
	filtered bool
	decoded  bool
	bad      error // the headers are missing or malformed
	decErr   error
}

type kind int

const (
	kindControl kind = iota
	kindFiltered
	kindApply
	kindPark
	kindLettered // parked before: skipped as parked
)

// run applies recs (one partition, offset order). It returns ok when every record was
// applied, skipped or parked; otherwise the offset to read again from next round
// (everything before it is recorded and will be committed).
//
// A round may hand a worker tens of thousands of records (everything buffered): they are
// taken maxBatch at a time, so that only a window's items are alive at once (less for the
// garbage collector to scan), and between windows the worker notices a pending
// rebalance. The first window is always applied, so a partition progresses even when
// rebalances follow each other.
func (w *worker[E]) run(recs []*kgo.Record) (rewind int64, ok bool) {
	if cap(w.st.items) < min(len(recs), maxBatch) {
		w.st.items = make([]item, 0, min(len(recs), maxBatch))
	}
	items := w.st.items[:0]
	var envs []kastor.Envelope[E] // reused by every window, for a batchBorrower sink
	if w.r.borrower {
		envs, _ = w.st.envs.([]kastor.Envelope[E])
		if cap(envs) < min(len(recs), maxBatch) {
			envs = make([]kastor.Envelope[E], 0, min(len(recs), maxBatch))
		}
	}
	defer func() {
		// The scratch must not keep the records (and the fetch buffers they point
		// into) nor the events alive between rounds.
		clear(items[:cap(items)])
		if envs != nil {
			clear(envs[:cap(envs)])
			w.st.envs = envs[:0]
		}
	}()
	for i := 0; i < len(recs); i += maxBatch {
		if i > 0 && !w.tx && w.hurried() {
			// A rebalance waits: end this partition's share of the round here (all
			// before is recorded) and read the rest next round, or its new owner will.
			return recs[i].Offset, false
		}
		w.envs = envs[:0]
		if at, ok := w.runWindow(recs[i:min(i+maxBatch, len(recs))], items[:0]); !ok {
			return at, false
		}
	}
	return 0, true
}

// runWindow applies recs (at most maxBatch records) with items as scratch; it returns
// as run does.
func (w *worker[E]) runWindow(recs []*kgo.Record, items []item) (rewind int64, ok bool) {
	if cap(w.envs) < len(recs) {
		w.envs = make([]kastor.Envelope[E], 0, len(recs))
	}
	defer func() { w.envs = nil }()
	for _, rec := range recs {
		if w.st.next >= 0 && rec.Offset < w.st.next {
			continue // already applied: a fetch from before a rewind or an adjustment
		}
		items = append(items, item{rec: rec, env: -1})
		w.prepare(&items[len(items)-1])
	}
	if len(items) == 0 {
		return 0, true
	}
	pos := 0
	single := false     // after a failure, events are applied one at a time to isolate it
	singleUntil := -1   // ... up to this index in items: the end of the batch that failed
	var carry []Skipped // parked records not yet reported to the sink
	rewindAt := func() (int64, bool) {
		if len(carry) > 0 {
			return carry[0].Offset, false
		}
		return items[pos].rec.Offset, false
	}
	var at []int // index in items of each event of the batch
	for pos < len(items) || len(carry) > 0 {
		if w.stop.Err() != nil {
			return rewindAt() // shutting down: keep what is recorded, read the rest next time
		}
		// Collect a run of records to apply or skip, up to the next one to park.
		limit := min(maxBatch, len(items)-pos)
		if single {
			limit = 1
		}
		at = at[:0]
		contiguous := true // the events are consecutive in w.envs
		skipped := carry
		last := int64(-1)
		if len(carry) > 0 {
			last = carry[len(carry)-1].Offset
		}
		j := pos
	collect:
		for ; j < len(items); j++ {
			it := &items[j]
			switch w.classify(it) {
			case kindControl:
			case kindFiltered:
				skipped = append(skipped, Skipped{Metadata: w.envs[it.env].Metadata, Offset: it.rec.Offset})
			case kindLettered:
				skipped = append(skipped, Skipped{Metadata: w.envs[it.env].Metadata, Offset: it.rec.Offset, Parked: true})
			case kindApply:
				if len(at) == limit {
					break collect
				}
				if len(at) > 0 && it.env != items[at[len(at)-1]].env+1 {
					contiguous = false
				}
				at = append(at, j)
			case kindPark:
				break collect
			}
			last = it.rec.Offset
		}
		var evs []kastor.Envelope[E]
		switch {
		case len(at) == 0:
		case contiguous:
			from, to := items[at[0]].env, items[at[len(at)-1]].env+1
			evs = w.envs[from:to:to] // full slice expression: an append by the sink copies
		default:
			evs = make([]kastor.Envelope[E], len(at))
			for i, k := range at {
				evs[i] = w.envs[items[k].env]
			}
		}
		if j > pos || (pos == len(items) && len(carry) > 0) {
			b := Batch[E]{Topic: w.st.tp.Topic, Partition: w.st.tp.Partition, Events: evs, Skipped: skipped, Next: last + 1}
			err := w.apply(b)
			if err == nil {
				w.setNext(b.Next)
				w.count(evs, skipped)
				w.st.unavailable = 0
				if len(evs) > 0 && w.st.failOffset >= evs[0].Offset {
					w.st.failOffset, w.st.failAttempts = -1, 0
				}
				pos, carry = j, nil
				// A sink that fails a batch without saying which event (no ApplyError)
				// is fed one event at a time up to the end of that batch: going back to
				// full batches after the first success would apply the batch again for
				// each event before the culprit.
				single = pos <= singleUntil
				continue
			}
			var ae *ApplyError
			k, blamed := 0, errors.As(err, &ae)
			if blamed && len(evs) > 0 {
				k = min(max(ae.Index, 0), len(evs)-1)
				// Events[:k] and the skipped records before Events[k] are recorded.
				w.setNext(evs[k].Offset)
				w.count(evs[:k], skippedBefore(skipped, evs[k].Offset))
				pos, carry = at[k], nil
			}
			if errors.Is(err, ErrUnavailable) || len(evs) == 0 {
				if !w.pause(err, "unavailable") {
					return rewindAt()
				}
				continue
			}
			if !blamed && len(evs) > 1 {
				single, singleUntil = true, at[len(at)-1] // find the culprit: one event at a time
				continue
			}
			if blamed {
				err = ae.Err // the event's own error, for the logs and the dead letter
			}
			if !w.failed(evs[k], err) {
				return rewindAt()
			}
			if w.st.failAttempts < w.r.cfg.Retry.Attempts {
				single = true
				continue
			}
			// Out of retries: park the event and go on.
			it := &items[at[k]]
			if err := w.park(it, letter{rec: it.rec, reason: ReasonFailed, err: err, attempts: w.st.failAttempts}); err != nil {
				if !w.pause(err, "dlq") {
					return rewindAt()
				}
				continue
			}
			w.st.failOffset, w.st.failAttempts = -1, 0
			carry = append(carry, Skipped{Metadata: w.envs[it.env].Metadata, Offset: it.rec.Offset, Parked: true})
			// The culprit is parked: back to full batches (another culprit in them would
			// be isolated the same way).
			pos, single, singleUntil = at[k]+1, false, -1
			continue
		}
		// items[pos] is to be parked: undecodable, or held behind its aggregate's parked event.
		it := &items[pos]
		l := w.letterFor(it)
		if err := w.park(it, l); err != nil {
			if !w.pause(err, "dlq") {
				return rewindAt()
			}
			continue
		}
		carry = append(carry, Skipped{Metadata: w.envs[it.env].Metadata, Offset: it.rec.Offset, Parked: true})
		pos++
	}
	return 0, true
}

func skippedBefore(s []Skipped, offset int64) []Skipped {
	for i, x := range s {
		if x.Offset >= offset {
			return s[:i]
		}
	}
	return s
}

// hurried reports whether a rebalance waits for the round.
func (w *worker[E]) hurried() bool {
	select {
	case <-w.hurry:
		return true
	default:
		return false
	}
}

// prepare reads a record's headers and applies the filter.
func (w *worker[E]) prepare(it *item) {
	rec := it.rec
	if rec.Attrs.IsControl() {
		return
	}
	it.env = int32(len(w.envs))
	w.envs = append(w.envs, kastor.Envelope[E]{Timestamp: rec.Timestamp, Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset})
	md := &w.envs[it.env].Metadata
	if it.bad = w.st.headers.Parse(rec.Headers, md); it.bad != nil {
		return
	}
	if md.AggregateID == "" || md.Version == 0 || md.Type == "" {
		var missing []error
		for _, m := range []struct {
			ok   bool
			name string
		}{{md.AggregateID != "", kastor.HeaderAggregateID}, {md.Version != 0, kastor.HeaderVersion}, {md.Type != "", kastor.HeaderType}} {
			if !m.ok {
				missing = append(missing, fmt.Errorf("header %s is missing", m.name))
			}
		}
		it.bad = errors.Join(missing...)
		return
	}
	it.filtered = !w.r.cfg.Filter.Match(md)
}

// classify says what to do with an item now; held status depends on what was parked
// before it, so it is decided when the item's turn comes.
func (w *worker[E]) classify(it *item) kind {
	switch {
	case it.env < 0:
		return kindControl
	case len(w.st.letters) > 0 && w.st.letters[it.rec.Offset]:
		return kindLettered
	case it.bad != nil:
		return kindPark
	case it.filtered:
		return kindFiltered
	}
	env := &w.envs[it.env]
	if w.r.cfg.OnFailure == ParkAggregate && len(w.st.held) > 0 {
		if at, held := w.st.held[env.AggregateID]; held && it.rec.Offset > at {
			return kindPark
		}
	}
	if !it.decoded {
		it.decoded = true
		env.Event, it.decErr = w.decode(it.rec, &env.Metadata)
	}
	if it.decErr != nil {
		return kindPark
	}
	return kindApply
}

func (w *worker[E]) decode(rec *kgo.Record, md *kastor.Metadata) (ev E, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the codec panicked: %v", p)
		}
		if err != nil {
			err = &kastor.UndecodableError{What: "event", Type: md.Type, Fingerprint: md.Fingerprint,
				Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Err: err}
		}
	}()
	return w.r.cfg.Events.Decode(kastor.Encoded{Type: md.Type, Fingerprint: md.Fingerprint, Data: rec.Value})
}

// letterFor is the dead letter of an item classified kindPark.
func (w *worker[E]) letterFor(it *item) letter {
	md := &w.envs[it.env].Metadata
	switch {
	case it.bad != nil:
		return letter{rec: it.rec, reason: ReasonUndecodable, attempts: 0,
			err: &kastor.UndecodableError{What: "event", Type: md.Type, Fingerprint: md.Fingerprint,
				Topic: it.rec.Topic, Partition: it.rec.Partition, Offset: it.rec.Offset, Err: it.bad}}
	case it.decErr != nil:
		return letter{rec: it.rec, reason: ReasonUndecodable, err: it.decErr}
	}
	return letter{rec: it.rec, reason: ReasonHeld, heldBehind: w.st.held[md.AggregateID]}
}

// park writes a dead letter and, with ParkAggregate, holds the aggregate.
func (w *worker[E]) park(it *item, l letter) error {
	r := w.r
	rec := dlqRecord(r.dlq, r.cfg.Name, r.cfg.Version, l)
	ctx, cancel := context.WithTimeout(w.work, 30*time.Second)
	defer cancel()
	if err := w.produce(ctx, rec); err != nil {
		return fmt.Errorf("consumer: writing to the dead-letter topic %q: %w", r.dlq, err)
	}
	r.metrics.events.WithLabelValues("parked").Inc()
	r.metrics.parked.WithLabelValues(l.reason).Inc()
	md := &w.envs[it.env].Metadata
	agg := md.AggregateID
	if agg == "" {
		agg = aggregateOf(it.rec.Headers, it.rec.Key)
	}
	log := r.cfg.log.With("topic", it.rec.Topic, "partition", it.rec.Partition, "offset", it.rec.Offset,
		"aggregate", agg, "version", md.Version, "type", md.Type, "dlq", r.dlq)
	switch l.reason {
	case ReasonHeld:
		log.Info("event held behind its aggregate's parked event", "behind", l.heldBehind)
	default:
		log.Error("event parked on the dead-letter topic", "reason", l.reason, "attempts", l.attempts, "err", l.err)
	}
	if w.st.letters == nil {
		w.st.letters = map[int64]bool{}
	}
	w.st.letters[it.rec.Offset] = true
	if r.cfg.OnFailure == ParkAggregate && agg != "" {
		if w.st.held == nil {
			w.st.held = map[string]int64{}
		}
		if _, ok := w.st.held[agg]; !ok {
			w.st.held[agg] = it.rec.Offset
		}
	}
	return nil
}

// apply hands a batch to the sink; a panic is an error like any other.
func (w *worker[E]) apply(b Batch[E]) (err error) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("consumer: the sink panicked: %v\n%s", p, debug.Stack())
		}
		w.r.metrics.latency.Observe(time.Since(start).Seconds())
	}()
	return w.r.sink.Apply(w.work, b)
}

// failed counts a failed attempt of ev and waits before the next one. It returns false
// when the wait was interrupted (shutdown, rebalance).
func (w *worker[E]) failed(ev kastor.Envelope[E], err error) bool {
	st := w.st
	if st.failOffset != ev.Offset {
		st.failOffset, st.failAttempts = ev.Offset, 0
	}
	st.failAttempts++
	w.r.metrics.failures.WithLabelValues("apply").Inc()
	w.r.cfg.log.Warn("applying an event failed", "topic", ev.Topic, "partition", ev.Partition, "offset", ev.Offset,
		"aggregate", ev.AggregateID, "version", ev.Version, "type", ev.Type, "attempt", st.failAttempts, "of", w.r.cfg.Retry.Attempts, "err", err)
	if st.failAttempts >= w.r.cfg.Retry.Attempts {
		return true
	}
	return sleep(w.stop, w.hurry, w.r.cfg.Retry.backoff(st.failAttempts))
}

// pause waits after a failure of the sink or the dead-letter topic. It returns false
// when interrupted.
func (w *worker[E]) pause(err error, kind string) bool {
	if w.tx && fenced(err) {
		// Another instance took over the transactional ID: this client can never write
		// again. Stop; the reader ends with an error.
		w.r.fenced.Store(true)
		return false
	}
	w.st.unavailable++
	w.r.metrics.failures.WithLabelValues(kind).Inc()
	d := w.r.cfg.Retry.backoff(w.st.unavailable)
	w.r.cfg.log.Error("the partition waits: nothing is committed past this point until it succeeds",
		"topic", w.st.tp.Topic, "partition", w.st.tp.Partition, "failures", w.st.unavailable, "retry_in", d, "err", err)
	return sleep(w.stop, w.hurry, d)
}

// fenced reports whether err says the transactional producer was fenced by a newer one
// with the same transactional ID.
func fenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed)
}

func (w *worker[E]) setNext(o int64) {
	w.r.mu.Lock()
	if o > w.st.next {
		w.st.next = o
	}
	w.r.mu.Unlock()
}

func (w *worker[E]) count(evs []kastor.Envelope[E], skipped []Skipped) {
	m := w.r.metrics
	if len(evs) > 0 {
		m.events.WithLabelValues("applied").Add(float64(len(evs)))
	}
	filtered := 0
	for _, s := range skipped {
		if !s.Parked {
			filtered++
		}
	}
	if filtered > 0 {
		m.events.WithLabelValues("filtered").Add(float64(filtered))
	}
}
