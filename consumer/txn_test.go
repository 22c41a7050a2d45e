package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/kafkatest"
)

// table is a TxSink writing one record per event to an output topic, in the reader's
// transaction; it refuses chosen versions (after checking, before producing).
type table struct {
	topic string
	id    string
	cl    *kgo.Client
	bad   map[string]bool
}

func (tb *table) Transactional(cl *kgo.Client) { tb.cl = cl }
func (tb *table) TransactionalID() string      { return tb.id }

func (tb *table) Apply(ctx context.Context, b consumer.Batch[kastor.Event]) error {
	for i, e := range b.Events {
		if tb.bad[fmt.Sprintf("%s/%d", e.AggregateID, e.Version)] {
			return &consumer.ApplyError{Index: i, Err: errors.New("refused")}
		}
		rec := &kgo.Record{Topic: tb.topic, Key: []byte(e.AggregateID), Value: []byte(strconv.FormatInt(e.Version, 10))}
		if err := tb.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			return consumer.Unavailable(err)
		}
	}
	return nil
}

// A TxSink's output, dead letters and offsets commit in one transaction: after a crash
// in the middle of a transaction, the output holds every event exactly once.
func TestTransactionalSinkExactlyOnce(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 3)
		out := r.NS + ".table"
		c.CreateTopic(t, out, 3, 1, nil)
		r.Write(r.Mix(150, 10, func(int) int64 { return 1 })...)
		cfg := r.Config(func(c *consumer.Config[kastor.Event]) { c.MaxPollRecords = 30 })
		tb := &table{topic: out, id: r.NS + "-table-0", bad: map[string]bool{"acc-3/4": true}}
		rd, err := consumer.New(r.KC, cfg, consumer.Sink[kastor.Event](tb))
		if err != nil {
			t.Fatal(err)
		}
		var rounds atomic.Int32
		consumer.SimulateCrash(rd, func() bool { return rounds.Add(1) == 3 })
		if err := rd.Run(testCtx(t)); err == nil {
			t.Fatal("Run returned nil, want the simulated crash")
		}
		tb2 := &table{topic: out, id: tb.id, bad: tb.bad} // the same instance, restarted
		_, stop := r.Start(cfg, tb2)
		r.AwaitCommitted(r.Group(cfg), r.Ends())
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		n := 0
		cl := c.Client(t, kgo.ConsumeTopics(out), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.KeepControlRecords())
		ends, err := c.Admin().ListCommittedOffsets(testCtx(t), out)
		if err != nil {
			t.Fatal(err)
		}
		want := int64(0)
		ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
		read := map[int32]int64{}
		for {
			total := int64(0)
			for _, o := range read {
				total += o
			}
			if total >= want {
				break
			}
			fs := cl.PollFetches(testCtx(t))
			fs.EachRecord(func(rec *kgo.Record) {
				read[rec.Partition] = rec.Offset + 1
				if rec.Attrs.IsControl() {
					return
				}
				got[string(rec.Key)+"/"+string(rec.Value)]++
				n++
			})
			if testCtx(t).Err() != nil {
				t.Fatal("reading the output")
			}
		}
		for agg, v := range r.Versions {
			for i := int64(1); i <= v; i++ {
				k := fmt.Sprintf("%s/%d", agg, i)
				switch {
				case k == "acc-3/4" && got[k] != 0:
					t.Errorf("%s was refused but is in the output", k)
				case k != "acc-3/4" && got[k] != 1:
					t.Errorf("%s is %d times in the output, want 1", k, got[k])
				}
			}
		}
		if letters := r.ReadDLQ(); len(letters) != 1 || letters[0].Reason != consumer.ReasonFailed {
			t.Errorf("dead letters %+v, want the refused event once", letters)
		}
	})
}
