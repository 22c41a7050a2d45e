package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
)

// TableWrite is what a Kafka table writes for one event: the record's key and value, or
// a tombstone (Delete: a record with the key and no value, which compaction eventually
// removes with every earlier record of the key).
type TableWrite struct {
	Key    []byte
	Value  []byte
	Delete bool
}

// KafkaTable is a sink writing a compacted output topic, keyed by row, in the reader's
// Kafka transaction (TxSink): the rows an event produces, the round's dead letters and
// the consumed offsets commit together or not at all, so each event's rows appear
// exactly once for read_committed readers (ReadTable), whatever crashes or rebalances
// happen. Create the output topic like the others, compacted ("cleanup.policy=compact");
// the reader refuses no topic for it, but writes fail (and the partition waits) while it
// is missing.
//
// The rows are a function of the event alone (KafkaTable keeps no state): an upsert
// writes the row's new value, a delete a tombstone. A row that needs earlier state (a
// running balance) keeps it in the value it computes from the event, or uses a Memory or
// database sink instead. As TxSink asks, an event's rows are produced only once the
// mapping function returned them without error, and a failed produce is reported as
// Unavailable (the round is aborted whole and read again).
type KafkaTable[E any] struct {
	topic string
	txID  string
	fn    func(ev kastor.Envelope[E]) ([]TableWrite, error)
	cl    *kgo.Client
}

// NewKafkaTable returns a sink writing to the compacted topic the rows fn maps each event
// to (none, one or several). An error from fn blames the event: it is retried, then
// parked on the dead-letter topic, and none of its rows are written. transactionalID
// must be stable for an instance across restarts and distinct across the instances of
// the projection (for example "<group>-<hostname>"): a restarted instance with the same
// ID fences its predecessor's unfinished transaction at once, while two live instances
// sharing one fence each other in turn.
func NewKafkaTable[E any](topic, transactionalID string, fn func(ev kastor.Envelope[E]) ([]TableWrite, error)) (*KafkaTable[E], error) {
	switch {
	case topic == "":
		return nil, errors.New("consumer: NewKafkaTable: the topic is empty")
	case transactionalID == "":
		return nil, errors.New("consumer: NewKafkaTable: the transactional ID is empty")
	case fn == nil:
		return nil, errors.New("consumer: NewKafkaTable: the mapping function is nil")
	}
	return &KafkaTable[E]{topic: topic, txID: transactionalID, fn: fn}, nil
}

// NewKafkaTableCodec is NewKafkaTable for the common case of one row per aggregate: the
// key is the aggregate ID, and the value is what value returns for the event, encoded
// with codec's Encode (a row type with its own schema, or JSON); value returning
// delete=true writes a tombstone for the aggregate instead.
func NewKafkaTableCodec[E, V any](topic, transactionalID string, codec kastor.Codec[V], value func(ev kastor.Envelope[E]) (v V, delete bool, err error)) (*KafkaTable[E], error) {
	if codec == nil || value == nil {
		return nil, errors.New("consumer: NewKafkaTableCodec: the codec or the value function is nil")
	}
	return NewKafkaTable(topic, transactionalID, func(ev kastor.Envelope[E]) ([]TableWrite, error) {
		v, del, err := value(ev)
		if err != nil {
			return nil, err
		}
		if del {
			return []TableWrite{{Key: []byte(ev.AggregateID), Delete: true}}, nil
		}
		enc, err := codec.Encode(v)
		if err != nil {
			return nil, fmt.Errorf("encoding the row: %w", err)
		}
		return []TableWrite{{Key: []byte(ev.AggregateID), Value: enc.Data}}, nil
	})
}

// Topic is the table's output topic.
func (t *KafkaTable[E]) Topic() string { return t.topic }

// TransactionalID is the producer's transactional ID (TxSink).
func (t *KafkaTable[E]) TransactionalID() string { return t.txID }

// Transactional receives the client of the reader's transactional session (TxSink).
func (t *KafkaTable[E]) Transactional(cl *kgo.Client) { t.cl = cl }

// Apply maps each event, then produces its rows in the open transaction (TxSink). It
// waits for the batch's records to be acknowledged, so that a failure is known before the
// reader ends the transaction.
func (t *KafkaTable[E]) Apply(ctx context.Context, b Batch[E]) error {
	if t.cl == nil {
		return errors.New("consumer: KafkaTable used outside a reader (Transactional was not called)")
	}
	var recs []*kgo.Record
	for i, ev := range b.Events {
		ws, err := t.fn(ev) // checked before anything of the event is produced
		if err != nil {
			if err := t.produce(ctx, recs); err != nil {
				return err
			}
			return &ApplyError{Index: i, Err: err}
		}
		for _, w := range ws {
			rec := &kgo.Record{Topic: t.topic, Key: w.Key, Value: w.Value}
			if w.Delete {
				rec.Value = nil
			}
			recs = append(recs, rec)
		}
	}
	return t.produce(ctx, recs)
}

// produce writes recs in the transaction. A failure is the output topic's, not an
// event's: Unavailable, so the reader aborts the round rather than park anything.
func (t *KafkaTable[E]) produce(ctx context.Context, recs []*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if err := t.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return Unavailable(fmt.Errorf("consumer: writing the table %q: %w", t.topic, err))
	}
	return nil
}

// ReadTable reads a table topic of c (or any compacted topic, by full name) back into a
// map from key to value, read_committed, from the start to the last stable offsets as of
// the call: the table as of the last committed transaction, without the rows of open or
// aborted ones. A tombstone removes its key.
//
// The end offsets are asked through the shared client; the topic is read by a client of
// its own made with c.NewClient (read_committed, control records kept so that a
// partition ending with a commit marker is seen to end, a fetch wait of at most 200 ms).
func ReadTable(ctx context.Context, c *cluster.Cluster, topic string) (map[string][]byte, error) {
	if c == nil {
		return nil, errNilCluster
	}
	ends, err := c.Admin().ListCommittedOffsets(ctx, topic) // last stable offsets
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("consumer: end offsets of %s: %w", topic, err)
	}
	want := map[int32]int64{}
	start := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			start[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	out := map[string][]byte{}
	if len(want) == 0 {
		return out, nil
	}
	cl, err := c.NewClient(
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), // so a partition ending with a commit marker is seen to end
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	defer cl.Close()
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err := fs.Err0(); err != nil {
			return nil, fmt.Errorf("consumer: reading %s: %w", topic, err)
		}
		var fetchErr error
		fs.EachError(func(_ string, _ int32, err error) { fetchErr = err })
		if fetchErr != nil {
			return nil, fmt.Errorf("consumer: reading %s: %w", topic, fetchErr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if !r.Attrs.IsControl() {
				if r.Value == nil {
					delete(out, string(r.Key))
				} else {
					out[string(r.Key)] = r.Value
				}
			}
			if r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return out, nil
}
