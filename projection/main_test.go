package projection_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/topics"
	"github.com/kastor-dev/kastor/wire"
)

var realKafka = kafkatest.NewShared()

func TestMain(m *testing.M) { kafkatest.Main(m, realKafka) }

func quietLogger() *slog.Logger {
	if os.Getenv("PROJECTION_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

var codecs = func() *bank.Codecs {
	c, err := bank.NewCodecs(nil)
	if err != nil {
		panic(err)
	}
	return c
}()

// rig is a bank.account events topic and its projection's dead-letter topic, with a
// transactional writer that appends events as the gateway does, and the kastor cluster
// of the namespace (kc) that readers and projections run on. It is the rig of package
// consumer's tests, less what only they use.
type rig struct {
	t          *testing.T
	c          *kafkatest.Cluster
	kc         *cluster.Cluster
	ns         string
	partitions int32
	events     string
	dlq        string
	w          *kgo.Client
	versions   map[string]int64
}

const projName = "balances"

func newRig(t *testing.T, c *kafkatest.Cluster, partitions int32) *rig {
	ns := strings.ToLower(strings.ReplaceAll(kafkatest.TopicName(t), "/", "-"))
	r := &rig{t: t, c: c, ns: ns, partitions: partitions,
		events:   topics.TopicName(ns, bank.Type, topics.RoleEvents),
		dlq:      consumer.DLQTopic(ns, projName),
		versions: map[string]int64{},
	}
	c.CreateTopic(t, r.events, partitions, 1, nil)
	c.CreateTopic(t, r.dlq, partitions, 1, nil)
	r.w = c.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionalID(ns+"-writer"),
		kgo.TransactionTimeout(10*time.Second))
	r.kc = r.cluster()
	return r
}

// cluster returns a kastor cluster of the rig's namespace over a new client, logging to
// quietLogger.
func (r *rig) cluster() *cluster.Cluster {
	r.t.Helper()
	kc, err := cluster.New(r.c.Client(r.t), r.ns, cluster.Logger(quietLogger()))
	if err != nil {
		r.t.Fatal(err)
	}
	return kc
}

// ev is an event to append: the next version of its aggregate.
type ev struct {
	agg   string
	event kastor.Event
	tags  []string
}

// mix returns n events over naggs aggregates acc-0.., in turn: an aggregate's first
// event opens it, the others deposit amount(i).
func (r *rig) mix(n, naggs int, amount func(i int) int64) []ev {
	known := map[string]bool{}
	for k, v := range r.versions {
		known[k] = v > 0
	}
	out := make([]ev, n)
	for i := range n {
		agg := fmt.Sprintf("acc-%d", i%naggs)
		if known[agg] {
			out[i] = deposited(agg, amount(i))
		} else {
			out[i] = opened(agg)
			known[agg] = true
		}
	}
	return out
}

func opened(agg string) ev             { return ev{agg: agg, event: bank.Opened{Owner: "o-" + agg}} }
func deposited(agg string, n int64) ev { return ev{agg: agg, event: bank.Deposited{Amount: n}} }

// record encodes e as the gateway would, taking the aggregate's next version.
func (r *rig) record(e ev) *kgo.Record {
	r.t.Helper()
	enc, err := codecs.Events.Encode(e.event)
	if err != nil {
		r.t.Fatal(err)
	}
	r.versions[e.agg]++
	md := kastor.Metadata{AggregateType: bank.Type, AggregateID: e.agg, Version: r.versions[e.agg],
		Type: enc.Type, Fingerprint: enc.Fingerprint, CommandID: fmt.Sprintf("cmd-%s-%d", e.agg, r.versions[e.agg]), Tags: e.tags}
	return &kgo.Record{Topic: r.events, Key: []byte(e.agg), Value: enc.Data, Headers: wire.Headers(&md),
		Partition: producer.PartitionFor([]byte(e.agg), r.partitions)}
}

// write appends events in one transaction.
func (r *rig) write(evs ...ev) {
	r.t.Helper()
	recs := make([]*kgo.Record, len(evs))
	for i, e := range evs {
		recs[i] = r.record(e)
	}
	r.writeRecords(true, recs...)
}

// writeRecords appends records in one transaction, committed or aborted.
func (r *rig) writeRecords(commit bool, recs ...*kgo.Record) {
	r.t.Helper()
	ctx := testCtx(r.t)
	if err := r.w.BeginTransaction(); err != nil {
		r.t.Fatal(err)
	}
	if err := r.w.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		r.t.Fatal(err)
	}
	if err := r.w.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		r.t.Fatal(err)
	}
	// The transaction's markers are written after EndTransaction returns: wait until the
	// last stable offsets cover the records, so ends() includes them.
	want := map[int32]int64{}
	for _, rec := range recs {
		want[rec.Partition] = max(want[rec.Partition], rec.Offset+2) // the record, then its marker
	}
	for {
		ends := r.ends()
		done := true
		for p, o := range want {
			if ends[consumer.TopicPartition{Topic: r.events, Partition: p}] < o {
				done = false
			}
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			r.t.Fatalf("the transaction's records never became stable: %v", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (r *rig) config(mod ...func(*consumer.Config[kastor.Event])) consumer.Config[kastor.Event] {
	cfg := consumer.Config[kastor.Event]{
		Name: projName, Version: 1, AggregateTypes: []string{bank.Type},
		Events: codecs.Events,
		Retry:  consumer.Retry{Attempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond},
	}
	for _, m := range mod {
		m(&cfg)
	}
	return cfg
}

// start runs a reader on r.kc until the test ends or stop is called; stop returns Run's
// error.
func (r *rig) start(cfg consumer.Config[kastor.Event], sink consumer.Sink[kastor.Event]) (*consumer.Reader[kastor.Event], func() error) {
	r.t.Helper()
	rd, err := consumer.New(r.kc, cfg, sink)
	if err != nil {
		r.t.Fatal(err)
	}
	return rd, r.run(rd)
}

func (r *rig) run(rd *consumer.Reader[kastor.Event]) func() error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rd.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = fmt.Errorf("Run did not return 30s after its context ended")
			}
		})
		return runErr
	}
	r.t.Cleanup(func() { _ = stop() })
	return stop
}

