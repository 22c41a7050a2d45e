package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/kafkatest"
)

func TestConfigErrors(t *testing.T) {
	sink := consumer.Handler(func(context.Context, kastor.Envelope[kastor.Event]) error { return nil })
	_, err := consumer.New(nil, consumer.Config[kastor.Event]{Name: "a b", Version: 0}, sink)
	if err == nil {
		t.Fatal("New accepted an empty config")
	}
	for _, want := range []string{"Name", "Version is 0", "no topic", "Events", "cluster is nil"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers("localhost:1")) // never dialled
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	kc, err := cluster.New(cl, "ns")
	if err != nil {
		t.Fatal(err)
	}
	cfg := consumer.Config[kastor.Event]{Name: "p", Version: 1, Topics: []string{"t"},
		Events: codecs.Events, AllPartitions: true}
	if _, err := consumer.New(kc, cfg, sink); err == nil || !strings.Contains(err.Error(), "OffsetStore") {
		t.Errorf("AllPartitions with a Handler: %v, want an error about OffsetStore", err)
	}
	if g := consumer.GroupName("shop", "balances", 2); g != "shop.proj.balances.v2" {
		t.Errorf("GroupName = %q", g)
	}
	if d := consumer.DLQTopic("shop", "balances"); d != "shop.proj.balances.dlq" {
		t.Errorf("DLQTopic = %q", d)
	}
	mem := consumer.NewMemory(balances{}, foldBalance)
	for fetchers, want := range map[int]string{-1: "Fetchers is negative", 2: "Fetchers is 2 without AllPartitions"} {
		c := cfg
		c.AllPartitions, c.Fetchers = fetchers < 0, fetchers
		if _, err := consumer.New(kc, c, mem); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Fetchers %d: %v, want an error saying %q", fetchers, err, want)
		}
	}
	cfg.AllPartitions = false
	rd, err := consumer.New(kc, cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if rd.Group() != "ns.proj.p.v1" {
		t.Errorf("Group() = %q", rd.Group())
	}
}

func TestMissingTopicsAreErrors(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	r := newRig(t, c, 2)
	sink := newSeen().Handler()
	rd, err := consumer.New(r.KC, r.Config(func(cfg *consumer.Config[kastor.Event]) { cfg.Name = "nodlq" }), sink)
	if err != nil {
		t.Fatal(err)
	}
	err = rd.Run(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), consumer.DLQTopic(r.NS, "nodlq")) {
		t.Errorf("Run without a dead-letter topic: %v, want an error naming it", err)
	}
	rd, err = consumer.New(r.KC, r.Config(func(cfg *consumer.Config[kastor.Event]) { cfg.AggregateTypes = []string{"nope"} }), sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := rd.Run(testCtx(t)); err == nil || !strings.Contains(err.Error(), r.NS+".nope.events") {
		t.Errorf("Run without an events topic: %v, want an error naming it", err)
	}
}

// Committed offsets survive a restart: every event applied exactly once with a graceful
// stop, and an aborted transaction's events never.
func TestResumeAfterRestart(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 3)
		r.Write(r.Mix(30, 7, func(int) int64 { return 10 })...)
		aborted := r.Record(deposited("ghost", 1))
		r.Versions["ghost"] = 0
		r.WriteRecords(false, aborted)
		want := map[string]int64{}
		for k, v := range r.Versions {
			if v > 0 {
				want[k] = v
			}
		}
		s := newSeen()
		cfg := r.Config()
		_, stop := r.Start(cfg, s.Handler())
		r.AwaitCommitted(r.Group(cfg), r.Ends())
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		r.Write(deposited("acc-1", 5), deposited("acc-2", 5), opened("acc-new"))
		for k, v := range r.Versions {
			if v > 0 {
				want[k] = v
			}
		}
		_, stop = r.Start(cfg, s.Handler())
		r.AwaitCommitted(r.Group(cfg), r.Ends())
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if dups := s.Check(t, want); dups != 0 {
			t.Errorf("%d duplicates after a graceful restart, want 0", dups)
		}
		p, err := consumer.GroupProgress(testCtx(t), c.Admin(), r.Group(cfg), r.Events)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Partitions) != 3 || !p.CaughtUp(r.Ends()) {
			t.Errorf("group progress %+v has not caught up", p)
		}
		for _, pp := range p.Partitions {
			if pp.Lag != 0 || pp.Committed != pp.End {
				t.Errorf("partition %+v: want committed at the end, lag 0", pp)
			}
		}
		p, err = consumer.GroupProgress(testCtx(t), c.Admin(), "nobody", r.Events)
		if err != nil {
			t.Fatal(err)
		}
		for _, pp := range p.Partitions {
			if pp.Committed != -1 || pp.Lag != pp.End {
				t.Errorf("a group that never ran: %+v, want lag = end", pp)
			}
		}
		if s.Count("ghost/1") != 0 {
			t.Error("an aborted event was applied")
		}
	})
}

