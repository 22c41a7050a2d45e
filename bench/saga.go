package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/saga"
	"github.com/kastor-dev/kastor/saga/runner"
	"github.com/kastor-dev/kastor/schema"
	"github.com/kastor-dev/kastor/topics"
	"github.com/kastor-dev/kastor/wire"
)

// The saga part (-only saga): saga/runner beside hand-written franz-go programs doing
// Kafka's part of the same work (issue 16, decision 37). Three figures:
//
//   - transitions/s: one runner applying preloaded inputs, each making one state record
//     and one command, beside a transactional loop writing the same records;
//   - deadline lateness with 10^5 pending deadlines: the commit marker's time of the
//     transaction that fired a deadline minus the deadline, beside a timer-heap loop
//     that commits one transaction per due batch;
//   - restore of 10^6 instances: a runner taking over every partition until it serves,
//     beside a plain consumer reading the state topic to its end.
//
// Everything is measured from outside the runner: its Prometheus metrics (counters
// updated after each commit, the gauges of owned partitions and instances) and the
// records it committed, read back.

type sagaFlags struct {
	inputs    int
	deadlines int
	window    time.Duration
	measure   time.Duration
	lead      time.Duration
	instances int
	rounds    int
}

func sagaFlagSet() *sagaFlags {
	f := &sagaFlags{}
	flag.IntVar(&f.inputs, "saga-inputs", 100_000, "saga: preloaded inputs of the transitions runs (each a new instance: one state record and one command)")
	flag.IntVar(&f.deadlines, "saga-deadlines", 100_000, "saga: pending deadlines in the firing-latency runs")
	flag.DurationVar(&f.window, "saga-deadline-window", 10*time.Minute, "saga: the pending deadlines are spread evenly over this window")
	flag.DurationVar(&f.measure, "saga-deadline-measure", 20*time.Second, "saga: lateness is measured over the deadlines of this first part of the window")
	flag.DurationVar(&f.lead, "saga-deadline-lead", 15*time.Second, "saga: the window starts this long after the deadlines are written (the runner must have restored them by then)")
	flag.IntVar(&f.instances, "saga-instances", 1_000_000, "saga: instances in the state topic of the restore runs")
	flag.IntVar(&f.rounds, "saga-restore-rounds", 3, "saga: restore rounds (each a raw read and a runner restore); the medians are printed")
	return f
}

const benchSagaType = "bench.saga"

// sagaState is the bench saga's state: how many inputs it applied.
type sagaState struct {
	N int64 `json:"n"`
}

var (
	sagaStates = jsonCodec[sagaState]{typ: "bench.SagaState"}
	// sagaDef reacts to every input (an event, a deadline) by counting it and sending one
	// deposit to the account named like the instance; a deadline also ends the instance.
	sagaDef = &saga.Definition[sagaState, deposit, deposited]{
		Type:    benchSagaType,
		Initial: func(string) sagaState { return sagaState{} },
		Correlate: func(ev kastor.Envelope[deposited]) (string, bool, error) {
			return ev.AggregateID, true, nil // unused: the runs preload the inputs topic
		},
		React: func(s sagaState, in saga.Input[deposit, deposited]) (saga.Transition[sagaState, deposit], error) {
			s.N++
			return saga.Transition[sagaState, deposit]{State: s, Done: in.Deadline != nil,
				Send: []saga.Send[deposit]{{Name: "deposit", AggregateType: accountAggregate.Type, AggregateID: in.Instance, Command: deposit{Amount: 1}}}}, nil
		},
	}
)

// sagaTopics are a fresh namespace's saga topics and the commands topic of the accounts
// the saga sends to.
type sagaTopics struct {
	ns, inputs, state, dlq, commands string
	partitions                       int32
	shared                           *kgo.Client
}

func newSagaTopics(ctx context.Context, c *kafkatest.Cluster, partitions int32) (sagaTopics, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := "benchsaga" + hex.EncodeToString(b[:])
	kc, err := kastorOn(c, ns)
	if err != nil {
		return sagaTopics{}, err
	}
	ts := sagaTopics{ns: ns, partitions: partitions, shared: kc.Client(),
		inputs:   topics.SagaTopicName(ns, benchSagaType, topics.RoleSagaInputs),
		state:    topics.SagaTopicName(ns, benchSagaType, topics.RoleSagaState),
		dlq:      topics.SagaTopicName(ns, benchSagaType, topics.RoleSagaDLQ),
		commands: topics.TopicName(ns, accountAggregate.Type, topics.RoleCommands),
	}
	compact := map[string]string{"cleanup.policy": "compact"}
	for _, t := range []struct {
		name string
		n    int32
		cfg  map[string]string
	}{{ts.inputs, partitions, nil}, {ts.state, partitions, compact}, {ts.dlq, 1, nil}, {ts.commands, partitions, nil}, {schema.Topic, 1, compact}} {
		if err := c.CreateTopicContext(ctx, t.name, t.n, 1, t.cfg); err != nil {
			return ts, err
		}
	}
	return ts, nil
}

