// Package partition reads one partition of a topic from an offset to its end, as recovery
// does: the snapshots of a shard, then the tail of its events. A Reader reads several
// partitions in turn over one client; ReadToEnd reads one with a client of its own. See
// decisions 16 and 20 in docs/decisions.md.
package partition

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/internal/brokerwait"
)

// Stats tells what a read covered.
type Stats struct {
	// Records is the number of data records handed to the callback.
	Records int
	// End is the offset the read stopped at: the partition's last stable offset when the
	// read started. Records written later are not read.
	End int64
}

// stallAfter is how long a read polls without a record before it logs that it waits: a
// restore's partition has records up to its end, so a poll that long means its leader is
// unreachable or being elected. A variable so tests can shorten it.
var stallAfter = 10 * time.Second

// ErrStop can be returned by a read callback to end the read early without an error.
var ErrStop = errors.New("partition: stop")

// Reader reads partitions to their ends, one after another, over one client: a shard
// restore reads the snapshots partition and then the events partition without paying for
// a second client's connections and metadata (see decision 16).
//
// Its requests wait out brokers that are down or restarting and partitions electing a
// leader until their context ends, logging what they wait for; a topic that does not
// exist, an authorization failure or a record that cannot be read fails at once.
type Reader struct {
	// Logger receives the waits for the cluster; nil means slog.Default().
	Logger *slog.Logger

	cl      *kgo.Client
	adm     *kadm.Client
	started *started // the partition Prefetch started, if any
	// reached is set once a request of the Reader succeeded: its settings work, so a
	// connection that ends at its first read is a broker going away (brokerwait.AfterContact).
	reached atomic.Bool
}

// contact marks a first-read EOF transient once the Reader has reached the cluster.
func (r *Reader) contact(err error) error {
	if r.reached.Load() {
		return brokerwait.AfterContact(err)
	}
	return err
}

type started struct {
	topic     string
	partition int32
	from      int64
}

// NewReader returns a Reader of committed records over a client of its own, made with
// base's options (seeds, TLS, SASL) and the Reader's.
func NewReader(base *kgo.Client) (*Reader, error) {
	// Control records (transaction markers) are kept so a read can see that it reached
	// the end: the last offset before a last stable offset is a marker or a visible record,
	// never an aborted one, since every finished transaction ends with its marker.
	cl, err := kgo.NewClient(cluster.Options(base,
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return nil, err
	}
	return &Reader{cl: cl, adm: kadm.NewClient(cl)}, nil
}

// Prefetch starts fetching topic/partition from offset from now, so that the metadata
// and offset lookups and the first fetch overlap with what the caller does before Read
// (finding the end offsets, typically). A Read of the same partition from the same offset
// continues it; Prefetch before each Read at most.
func (r *Reader) Prefetch(topic string, partition int32, from int64) {
	r.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: startAt(from)}})
	r.started = &started{topic, partition, from}
}

func startAt(from int64) kgo.Offset {
	if from > 0 {
		return kgo.NewOffset().At(from)
	}
	return kgo.NewOffset().AtStart()
}

// Close closes the Reader's client.
func (r *Reader) Close() { r.cl.Close() }

// Ends returns the last stable offsets of every partition of topics, in one request per
// broker: the ends that reads started now would stop at. A topic that does not exist is
// an error that names it, matching kerr.UnknownTopicOrPartition.
func (r *Reader) Ends(ctx context.Context, topics ...string) (kadm.ListedOffsets, error) {
	return r.list(ctx, "end offsets", r.adm.ListCommittedOffsets, topics)
}

// list lists offsets of every partition of topics, waiting for the cluster until ctx
// ends. An answer with an error for any partition is tried again whole: the ends of a
// restore are found in one request per broker.
func (r *Reader) list(ctx context.Context, what string, list func(context.Context, ...string) (kadm.ListedOffsets, error), topics []string) (kadm.ListedOffsets, error) {
	label := what + " of " + strings.Join(topics, ", ")
	var out kadm.ListedOffsets
	err := brokerwait.Do(ctx, r.Logger, "the "+label, func(ctx context.Context) error {
		offs, err := list(ctx, topics...)
		if err == nil {
			out, err = offs, partitionErr(offs)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", label, r.contact(err))
		}
		r.reached.Store(true)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// partitionErr is the first error of a listing, one that time does not cure if any, with
// the number of other partitions in error.
func partitionErr(offs kadm.ListedOffsets) error {
	var first error
	n := 0
	offs.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			return
		}
		n++
		var err error
		switch {
		case o.Partition < 0 && errors.Is(o.Err, kerr.UnknownTopicOrPartition):
			// kadm's answer for a topic the metadata does not have.
			err = fmt.Errorf("topic %q does not exist: %w", o.Topic, o.Err)
		case errors.Is(o.Err, kerr.UnknownTopicOrPartition), errors.Is(o.Err, kerr.UnknownTopicID):
			// The metadata has the topic and a broker does not, yet: brokers learn of a
			// topic at slightly different moments.
			err = brokerwait.Retry(fmt.Errorf("%s/%d: %w", o.Topic, o.Partition, o.Err))
		case o.Partition < 0:
			err = fmt.Errorf("topic %q: %w", o.Topic, o.Err)
		default:
			err = fmt.Errorf("%s/%d: %w", o.Topic, o.Partition, o.Err)
		}
		if first == nil || brokerwait.Transient(first) && !brokerwait.Transient(err) {
			first = err
		}
	})
	if n > 1 {
		return fmt.Errorf("%w (and %d more partitions in error)", first, n-1)
	}
	return first
}