// After a crash (no commit of the last round), the restarted reader applies again at most
// that round's events, and loses nothing.
func TestCrashDuplicatesBounded(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 2)
		r.Write(r.Mix(200, 10, func(int) int64 { return 1 })...)
		const round = 40
		cfg := r.Config(func(c *consumer.Config[kastor.Event]) { c.MaxPollRecords = round })
		s := newSeen()
		rd, err := consumer.New(r.KC, cfg, s.Handler())
		if err != nil {
			t.Fatal(err)
		}
		var rounds atomic.Int32
		consumer.SimulateCrash(rd, func() bool { return rounds.Add(1) == 3 })
		if err := rd.Run(testCtx(t)); err == nil {
			t.Fatal("Run returned nil, want the simulated crash")
		}
		before := s.Total()
		if before == 0 || before > 3*round {
			t.Fatalf("%d events before the crash, want 1..%d", before, 3*round)
		}
		_, stop := r.Start(cfg, s.Handler())
		r.AwaitCommitted(r.Group(cfg), r.Ends())
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		dups := s.Check(t, r.Versions)
		if dups > round {
			t.Errorf("%d duplicates after a crash, want at most one round (%d)", dups, round)
		}
		t.Logf("%d events before the crash, %d applied again", before, dups)
	})
}

// The Memory sink's model equals a fold of the topic read back, and WaitFor /
// WaitForVersion / Progress agree with the topic's end offsets.
func TestMemoryFoldEqualsTopic(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 3)
		for i := range 5 {
			r.Write(r.Mix(20, 9, func(j int) int64 { return int64(i*100 + j) })...)
		}
		r.WriteRecords(false, r.Record(deposited("acc-1", 1_000_000))) // aborted
		r.Versions["acc-1"]--
		mem := consumer.NewMemory(balances{}, foldBalance)
		cfg := r.Config()
		rd, stop := r.Start(cfg, mem)
		ends := r.Ends()
		if err := mem.WaitFor(testCtx(t), ends); err != nil {
			t.Fatal(err)
		}
		if err := mem.WaitForVersion(testCtx(t), "acc-3", r.Versions["acc-3"]); err != nil {
			t.Fatal(err)
		}
		// A fold of the topic read back with a plain read_committed consumer.
		var want balances
		cl := c.Client(t, kgo.ConsumeTopics(r.Events), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		for want.Events < 100 {
			fs := cl.PollFetches(testCtx(t))
			fs.EachRecord(func(rec *kgo.Record) {
				md, err := producerMetadata(rec)
				if err != nil {
					t.Fatal(err)
				}
				e, err := codecs.Events.Decode(kastor.Encoded{Type: md.Type, Fingerprint: md.Fingerprint, Data: rec.Value})
				if err != nil {
					t.Fatal(err)
				}
				_ = foldBalance(&want, kastor.Envelope[kastor.Event]{Metadata: md, Event: e})
			})
		}
		mem.Read(func(m *balances) {
			if m.Events != want.Events || fmt.Sprint(m.Balance) != fmt.Sprint(want.Balance) {
				t.Errorf("memory model %+v, fold of the topic %+v", *m, want)
			}
		})
		for tp, end := range ends {
			if got := mem.Offsets()[tp]; got != end {
				t.Errorf("%v: memory at offset %d, end %d", tp, got, end)
			}
		}
		p, err := rd.Progress(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if !p.CaughtUp(ends) {
			t.Errorf("progress %+v has not caught up with %v", p, ends)
		}
		for _, pp := range p.Partitions {
			if pp.Lag != 0 {
				t.Errorf("partition %d: lag %d at the end", pp.Partition, pp.Lag)
			}
		}
		// A version not written yet times out; a new event is awaited by version.
		short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := mem.WaitForVersion(short, "acc-2", r.Versions["acc-2"]+1); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("WaitForVersion of an unwritten version: %v", err)
		}
		r.Write(deposited("acc-2", 7))
		if err := mem.WaitForVersion(testCtx(t), "acc-2", r.Versions["acc-2"]); err != nil {
			t.Fatal(err)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		// A new Memory starts from the earliest offsets, whatever the group committed.
		r.AwaitCommitted(r.Group(cfg), r.Ends())
		fresh := consumer.NewMemory(balances{}, foldBalance)
		_, stop = r.Start(cfg, fresh)
		if err := fresh.WaitFor(testCtx(t), r.Ends()); err != nil {
			t.Fatal(err)
		}
		fresh.Read(func(m *balances) {
			if m.Events != want.Events+1 {
				t.Errorf("a fresh model has %d events, want %d", m.Events, want.Events+1)
			}
		})
		_ = stop()
	})
}