// sagaRunning is a runner started on ts, with the registry its metrics go to.
type sagaRunning struct {
	reg  *prometheus.Registry
	errc chan error
	stop context.CancelFunc
}

// startSagaRunner starts a runner of sagaDef on ts (no router) with MaxBatch batch.
func startSagaRunner(ctx context.Context, ts sagaTopics, batch int) (*sagaRunning, error) {
	reg := prometheus.NewRegistry() // one per runner: a second registration would be ignored
	kc, err := cluster.New(ts.shared, ts.ns, cluster.Registerer(reg))
	if err != nil {
		return nil, err
	}
	cfg := runner.ConfigFor(sagaDef, sagaStates, eventCodec, map[string]kastor.Codec[deposit]{accountAggregate.Type: cmdCodec})
	cfg.NoRouter = true
	cfg.MaxBatch = batch
	rn, err := runner.New(kc, cfg)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	s := &sagaRunning{reg: reg, errc: make(chan error, 1), stop: cancel}
	go func() { s.errc <- rn.Run(rctx) }()
	return s, nil
}

// halt stops the runner and returns Run's error.
func (s *sagaRunning) halt() error {
	s.stop()
	return <-s.errc
}

// metric returns the runner's metric kastor_saga_<name> with the given label (or none),
// 0 when it has no value yet. A histogram's value is its count, or its sum when value is
// "sum".
func (s *sagaRunning) metric(name, label, value string) float64 {
	mfs, err := s.reg.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() != "kastor_saga_"+name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					match = true
				}
			}
			if !match {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil && value == "sum":
				return m.GetHistogram().GetSampleSum()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

// until polls the runner's metrics every few milliseconds until done holds, and returns
// when it first held. It fails when the runner stops or timeout passes.
func (s *sagaRunning) until(timeout time.Duration, done func() bool, what func() string) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		if done() {
			return time.Now(), nil
		}
		select {
		case err := <-s.errc:
			s.errc <- err
			return time.Time{}, fmt.Errorf("saga runner stopped (%v) before %s", err, what())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("saga runner: not %s after %v", what(), timeout)
		}
	}
}

// sagaBench prints the saga part's three figures.
func sagaBench(ctx context.Context, c *kafkatest.Cluster, p params, f *sagaFlags) error {
	start := time.Now()
	if err := sagaTransitions(ctx, c, p, f); err != nil {
		return err
	}
	if err := sagaDeadlines(ctx, c, p, f); err != nil {
		return err
	}
	if err := sagaRestore(ctx, c, p, f); err != nil {
		return err
	}
	if verbose {
		fmt.Printf("  saga part: %v\n", time.Since(start).Round(time.Second))
	}
	return nil
}

// instanceValue mirrors the runner's Avro record of an instance (runner.InstanceSchema),
// so that the bench writes state records a runner restores, and the raw loops write
// records of the same size.
type instanceValue struct {
	ID               string         `avro:"id"`
	Version          int64          `avro:"version"`
	StateType        string         `avro:"stateType"`
	StateFingerprint int64          `avro:"stateFingerprint"`
	State            []byte         `avro:"state"`
	Deadlines        []deadlineItem `avro:"deadlines"`
	Seen             []string       `avro:"seen"`
	Pending          []pendingItem  `avro:"pending"`
	Done             bool           `avro:"done"`
}

type deadlineItem struct {
	Name string `avro:"name"`
	At   int64  `avro:"at"`
}

type pendingItem struct {
	ID            string `avro:"id"`
	Name          string `avro:"name"`
	AggregateType string `avro:"aggregateType"`
	AggregateID   string `avro:"aggregateId"`
	Deadline      int64  `avro:"deadline"`
}

var (
	instanceSchema = schema.MustParse(runner.InstanceSchema)
	instanceCodec  = schema.MustCodec[instanceValue](nil, instanceSchema)
)

