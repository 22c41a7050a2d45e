package consumer

import "context"

// loadHeld reads, for newly owned partitions, the unresolved dead letters of this
// projection version: the records to skip as already parked, and with ParkAggregate the
// aggregates held behind a parked event. Both must survive restarts and rebalances, or
// an aggregate's later events would overtake its parked one and a parked event met again
// would be applied outside a replay; the dead-letter topic is where they are durable.
func (r *Reader[E]) loadHeld(ctx context.Context, sts []*partState) error {
	letters, err := ReadDeadLetters(ctx, r.cfg.kc, r.dlq, r.cfg.Name, r.cfg.Version)
	if err != nil {
		return err
	}
	r.installLetters(sts, letters)
	return nil
}

// installLetters gives sts the letters of their partitions and marks them loaded.
func (r *Reader[E]) installLetters(sts []*partState, letters []DeadLetter) {
	byTP := map[TopicPartition]*partState{}
	for _, st := range sts {
		byTP[st.tp] = st
		st.letters = map[int64]bool{}
		st.held = map[string]int64{}
	}
	for _, d := range letters {
		st := byTP[d.Origin]
		if st == nil {
			continue
		}
		st.letters[d.Offset] = true
		if r.cfg.OnFailure != ParkAggregate {
			continue
		}
		if agg := d.AggregateID(); agg != "" {
			if o, ok := st.held[agg]; !ok || d.Offset < o {
				st.held[agg] = d.Offset
			}
		}
	}
	for _, st := range sts {
		st.loaded = true
	}
}

// letterLoad is a read of the dead-letter topic started as soon as partitions are
// assigned, so that it overlaps with the first fetch instead of following it: the
// first round that applies one of these partitions waits for it and installs what it
// read (the round, not the load, writes the partition's state).
type letterLoad struct {
	done    chan struct{}
	letters []DeadLetter
	err     error
}

// preloadLetters starts reading the dead letters for sts; r.mu must be held.
func (r *Reader[E]) preloadLetters(ctx context.Context, sts []*partState) {
	if len(sts) == 0 {
		return
	}
	l := &letterLoad{done: make(chan struct{})}
	for _, st := range sts {
		st.load = l
	}
	go func() {
		defer close(l.done)
		l.letters, l.err = ReadDeadLetters(ctx, r.cfg.kc, r.dlq, r.cfg.Name, r.cfg.Version)
	}()
}

// awaitPreloads waits for the loads started for sts and installs their letters; a
// partition whose load failed is left unloaded, for the round to read it again. It
// returns early, leaving the rest, when ctx ends.
func (r *Reader[E]) awaitPreloads(ctx context.Context, sts []*partState) {
	loads := map[*letterLoad][]*partState{}
	r.mu.Lock()
	for _, st := range sts {
		if !st.loaded && st.load != nil {
			loads[st.load] = append(loads[st.load], st)
		}
	}
	r.mu.Unlock()
	for l, sts := range loads {
		select {
		case <-l.done:
		case <-ctx.Done():
			return
		}
		r.mu.Lock()
		for _, st := range sts {
			st.load = nil
		}
		r.mu.Unlock()
		if l.err != nil {
			r.cfg.log.Warn("reading the dead-letter topic for newly owned partitions; reading it again", "err", l.err)
			continue
		}
		r.installLetters(sts, l.letters)
	}
}

// ReloadDeadLetters makes the reader read its partitions' dead letters again before it
// applies their next records: a replay or a purge (here or in another instance) resolved
// some, and the aggregates they held may flow again. Events of such an aggregate that
// were held before the reload stay on the dead-letter topic until the next replay.
func (r *Reader[E]) ReloadDeadLetters() {
	for _, f := range r.fetchers {
		f.stale.Store(true)
	}
}

// forgetStaleLetters runs at the start of a round of f, in the round's goroutine (the
// only one that reads the loaded field of f's partitions outside r.mu).
func (r *Reader[E]) forgetStaleLetters(f *fetcher) {
	if !f.stale.Swap(false) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range r.parts {
		if st.fetcher == f.id {
			st.loaded = false
		}
	}
}
