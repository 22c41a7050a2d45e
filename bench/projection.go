package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/pgtest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/schema"
	"github.com/kastor-dev/kastor/wire"
)

// eventCodec is the gateway runs' JSON event codec; the projection throughput runs use
// avroEvents, the Avro codec kastor applications use (package schema), so the figure
// shows kastor's decoding rather than encoding/json's.
var (
	eventCodec = jsonCodec[deposited]{typ: "bank.MoneyDeposited"}
	avroEvents = func() kastor.Codec[deposited] {
		s := schema.MustParse(`{"type": "record", "name": "MoneyDeposited", "namespace": "bank",
			"fields": [{"name": "amount", "type": "long"}]}`)
		return schema.ValueCodec(schema.MustCodec[deposited](schema.NewRegistry(), s))
	}()
)

// preloadEvents appends p.events MoneyDeposited events, as the gateway writes them
// (headers included), spread over p.aggregates accounts, and returns the topic's end
// offsets.
func preloadEvents(ctx context.Context, c *kafkatest.Cluster, ts topicSet, p params) (map[consumer.TopicPartition]int64, error) {
	enc, err := avroEvents.Encode(deposited{Amount: 1})
	if err != nil {
		return nil, err
	}
	versions := make([]int64, p.aggregates)
	err = produceAll(ctx, c, p.events, func(i int) *kgo.Record {
		a := i % p.aggregates
		acct := fmt.Sprintf("acct-%06d", a)
		versions[a]++
		md := kastor.Metadata{AggregateType: accountAggregate.Type, AggregateID: acct, Version: versions[a], Type: enc.Type,
			Fingerprint: enc.Fingerprint, CommandID: fmt.Sprintf("cmd-%08d", i)}
		return &kgo.Record{Topic: ts.events, Partition: producer.PartitionFor([]byte(acct), p.partitions),
			Key: []byte(acct), Value: enc.Data, Headers: wire.Headers(&md)}
	})
	if err != nil {
		return nil, err
	}
	ends, err := c.Admin().ListEndOffsets(ctx, ts.events)
	if err != nil {
		return nil, err
	}
	out := map[consumer.TopicPartition]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		out[consumer.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o.Offset
	})
	return out, nil
}

// rawConsume is the projection limit: a franz-go consumer reading the events topic
// (read_committed) from the start to the given ends, touching nothing. Events per second.
func rawConsume(ctx context.Context, c *kafkatest.Cluster, topic string, ends map[consumer.TopicPartition]int64) (rate float64, err error) {
	// Labelled, as the projections are, so that a -cpuprofile tells them apart
	// (pprof -tagfocus run=raw); the client's goroutines inherit the label.
	pprof.Do(ctx, pprof.Labels("run", "raw"), func(ctx context.Context) {
		rate, err = rawConsumeLabelled(ctx, c, topic, ends)
	})
	return rate, err
}

