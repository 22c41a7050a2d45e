package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/wire"
)

// rawLatency is the latency limit: the same request/reply round trip with raw franz-go
// and nothing else. A client appends commands at the given rate and reads replies
// (read_committed); a GroupTransactSession loop answers each command with an event and a
// reply in the transaction that commits the command offset, keeping each transaction
// open up to the commit interval to gather commands, as the gateway does. What it cannot
// go below is Kafka's: produce, transaction commit, markers, fetch.
func rawLatency(ctx context.Context, c *kafkatest.Cluster, p params, rate float64) (latencies, error) {
	ts, err := newTopicSet(ctx, c, p.partitions)
	if err != nil {
		return latencies{}, err
	}
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(c.Brokers()...), kgo.TransactionalID(ts.ns+"-rawlat"),
		kgo.ConsumerGroup(ts.ns+"-rawlat"), kgo.ConsumeTopics(ts.commands), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return latencies{}, err
	}
	defer sess.Close()
	lctx, stop := context.WithCancel(ctx)
	loopDone := make(chan error, 1)
	ev, _ := json.Marshal(deposited{Amount: 1})
	replyPartition := producer.PartitionFor([]byte("bench"), p.partitions)
	go func() {
		for lctx.Err() == nil {
			recs := sess.PollRecords(lctx, p.batch).Records()
			if len(recs) == 0 {
				continue
			}
			if err := sess.Begin(); err != nil {
				loopDone <- err
				return
			}
			// The records are produced when the transaction ends, as the gateway does
			// (decision 22): an early first produce waits out the broker's retry backoff
			// while the previous transaction's markers are written.
			var staged []*kgo.Record
			answer := func(recs []*kgo.Record) {
				for _, r := range recs {
					md := kastor.Metadata{AggregateType: accountAggregate.Type, AggregateID: string(r.Key), Version: 1, Type: "bank.MoneyDeposited", Fingerprint: 1}
					staged = append(staged,
						&kgo.Record{Topic: ts.events, Partition: r.Partition, Key: r.Key, Value: ev, Headers: wire.Headers(&md)},
						&kgo.Record{Topic: ts.replies, Partition: replyPartition, Key: []byte("bench"), Value: r.Value})
				}
			}
			answer(recs)
			n := len(recs)
			for deadline := time.Now().Add(p.interval); n < p.batch; {
				wait := time.Until(deadline)
				if wait <= 0 {
					break
				}
				pctx, cancel := context.WithTimeout(lctx, wait)
				more := sess.PollRecords(pctx, p.batch-n).Records()
				cancel()
				answer(more)
				n += len(more)
			}
			for _, r := range staged {
				sess.Produce(lctx, r, nil)
			}
			if _, err := sess.End(context.WithoutCancel(lctx), kgo.TryCommit); err != nil {
				loopDone <- err
				return
			}
		}
		loopDone <- nil
	}()
	defer func() { stop(); <-loopDone }()

	cl, err := c.NewClient(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{ts.replies: {replyPartition: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return latencies{}, err
	}
	defer cl.Close()
	var mu sync.Mutex
	sent := map[uint64]time.Time{}
	var lats []time.Duration
	warm := 0 // replies to warm-up commands, which have negative IDs
	got := make(chan struct{}, 1)
	go func() {
		for {
			fs := cl.PollFetches(lctx)
			if lctx.Err() != nil {
				return
			}
			now := time.Now()
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				id := binary.BigEndian.Uint64(r.Value)
				t, ok := sent[id]
				delete(sent, id)
				switch {
				case ok && int64(id) < 0:
					warm++
				case ok:
					lats = append(lats, now.Sub(t))
				}
			})
			mu.Unlock()
			select {
			case got <- struct{}{}:
			default:
			}
		}
	}()
	send := func(i int) {
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(i))
		acct := fmt.Sprintf("acct-%06d", i%p.aggregates)
		mu.Lock()
		sent[uint64(i)] = time.Now()
		mu.Unlock()
		cl.Produce(lctx, &kgo.Record{Topic: ts.commands, Partition: producer.PartitionFor([]byte(acct), p.partitions), Key: []byte(acct), Value: v[:]}, nil)
	}
	// Warm up until a reply comes back: the loop has joined the group.
	for i := 0; ; i++ {
		send(-1 - i)
		select {
		case <-got:
		case <-time.After(time.Second):
			continue
		case <-ctx.Done():
			return latencies{}, ctx.Err()
		}
		mu.Lock()
		n := warm
		mu.Unlock()
		if n > 0 {
			break
		}
	}
	total := int(rate * latencyRun.Seconds())
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	for i := range total {
		<-tick.C
		send(i)
	}
	tick.Stop()
	for deadline := time.Now().Add(30 * time.Second); ; {
		mu.Lock()
		n := len(lats)
		mu.Unlock()
		if n >= total {
			break
		}
		if time.Now().After(deadline) {
			return latencies{}, fmt.Errorf("raw latency loop: %d of %d replies after 30 s", n, total)
		}
		select {
		case <-got:
		case <-time.After(100 * time.Millisecond):
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return percentiles(lats), nil
}

// latencyRun is how long each latency run sends commands.
const latencyRun = 10 * time.Second
