package partition_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/internal/partition"
	"github.com/kastor-dev/kastor/kafkatest"
)

var realKafka = kafkatest.NewShared()

func TestMain(m *testing.M) { kafkatest.Main(m, realKafka) }

// awaitStable waits until no transaction is open in topic/partition: its last stable
// offset is its high watermark.
func awaitStable(t *testing.T, c *kafkatest.Cluster, topic string, partition int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		stable, err := c.Admin().ListCommittedOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		end, err := c.Admin().ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := stable.Lookup(topic, partition)
		e, _ := end.Lookup(topic, partition)
		if s.Err == nil && e.Err == nil && s.Offset == e.Offset {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s/%d: last stable offset %d never reached the end %d", topic, partition, s.Offset, e.Offset)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestReadToEndStopsAtCapturedEnd(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		topic := kafkatest.TopicName(t)
		c.CreateTopic(t, topic, 2, 1, nil)
		cl := c.Client(t, kgo.TransactionalID(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		txn := func(commit bool, from, n int) {
			if err := cl.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			for i := from; i < from+n; i++ {
				if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 1, Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
				t.Fatal(err)
			}
		}
		txn(true, 0, 10)
		txn(false, 100, 5) // aborted: never read
		txn(true, 10, 10)  // the log now ends with a commit marker
		// With transactions v2 (Kafka 4) EndTransaction returns before the markers are
		// written: the last stable offset, which ReadToEnd captures, reaches the log end
		// a moment later.
		awaitStable(t, c, topic, 1)

		var got []string
		st, err := partition.ReadToEnd(ctx, base(t, c.Brokers()), topic, 1, 0, func(r *kgo.Record) error {
			got = append(got, string(r.Value))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if st.Records != 20 || len(got) != 20 || got[0] != "0" || got[19] != "19" {
			t.Fatalf("read %d records %v, want 0..19", st.Records, got)
		}
		// From an offset: only the tail.
		st, err = partition.ReadToEnd(ctx, base(t, c.Brokers()), topic, 1, st.End-2, func(*kgo.Record) error { return nil })
		if err != nil || st.Records != 1 {
			t.Fatalf("tail read: %d records, %v; want 1 (the last data record before the marker)", st.Records, err)
		}
		// An empty partition returns at once.
		st, err = partition.ReadToEnd(ctx, base(t, c.Brokers()), topic, 0, 0, func(*kgo.Record) error { return nil })
		if err != nil || st.Records != 0 || st.End != 0 {
			t.Fatalf("empty partition: %+v, %v", st, err)
		}
		// The callback can stop the read.
		n := 0
		_, err = partition.ReadToEnd(ctx, base(t, c.Brokers()), topic, 1, 0, func(*kgo.Record) error {
			n++
			if n == 3 {
				return partition.ErrStop
			}
			return nil
		})
		if err != nil || n != 3 {
			t.Fatalf("ErrStop: %d records, %v", n, err)
		}
		boom := errors.New("boom")
		if _, err := partition.ReadToEnd(ctx, base(t, c.Brokers()), topic, 1, 0, func(*kgo.Record) error { return boom }); !errors.Is(err, boom) {
			t.Fatalf("callback error: %v", err)
		}
	})
}

// TestSettledWaitsForOpenTransactions: Settled returns only once no transaction is open in
// the partition, with an end that includes the transaction's records; and one Reader reads
// two partitions in turn.
func TestSettledWaitsForOpenTransactions(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		topic := kafkatest.TopicName(t)
		c.CreateTopic(t, topic, 2, 1, nil)
		cl := c.Client(t, kgo.TransactionalID(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		rd, err := partition.NewReader(base(t, c.Brokers()))
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		// Open: Settled must wait.
		sctx, scancel := context.WithTimeout(ctx, 500*time.Millisecond)
		if end, err := rd.Settled(sctx, topic, 0); err == nil {
			t.Fatalf("Settled returned %d while a transaction was open", end)
		}
		scancel()
		settled := make(chan int64, 1)
		go func() {
			end, err := rd.Settled(ctx, topic, 0)
			if err != nil {
				t.Error(err)
			}
			settled <- end
		}()
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
		end := <-settled
		if end != 6 { // five records and the commit marker
			t.Fatalf("settled end %d, want 6", end)
		}
		var got []string
		st, err := rd.Read(ctx, topic, 0, 0, end, func(r *kgo.Record) error { got = append(got, string(r.Value)); return nil })
		if err != nil || st.Records != 5 || got[4] != "4" {
			t.Fatalf("read %v (%+v, %v), want 0..4", got, st, err)
		}
		// The same Reader goes on with the other partition.
		c2 := c.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err := c2.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 1, Value: []byte("p1")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		st, err = rd.ReadToEnd(ctx, topic, 1, 0, func(r *kgo.Record) error { got = append(got, string(r.Value)); return nil })
		if err != nil || st.Records != 1 || got[0] != "p1" {
			t.Fatalf("second partition: %v (%+v, %v)", got, st, err)
		}
	})
}

// base is a client with seeds, closed when the test ends.
func base(t *testing.T, seeds []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
