package kafkatest_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/kafkatest"
)

// readToEnd reads a non-transactional topic from the start until every partition reaches the
// high watermark it has now, and returns the records in fetch order.
func readToEnd(t *testing.T, c *kafkatest.Cluster, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ends, err := c.Admin().ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	pending := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			pending[o.Partition] = o.Offset
		}
	})
	if len(pending) == 0 {
		return nil
	}
	var out []*kgo.Record
	consume(t, ctx, c, topic, kgo.ReadUncommitted(), func(r *kgo.Record) bool {
		out = append(out, r)
		if end, ok := pending[r.Partition]; ok && r.Offset+1 >= end {
			delete(pending, r.Partition)
		}
		return len(pending) == 0
	})
	return out
}

// readN reads a topic from the start with the given isolation level until it has n records.
func readN(t *testing.T, c *kafkatest.Cluster, topic string, isolation kgo.IsolationLevel, n int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out []*kgo.Record
	consume(t, ctx, c, topic, isolation, func(r *kgo.Record) bool {
		out = append(out, r)
		return len(out) >= n
	})
	return out
}

// consume feeds records from the start of topic to fn until fn returns true.
func consume(t *testing.T, ctx context.Context, c *kafkatest.Cluster, topic string, isolation kgo.IsolationLevel, fn func(*kgo.Record) bool) {
	t.Helper()
	if fn == nil {
		return
	}
	cl, err := c.NewClient(kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(isolation),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s back: %v", topic, ctx.Err())
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			if !done {
				done = fn(r)
			}
		})
		if done {
			return
		}
	}
}