// Filters read headers only: filtered events are never decoded, and WaitForVersion
// counts them as passed.
func TestFilter(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 2)
		r.Write(opened("a"), opened("b"), opened("c"),
			ev{Agg: "a", Event: bank.Deposited{Amount: 1}, Tags: []string{"vip"}},
			ev{Agg: "b", Event: bank.Deposited{Amount: 2}, Tags: []string{"other"}},
			ev{Agg: "c", Event: bank.Deposited{Amount: 3}, Tags: []string{"vip", "x"}},
			ev{Agg: "c", Event: bank.Withdrawn{Amount: 1}, Tags: []string{"vip"}},
			ev{Agg: "b", Event: bank.Deposited{Amount: 4}, Tags: []string{"vip"}},
		)
		counting := &countingCodec{Codec: codecs.Events}
		mem := consumer.NewMemory(balances{}, foldBalance)
		_, stop := r.Start(r.Config(func(cfg *consumer.Config[kastor.Event]) {
			cfg.Events = counting
			cfg.Filter = consumer.Filter{EventTypes: []string{"bank.MoneyDeposited"}, Tags: []string{"vip"}, AggregateIDs: []string{"a", "c"}}
		}), mem)
		defer stop()
		if err := mem.WaitFor(testCtx(t), r.Ends()); err != nil {
			t.Fatal(err)
		}
		mem.Read(func(m *balances) {
			if m.Events != 2 || m.Balance["a"] != 1 || m.Balance["c"] != 3 || len(m.Balance) != 2 {
				t.Errorf("filtered model %+v, want deposits of a (1) and c (3) only", *m)
			}
		})
		if n := counting.n.Load(); n != 2 {
			t.Errorf("%d events decoded, want 2 (filtered events must not be decoded)", n)
		}
		if err := mem.WaitForVersion(testCtx(t), "c", 3); err != nil {
			t.Errorf("WaitForVersion of a filtered version: %v", err)
		}
	})
}

type countingCodec struct {
	kastor.Codec[kastor.Event]
	n atomic.Int32
}

func (c *countingCodec) Decode(e kastor.Encoded) (kastor.Event, error) {
	c.n.Add(1)
	return c.Codec.Decode(e)
}

