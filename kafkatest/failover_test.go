package kafkatest_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/kafkatest"
)

// TestAckedRecordsSurviveLeaderLoss kills (SIGKILL) the leader of a partition of a 3-node
// cluster while a producer with acks=all writes to a topic with replication factor 3 and
// min.insync.replicas=2. Every record the producer saw acknowledged must be readable
// afterwards, once and in order.
func TestAckedRecordsSurviveLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := kafkatest.Start(t, kafkatest.Nodes(3))
	if c.Backend() != kafkatest.Containers {
		t.Skip("needs a cluster whose nodes the harness controls")
	}
	topic := kafkatest.TopicName(t)
	c.CreateTopic(t, topic, 3, 3, map[string]string{"min.insync.replicas": "2"})

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	victim, err := c.LeaderOf(ctx, topic, 0)
	if err != nil {
		t.Fatal(err)
	}

	cl := c.Client(t, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(90*time.Second), kgo.ProducerLinger(2*time.Millisecond))
	const total = 6000
	const killAt = 2000
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		acked   = map[string]bool{}
		failed  []error
		ackedN  atomic.Int64
		killed  = make(chan struct{})
		killErr error
	)
	go func() {
		defer close(killed)
		for ackedN.Load() < killAt {
			select {
			case <-ctx.Done():
				killErr = ctx.Err()
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
		killErr = c.KillNode(ctx, victim)
	}()
	for i := range total {
		key := fmt.Sprintf("k%03d", i%300)
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Key: []byte(key), Value: seqValue(key, i/300)}, func(r *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, err)
				return
			}
			acked[string(r.Value)] = true
			ackedN.Add(1)
		})
		if i == killAt+500 {
			<-killed // the rest is produced while the partition has a new leader
		}
	}
	wg.Wait()
	<-killed
	if killErr != nil {
		t.Fatalf("killing node %d: %v", victim, killErr)
	}
	newLeader, err := c.LeaderOf(ctx, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if newLeader == victim {
		t.Fatalf("node %d was killed but still leads partition 0", victim)
	}
	t.Logf("killed leader %d of partition 0, new leader %d; %d acked, %d failed", victim, newLeader, len(acked), len(failed))
	if len(acked) < killAt {
		t.Fatalf("only %d records acknowledged", len(acked))
	}

	got := readToEnd(t, c, topic)
	present := map[string]int{}
	next := map[string]int{}
	for _, r := range got {
		present[string(r.Value)]++
		seq := parseSeq(t, r)
		if seq < next[string(r.Key)] {
			t.Fatalf("key %s: sequence %d after %d (duplicate or reorder)", r.Key, seq, next[string(r.Key)]-1)
		}
		next[string(r.Key)] = seq + 1
	}
	for v := range acked {
		if present[v] == 0 {
			t.Fatalf("acknowledged record %s is missing after the leader was killed", v)
		}
	}
	for v, n := range present {
		if n > 1 {
			t.Fatalf("record %s is present %d times", v, n)
		}
	}

	// The killed node comes back and rejoins; then the new leader is restarted gracefully.
	// Afterwards the topic still holds exactly what was read before.
	if err := c.StartNode(ctx, victim); err != nil {
		t.Fatal(err)
	}
	if err := c.RestartNode(ctx, newLeader); err != nil {
		t.Fatal(err)
	}
	again := readToEnd(t, c, topic)
	if len(again) != len(got) {
		t.Fatalf("after restarting nodes %d and %d the topic holds %d records, before %d", victim, newLeader, len(again), len(got))
	}
}