func rawConsumeLabelled(ctx context.Context, c *kafkatest.Cluster, topic string, ends map[consumer.TopicPartition]int64) (float64, error) {
	collect()
	defer cpuClasses("raw")()
	start := time.Now()
	cl, err := c.NewClient(kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var total int64
	for _, e := range ends {
		total += e
	}
	n := int64(0)
	for n < total {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return 0, err
		}
		n += int64(fs.NumRecords())
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// memoryProjection runs a reader with the in-memory sink folding balances over the same
// topic and reports events per second until it has applied every event.
func memoryProjection(ctx context.Context, c *kafkatest.Cluster, ts topicSet, p params, ends map[consumer.TopicPartition]int64) (float64, error) {
	collect()
	defer cpuClasses("memory")()
	start := time.Now()
	mem := consumer.NewMemory(map[string]int64{}, func(m *map[string]int64, ev kastor.Envelope[deposited]) error {
		(*m)[ev.AggregateID] += ev.Event.Amount
		return nil
	})
	r, err := consumer.New(ts.kc, consumer.Config[deposited]{
		Name: "bench-balances", Version: 1, AggregateTypes: []string{accountAggregate.Type},
		Events: avroEvents, AllPartitions: true,
	}, mem)
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	pprof.Do(rctx, pprof.Labels("run", "memory"), func(rctx context.Context) {
		go func() { errc <- r.Run(rctx) }()
	})
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Minute)
	defer wcancel()
	if err := mem.WaitFor(wctx, ends); err != nil {
		return 0, fmt.Errorf("memory projection: %w", err)
	}
	took := time.Since(start)
	var sum int64
	mem.Read(func(m *map[string]int64) {
		for _, v := range *m {
			sum += v
		}
	})
	cancel()
	if err := <-errc; err != nil {
		return 0, err
	}
	if sum != int64(p.events) {
		return 0, fmt.Errorf("memory projection: balances sum to %d, want %d", sum, p.events)
	}
	return float64(p.events) / took.Seconds(), nil
}

// endToEnd measures, through a gateway and an in-memory projection, the time from a
// Send's acknowledgement to the projection having applied the command's event
// (read-your-writes: Memory.WaitForVersion).
func endToEnd(ctx context.Context, c *kafkatest.Cluster, p params, rate float64) (latencies, error) {
	ts, err := newTopicSet(ctx, c, p.partitions)
	if err != nil {
		return latencies{}, err
	}
	if err := c.CreateTopicContext(ctx, consumer.DLQTopic(ts.ns, "bench-e2e"), p.partitions, 1, nil); err != nil {
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
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(2)
	go func() { defer wg.Done(); _ = g.Run(rctx) }()
	mem := consumer.NewMemory(map[string]int64{}, func(m *map[string]int64, ev kastor.Envelope[deposited]) error {
		(*m)[ev.AggregateID] += ev.Event.Amount
		return nil
	})
	r, err := consumer.New(ts.kc, consumer.Config[deposited]{
		Name: "bench-e2e", Version: 1, AggregateTypes: []string{accountAggregate.Type},
		Events: eventCodec, AllPartitions: true,
	}, mem)
	if err != nil {
		return latencies{}, err
	}
	go func() { defer wg.Done(); _ = r.Run(rctx) }()
	s, err := gateway.NewSender(ctx, ts.kc, gateway.SenderConfig[deposit]{AggregateType: accountAggregate.Type, Commands: cmdCodec})
	if err != nil {
		return latencies{}, err
	}
	defer s.Close()
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	res, err := s.Send(wctx, kastor.NewCommand("warm-up", deposit{Amount: 1}))
	if err == nil {
		err = mem.WaitForVersion(wctx, "warm-up", res.To)
	}
	wcancel()
	if err != nil {
		return latencies{}, fmt.Errorf("warm-up: %w", err)
	}
	total := int(rate * latencyRun.Seconds())
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	var mu sync.Mutex
	var lats []time.Duration
	var sendErr atomic.Value
	var sends sync.WaitGroup
	for i := range total {
		<-tick.C
		sends.Add(1)
		go func() {
			defer sends.Done()
			sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
			defer scancel()
			id := fmt.Sprintf("acct-%06d", i%p.aggregates)
			res, err := s.Send(sctx, kastor.NewCommand(id, deposit{Amount: 1}))
			if err != nil {
				sendErr.CompareAndSwap(nil, err)
				return
			}
			acked := time.Now()
			if err := mem.WaitForVersion(sctx, id, res.To); err != nil {
				sendErr.CompareAndSwap(nil, err)
				return
			}
			d := time.Since(acked)
			mu.Lock()
			lats = append(lats, d)
			mu.Unlock()
		}()
	}
	sends.Wait()
	if err, _ := sendErr.Load().(error); err != nil {
		return latencies{}, err
	}
	return percentiles(lats), nil
}

// projectionBench runs the projection figures.
func projectionBench(ctx context.Context, c *kafkatest.Cluster, p params) error {
	ts, err := newTopicSet(ctx, c, p.partitions)
	if err != nil {
		return err
	}
	for _, name := range []string{"bench-balances", "bench-pg"} {
		if err := c.CreateTopicContext(ctx, consumer.DLQTopic(ts.ns, name), 1, 1, nil); err != nil {
			return err
		}
	}
	ends, err := preloadEvents(ctx, c, ts, p)
	if err != nil {
		return err
	}
	db, err := pgtest.New(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	// Alternate, and keep the medians. The runs of a second or two vary by 20% on a
	// small VM, so the raw and in-memory runs take more rounds than the slow PostgreSQL one.
	var raws, mems, pgs []float64
	for round := range projectionRounds {
		raw, err := rawConsume(ctx, c, ts.events, ends)
		if err != nil {
			return err
		}
		mem, err := memoryProjection(ctx, c, ts, p, ends)
		if err != nil {
			return err
		}
		raws, mems = append(raws, raw), append(mems, mem)
		if round >= postgresRounds {
			continue
		}
		pg, err := postgresProjection(ctx, c, db, ts, p, ends, round)
		if err != nil {
			return err
		}
		pgs = append(pgs, pg)
	}
	if verbose {
		fmt.Printf("  projection rounds: raw %.0f, memory %.0f, postgres %.0f\n", raws, mems, pgs)
	}
	row(fmt.Sprintf("projection, in-memory sink (events/s, %d events, median of %d)", p.events, projectionRounds), medianF(mems), "raw franz-go consumer", medianF(raws), 0.80)
	fmt.Printf("%-44s %10.0f   %s %10.0f   ratio %.2f (no target: an upsert per event, pipelined per batch, exactly once)\n",
		"projection, PostgreSQL sink (events/s)", medianF(pgs), "raw franz-go consumer", medianF(raws), medianF(pgs)/medianF(raws))
	e2e, err := endToEnd(ctx, c, p, 200)
	if err != nil {
		return err
	}
	fmt.Printf("%-44s p50 %6.1f ms  p99 %6.1f ms  at 200 commands/s, from Send acknowledged to applied in the in-memory projection\n",
		"end to end (command -> projection)", ms(e2e.p50), ms(e2e.p99))
	return nil
}

const (
	projectionRounds = 5
	postgresRounds   = 3
)

// cpuClasses, in verbose mode, prints how the Go runtime's processors spent a run:
// collecting garbage, running code, idle. It returns the function that prints, to be
// deferred. The raw consumer decodes on one goroutine and leaves a processor idle, where
// the collector works at no cost to it; a reader applying on the other one has none.
func cpuClasses(run string) func() {
	if !verbose {
		return func() {}
	}
	names := []string{"/cpu/classes/gc/total:cpu-seconds", "/cpu/classes/user:cpu-seconds",
		"/cpu/classes/idle:cpu-seconds", "/gc/cycles/total:gc-cycles", "/gc/heap/allocs:bytes"}
	read := func() []float64 {
		ss := make([]metrics.Sample, len(names))
		for i, n := range names {
			ss[i].Name = n
		}
		metrics.Read(ss)
		out := make([]float64, len(ss))
		for i, s := range ss {
			switch s.Value.Kind() {
			case metrics.KindFloat64:
				out[i] = s.Value.Float64()
			case metrics.KindUint64:
				out[i] = float64(s.Value.Uint64())
			}
		}
		return out
	}
	a, start := read(), time.Now()
	return func() {
		b := read()
		fmt.Printf("    %-6s %6v: gc %.2fs, user %.2fs, idle %.2fs (CPU seconds), %.0f GC cycles, %.0f MB allocated\n",
			run, time.Since(start).Round(time.Millisecond), b[0]-a[0], b[1]-a[1], b[2]-a[2], b[3]-a[3], (b[4]-a[4])/1e6)
	}
}

// collect runs a garbage collection before a timed run: the runs alternate in one
// process, and each would otherwise pay for marking what the one before left (the raw
// consumer's 200,000 records, the last model), a cost depending on the order.
func collect() { runtime.GC() }

func medianF(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}