// A poison event goes to the dead-letter topic after its retries, with its original
// record and error headers, and the rest of the partition flows. (projection's
// TestReplayResolvesOnce replays it.)
func TestPoisonEventToDLQ(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 1)
		r.Write(opened("a"), opened("b"), deposited("a", 1), deposited("b", 2), deposited("a", 3), deposited("b", 4))
		s := newSeen()
		f := &failing{Seen: s, Bad: map[string]bool{"a/2": true}, Err: errors.New("boom")}
		reg := prometheus.NewRegistry()
		r.KC = r.Cluster(reg)
		cfg := r.Config()
		_, stop := r.Start(cfg, f)
		r.AwaitCommitted(r.Group(cfg), r.Ends())
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		for metric, want := range map[string]float64{
			`kastor_consumer_events_total{result="applied"}`: 5,
			`kastor_consumer_events_total{result="parked"}`:  1,
			`kastor_consumer_parked_total{reason="failed"}`:  1,
			`kastor_consumer_failures_total{kind="apply"}`:   3,
			`kastor_consumer_lag_records{partition="0"}`:     0,
		} {
			if got := gathered(t, reg, metric); got != want {
				t.Errorf("%s = %v, want %v", metric, got, want)
			}
		}
		want := map[string]int64{"a": 3, "b": 3}
		if s.Count("a/2") != 0 || s.Count("a/3") != 1 || s.Count("b/3") != 1 {
			t.Errorf("applied %v; want all but a/2", s.Counts())
		}
		_ = want
		letters := r.ReadDLQ()
		if len(letters) != 1 {
			t.Fatalf("%d dead letters, want 1: %+v", len(letters), letters)
		}
		d := letters[0]
		if d.Reason != consumer.ReasonFailed || d.Err != "boom" || d.Attempts != 3 || d.Projection != projection || d.Version != 1 ||
			d.Origin.Topic != r.Events || d.Origin.Partition != 0 || d.Offset != 2 || string(d.Key) != "a" {
			t.Errorf("dead letter %+v", d)
		}
		md, err := producerMetadataHeaders(d.Headers)
		if err != nil || md.AggregateID != "a" || md.Version != 2 || md.Type != "bank.MoneyDeposited" {
			t.Errorf("original headers %+v (%v)", md, err)
		}
		e, err := codecs.Events.Decode(kastor.Encoded{Type: md.Type, Fingerprint: md.Fingerprint, Data: d.Value})
		if err != nil || e != (bank.Deposited{Amount: 1}) {
			t.Errorf("original value decodes to %v, %v", e, err)
		}
	})
}

// ParkAggregate holds only the failed aggregate, durably across a restart. (projection's
// TestReplayParkedAggregate replays its parked and held events in order.)
func TestParkAggregate(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 1)
		r.Write(opened("a"), opened("b"), deposited("a", 1), deposited("b", 2), deposited("a", 3), deposited("b", 4))
		s := newSeen()
		f := &failing{Seen: s, Bad: map[string]bool{"a/2": true}, Err: errors.New("boom")}
		cfg := r.Config(func(c *consumer.Config[kastor.Event]) { c.OnFailure = consumer.ParkAggregate })
		_, stop := r.Start(cfg, f)
		r.AwaitCommitted(r.Group(cfg), r.Ends())
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		// A restarted reader still holds a: a's next event is held too, b flows.
		r.Write(deposited("a", 5), deposited("b", 6))
		_, stop = r.Start(cfg, f)
		r.AwaitCommitted(r.Group(cfg), r.Ends())
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"a/2", "a/3", "a/4"} {
			if s.Count(k) != 0 {
				t.Errorf("%s applied while its aggregate is parked", k)
			}
		}
		for _, k := range []string{"a/1", "b/1", "b/2", "b/3", "b/4"} {
			if s.Count(k) != 1 {
				t.Errorf("%s applied %d times, want 1", k, s.Count(k))
			}
		}
		letters := r.ReadDLQ()
		var got []string
		for _, d := range letters {
			md, _ := producerMetadataHeaders(d.Headers)
			got = append(got, fmt.Sprintf("%s/%d:%s:%d", md.AggregateID, md.Version, d.Reason, d.HeldBehind))
		}
		if want := "[a/2:failed:-1 a/3:held:2 a/4:held:2]"; fmt.Sprint(got) != want {
			t.Errorf("dead letters %v, want %s", got, want)
		}
	})
}

