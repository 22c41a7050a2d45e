package runner

import (
	"context"

	"github.com/twmb/franz-go/pkg/kadm"
)

// stuckReasoner is a state that can say its instance waits for an operator, as
// saga.Progress does (an orchestration whose compensation kept failing).
type stuckReasoner interface{ StuckReason() string }

// observe makes session s the source of the per-partition metrics
// (kastor_saga_partition_instances, kastor_saga_deadlines_pending, kastor_saga_inputs_lag),
// counted when they are scraped. gauges calls it, with s.mu held; it only records s.
func (r *Runner[S, C, E]) observe(s *session[S]) {
	r.metrics.parts.set(s, func() *partitionSource {
		return &partitionSource{
			stats: func() []partitionStats { return s.partitionStats() },
			ends: func(ctx context.Context) (map[int32]int64, error) {
				offs, err := r.cluster.Admin().ListCommittedOffsets(ctx, r.cfg.inputs)
				if err != nil {
					return nil, err
				}
				ends := map[int32]int64{}
				offs.Each(func(o kadm.ListedOffset) {
					if o.Err == nil {
						ends[o.Partition] = o.Offset
					}
				})
				return ends, nil
			},
		}
	})
}

// partitionStats counts the owned partitions' instances by status and their pending
// deadlines: one pass over the instances, under s.mu.
func (s *session[S]) partitionStats() []partitionStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]partitionStats, 0, len(s.parts))
	for p, pt := range s.parts {
		st := partitionStats{partition: p, broken: len(pt.broken), position: pt.position}
		for _, inst := range pt.insts {
			switch {
			case inst.Done:
				st.done++
				continue
			case stuck(&inst.State):
				st.stuck++
			default:
				st.active++
			}
			st.deadlines += len(inst.Deadlines)
		}
		out = append(out, st)
	}
	return out
}

// stuck takes a pointer to the state: its method set has the value methods too, and a
// pointer does not allocate when it becomes an interface.
func stuck(state any) bool { return stuckReason(state) != "" }

// stuckReason is the state's StuckReason, "" when it has no such method.
func stuckReason(state any) string {
	if sr, ok := state.(stuckReasoner); ok {
		return sr.StuckReason()
	}
	return ""
}