// instanceRecord is the state record a runner writes for instance id at version after
// one event input, with one command pending and the given deadline (zero: none).
func instanceRecord(topic string, partition int32, id string, version int64, deadline time.Time) (*kgo.Record, error) {
	st, _ := json.Marshal(sagaState{N: version})
	v := instanceValue{ID: id, Version: version, StateType: sagaStates.typ, StateFingerprint: 1, State: st,
		Deadlines: []deadlineItem{}, Seen: []string{"event/" + accountAggregate.Type + "/" + id + "/1"},
		Pending: []pendingItem{{ID: saga.CommandID(benchSagaType, id, version, 0), Name: "deposit", AggregateType: accountAggregate.Type, AggregateID: id}}}
	if !deadline.IsZero() {
		v.Deadlines = append(v.Deadlines, deadlineItem{Name: "timeout", At: deadline.UnixNano()})
	}
	b, err := instanceCodec.Encode(v)
	if err != nil {
		return nil, err
	}
	md := kastor.Metadata{AggregateID: id, Version: version, Type: runner.InstanceType, Fingerprint: uint64(instanceSchema.Fingerprint())}
	return &kgo.Record{Topic: topic, Partition: partition, Key: []byte(id), Value: b, Headers: wire.Headers(&md)}, nil
}

// commandRecord is the command a runner writes for instance id's transition to version.
func commandRecord(ts sagaTopics, id string, version int64, cause string) *kgo.Record {
	enc, _ := cmdCodec.Encode(deposit{Amount: 1})
	wc := wire.Command{
		Metadata: kastor.Metadata{AggregateID: id, Type: enc.Type, Fingerprint: enc.Fingerprint,
			CommandID: saga.CommandID(benchSagaType, id, version, 0), CorrelationID: id, CausationID: cause},
		ReplyTo: id, ReplyTopic: ts.inputs, ExpectedVersion: kastor.AnyVersion,
	}
	return &kgo.Record{Topic: ts.commands, Partition: producer.PartitionFor([]byte(id), ts.partitions),
		Key: []byte(id), Value: enc.Data, Headers: wc.AppendHeaders(nil)}
}

func sagaInstanceID(prefix string, i int) string { return fmt.Sprintf("%s-%08d", prefix, i) }

// ---- 1. transitions/s

// preloadSagaInputs appends n routed events to the inputs topic, each for an instance of
// its own, as the router writes them.
func preloadSagaInputs(ctx context.Context, c *kafkatest.Cluster, ts sagaTopics, n int) error {
	enc, _ := eventCodec.Encode(deposited{Amount: 1})
	return produceAll(ctx, c, n, func(i int) *kgo.Record {
		id := sagaInstanceID("saga", i)
		md := kastor.Metadata{AggregateType: accountAggregate.Type, AggregateID: id, Version: 1, Type: enc.Type, Fingerprint: enc.Fingerprint,
			CommandID: fmt.Sprintf("cmd-%08d", i)}
		hs := append(wire.Headers(&md), kgo.RecordHeader{Key: wire.HeaderSagaInput, Value: []byte(wire.SagaInputEvent)})
		return &kgo.Record{Topic: ts.inputs, Partition: producer.PartitionFor([]byte(id), ts.partitions), Key: []byte(id), Value: enc.Data, Headers: hs}
	})
}

func sagaTransitions(ctx context.Context, c *kafkatest.Cluster, p params, f *sagaFlags) error {
	limit, err := rawSagaLoop(ctx, c, p, f.inputs)
	if err != nil {
		return err
	}
	perPart, err := rawSagaPartitionLoop(ctx, c, p, f.inputs)
	if err != nil {
		return err
	}
	rate, err := sagaRunnerThroughput(ctx, c, p, f.inputs)
	if err != nil {
		return err
	}
	// The limit is the faster of the two hand-written shapes in this run.
	best, bestName, other, otherName := limit, "raw franz-go transactional loop", perPart, "raw loop, a producer per partition"
	if perPart > limit {
		best, bestName, other, otherName = perPart, otherName, limit, bestName
	}
	row("saga transitions/s (runner, EOS)", rate, bestName, best, 0.70)
	fmt.Printf("%-44s %10s   %s %10.0f   ratio %.2f   %d partitions, %d inputs, batch %d\n",
		"", "", otherName, other, rate/other, p.partitions, f.inputs, p.batch)
	return nil
}