// Undecodable records (bad Avro, unknown type, missing headers) go to the dead-letter
// topic at once, without retries, and the partition flows.
func TestUndecodableToDLQ(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 1)
		good := r.Record(opened("a"))
		badAvro := r.Record(deposited("a", 1))
		badAvro.Value = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}
		unknown := r.Record(deposited("a", 2))
		for i, h := range unknown.Headers {
			if h.Key == kastor.HeaderType {
				unknown.Headers[i].Value = []byte("bank.Nope")
			}
		}
		noHeaders := &kgo.Record{Topic: r.Events, Key: []byte("a"), Value: []byte("x"), Partition: 0}
		after := r.Record(deposited("a", 3))
		r.WriteRecords(true, good, badAvro, unknown, noHeaders, after)
		s := newSeen()
		var calls atomic.Int32
		sink := consumer.Handler(func(_ context.Context, e kastor.Envelope[kastor.Event]) error {
			calls.Add(1)
			s.Add(e)
			return nil
		})
		cfg := r.Config()
		_, stop := r.Start(cfg, sink)
		r.AwaitCommitted(r.Group(cfg), r.Ends())
		_ = stop()
		if calls.Load() != 2 {
			t.Errorf("handler called %d times, want 2 (a/1 and a/4)", calls.Load())
		}
		letters := r.ReadDLQ()
		if len(letters) != 3 {
			t.Fatalf("%d dead letters, want 3", len(letters))
		}
		for i, d := range letters {
			if d.Reason != consumer.ReasonUndecodable || d.Attempts != 0 || d.Offset != int64(i+1) || d.Err == "" {
				t.Errorf("dead letter %d: %+v", i, d)
			}
		}
		if !strings.Contains(letters[2].Err, "missing") || string(letters[2].Value) != "x" {
			t.Errorf("headerless record's dead letter: %q %q", letters[2].Err, letters[2].Value)
		}
	})
}

// A sink reporting ErrUnavailable makes its partition wait: nothing is parked or
// skipped, and the events are applied in order once it is back.
func TestUnavailableSinkWaits(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	r := newRig(t, c, 1)
	r.Write(opened("a"), deposited("a", 1), deposited("a", 2))
	s := newSeen()
	var fails atomic.Int32
	sink := consumer.Handler(func(_ context.Context, e kastor.Envelope[kastor.Event]) error {
		if e.Version == 2 && fails.Add(1) <= 8 {
			return consumer.Unavailable(errors.New("database down"))
		}
		s.Add(e)
		return nil
	})
	cfg := r.Config()
	_, stop := r.Start(cfg, sink)
	r.AwaitCommitted(r.Group(cfg), r.Ends())
	_ = stop()
	if dups := s.Check(t, r.Versions); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
	if letters := r.ReadDLQ(); len(letters) != 0 {
		t.Errorf("%d dead letters for an unavailable sink, want 0", len(letters))
	}
}

// Two readers in one group share the partitions; when one leaves during the stream, no
// event is lost or applied twice.
func TestRebalanceTwoReaders(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 6)
		s := newSeen()
		cfg := r.Config(func(c *consumer.Config[kastor.Event]) { c.MaxPollRecords = 50 })
		a, stopA := r.Start(cfg, s.Handler())
		b, stopB := r.Start(cfg, s.Handler())
		defer stopB()
		writeSome := func(n int) {
			for range n {
				r.Write(r.Mix(20, 20, func(int) int64 { return 1 })...)
			}
		}
		writeSome(5)
		// Wait until both own partitions.
		ctx := testCtx(t)
		for {
			pa, _ := a.Progress(ctx)
			pb, _ := b.Progress(ctx)
			if len(pa.Partitions) > 0 && len(pb.Partitions) > 0 && len(pa.Partitions)+len(pb.Partitions) == 6 {
				break
			}
			if ctx.Err() != nil {
				t.Fatal("the readers never shared the partitions")
			}
			time.Sleep(20 * time.Millisecond)
		}
		writeSome(5)
		if err := stopA(); err != nil {
			t.Fatal(err)
		}
		writeSome(5)
		r.AwaitCommitted(r.Group(cfg), r.Ends())
		if dups := s.Check(t, r.Versions); dups != 0 {
			t.Errorf("%d events applied twice across a graceful rebalance", dups)
		}
		if s.Total() != 300 {
			t.Errorf("%d events applied, want 300", s.Total())
		}
	})
}

