package partition_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/internal/partition"
	"github.com/kastor-dev/kastor/kafkatest"
)

var realKafka = kafkatest.NewShared()

func TestMain(m *testing.M) {
	code := m.Run()
	if err := realKafka.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

func TestReadToEndStopsAtCapturedEnd(t *testing.T) {
	for _, b := range []struct {
		name string
		get  func(*testing.T) *kafkatest.Cluster
	}{
		{"embedded", func(t *testing.T) *kafkatest.Cluster { return kafkatest.StartEmbedded(t) }},
		{"kafka", func(t *testing.T) *kafkatest.Cluster { return realKafka.Get(t) }},
	} {
		t.Run(b.name, func(t *testing.T) {
			c := b.get(t)
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

			var got []string
			st, err := partition.ReadToEnd(ctx, c.Brokers(), topic, 1, 0, func(r *kgo.Record) error {
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
			st, err = partition.ReadToEnd(ctx, c.Brokers(), topic, 1, st.End-2, func(*kgo.Record) error { return nil })
			if err != nil || st.Records != 1 {
				t.Fatalf("tail read: %d records, %v; want 1 (the last data record before the marker)", st.Records, err)
			}
			// An empty partition returns at once.
			st, err = partition.ReadToEnd(ctx, c.Brokers(), topic, 0, 0, func(*kgo.Record) error { return nil })
			if err != nil || st.Records != 0 || st.End != 0 {
				t.Fatalf("empty partition: %+v, %v", st, err)
			}
			// The callback can stop the read.
			n := 0
			_, err = partition.ReadToEnd(ctx, c.Brokers(), topic, 1, 0, func(*kgo.Record) error {
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
			if _, err := partition.ReadToEnd(ctx, c.Brokers(), topic, 1, 0, func(*kgo.Record) error { return boom }); !errors.Is(err, boom) {
				t.Fatalf("callback error: %v", err)
			}
		})
	}
}