// rawSagaLoop is the transitions limit: a franz-go GroupTransactSession that, for each
// input, writes one state record and one command (the bytes the runner writes, encoded
// once) in the transaction that commits the inputs' offsets, one transaction per poll of
// batch inputs: Kafka's part of the runner's work, written the fastest way. Inputs/s.
func rawSagaLoop(ctx context.Context, c *kafkatest.Cluster, p params, n int) (float64, error) {
	ts, err := newSagaTopics(ctx, c, p.partitions)
	if err != nil {
		return 0, err
	}
	if err := preloadSagaInputs(ctx, c, ts, n); err != nil {
		return 0, err
	}
	tmpl, err := instanceRecord(ts.state, 0, sagaInstanceID("saga", 0), 1, time.Time{})
	if err != nil {
		return 0, err
	}
	cmd := commandRecord(ts, sagaInstanceID("saga", 0), 1, "event/bank.account/saga-00000000/1")
	start := time.Now()
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(c.Brokers()...), kgo.TransactionalID(ts.ns+"-raw"),
		kgo.ConsumerGroup(ts.ns+"-raw"), kgo.ConsumeTopics(ts.inputs), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer sess.Close()
	done := 0
	for done < n {
		fs := sess.PollRecords(ctx, p.batch)
		if err := sess.Begin(); err != nil {
			return 0, err
		}
		var perr atomic.Value
		promise := func(_ *kgo.Record, err error) {
			if err != nil {
				perr.CompareAndSwap(nil, err)
			}
		}
		fs.EachRecord(func(r *kgo.Record) {
			sess.Produce(ctx, &kgo.Record{Topic: ts.state, Partition: r.Partition, Key: r.Key, Value: tmpl.Value, Headers: tmpl.Headers}, promise)
			sess.Produce(ctx, &kgo.Record{Topic: ts.commands, Partition: r.Partition, Key: r.Key, Value: cmd.Value, Headers: cmd.Headers}, promise)
		})
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil {
			return 0, err
		}
		if err, _ := perr.Load().(error); err != nil {
			return 0, err
		}
		if committed {
			done += fs.NumRecords()
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// rawSagaPartitionLoop is the same work in decision 37's shape: a transactional producer
// per partition, whose transaction holds the partition's records of a poll and a
// checkpoint record (the position) on its state partition; group offsets unused. The
// partitions' transactions of one poll are committed concurrently, as a hand-written
// program would. Inputs/s.
func rawSagaPartitionLoop(ctx context.Context, c *kafkatest.Cluster, p params, n int) (float64, error) {
	ts, err := newSagaTopics(ctx, c, p.partitions)
	if err != nil {
		return 0, err
	}
	if err := preloadSagaInputs(ctx, c, ts, n); err != nil {
		return 0, err
	}
	tmpl, err := instanceRecord(ts.state, 0, sagaInstanceID("saga", 0), 1, time.Time{})
	if err != nil {
		return 0, err
	}
	cmd := commandRecord(ts, sagaInstanceID("saga", 0), 1, "event/bank.account/saga-00000000/1")
	start := time.Now()
	prods := make([]*kgo.Client, ts.partitions)
	for i := range prods {
		prods[i], err = c.NewClient(kgo.TransactionalID(fmt.Sprintf("%s-raw-p%d", ts.ns, i)), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
		if err != nil {
			return 0, err
		}
		defer prods[i].Close()
	}
	offsets := map[int32]kgo.Offset{}
	for i := range ts.partitions {
		offsets[i] = kgo.NewOffset().AtStart()
	}
	cons, err := c.NewClient(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{ts.inputs: offsets}), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return 0, err
	}
	defer cons.Close()
	done := 0
	for done < n {
		fs := cons.PollRecords(ctx, p.batch)
		if err := fs.Err0(); err != nil {
			return 0, err
		}
		var wg sync.WaitGroup
		var first atomic.Value
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				prod := prods[fp.Partition]
				recs := make([]*kgo.Record, 0, 2*len(fp.Records)+1)
				for _, r := range fp.Records {
					recs = append(recs, &kgo.Record{Topic: ts.state, Partition: r.Partition, Key: r.Key, Value: tmpl.Value, Headers: tmpl.Headers},
						&kgo.Record{Topic: ts.commands, Partition: r.Partition, Key: r.Key, Value: cmd.Value, Headers: cmd.Headers})
				}
				recs = append(recs, &kgo.Record{Topic: ts.state, Partition: fp.Partition, Key: []byte(runner.CheckpointKey),
					Value: binary.AppendVarint(nil, fp.Records[len(fp.Records)-1].Offset+1)})
				err := prod.BeginTransaction()
				if err == nil {
					perr := prod.ProduceSync(ctx, recs...).FirstErr()
					err = errors.Join(perr, prod.EndTransaction(ctx, kgo.TransactionEndTry(perr == nil)))
				}
				if err != nil {
					first.CompareAndSwap(nil, err)
				}
			}()
		})
		wg.Wait()
		if err, _ := first.Load().(error); err != nil {
			return 0, err
		}
		done += fs.NumRecords()
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// sagaRunnerThroughput runs a runner over the same preloaded inputs: inputs applied and
// committed per second, from Run until the runner's applied counter (updated after each
// commit) reaches them all.
func sagaRunnerThroughput(ctx context.Context, c *kafkatest.Cluster, p params, n int) (float64, error) {
	ts, err := newSagaTopics(ctx, c, p.partitions)
	if err != nil {
		return 0, err
	}
	if err := preloadSagaInputs(ctx, c, ts, n); err != nil {
		return 0, err
	}
	start := time.Now()
	rn, err := startSagaRunner(ctx, ts, p.batch)
	if err != nil {
		return 0, err
	}
	applied := func() float64 { return rn.metric("inputs_total", "result", "applied") }
	end, err := rn.until(10*time.Minute, func() bool { return applied() >= float64(n) },
		func() string { return fmt.Sprintf("%0.f of %d inputs applied", applied(), n) })
	if err != nil {
		_ = rn.halt()
		return 0, err
	}
	parked, cmds := rn.metric("inputs_total", "result", "parked"), rn.metric("commands_total", "", "")
	if err := rn.halt(); err != nil {
		return 0, err
	}
	if parked != 0 || cmds != float64(n) {
		return 0, fmt.Errorf("saga runner: %0.f inputs parked, %0.f commands for %d inputs", parked, cmds, n)
	}
	if verbose {
		fmt.Printf("  saga runner: %d inputs in %v\n", n, end.Sub(start).Round(time.Millisecond))
	}
	return float64(n) / end.Sub(start).Seconds(), nil
}

// ---- 2. deadline firing latency

// deadlineAt is the time of deadline i of n spread evenly over window from t0.
func deadlineAt(t0 time.Time, window time.Duration, i, n int) time.Time {
	return t0.Add(time.Duration(float64(window) * float64(i) / float64(n)))
}

func sagaDeadlines(ctx context.Context, c *kafkatest.Cluster, p params, f *sagaFlags) error {
	limit, limitCommit, err := rawDeadlineLoop(ctx, c, p, f)
	if err != nil {
		return err
	}
	lat, err := runnerDeadlines(ctx, c, p, f)
	if err != nil {
		return err
	}
	fmt.Printf("%-44s p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms   raw timer-heap loop p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms   p99 ratio %.2f (target <= 1.5)\n",
		"saga deadline lateness (commit - deadline)", ms(lat.p50), ms(lat.p99), ms(lat.max), ms(limit.p50), ms(limit.p99), ms(limit.max),
		float64(lat.p99)/float64(limit.p99))
	fmt.Printf("%-44s %d pending over %v, the %d due in the first %v measured; the raw loop's transaction commits p50 %.1f ms, p99 %.1f ms\n",
		"", f.deadlines, f.window, lat.n, f.measure, ms(limitCommit.p50), ms(limitCommit.p99))
	return nil
}

type lateness struct {
	p50, p99, max time.Duration
	n             int
}

// measured returns the lateness of the deadlines of [t0, t0+measure) given when each
// instance's fire committed; every one of them must have fired.
func measured(deadlines map[string]time.Time, fired map[string]time.Time, t0 time.Time, measure time.Duration) (lateness, error) {
	var lats []time.Duration
	missing := 0
	for id, at := range deadlines {
		if at.Before(t0) || !at.Before(t0.Add(measure)) {
			continue
		}
		c, ok := fired[id]
		if !ok {
			missing++
			continue
		}
		lats = append(lats, c.Sub(at))
	}
	if missing > 0 || len(lats) == 0 {
		return lateness{}, fmt.Errorf("saga deadlines: %d of the measured deadlines fired, %d did not", len(lats), missing)
	}
	slices.Sort(lats)
	return lateness{p50: lats[len(lats)/2], p99: lats[len(lats)*99/100], max: lats[len(lats)-1], n: len(lats)}, nil
}

// runnerDeadlines writes f.deadlines instance records, each with one deadline, spread
// over f.window starting f.lead from now, starts a runner, and once the measured part of
// the window has passed reads back when each fire committed.
func runnerDeadlines(ctx context.Context, c *kafkatest.Cluster, p params, f *sagaFlags) (lateness, error) {
	ts, err := newSagaTopics(ctx, c, p.partitions)
	if err != nil {
		return lateness{}, err
	}
	t0 := time.Now().Add(f.lead)
	deadlines := make(map[string]time.Time, f.deadlines)
	var recErr error
	err = produceAll(ctx, c, f.deadlines, func(i int) *kgo.Record {
		id := sagaInstanceID("dl", i)
		at := deadlineAt(t0, f.window, i, f.deadlines)
		deadlines[id] = at
		r, err := instanceRecord(ts.state, producer.PartitionFor([]byte(id), ts.partitions), id, 1, at)
		if err != nil && recErr == nil {
			recErr = err
		}
		return r
	})
	if err = errors.Join(recErr, err); err != nil {
		return lateness{}, err
	}
	from, err := endOffsets(ctx, ts.shared, ts.state)
	if err != nil {
		return lateness{}, err
	}
	rn, err := startSagaRunner(ctx, ts, p.batch)
	if err != nil {
		return lateness{}, err
	}
	restored, err := rn.until(time.Until(t0), func() bool {
		return rn.metric("partitions_owned", "", "") == float64(ts.partitions) && rn.metric("instances", "", "") == float64(f.deadlines)
	}, func() string {
		return fmt.Sprintf("restored %d instances before the deadlines' window (-saga-deadline-lead)", f.deadlines)
	})
	if err != nil {
		_ = rn.halt()
		return lateness{}, err
	}
	if verbose {
		fmt.Printf("  saga deadlines: runner restored %d instances %v before the window\n", f.deadlines, t0.Sub(restored).Round(time.Millisecond))
	}
	select {
	case <-time.After(time.Until(t0.Add(f.measure + 2*time.Second))):
	case err := <-rn.errc:
		return lateness{}, fmt.Errorf("saga runner stopped: %v", err)
	}
	if err := rn.halt(); err != nil {
		return lateness{}, err
	}
	fired, err := commitTimes(ctx, c, ts, from)
	if err != nil {
		return lateness{}, err
	}
	return measured(deadlines, fired, t0, f.measure)
}

// rawDeadlineLoop is the lateness limit: per partition, a goroutine with a transactional
// producer (the shape a deadline needs to fire once under rebalances, decision 37) and a
// heap of the partition's deadlines, which sleeps until the earliest, pops every due one
// and writes a state record and a command per fired deadline in one transaction. The
// same deadlines as the runner's run, read back the same way. It also returns its
// transactions' commit latencies (EndTransaction).
func rawDeadlineLoop(ctx context.Context, c *kafkatest.Cluster, p params, f *sagaFlags) (lateness, lateness, error) {
	ts, err := newSagaTopics(ctx, c, p.partitions)
	if err != nil {
		return lateness{}, lateness{}, err
	}
	// No restore to wait for: the heaps are built in memory, before the window.
	t0 := time.Now().Add(3 * time.Second)
	deadlines := make(map[string]time.Time, f.deadlines)
	heaps := make([][]deadlineEntry, ts.partitions)
	for i := range f.deadlines {
		id := sagaInstanceID("dl", i)
		at := deadlineAt(t0, f.window, i, f.deadlines)
		deadlines[id] = at
		part := producer.PartitionFor([]byte(id), ts.partitions)
		heaps[part] = append(heaps[part], deadlineEntry{at: at, id: id})
	}
	stop := t0.Add(f.measure + 2*time.Second)
	var mu sync.Mutex
	var commits []time.Duration
	var wg sync.WaitGroup
	errs := make([]error, ts.partitions)
	for part := range ts.partitions {
		prod, err := c.NewClient(kgo.TransactionalID(fmt.Sprintf("%s-raw-p%d", ts.ns, part)), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
		if err != nil {
			return lateness{}, lateness{}, err
		}
		defer prod.Close()
		h := deadlineHeap(heaps[part])
		h.init()
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[part] = fireLoop(ctx, prod, ts, part, &h, stop, func(d time.Duration) {
				mu.Lock()
				commits = append(commits, d)
				mu.Unlock()
			})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return lateness{}, lateness{}, err
	}
	fired, err := commitTimes(ctx, c, ts, nil)
	if err != nil {
		return lateness{}, lateness{}, err
	}
	lat, err := measured(deadlines, fired, t0, f.measure)
	if err != nil {
		return lateness{}, lateness{}, err
	}
	slices.Sort(commits)
	return lat, lateness{p50: commits[len(commits)/2], p99: commits[len(commits)*99/100], max: commits[len(commits)-1], n: len(commits)}, nil
}

// fireLoop fires the due deadlines of h until stop, one transaction per due batch.
func fireLoop(ctx context.Context, prod *kgo.Client, ts sagaTopics, part int32, h *deadlineHeap, stop time.Time, commit func(time.Duration)) error {
	tmpl, err := instanceRecord(ts.state, part, sagaInstanceID("dl", 0), 2, time.Time{})
	if err != nil {
		return err
	}
	cmd := commandRecord(ts, sagaInstanceID("dl", 0), 2, "deadline/timeout/0")
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		if now.After(stop) {
			return nil
		}
		next, ok := h.peek()
		if !ok {
			return nil
		}
		if next.at.After(now) {
			timer.Reset(min(next.at.Sub(now), stop.Sub(now)))
			<-timer.C
			continue
		}
		var recs []*kgo.Record
		for {
			e, ok := h.peek()
			if !ok || e.at.After(now) {
				break
			}
			h.pop()
			key := []byte(e.id)
			recs = append(recs, &kgo.Record{Topic: ts.state, Partition: part, Key: key, Value: tmpl.Value, Headers: tmpl.Headers},
				&kgo.Record{Topic: ts.commands, Partition: producer.PartitionFor(key, ts.partitions), Key: key, Value: cmd.Value, Headers: cmd.Headers})
		}
		if err := prod.BeginTransaction(); err != nil {
			return err
		}
		perr := prod.ProduceSync(ctx, recs...).FirstErr()
		t := time.Now()
		if err := errors.Join(perr, prod.EndTransaction(ctx, kgo.TransactionEndTry(perr == nil))); err != nil {
			return err
		}
		commit(time.Since(t))
	}
}

type deadlineEntry struct {
	at time.Time
	id string
}

// deadlineHeap is a binary min-heap by time, written out rather than through
// container/heap, as a hand-written loop would.
type deadlineHeap []deadlineEntry

func (h deadlineHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h deadlineHeap) peek() (deadlineEntry, bool) {
	if len(h) == 0 {
		return deadlineEntry{}, false
	}
	return h[0], true
}

func (h *deadlineHeap) pop() {
	old := *h
	n := len(old) - 1
	old[0] = old[n]
	*h = old[:n]
	h.down(0)
}

func (h deadlineHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].at.Before(h[l].at) {
			m = r
		}
		if !h[m].at.Before(h[i].at) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func endOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, ends.Error()
}

// commitTimes reads ts's state topic read_committed from the given offsets (nil: the
// start) to its end, control records included, and returns for each instance record the
// time of the commit marker that ended its transaction: when the broker committed it.
// Each state partition has one transactional writer, so its records up to a marker are
// that marker's transaction's.
func commitTimes(ctx context.Context, c *kafkatest.Cluster, ts sagaTopics, from map[int32]int64) (map[string]time.Time, error) {
	ends, err := endOffsets(ctx, ts.shared, ts.state)
	if err != nil {
		return nil, err
	}
	offsets := map[int32]kgo.Offset{}
	left := 0
	for part, end := range ends {
		if end > from[part] {
			offsets[part] = kgo.NewOffset().At(from[part])
			left++
		}
	}
	out := map[string]time.Time{}
	if left == 0 {
		return out, nil
	}
	cl, err := c.NewClient(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{ts.state: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	open := map[int32][]string{}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for left > 0 {
		fs := cl.PollFetches(rctx)
		if err := fs.Err0(); err != nil {
			return nil, fmt.Errorf("reading back %s: %w", ts.state, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			switch {
			case r.Attrs.IsControl():
				// A control record's key: version (int16), then type (int16): 1 commit, 0 abort.
				if len(r.Key) >= 4 && binary.BigEndian.Uint16(r.Key[2:]) == 1 {
					for _, id := range open[r.Partition] {
						out[id] = r.Timestamp
					}
				}
				open[r.Partition] = open[r.Partition][:0]
			case string(r.Key) != runner.CheckpointKey:
				open[r.Partition] = append(open[r.Partition], string(r.Key))
			}
			if r.Offset == ends[r.Partition]-1 {
				left--
			}
		})
	}
	return out, nil
}

// ---- 3. restore

func sagaRestore(ctx context.Context, c *kafkatest.Cluster, p params, f *sagaFlags) error {
	ts, err := newSagaTopics(ctx, c, p.partitions)
	if err != nil {
		return err
	}
	t0 := time.Now()
	// Each instance as the transitions leave it, with a deadline far off: the restore
	// decodes every record and arms every deadline.
	far := time.Now().Add(24 * time.Hour)
	var recErr error
	err = produceAll(ctx, c, f.instances+int(ts.partitions), func(i int) *kgo.Record {
		if i >= f.instances {
			part := int32(i - f.instances)
			return &kgo.Record{Topic: ts.state, Partition: part, Key: []byte(runner.CheckpointKey),
				Value: binary.AppendVarint(nil, 0), Headers: wire.Headers(&kastor.Metadata{Type: runner.CheckpointType, Fingerprint: uint64(schema.MustParse(runner.CheckpointSchema).Fingerprint())})}
		}
		id := sagaInstanceID("inst", i)
		r, err := instanceRecord(ts.state, producer.PartitionFor([]byte(id), ts.partitions), id, 1, far.Add(time.Duration(i)*time.Millisecond))
		if err != nil && recErr == nil {
			recErr = err
		}
		return r
	})
	if err = errors.Join(recErr, err); err != nil {
		return err
	}
	if verbose {
		fmt.Printf("  saga restore: %d instances written in %v\n", f.instances, time.Since(t0).Round(time.Millisecond))
	}
	var raws, restores []time.Duration
	for range f.rounds {
		d, err := rawReadTopic(ctx, c, ts.state)
		if err != nil {
			return err
		}
		raws = append(raws, d)
		d, err = runnerRestore(ctx, ts, p, f.instances)
		if err != nil {
			return err
		}
		restores = append(restores, d)
	}
	if verbose {
		fmt.Printf("  saga restore rounds (%d instances): raw %v, restore %v\n", f.instances, raws, restores)
	}
	rec, raw := median(restores), median(raws)
	fmt.Printf("%-44s %8.2f s   raw read of the state topic %8.2f s   ratio %.2f (target <= 3)   %d partitions, median of %d\n",
		fmt.Sprintf("saga restore of %d instances", f.instances), rec.Seconds(), raw.Seconds(), rec.Seconds()/raw.Seconds(), ts.partitions, f.rounds)
	return nil
}

// rawReadTopic reads every partition of topic read_committed from the start to its end
// with a plain franz-go consumer, touching nothing.
func rawReadTopic(ctx context.Context, c *kafkatest.Cluster, topic string) (time.Duration, error) {
	collect()
	start := time.Now()
	cl, err := c.NewClient(kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ends, err := endOffsets(ctx, cl, topic)
	if err != nil {
		return 0, err
	}
	left := 0
	for _, e := range ends {
		if e > 0 {
			left++
		}
	}
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return 0, err
		}
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if n := len(fp.Records); n > 0 && fp.Records[n-1].Offset == ends[fp.Partition]-1 {
				left--
			}
		})
	}
	return time.Since(start), nil
}

