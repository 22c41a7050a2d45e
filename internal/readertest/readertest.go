// Package readertest is the rig of the reader and projection tests (packages consumer and
// projection): a bank.account events topic and a projection's dead-letter topic on a test
// cluster, a transactional writer that appends events as the gateway does, and the
// helpers that read them back. It is for tests only.
package readertest

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

// Codecs are the bank.account codecs the rig writes with and readers decode with.
var Codecs = func() *bank.Codecs {
	c, err := bank.NewCodecs(nil)
	if err != nil {
		panic(err)
	}
	return c
}()

// Projection is the name of the rig's projection: its dead-letter topic's.
const Projection = "balances"

// Rig is a bank.account events topic and its projection's dead-letter topic, with a
// transactional writer that appends events as the gateway does, and the kastor cluster
// of the namespace (KC) that readers run on.
type Rig struct {
	T          *testing.T
	Kafka      *kafkatest.Cluster
	KC         *cluster.Cluster // the rig's namespace, logging to Log
	NS         string           // the namespace, named after the test
	Partitions int32
	Events     string // the events topic
	DLQ        string // the projection's dead-letter topic
	Writer     *kgo.Client
	Versions   map[string]int64 // each aggregate's last written version
	Log        *slog.Logger
}

// New creates the rig's topics, with partitions partitions each, in a namespace named
// after the test; its clusters log to log.
func New(t *testing.T, c *kafkatest.Cluster, partitions int32, log *slog.Logger) *Rig {
	ns := strings.ToLower(strings.ReplaceAll(kafkatest.TopicName(t), "/", "-"))
	r := &Rig{T: t, Kafka: c, NS: ns, Partitions: partitions, Log: log,
		Events:   topics.TopicName(ns, bank.Type, topics.RoleEvents),
		DLQ:      consumer.DLQTopic(ns, Projection),
		Versions: map[string]int64{},
	}
	c.CreateTopic(t, r.Events, partitions, 1, nil)
	c.CreateTopic(t, r.DLQ, partitions, 1, nil)
	r.Writer = c.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionalID(ns+"-writer"),
		kgo.TransactionTimeout(10*time.Second))
	r.KC = r.Cluster(nil)
	return r
}

// Cluster returns a kastor cluster of the rig's namespace over a new client with opts,
// logging to Log and registering metrics on reg (none when nil).
func (r *Rig) Cluster(reg prometheus.Registerer, opts ...kgo.Opt) *cluster.Cluster {
	r.T.Helper()
	kc, err := cluster.New(r.Kafka.Client(r.T, opts...), r.NS, cluster.Logger(r.Log), cluster.Registerer(reg))
	if err != nil {
		r.T.Fatal(err)
	}
	return kc
}

// Event is an event to append: the next version of its aggregate.
type Event struct {
	// Agg is the aggregate ID.
	Agg string
	// Event is the bank.account event.
	Event kastor.Event
	// Tags are the event's tags (kastor.Metadata.Tags), for filters.
	Tags []string
}

// Mix returns n events over naggs aggregates acc-0.., in turn: an aggregate's first
// event opens it, the others deposit amount(i).
func (r *Rig) Mix(n, naggs int, amount func(i int) int64) []Event {
	known := map[string]bool{}
	for k, v := range r.Versions {
		known[k] = v > 0
	}
	out := make([]Event, n)
	for i := range n {
		agg := fmt.Sprintf("acc-%d", i%naggs)
		if known[agg] {
			out[i] = Deposited(agg, amount(i))
		} else {
			out[i] = Opened(agg)
			known[agg] = true
		}
	}
	return out
}

// Opened is agg's opening event.
func Opened(agg string) Event { return Event{Agg: agg, Event: bank.Opened{Owner: "o-" + agg}} }

// Deposited is a deposit of n into agg.
func Deposited(agg string, n int64) Event { return Event{Agg: agg, Event: bank.Deposited{Amount: n}} }

