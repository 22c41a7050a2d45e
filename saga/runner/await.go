package runner

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/saga"
)

// Await reads the record of instance id from the state topic, read_committed, from the
// start of its partition and then as it is written, until until returns true for it, and
// returns that record. It returns ctx's error when ctx ends first. It is for tests,
// examples and tools that wait for an instance's progress (a transfer done, a
// compensation begun); it needs no running Runner, only the topics.
func (r *Runner[S, C, E]) Await(ctx context.Context, id string, until func(saga.Instance[S]) bool) (saga.Instance[S], error) {
	var none saga.Instance[S]
	r.mu.Lock()
	n := r.partitions
	r.mu.Unlock()
	if n == 0 {
		if err := r.checkTopics(ctx); err != nil {
			return none, err
		}
		r.mu.Lock()
		n = r.partitions
		r.mu.Unlock()
	}
	p := producer.PartitionFor([]byte(id), n)
	cl, err := r.cluster.NewClient(
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.cfg.state: {p: kgo.NewOffset().AtStart()}}),
	)
	if err != nil {
		return none, err
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return none, fmt.Errorf("saga instance %q: %w", id, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			r.cfg.logger.Debug("Await: fetch error; retrying", "err", ferr)
		}
		var found *saga.Instance[S]
		var derr error
		fs.EachRecord(func(rec *kgo.Record) {
			if found != nil || derr != nil || string(rec.Key) != id {
				return
			}
			ir, ok, err := DecodeStateRecord(rec)
			if err != nil || !ok {
				derr = err
				return
			}
			inst, err := instance(ir, r.cfg.States)
			if err != nil {
				derr = err
				return
			}
			if until(inst) {
				found = &inst
			}
		})
		if derr != nil {
			return none, derr
		}
		if found != nil {
			return *found, nil
		}
	}
}
