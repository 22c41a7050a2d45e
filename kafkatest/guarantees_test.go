package kafkatest_test

// These tests prove, against real Apache Kafka, the broker guarantees kastor is built on:
// idempotent keyed produce with Java-compatible partitioning, transactional visibility,
// and consumer-group offsets. Each reads the topic back and checks counts and contents.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
)

// seqValue encodes a key's sequence number; the value is checked on read-back.
func seqValue(key string, seq int) []byte { return []byte(fmt.Sprintf("%s#%d", key, seq)) }

func parseSeq(t *testing.T, r *kgo.Record) int {
	t.Helper()
	prefix := string(r.Key) + "#"
	v := string(r.Value)
	if !strings.HasPrefix(v, prefix) {
		t.Fatalf("record %s/%d@%d: value %q does not belong to key %q", r.Topic, r.Partition, r.Offset, v, r.Key)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(v, prefix))
	if err != nil {
		t.Fatalf("record %s/%d@%d: bad value %q", r.Topic, r.Partition, r.Offset, v)
	}
	return n
}

func TestIdempotentKeyedProduceReadBack(t *testing.T) {
	c := sharedCluster(t)
	const (
		partitions = 6
		keys       = 500
		records    = 10_000
	)
	topic := kafkatest.TopicName(t)
	c.CreateTopic(t, topic, partitions, 1, nil)

	// franz-go is idempotent with acks=all by default; the test asks for it explicitly so a
	// change of default cannot weaken it silently.
	cl := c.Client(t, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	var mu sync.Mutex
	var produceErrs []error
	for i := range records {
		key := fmt.Sprintf("acct-%04d", i%keys)
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Key: []byte(key), Value: seqValue(key, i/keys)}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				produceErrs = append(produceErrs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(produceErrs) > 0 {
		t.Fatalf("%d produce errors, first: %v", len(produceErrs), produceErrs[0])
	}

	got := readToEnd(t, c, topic)
	if len(got) != records {
		t.Fatalf("read back %d records, produced %d", len(got), records)
	}
	next := map[string]int{} // the next sequence number expected per key
	for _, r := range got {
		key := string(r.Key)
		if want := producer.PartitionFor(r.Key, partitions); r.Partition != want {
			t.Fatalf("key %q is in partition %d; Kafka's murmur2 default puts it in %d", key, r.Partition, want)
		}
		seq := parseSeq(t, r)
		if seq != next[key] {
			t.Fatalf("key %q: got sequence %d at %d/%d, want %d (loss, duplicate or reorder)", key, seq, r.Partition, r.Offset, next[key])
		}
		next[key]++
	}
	if len(next) != keys {
		t.Fatalf("read back %d distinct keys, want %d", len(next), keys)
	}
	for k, n := range next {
		if n != records/keys {
			t.Fatalf("key %q: %d records, want %d", k, n, records/keys)
		}
	}
}

func TestTransactionVisibility(t *testing.T) {
	c := sharedCluster(t)
	topic := kafkatest.TopicName(t)
	c.CreateTopic(t, topic, 3, 1, nil)
	cl := c.Client(t, kgo.DefaultProduceTopic(topic), kgo.TransactionalID(topic+"-txn"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const n = 100
	write := func(label string, commit bool) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			key := fmt.Sprintf("k%d", i%10) // the same keys, so both transactions span the same partitions
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(key), Value: []byte(fmt.Sprintf("%s-%d", label, i))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end transaction (commit=%v): %v", commit, err)
		}
	}
	write("aborted", false)
	write("committed", true)

	// The aborted records were written: a read_uncommitted reader sees both transactions.
	if all := readN(t, c, topic, kgo.ReadUncommitted(), 2*n); len(all) != 2*n {
		t.Fatalf("read_uncommitted saw %d records, want %d", len(all), 2*n)
	}
	// read_committed sees the committed transaction whole and nothing of the aborted one. The
	// aborted records precede the committed ones in every partition, so any leak would show
	// up before the last committed record is read.
	seen := map[string]bool{}
	for _, r := range readN(t, c, topic, kgo.ReadCommitted(), n) {
		v := string(r.Value)
		if !strings.HasPrefix(v, "committed-") {
			t.Fatalf("read_committed returned %q from an aborted transaction", v)
		}
		if seen[v] {
			t.Fatalf("read_committed returned %q twice", v)
		}
		seen[v] = true
	}
	if len(seen) != n {
		t.Fatalf("read_committed saw %d committed records, want %d", len(seen), n)
	}
}

func TestConsumerGroupResumesWhereItStopped(t *testing.T) {
	c := sharedCluster(t)
	topic := kafkatest.TopicName(t)
	group := topic + "-group"
	c.CreateTopic(t, topic, 3, 1, nil)
	const total, firstRun = 300, 120

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prod := c.Client(t, kgo.DefaultProduceTopic(topic))
	for i := range total {
		key := fmt.Sprintf("k%d", i%7)
		prod.Produce(ctx, &kgo.Record{Key: []byte(key), Value: []byte(strconv.Itoa(i))}, nil)
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	newConsumer := func() *kgo.Client {
		cl, err := c.NewClient(kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}

	// First run: process exactly firstRun records, commit what was processed, leave.
	seen := map[string]int{}
	cl := newConsumer()
	processed := 0
	for processed < firstRun {
		fs := cl.PollRecords(ctx, firstRun-processed)
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("fetch %d: %v", p, err) })
		recs := fs.Records()
		for _, r := range recs {
			seen[string(r.Value)]++
		}
		if err := cl.CommitRecords(ctx, recs...); err != nil {
			t.Fatalf("commit: %v", err)
		}
		processed += len(recs)
	}
	committed := cl.CommittedOffsets()[topic]
	cl.Close() // leaves the group

	// The broker holds exactly the offsets the first run committed.
	fetched, err := c.Admin().FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	for p, eo := range committed {
		o, ok := fetched.Lookup(topic, p)
		if !ok || o.At != eo.Offset {
			t.Fatalf("partition %d: broker has committed %v, the consumer committed %d", p, o.At, eo.Offset)
		}
	}

	// Second run: a new member of the group resumes from the committed offsets.
	cl2 := newConsumer()
	defer cl2.Close()
	for processed < total {
		fs := cl2.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("second run: %d of %d records after resuming: %v", processed, total, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen[string(r.Value)]++
			processed++
		})
	}
	if len(seen) != total {
		t.Fatalf("%d distinct records across both runs, want %d", len(seen), total)
	}
	for v, n := range seen {
		if n != 1 {
			t.Fatalf("record %s processed %d times: the second run did not resume where the first stopped", v, n)
		}
	}
}