// ends returns the events topic's last stable offsets.
func (r *rig) ends() map[consumer.TopicPartition]int64 {
	r.t.Helper()
	offs, err := r.c.Admin().ListCommittedOffsets(testCtx(r.t), r.events)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[consumer.TopicPartition]int64{}
	offs.Each(func(o kadm.ListedOffset) {
		out[consumer.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o.Offset
	})
	return out
}

// awaitCommitted waits until group has committed at least the offsets in ends.
func (r *rig) awaitCommitted(group string, ends map[consumer.TopicPartition]int64) {
	r.t.Helper()
	ctx := testCtx(r.t)
	for {
		resp, err := r.c.Admin().FetchOffsets(ctx, group)
		if err == nil {
			done := true
			for tp, end := range ends {
				if end == 0 {
					continue
				}
				o, ok := resp.Lookup(tp.Topic, tp.Partition)
				if !ok || o.At < end {
					done = false
				}
			}
			if done {
				return
			}
		}
		select {
		case <-ctx.Done():
			r.t.Fatalf("group %s did not commit %v: %v", group, ends, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// readDLQ reads the dead-letter topic to its end.
func (r *rig) readDLQ() []consumer.DeadLetter {
	r.t.Helper()
	ctx := testCtx(r.t)
	ends, err := r.c.Admin().ListCommittedOffsets(ctx, r.dlq)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []consumer.DeadLetter
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total == 0 {
		return nil
	}
	cl := r.c.Client(r.t, kgo.ConsumeTopics(r.dlq), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.KeepControlRecords())
	got := map[int32]int64{}
	for {
		done := true
		ends.Each(func(o kadm.ListedOffset) {
			if got[o.Partition] < o.Offset {
				done = false
			}
		})
		if done {
			return out
		}
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			r.t.Fatal(ctx.Err())
		}
		fs.EachRecord(func(rec *kgo.Record) {
			got[rec.Partition] = rec.Offset + 1
			if rec.Attrs.IsControl() {
				return
			}
			d, err := consumer.ParseDeadLetter(rec)
			if err != nil {
				r.t.Errorf("not a dead letter: %v", err)
				return
			}
			out = append(out, d)
		})
	}
}

// seen counts events by aggregate and version, concurrency-safe.
type seen struct {
	mu     sync.Mutex
	n      map[string]int // "agg/version" -> times applied
	order  map[string][]int64
	total  int
	notify chan struct{}
}

func newSeen() *seen {
	return &seen{n: map[string]int{}, order: map[string][]int64{}, notify: make(chan struct{}, 1)}
}

func (s *seen) add(e kastor.Envelope[kastor.Event]) {
	s.mu.Lock()
	s.n[fmt.Sprintf("%s/%d", e.AggregateID, e.Version)]++
	s.order[e.AggregateID] = append(s.order[e.AggregateID], e.Version)
	s.total++
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// check verifies every version 1..want[agg] was seen, reports duplicates.
func (s *seen) check(t *testing.T, want map[string]int64) (dups int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for agg, n := range want {
		for v := int64(1); v <= n; v++ {
			c := s.n[fmt.Sprintf("%s/%d", agg, v)]
			if c == 0 {
				t.Errorf("%s version %d was never applied", agg, v)
			}
			dups += max(c-1, 0)
		}
		// Per aggregate, versions are applied in order (replays after a crash restart
		// from an earlier version, and then go up again).
		vs := s.order[agg]
		for i := 1; i < len(vs); i++ {
			if vs[i] != vs[i-1]+1 && vs[i] > vs[i-1] {
				t.Errorf("%s: version %d applied right after %d", agg, vs[i], vs[i-1])
			}
		}
	}
	return dups
}

// group is the consumer group of cfg in the rig's namespace.
func (r *rig) group(cfg consumer.Config[kastor.Event]) string {
	return consumer.GroupName(r.ns, cfg.Name, cfg.Version)
}

// failing is a handler sink that fails on chosen aggregate versions until healed.
type failing struct {
	seen *seen
	mu   sync.Mutex
	bad  map[string]bool // "agg/version"
	err  error
}

func (f *failing) Apply(ctx context.Context, b consumer.Batch[kastor.Event]) error {
	for i, e := range b.Events {
		f.mu.Lock()
		bad := f.bad[fmt.Sprintf("%s/%d", e.AggregateID, e.Version)]
		f.mu.Unlock()
		if bad {
			return &consumer.ApplyError{Index: i, Err: f.err}
		}
		f.seen.add(e)
	}
	return nil
}

func (f *failing) heal() {
	f.mu.Lock()
	f.bad = nil
	f.mu.Unlock()
}

// balances is the model of the Memory tests.
type balances struct {
	Balance map[string]int64
	Events  int
}

func foldBalance(m *balances, e kastor.Envelope[kastor.Event]) error {
	if m.Balance == nil {
		m.Balance = map[string]int64{}
	}
	switch ev := e.Event.(type) {
	case bank.Opened:
		m.Balance[e.AggregateID] = 0
	case bank.Deposited:
		m.Balance[e.AggregateID] += ev.Amount
	case bank.Withdrawn:
		m.Balance[e.AggregateID] -= ev.Amount
	}
	m.Events++
	return nil
}