// runnerRestore starts a runner on ts and returns how long it took to serve every
// partition, holding instances instances.
func runnerRestore(ctx context.Context, ts sagaTopics, p params, instances int) (time.Duration, error) {
	collect()
	start := time.Now()
	rn, err := startSagaRunner(ctx, ts, p.batch)
	if err != nil {
		return 0, err
	}
	defer func() { _ = rn.halt() }()
	owned := func() float64 { return rn.metric("partitions_owned", "", "") }
	held := func() float64 { return rn.metric("instances", "", "") }
	end, err := rn.until(10*time.Minute, func() bool { return owned() == float64(ts.partitions) },
		func() string { return fmt.Sprintf("serving (%0.f of %d partitions)", owned(), ts.partitions) })
	if err != nil {
		return 0, err
	}
	if h := held(); h != float64(instances) {
		return 0, fmt.Errorf("saga restore: the runner holds %0.f instances, want %d", h, instances)
	}
	if verbose {
		// restore_seconds: each partition's restore, from its fencing to its last record.
		fmt.Printf("  saga restore: served in %v, partitions restored in %.3f s on average (%0.f restores)\n",
			end.Sub(start).Round(time.Millisecond), rn.metric("restore_seconds", "", "sum")/rn.metric("restore_seconds", "", ""), rn.metric("restore_seconds", "", ""))
	}
	return end.Sub(start), nil
}
