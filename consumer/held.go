package consumer

import "context"

// loadHeld reads, for newly owned partitions, the unresolved dead letters of this
// projection version: the records to skip as already parked, and with ParkAggregate the
// aggregates held behind a parked event. Both must survive restarts and rebalances, or
// an aggregate's later events would overtake its parked one and a parked event met again
// would be applied outside Replay; the dead-letter topic is where they are durable.
func (r *Reader[E]) loadHeld(ctx context.Context, sts []*partState) error {
	letters, err := ReadDeadLetters(ctx, r.cfg.Brokers, r.dlq, r.cfg.Name, r.cfg.Version, r.cfg.ClientOptions...)
	if err != nil {
		return err
	}
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
		if agg := d.aggregateID(); agg != "" {
			if o, ok := st.held[agg]; !ok || d.Offset < o {
				st.held[agg] = d.Offset
			}
		}
	}
	for _, st := range sts {
		st.loaded = true
	}
	return nil
}

// ReloadDeadLetters makes the reader read its partitions' dead letters again before it
// applies their next records: a replay or a purge (here or in another instance) resolved
// some, and the aggregates they held may flow again. Events of such an aggregate that
// were held before the reload stay on the dead-letter topic until the next replay.
func (r *Reader[E]) ReloadDeadLetters() { r.lettersStale.Store(true) }

// forgetStaleLetters runs at the start of a round, in the round's goroutine (the only
// one that reads partState.loaded outside r.mu).
func (r *Reader[E]) forgetStaleLetters() {
	if !r.lettersStale.Swap(false) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range r.parts {
		st.loaded = false
	}
}