// With AllPartitions, each reader holds the whole projection and joins no group.
func TestAllPartitionsMemory(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	r := newRig(t, c, 4)
	var batch []ev
	for i := range 12 {
		batch = append(batch, opened(fmt.Sprintf("acc-%d", i)))
	}
	r.Write(batch...)
	cfg := r.Config(func(c *consumer.Config[kastor.Event]) { c.AllPartitions = true })
	m1 := consumer.NewMemory(balances{}, foldBalance)
	m2 := consumer.NewMemory(balances{}, foldBalance)
	r.Start(cfg, m1)
	r.Start(cfg, m2)
	for _, m := range []*consumer.Memory[balances, kastor.Event]{m1, m2} {
		if err := m.WaitFor(testCtx(t), r.Ends()); err != nil {
			t.Fatal(err)
		}
		m.Read(func(b *balances) {
			if len(b.Balance) != 12 {
				t.Errorf("a model holds %d accounts, want all 12", len(b.Balance))
			}
		})
	}
}

// A parked version makes WaitForVersion fail with ErrParked rather than wait forever.
func TestMemoryWaitForParkedVersion(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	r := newRig(t, c, 1)
	r.Write(opened("a"), deposited("a", 1), deposited("a", 2))
	mem := consumer.NewMemory(balances{}, func(m *balances, e kastor.Envelope[kastor.Event]) error {
		if e.Version == 2 {
			return errors.New("no")
		}
		return foldBalance(m, e)
	})
	r.Start(r.Config(), mem)
	err := mem.WaitForVersion(testCtx(t), "a", 3)
	var pe *consumer.ParkedError
	if !errors.Is(err, consumer.ErrParked) || !errors.As(err, &pe) || pe.Version != 2 {
		t.Errorf("WaitForVersion past a parked version: %v", err)
	}
	if err := mem.WaitForVersion(testCtx(t), "a", 1); err != nil {
		t.Errorf("WaitForVersion before the parked version: %v", err)
	}
}

// A fresh model meets a parked event again: it skips it as parked (no second dead
// letter, no apply outside a replay). (projection's TestReplayIntoFreshMemory replays
// into it.)
func TestFreshMemorySkipsParkedEvents(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	r := newRig(t, c, 1)
	r.Write(opened("a"), deposited("a", 1), deposited("a", 2))
	var broken atomic.Bool
	broken.Store(true)
	apply := func(m *balances, e kastor.Envelope[kastor.Event]) error {
		if e.Version == 2 && broken.Load() {
			return errors.New("no")
		}
		return foldBalance(m, e)
	}
	cfg := r.Config(func(c *consumer.Config[kastor.Event]) { c.AllPartitions = true })
	first := consumer.NewMemory(balances{}, apply)
	_, stop := r.Start(cfg, first)
	if err := first.WaitFor(testCtx(t), r.Ends()); err != nil {
		t.Fatal(err)
	}
	_ = stop()
	broken.Store(false) // fixed code, restarted process
	fresh := consumer.NewMemory(balances{}, apply)
	r.Start(cfg, fresh)
	if err := fresh.WaitForVersion(testCtx(t), "a", 3); !errors.Is(err, consumer.ErrParked) {
		t.Errorf("fresh model: WaitForVersion past the parked event: %v, want ErrParked", err)
	}
	if n := len(r.ReadDLQ()); n != 1 {
		t.Errorf("%d dead letters after a restart, want 1", n)
	}
	if err := fresh.WaitFor(testCtx(t), r.Ends()); err != nil {
		t.Fatal(err)
	}
	fresh.Read(func(m *balances) {
		if m.Balance["a"] != 2 || m.Events != 2 {
			t.Errorf("model %+v, want a/1 and a/3 applied, the parked a/2 not", *m)
		}
	})
}

