package consumer

import "context"

// loadHeld rebuilds, for newly owned partitions, the set of aggregates held behind a
// parked event (ParkAggregate): the dead letters of this projection version that no
// replay has resolved yet. The set must survive restarts and rebalances, or an
// aggregate's later events would overtake its parked one; the dead-letter topic is where
// it is durable.
func (r *Reader[E]) loadHeld(ctx context.Context, sts []*partState) error {
	letters, err := ReadDeadLetters(ctx, r.cfg.Brokers, r.dlq, r.cfg.Name, r.cfg.Version, r.cfg.ClientOptions...)
	if err != nil {
		return err
	}
	byTP := map[TopicPartition]*partState{}
	for _, st := range sts {
		byTP[st.tp] = st
		st.held = map[string]int64{}
	}
	for _, d := range letters {
		st := byTP[d.Origin]
		if st == nil {
			continue
		}
		agg := d.aggregateID()
		if agg == "" {
			continue
		}
		if o, ok := st.held[agg]; !ok || d.Offset < o {
			st.held[agg] = d.Offset
		}
	}
	for _, st := range sts {
		st.heldLoaded = true
	}
	return nil
}