// Settled waits until no transaction is open in topic/partition, that is until its last
// stable offset reaches its high watermark, and returns that offset. A read to it then
// misses no record of a committed transaction, whose marker can reach this partition
// after its offsets are visible elsewhere (see decision 20). A transaction that stays
// open (its producer paused or dead) holds this up until the broker aborts it after its
// timeout: bound ctx accordingly.
func (r *Reader) Settled(ctx context.Context, topic string, partition int32) (int64, error) {
	backoff := 5 * time.Millisecond
	for {
		stable, err := r.Ends(ctx, topic)
		if err != nil {
			return 0, err
		}
		lso, err := End(stable, topic, partition)
		if err != nil {
			return 0, err
		}
		hws, err := r.list(ctx, "high watermarks", r.adm.ListEndOffsets, []string{topic})
		if err != nil {
			return 0, err
		}
		hw, err := End(hws, topic, partition)
		if err != nil {
			return 0, err
		}
		if lso >= hw {
			return lso, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%s/%d: a transaction is still open at offset %d (high watermark %d): %w", topic, partition, lso, hw, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// End returns the last stable offset of topic/partition.
func End(ends kadm.ListedOffsets, topic string, partition int32) (int64, error) {
	o, ok := ends.Lookup(topic, partition)
	if !ok {
		return 0, fmt.Errorf("%s has no partition %d", topic, partition)
	}
	return o.Offset, nil
}

// ReadToEnd reads topic/partition from offset from (0 or less: the start of the log) up to
// its last stable offset as of the call; see Read.
func (r *Reader) ReadToEnd(ctx context.Context, topic string, partition int32, from int64, fn func(*kgo.Record) error) (Stats, error) {
	ends, err := r.Ends(ctx, topic)
	if err != nil {
		return Stats{}, err
	}
	end, err := End(ends, topic, partition)
	if err != nil {
		return Stats{}, err
	}
	return r.Read(ctx, topic, partition, from, end, fn)
}

// Read reads topic/partition with read_committed isolation from offset from (0 or less:
// the start of the log) up to offset end (exclusive), which must be a last stable offset
// (see Ends), handing each committed data record to fn in offset order. It stops at the
// first error from fn; ErrStop ends the read without an error.
func (r *Reader) Read(ctx context.Context, topic string, partition int32, from, end int64, fn func(*kgo.Record) error) (Stats, error) {
	st := Stats{End: end}
	prefetched := r.started != nil && *r.started == started{topic, partition, from}
	if r.started != nil {
		// Removing the partition also drops what was fetched past the end, so the next
		// read of this Reader starts clean.
		defer r.cl.RemoveConsumePartitions(map[string][]int32{r.started.topic: {r.started.partition}})
		r.started = nil
	}
	if end == 0 || from >= end {
		return st, nil
	}
	if !prefetched {
		r.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: startAt(from)}})
		defer r.cl.RemoveConsumePartitions(map[string][]int32{topic: {partition}})
	}
	// The client retries failed fetches by itself: a leader that is down shows as records
	// that do not come. A poll that waits stallAfter logs the wait and polls again.
	w := brokerwait.NewWaiter(r.Logger, fmt.Sprintf("%s/%d to be readable", topic, partition))
	at := max(from, 0)
	for {
		pctx, cancel := context.WithTimeout(ctx, stallAfter)
		fs := r.cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("reading %s/%d to offset %d: %w", topic, partition, end, err)
		}
		var stop error
		stalled, done := false, false
		fs.EachError(func(_ string, _ int32, err error) {
			err = r.contact(err)
			switch {
			case errors.Is(err, context.DeadlineExceeded): // pctx's: ctx lives
				stalled = true
			case brokerwait.Transient(err):
				w.Failed(fmt.Errorf("reading %s/%d: %w", topic, partition, err))
			case stop == nil:
				stop = fmt.Errorf("reading %s/%d: %w", topic, partition, err)
			}
		})
		if stop != nil {
			return st, stop
		}
		if stalled {
			w.Failed(fmt.Errorf("no record in %v at offset %d, reading to offset %d", stallAfter, at, end))
		}
		fs.EachRecord(func(rec *kgo.Record) {
			if done || stop != nil || rec.Topic != topic || rec.Partition != partition {
				return
			}
			w.Resumed()
			r.reached.Store(true)
			at = rec.Offset + 1
			if rec.Offset >= end {
				done = true
				return
			}
			if !rec.Attrs.IsControl() {
				st.Records++
				if err := fn(rec); err != nil {
					stop = err
					return
				}
			}
			if rec.Offset+1 >= end {
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

// ReadToEnd reads topic/partition with read_committed isolation from offset from (0 or
// less: the start of the log) up to the partition's last stable offset as of the call,
// handing each committed data record to fn in offset order, with a client of its own made
// with base's options. It stops at the first error from fn.
//
// The end is captured first so the read terminates while writers keep appending; records
// of transactions still open at that moment are after the end and are not read.
func ReadToEnd(ctx context.Context, base *kgo.Client, topic string, partition int32, from int64, fn func(*kgo.Record) error) (Stats, error) {
	r, err := NewReader(base)
	if err != nil {
		return Stats{}, err
	}
	defer r.Close()
	return r.ReadToEnd(ctx, topic, partition, from, fn)
}