// A dead-letter topic that cannot be written stops the partition at the event to park:
// nothing is committed past it, and once the topic is back the event is parked and the
// partition goes on.
func TestDLQOutageBlocksThePartition(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	r := newRig(t, c, 1)
	r.Write(opened("a"), opened("b"))
	s := newSeen()
	f := &failing{Seen: s, Bad: map[string]bool{"a/2": true}, Err: errors.New("boom")}
	reg := prometheus.NewRegistry()
	// Notice the topic's deletion and return quickly, for the test's speed: the reader's
	// clients take these options from the shared client.
	r.KC = r.Cluster(reg, kgo.MetadataMinAge(10*time.Millisecond), kgo.MetadataMaxAge(100*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }))
	cfg := r.Config()
	_, stop := r.Start(cfg, f)
	defer stop()
	r.AwaitCommitted(r.Group(cfg), r.Ends())
	ctx := testCtx(t)
	if _, err := c.Admin().DeleteTopics(ctx, r.DLQ); err != nil {
		t.Fatal(err)
	}
	r.Write(deposited("a", 1), deposited("b", 2)) // a/2 fails, then b/2 waits behind it
	poison := r.Ends()[consumer.TopicPartition{Topic: r.Events, Partition: 0}] - 3
	for gathered(t, reg, `kastor_consumer_failures_total{kind="dlq"}`) < 2 {
		select {
		case <-ctx.Done():
			t.Fatal("the reader never failed to write the dead letter")
		case <-time.After(10 * time.Millisecond):
		}
	}
	resp, err := c.Admin().FetchOffsets(ctx, r.Group(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := resp.Lookup(r.Events, 0); o.At > poison {
		t.Fatalf("committed offset %d is past the unparked event at %d", o.At, poison)
	}
	if s.Count("b/2") != 0 {
		t.Error("b/2 was applied past the unparked event")
	}
	c.CreateTopic(t, r.DLQ, 1, 1, nil)
	r.AwaitCommitted(r.Group(cfg), r.Ends())
	if letters := r.ReadDLQ(); len(letters) != 1 || letters[0].Offset != poison {
		t.Errorf("dead letters %+v, want the event at %d", letters, poison)
	}
	if s.Count("b/2") != 1 {
		t.Error("b/2 was not applied after the outage")
	}
}

// A rebalance interrupts a partition waiting for its sink: the reader rewinds it, commits
// what it applied and lets the group rebalance; nothing is lost, duplicated or reordered.
func TestRebalanceInterruptsWaitingPartition(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	r := newRig(t, c, 4)
	r.Write(r.Mix(80, 8, func(int) int64 { return 1 })...)
	s := newSeen()
	var down atomic.Bool
	down.Store(true)
	sink := consumer.Handler(func(_ context.Context, e kastor.Envelope[kastor.Event]) error {
		if e.Version == 5 && down.Load() {
			return consumer.Unavailable(errors.New("database down"))
		}
		s.Add(e)
		return nil
	})
	reg := prometheus.NewRegistry()
	r.KC = r.Cluster(reg)
	cfg := r.Config(func(c *consumer.Config[kastor.Event]) {
		c.Retry.MaxBackoff = time.Minute // only the rebalance can end the wait early
		c.Retry.InitialBackoff = time.Minute
	})
	a, stopA := r.Start(cfg, sink)
	defer stopA()
	ctx := testCtx(t)
	for gathered(t, reg, `kastor_consumer_failures_total{kind="unavailable"}`) < 1 {
		select {
		case <-ctx.Done():
			t.Fatal("the sink was never called")
		case <-time.After(10 * time.Millisecond):
		}
	}
	b, stopB := r.Start(cfg, sink)
	defer stopB()
	for {
		pa, _ := a.Progress(ctx)
		pb, _ := b.Progress(ctx)
		if len(pa.Partitions) > 0 && len(pb.Partitions) > 0 && len(pa.Partitions)+len(pb.Partitions) == 4 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the rebalance did not complete while a partition waited for its sink")
		}
		time.Sleep(10 * time.Millisecond)
	}
	down.Store(false)
	// The reader that still waits may sleep out its backoff; stopping it ends the wait.
	_ = stopA()
	r.AwaitCommitted(r.Group(cfg), r.Ends())
	if dups := s.Check(t, r.Versions); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
}
