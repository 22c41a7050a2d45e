package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/internal/partition"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/snapshot"
	"github.com/kastor-dev/kastor/topics"
	"github.com/kastor-dev/kastor/wire"
)

type topicSet struct {
	ns, commands, events, snapshots, replies string
	kc                                       *cluster.Cluster // the namespace over the bench's shared client
}

// sharedClients holds one client per cluster for the bench's components, as a service
// has one; the components derive the clients they must own from it.
var sharedClients sync.Map // *kafkatest.Cluster -> *kgo.Client

func kastorOn(c *kafkatest.Cluster, ns string) (*cluster.Cluster, error) {
	v, ok := sharedClients.Load(c)
	if !ok {
		cl, err := c.NewClient()
		if err != nil {
			return nil, err
		}
		var loaded bool
		if v, loaded = sharedClients.LoadOrStore(c, cl); loaded {
			cl.Close()
		}
	}
	return cluster.New(v.(*kgo.Client), ns)
}

// newTopicSet creates a fresh topic set, so runs do not see each other's records.
func newTopicSet(ctx context.Context, c *kafkatest.Cluster, partitions int32) (topicSet, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := "bench" + hex.EncodeToString(b[:])
	kc, err := kastorOn(c, ns)
	if err != nil {
		return topicSet{}, err
	}
	ts := topicSet{ns: ns, kc: kc,
		commands:  topics.TopicName(ns, accountAggregate.Type, topics.RoleCommands),
		events:    topics.TopicName(ns, accountAggregate.Type, topics.RoleEvents),
		snapshots: topics.TopicName(ns, accountAggregate.Type, topics.RoleSnapshots),
		replies:   topics.TopicName(ns, accountAggregate.Type, topics.RoleReplies),
	}
	for _, t := range []string{ts.commands, ts.events, ts.replies} {
		if err := c.CreateTopicContext(ctx, t, partitions, 1, nil); err != nil {
			return ts, err
		}
	}
	return ts, c.CreateTopicContext(ctx, ts.snapshots, partitions, 1, map[string]string{"cleanup.policy": "compact"})
}

var cmdCodec = jsonCodec[deposit]{typ: "bank.Deposit"}

// preload appends n deposit commands, as Senders would, before a throughput run starts.
func preload(ctx context.Context, c *kafkatest.Cluster, ts topicSet, p params) error {
	enc, _ := cmdCodec.Encode(deposit{Amount: 1})
	return produceAll(ctx, c, p.commands, func(i int) *kgo.Record {
		acct := fmt.Sprintf("acct-%06d", i%p.aggregates)
		md := kastor.Metadata{AggregateID: acct, CommandID: fmt.Sprintf("cmd-%08d", i), Type: enc.Type, Fingerprint: enc.Fingerprint}
		hs := wire.AppendHeaders([]kgo.RecordHeader{{Key: wire.HeaderReplyTo, Value: []byte("bench")}}, &md)
		return &kgo.Record{Topic: ts.commands, Partition: producer.PartitionFor([]byte(acct), p.partitions),
			Key: []byte(acct), Value: enc.Data, Headers: hs}
	})
}

