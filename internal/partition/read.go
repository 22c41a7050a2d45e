// Package partition reads one partition of a topic from an offset to its end, as recovery
// does: the snapshots of a shard, then the tail of its events.
package partition

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Stats tells what a read covered.
type Stats struct {
	// Records is the number of data records handed to the callback.
	Records int
	// End is the offset the read stopped at: the partition's last stable offset when the
	// read started. Records written later are not read.
	End int64
}

// ReadToEnd reads topic/partition with read_committed isolation from offset from (0 or
// less: the start of the log) up to the partition's last stable offset as of the call,
// handing each committed data record to fn in offset order. It stops at the first error
// from fn. seeds are the bootstrap brokers; opts are extra client options (TLS, SASL).
//
// The end is captured first so the read terminates while writers keep appending; records
// of transactions still open at that moment are after the end and are not read.
func ReadToEnd(ctx context.Context, seeds []string, topic string, partition int32, from int64, fn func(*kgo.Record) error, opts ...kgo.Opt) (Stats, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
	if err != nil {
		return Stats{}, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return Stats{}, fmt.Errorf("end offset of %s/%d: %w", topic, partition, err)
	}
	endOffset, ok := ends.Lookup(topic, partition)
	if !ok {
		return Stats{}, fmt.Errorf("%s has no partition %d", topic, partition)
	}
	st := Stats{End: endOffset.Offset}
	start := kgo.NewOffset().AtStart()
	if from > 0 {
		start = kgo.NewOffset().At(from)
	}
	if st.End == 0 || from >= st.End {
		return st, nil
	}
	// Control records (transaction markers) are kept so the read can see that it reached
	// the end: the last offset before a last stable offset is a marker or a visible record,
	// never an aborted one, since every finished transaction ends with its marker.
	reader, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: start}}),
	}, opts...)...)
	if err != nil {
		return st, err
	}
	defer reader.Close()
	for {
		fs := reader.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("reading %s/%d to offset %d: %w", topic, partition, st.End, err)
		}
		var stop error
		done := false
		fs.EachError(func(_ string, _ int32, err error) {
			if stop == nil {
				stop = fmt.Errorf("reading %s/%d: %w", topic, partition, err)
			}
		})
		if stop != nil {
			return st, stop
		}
		fs.EachRecord(func(r *kgo.Record) {
			if done || stop != nil || r.Offset >= st.End {
				done = true
				return
			}
			if !r.Attrs.IsControl() {
				st.Records++
				if err := fn(r); err != nil {
					stop = err
					return
				}
			}
			if r.Offset+1 >= st.End {
				done = true
			}
		})
		if errors.Is(stop, ErrStop) {
			return st, nil
		}
		if stop != nil {
			return st, stop
		}
		if done {
			return st, nil
		}
	}
}

// ErrStop can be returned by a ReadToEnd callback to end the read early without an error.
var ErrStop = errors.New("partition: stop")