// Record encodes e as the gateway would, taking the aggregate's next version.
func (r *Rig) Record(e Event) *kgo.Record {
	r.T.Helper()
	enc, err := Codecs.Events.Encode(e.Event)
	if err != nil {
		r.T.Fatal(err)
	}
	r.Versions[e.Agg]++
	md := kastor.Metadata{AggregateType: bank.Type, AggregateID: e.Agg, Version: r.Versions[e.Agg],
		Type: enc.Type, Fingerprint: enc.Fingerprint, CommandID: fmt.Sprintf("cmd-%s-%d", e.Agg, r.Versions[e.Agg]), Tags: e.Tags}
	return &kgo.Record{Topic: r.Events, Key: []byte(e.Agg), Value: enc.Data, Headers: wire.Headers(&md),
		Partition: producer.PartitionFor([]byte(e.Agg), r.Partitions)}
}

// Write appends events in one transaction.
func (r *Rig) Write(evs ...Event) {
	r.T.Helper()
	recs := make([]*kgo.Record, len(evs))
	for i, e := range evs {
		recs[i] = r.Record(e)
	}
	r.WriteRecords(true, recs...)
}

// WriteRecords appends records in one transaction, committed or aborted.
func (r *Rig) WriteRecords(commit bool, recs ...*kgo.Record) {
	r.T.Helper()
	ctx := Context(r.T)
	if err := r.Writer.BeginTransaction(); err != nil {
		r.T.Fatal(err)
	}
	if err := r.Writer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		r.T.Fatal(err)
	}
	if err := r.Writer.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		r.T.Fatal(err)
	}
	// The transaction's markers are written after EndTransaction returns: wait until the
	// last stable offsets cover the records, so Ends includes them.
	want := map[int32]int64{}
	for _, rec := range recs {
		want[rec.Partition] = max(want[rec.Partition], rec.Offset+2) // the record, then its marker
	}
	for {
		ends := r.Ends()
		done := true
		for p, o := range want {
			if ends[consumer.TopicPartition{Topic: r.Events, Partition: p}] < o {
				done = false
			}
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			r.T.Fatalf("the transaction's records never became stable: %v", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Context is a context that ends after 60 s or with the test.
func Context(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Config is the configuration of version 1 of the rig's projection, with quick retries,
// changed by mod.
func (r *Rig) Config(mod ...func(*consumer.Config[kastor.Event])) consumer.Config[kastor.Event] {
	cfg := consumer.Config[kastor.Event]{
		Name: Projection, Version: 1, AggregateTypes: []string{bank.Type},
		Events: Codecs.Events,
		Retry:  consumer.Retry{Attempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond},
	}
	for _, m := range mod {
		m(&cfg)
	}
	return cfg
}

// Start runs a reader on r.KC until the test ends or stop is called; stop returns Run's
// error.
func (r *Rig) Start(cfg consumer.Config[kastor.Event], sink consumer.Sink[kastor.Event]) (*consumer.Reader[kastor.Event], func() error) {
	r.T.Helper()
	return r.StartOn(r.KC, cfg, sink)
}

// StartOn is Start on cluster kc.
func (r *Rig) StartOn(kc *cluster.Cluster, cfg consumer.Config[kastor.Event], sink consumer.Sink[kastor.Event]) (*consumer.Reader[kastor.Event], func() error) {
	r.T.Helper()
	rd, err := consumer.New(kc, cfg, sink)
	if err != nil {
		r.T.Fatal(err)
	}
	return rd, r.Run(rd)
}

// Run runs rd until the test ends or the returned stop is called; stop returns Run's
// error.
func (r *Rig) Run(rd *consumer.Reader[kastor.Event]) func() error {
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
	r.T.Cleanup(func() { _ = stop() })
	return stop
}

// Ends returns the events topic's last stable offsets.
func (r *Rig) Ends() map[consumer.TopicPartition]int64 {
	r.T.Helper()
	offs, err := r.Kafka.Admin().ListCommittedOffsets(Context(r.T), r.Events)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		r.T.Fatal(err)
	}
	out := map[consumer.TopicPartition]int64{}
	offs.Each(func(o kadm.ListedOffset) {
		out[consumer.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o.Offset
	})
	return out
}

// AwaitCommitted waits until group has committed at least the offsets in ends.
func (r *Rig) AwaitCommitted(group string, ends map[consumer.TopicPartition]int64) {
	r.T.Helper()
	ctx := Context(r.T)
	for {
		resp, err := r.Kafka.Admin().FetchOffsets(ctx, group)
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
			r.T.Fatalf("group %s did not commit %v: %v", group, ends, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ReadDLQ reads the dead-letter topic to its end.
func (r *Rig) ReadDLQ() []consumer.DeadLetter {
	r.T.Helper()
	ctx := Context(r.T)
	ends, err := r.Kafka.Admin().ListCommittedOffsets(ctx, r.DLQ)
	if err != nil {
		r.T.Fatal(err)
	}
	var out []consumer.DeadLetter
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total == 0 {
		return nil
	}
	cl := r.Kafka.Client(r.T, kgo.ConsumeTopics(r.DLQ), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
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
			r.T.Fatal(ctx.Err())
		}
		fs.EachRecord(func(rec *kgo.Record) {
			got[rec.Partition] = rec.Offset + 1
			if rec.Attrs.IsControl() {
				return
			}
			d, err := consumer.ParseDeadLetter(rec)
			if err != nil {
				r.T.Errorf("not a dead letter: %v", err)
				return
			}
			out = append(out, d)
		})
	}
}

// Seen counts events by aggregate and version, concurrency-safe.
type Seen struct {
	mu     sync.Mutex
	n      map[string]int // "agg/version" -> times applied
	order  map[string][]int64
	total  int
	notify chan struct{}
}

// NewSeen returns an empty Seen.
func NewSeen() *Seen {
	return &Seen{n: map[string]int{}, order: map[string][]int64{}, notify: make(chan struct{}, 1)}
}

// Add counts e as applied.
func (s *Seen) Add(e kastor.Envelope[kastor.Event]) {
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

// Handler is a Handler sink that Adds every event.
func (s *Seen) Handler() consumer.Sink[kastor.Event] {
	return consumer.Handler(func(_ context.Context, e kastor.Envelope[kastor.Event]) error {
		s.Add(e)
		return nil
	})
}

// Check fails t unless every version 1..want[agg] was applied, and each aggregate's
// versions in order (a replay may restart from an earlier one); it returns the number of
// duplicate applications.
func (s *Seen) Check(t *testing.T, want map[string]int64) (dups int) {
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

// Group is the consumer group of cfg in the rig's namespace.
func (r *Rig) Group(cfg consumer.Config[kastor.Event]) string {
	return consumer.GroupName(r.NS, cfg.Name, cfg.Version)
}

// Count returns how many times the event key ("agg/version") was applied.
func (s *Seen) Count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[key]
}

// Total returns how many events were applied, duplicates included.
func (s *Seen) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Failing is a sink that fails on chosen aggregate versions ("agg/version" in Bad) with
// Err, and records the others in Seen.
type Failing struct {
	Seen *Seen
	Err  error
	mu   sync.Mutex
	Bad  map[string]bool
}

// Apply applies the batch, failing at the first bad event (Sink).
func (f *Failing) Apply(ctx context.Context, b consumer.Batch[kastor.Event]) error {
	for i, e := range b.Events {
		f.mu.Lock()
		bad := f.Bad[fmt.Sprintf("%s/%d", e.AggregateID, e.Version)]
		f.mu.Unlock()
		if bad {
			return &consumer.ApplyError{Index: i, Err: f.Err}
		}
		f.Seen.Add(e)
	}
	return nil
}

// Heal makes every event apply from now on.
func (f *Failing) Heal() {
	f.mu.Lock()
	f.Bad = nil
	f.mu.Unlock()
}

// Balances is the model of the Memory tests.
type Balances struct {
	Balance map[string]int64
	Events  int
}

// FoldBalance folds a bank.account event into m.
func FoldBalance(m *Balances, e kastor.Envelope[kastor.Event]) error {
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

// Order returns the versions of agg in the order they were applied.
func (s *Seen) Order(agg string) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.order[agg]...)
}

// Counts returns how many times each event ("agg/version") was applied.
func (s *Seen) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.n)
}

// Fail makes exactly the events keys ("agg/version") fail from now on.
func (f *Failing) Fail(keys ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Bad = map[string]bool{}
	for _, k := range keys {
		f.Bad[k] = true
	}
}