// produceAll writes the n records rec makes (record i for i in 0..n-1) through one
// batching client, and returns the first error once every record is acknowledged.
func produceAll(ctx context.Context, c *kafkatest.Cluster, n int, rec func(i int) *kgo.Record) error {
	cl, err := c.NewClient(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	var firstErr atomic.Value
	for i := range n {
		cl.Produce(ctx, rec(i), func(_ *kgo.Record, err error) {
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	return nil
}

// rawLoop is the limit: a franz-go GroupTransactSession that, for each command, writes
// one event and one reply in the transaction that commits the command offsets: the records
// the gateway writes per command, without decoding, state or checks. Commands per second.
func rawLoop(ctx context.Context, c *kafkatest.Cluster, p params) (float64, error) {
	ts, err := newTopicSet(ctx, c, p.partitions)
	if err != nil {
		return 0, err
	}
	if err := preload(ctx, c, ts, p); err != nil {
		return 0, err
	}
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(c.Brokers()...), kgo.TransactionalID(ts.ns+"-raw"),
		kgo.ConsumerGroup(ts.ns+"-raw"), kgo.ConsumeTopics(ts.commands), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer sess.Close()
	ev, _ := json.Marshal(deposited{Amount: 1})
	reply := (&gateway.Reply{CommandID: "cmd-00000000", Status: gateway.StatusOK, AggregateID: "acct-000000", From: 1, To: 1})
	rv, _ := reply.Encode()
	start := time.Now()
	done := 0
	for done < p.commands {
		fs := sess.PollRecords(ctx, p.batch)
		if err := sess.Begin(); err != nil {
			return 0, err
		}
		var perr atomic.Value
		fs.EachRecord(func(r *kgo.Record) {
			md := kastor.Metadata{AggregateType: accountAggregate.Type, AggregateID: string(r.Key), Version: 1, Type: "bank.MoneyDeposited", Fingerprint: 1, CommandID: "cmd-00000000"}
			hs := wire.Headers(&md)
			promise := func(_ *kgo.Record, err error) {
				if err != nil {
					perr.CompareAndSwap(nil, err)
				}
			}
			sess.Produce(ctx, &kgo.Record{Topic: ts.events, Partition: r.Partition, Key: r.Key, Value: ev, Headers: hs}, promise)
			sess.Produce(ctx, &kgo.Record{Topic: ts.replies, Partition: producer.PartitionFor([]byte("bench"), p.partitions), Key: []byte("bench"), Value: rv}, promise)
		})
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil {
			return 0, err
		}
		if committed {
			done += fs.NumRecords()
		}
	}
	return float64(p.commands) / time.Since(start).Seconds(), nil
}

func gatewayConfig(c *kafkatest.Cluster, ts topicSet, p params) gateway.Config[account, deposit, deposited] {
	return gateway.Config[account, deposit, deposited]{
		Aggregate: accountAggregate,
		Commands:  cmdCodec, Events: jsonCodec[deposited]{typ: "bank.MoneyDeposited"}, States: jsonCodec[account]{typ: "bank.Account"},
		MaxBatch: p.batch,
	}
}

// gatewayThroughput runs the gateway over the same preloaded commands: commands per second.
func gatewayThroughput(ctx context.Context, c *kafkatest.Cluster, p params) (float64, error) {
	ts, err := newTopicSet(ctx, c, p.partitions)
	if err != nil {
		return 0, err
	}
	if err := preload(ctx, c, ts, p); err != nil {
		return 0, err
	}
	var n atomic.Int64
	finished := make(chan struct{})
	cfg := gatewayConfig(c, ts, p)
	cfg.Listeners = []gateway.Listener[deposited]{func(_ context.Context, evs []kastor.Envelope[deposited]) {
		if n.Add(int64(len(evs))) == int64(p.commands) {
			close(finished)
		}
	}}
	g, err := gateway.New(ts.kc, cfg)
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- g.Run(rctx) }()
	select {
	case <-finished:
	case err := <-errc:
		return 0, fmt.Errorf("gateway stopped: %v", err)
	case <-time.After(10 * time.Minute):
		return 0, fmt.Errorf("gateway: %d of %d commands after 10 minutes", n.Load(), p.commands)
	}
	took := time.Since(start)
	cancel()
	<-errc
	return float64(p.commands) / took.Seconds(), nil
}

type latencies struct{ p50, p99 time.Duration }

// percentiles sorts lats and returns their median and 99th percentile.
func percentiles(lats []time.Duration) latencies {
	slices.Sort(lats)
	return latencies{p50: lats[len(lats)/2], p99: lats[len(lats)*99/100]}
}

// gatewayLatency sends commands through a Sender at the given rate and measures each
// Send's round trip: append, gateway transaction, reply.
func gatewayLatency(ctx context.Context, c *kafkatest.Cluster, p params, rate float64) (latencies, error) {
	ts, err := newTopicSet(ctx, c, p.partitions)
	if err != nil {
		return latencies{}, err
	}
	cfg := gatewayConfig(c, ts, p)
	cfg.CommitInterval = p.interval
	g, err := gateway.New(ts.kc, cfg)
	if err != nil {
		return latencies{}, err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- g.Run(rctx) }()
	defer func() { cancel(); <-errc }()
	s, err := gateway.NewSender(ctx, ts.kc, gateway.SenderConfig[deposit]{AggregateType: accountAggregate.Type, Commands: cmdCodec})
	if err != nil {
		return latencies{}, err
	}
	defer s.Close()
	// Warm up: the gateway has restored its shards once a command comes back.
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	_, err = s.Send(wctx, kastor.NewCommand("warm-up", deposit{Amount: 1}))
	wcancel()
	if err != nil {
		return latencies{}, fmt.Errorf("warm-up: %w", err)
	}
	total := int(rate * latencyRun.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	var mu sync.Mutex
	var lats []time.Duration
	var wg sync.WaitGroup
	var sendErr atomic.Value
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := range total {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
			defer scancel()
			t0 := time.Now()
			_, err := s.Send(sctx, kastor.NewCommand(fmt.Sprintf("acct-%06d", i%p.aggregates), deposit{Amount: 1}))
			if err != nil {
				sendErr.CompareAndSwap(nil, err)
				return
			}
			d := time.Since(t0)
			mu.Lock()
			lats = append(lats, d)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err, _ := sendErr.Load().(error); err != nil {
		return latencies{}, err
	}
	return percentiles(lats), nil
}

// recovery writes p.snapAggs snapshotted aggregates into one partition, then times a
// gateway's restore of that shard beside a raw read of the snapshot partition (medians of
// recoveryRounds).
func recovery(ctx context.Context, c *kafkatest.Cluster, p params) (time.Duration, time.Duration, error) {
	ts, err := writeSnapshots(ctx, c, p)
	if err != nil {
		return 0, 0, err
	}
	return timeRestores(ctx, c, ts, p, recoveryRounds)
}

// writeSnapshots creates a one-partition topic set holding p.snapAggs aggregates, one event
// each, a snapshot each and a shard checkpoint: a restore reads the snapshots and no event.
// The aggregates are those preload addresses (acct-%06d), so commands can touch them.
func writeSnapshots(ctx context.Context, c *kafkatest.Cluster, p params) (topicSet, error) {
	ts, err := newTopicSet(ctx, c, 1)
	if err != nil {
		return ts, err
	}
	cl, err := c.NewClient(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return ts, err
	}
	defer cl.Close()
	ev, _ := json.Marshal(deposited{Amount: 1})
	state, _ := json.Marshal(account{Balance: 1})
	for i := range p.snapAggs {
		id := fmt.Sprintf("acct-%06d", i)
		md := kastor.Metadata{AggregateType: accountAggregate.Type, AggregateID: id, Version: 1, Type: "bank.MoneyDeposited", Fingerprint: 1, CommandID: "c-" + id}
		hs := wire.Headers(&md)
		cl.Produce(ctx, &kgo.Record{Topic: ts.events, Key: []byte(id), Value: ev, Headers: hs}, nil)
		rec := snapshot.Record{AggregateID: id, Version: 1, EventOffset: int64(i), Commands: []snapshot.Command{{ID: "c-" + id, From: 1, To: 1}},
			StateType: "bank.Account", StateFingerprint: 1, State: state}
		kr, err := rec.KafkaRecord(ts.snapshots, 0)
		if err != nil {
			return ts, err
		}
		cl.Produce(ctx, kr, nil)
	}
	cp, _ := snapshot.CheckpointRecord(ts.snapshots, 0, int64(p.snapAggs-1))
	cl.Produce(ctx, cp, nil)
	return ts, cl.Flush(ctx)
}

// timeRestores alternates raw reads of ts's snapshot partition and gateway restores of its
// shard, rounds of each, and returns the median restore and raw read: on a shared 2-core
// machine single runs move by a factor of 2.
func timeRestores(ctx context.Context, c *kafkatest.Cluster, ts topicSet, p params, rounds int) (time.Duration, time.Duration, error) {
	var raws, restores []time.Duration
	for round := range rounds {
		t0 := time.Now()
		if _, err := partition.ReadToEnd(ctx, ts.kc.Client(), ts.snapshots, 0, 0, func(*kgo.Record) error { return nil }); err != nil {
			return 0, 0, err
		}
		raws = append(raws, time.Since(t0))
		d, err := restoreOnce(ctx, c, ts, p, round)
		if err != nil {
			return 0, 0, err
		}
		restores = append(restores, d)
	}
	if verbose {
		fmt.Printf("  recovery rounds (%d aggregates): raw %v, restore %v\n", p.snapAggs, raws, restores)
	}
	return median(restores), median(raws), nil
}

const recoveryRounds = 5

func median(ds []time.Duration) time.Duration {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// restoreOnce starts a gateway in a group of its own and returns how long its restore of
// the shard took.
func restoreOnce(ctx context.Context, c *kafkatest.Cluster, ts topicSet, p params, round int) (time.Duration, error) {
	cfg := gatewayConfig(c, ts, p)
	cfg.Group = fmt.Sprintf("%s-restore-%d", ts.ns, round)
	_, r, stop, err := startRestored(ctx, ts.kc, cfg, p.snapAggs)
	if err != nil {
		return 0, err
	}
	stop()
	return r.Duration, nil
}

// startRestored runs a gateway until it has restored its first shard, which must hold
// aggregates aggregates rebuilt from snapshots alone, and returns it running with that
// restore; stop stops it.
func startRestored(ctx context.Context, kc *cluster.Cluster, cfg gateway.Config[account, deposit, deposited], aggregates int) (*gateway.Gateway[account, deposit, deposited], gateway.Recovery, func(), error) {
	g, err := gateway.New(kc, cfg)
	if err != nil {
		return nil, gateway.Recovery{}, nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- g.Run(rctx) }()
	stop := func() { cancel(); <-errc }
	deadline := time.Now().Add(5 * time.Minute)
	for len(g.Recoveries()) == 0 {
		if time.Now().After(deadline) {
			stop()
			return nil, gateway.Recovery{}, nil, fmt.Errorf("no restore after 5 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := g.Recoveries()[0]
	if r.Aggregates != aggregates || r.EventRecords != 0 {
		stop()
		return nil, gateway.Recovery{}, nil, fmt.Errorf("restore rebuilt %d aggregates reading %d events; want %d and 0", r.Aggregates, r.EventRecords, aggregates)
	}
	return g, r, stop, nil
}
