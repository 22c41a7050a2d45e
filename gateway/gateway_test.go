package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/snapshot"
	"github.com/kastor-dev/kastor/topics"
	"github.com/kastor-dev/kastor/wire"
)

var realKafka = kafkatest.NewShared()

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	kafkatest.Main(m, realKafka)
}

const callerID = "test-caller"

// rig is one aggregate type's topic set on a cluster, with a raw client that writes
// commands as a caller would and reads replies and events back.
type rig struct {
	t          *testing.T
	c          *kafkatest.Cluster
	kc         *cluster.Cluster // the gateways' and Senders' cluster: namespace ns, quiet logs
	ns         string
	partitions int32
	commands   string
	events     string
	snapshots  string
	replies    string
	cl         *kgo.Client
	replyCl    *kgo.Client
	got        map[string]gateway.Reply
	bank       *bank.Codecs // the bank account's codecs, for tests that run it
}

func newRig(t *testing.T, c *kafkatest.Cluster, partitions int32) *rig {
	return newRigRF(t, c, partitions, 1, nil)
}

// newRigRF creates the topic set with a replication factor and extra topic configs.
func newRigRF(t *testing.T, c *kafkatest.Cluster, partitions int32, rf int16, configs map[string]string) *rig {
	return newRigCreate(t, c, partitions, configs, func(_ *rig, name string, cfgs map[string]string) {
		c.CreateTopic(t, name, partitions, rf, cfgs)
	})
}

// newRigCreate creates the topic set with create, given each topic's name and configs
// (extra configs added).
func newRigCreate(t *testing.T, c *kafkatest.Cluster, partitions int32, configs map[string]string, create func(r *rig, name string, cfgs map[string]string)) *rig {
	ns := strings.ToLower(strings.ReplaceAll(kafkatest.TopicName(t), "/", "-"))
	r := &rig{t: t, c: c, ns: ns, partitions: partitions, got: map[string]gateway.Reply{},
		commands:  topics.TopicName(ns, "bank.account", topics.RoleCommands),
		events:    topics.TopicName(ns, "bank.account", topics.RoleEvents),
		snapshots: topics.TopicName(ns, "bank.account", topics.RoleSnapshots),
		replies:   topics.TopicName(ns, "bank.account", topics.RoleReplies),
	}
	for _, name := range []string{r.commands, r.events, r.replies} {
		create(r, name, configs)
	}
	snapCfg := map[string]string{"cleanup.policy": "compact"}
	for k, v := range configs {
		snapCfg[k] = v
	}
	create(r, r.snapshots, snapCfg)
	r.kc = r.kastor()
	r.cl = c.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	r.replyCl = c.Client(t, kgo.ConsumeTopics(r.replies), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	return r
}

func quietLogger() *slog.Logger {
	switch os.Getenv("GATEWAY_TEST_LOG") {
	case "":
	case "debug":
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	default:
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// kastor returns a cluster over a new client, in the rig's namespace, with the quiet
// logger unless opts set another.
func (r *rig) kastor(opts ...cluster.Option) *cluster.Cluster {
	r.t.Helper()
	return r.c.Kastor(r.t, r.ns, append([]cluster.Option{cluster.Logger(quietLogger())}, opts...)...)
}

func (r *rig) config(mod ...func(*gateway.Config[account, command, kastor.Event])) gateway.Config[account, command, kastor.Event] {
	cfg := gateway.Config[account, command, kastor.Event]{
		Aggregate: bankAggregate(),
		Commands:  commandCodec, Events: eventCodec, States: stateCodec,
		TransactionTimeout: 10 * time.Second,
	}
	for _, m := range mod {
		m(&cfg)
	}
	return cfg
}

// start runs a gateway of the rig's cluster until the test ends or the returned stop is
// called.
func (r *rig) start(cfg gateway.Config[account, command, kastor.Event]) (*gateway.Gateway[account, command, kastor.Event], func()) {
	r.t.Helper()
	return r.startOn(r.kc, cfg)
}

// startOn is start with a gateway of cluster kc.
func (r *rig) startOn(kc *cluster.Cluster, cfg gateway.Config[account, command, kastor.Event]) (*gateway.Gateway[account, command, kastor.Event], func()) {
	r.t.Helper()
	g, err := gateway.New(kc, cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	return g, r.run(g)
}

// run runs g until the test ends or the returned stop is called.
func (r *rig) run(g *gateway.Gateway[account, command, kastor.Event]) func() {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				r.t.Errorf("gateway Run: %v", err)
			}
		})
	}
	r.t.Cleanup(stop)
	return stop
}

type sendOpt func(*kgo.Record)

func withExpected(v int64) sendOpt {
	return func(rec *kgo.Record) {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: wire.HeaderExpectedVersion, Value: []byte(fmt.Sprint(v))})
	}
}

// send appends a command as a caller does and waits for its reply.
func (r *rig) send(aggID, cmdID string, c command, opts ...sendOpt) gateway.Reply {
	r.t.Helper()
	delete(r.got, cmdID) // a re-sent command gets a reply of its own
	r.submit(aggID, cmdID, c, opts...)
	return r.reply(cmdID)
}

func (r *rig) submit(aggID, cmdID string, c command, opts ...sendOpt) {
	r.t.Helper()
	enc, err := commandCodec.Encode(c)
	if err != nil {
		r.t.Fatal(err)
	}
	md := kastor.Metadata{AggregateID: aggID, CommandID: cmdID, Type: enc.Type, Fingerprint: enc.Fingerprint}
	hs := wire.Headers(&md)
	hs = append(hs, kgo.RecordHeader{Key: wire.HeaderReplyTo, Value: []byte(callerID)})
	rec := &kgo.Record{Topic: r.commands, Partition: producer.PartitionFor([]byte(aggID), r.partitions), Key: []byte(aggID), Value: enc.Data, Headers: hs}
	for _, o := range opts {
		o(rec)
	}
	r.produce(rec)
}

func (r *rig) produce(recs ...*kgo.Record) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) reply(cmdID string) gateway.Reply {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		if rep, ok := r.got[cmdID]; ok {
			return rep
		}
		fs := r.replyCl.PollFetches(ctx)
		if ctx.Err() != nil {
			r.t.Fatalf("no reply to command %s", cmdID)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			rep, err := gateway.DecodeReplyRecord(rec)
			if err != nil {
				r.t.Fatalf("undecodable reply: %v", err)
			}
			if string(rec.Key) != callerID {
				r.t.Fatalf("reply keyed %q, want the caller ID", rec.Key)
			}
			r.got[rep.CommandID] = rep
		})
	}
}

// snapshotsIn reads snapshots partition p back as a gateway's restore reads it
// (snapshot.Store.Restore): the latest snapshot of each aggregate, decoded, and the shard's
// checkpoint (-1: none).
func (r *rig) snapshotsIn(p int32) (map[string]snapshot.Record, int64) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store := &snapshot.Store{Client: r.kc.Client(), Snapshots: r.snapshots, Events: r.events, Logger: quietLogger()}
	raw := rawSnapshots{}
	_, st, err := store.Restore(ctx, p, raw)
	if err != nil {
		r.t.Fatal(err)
	}
	out := make(map[string]snapshot.Record, len(raw))
	for id, v := range raw {
		rec, err := snapshot.DecodeValue(id, v)
		if err != nil {
			r.t.Fatalf("snapshot of %q: %v", id, err)
		}
		out[id] = rec
	}
	return out, st.Checkpoint
}

// rawSnapshots is a snapshot.Target that keeps the snapshot records and ignores the events.
type rawSnapshots map[string][]byte

func (m rawSnapshots) Reserve(int64)                    {}
func (m rawSnapshots) Snapshot(id string, value []byte) { m[id] = value }
func (m rawSnapshots) Delete(id string)                 { delete(m, id) }
func (m rawSnapshots) Event(context.Context, string, *kgo.Record) (bool, error) {
	return false, nil
}

// eventsOf reads the events topic back, checks every aggregate's versions are 1..n without
// gap or duplicate, and returns the events per aggregate.
func (r *rig) eventsOf() map[string][]kastor.Metadata {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ends, err := r.c.Admin().ListCommittedOffsets(ctx, r.events)
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[string][]kastor.Metadata{}
	for p := range r.partitions {
		end, _ := ends.Lookup(r.events, p)
		if end.Offset == 0 {
			continue
		}
		cl := r.c.Client(r.t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.events: {p: kgo.NewOffset().AtStart()}}),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
		for done := false; !done; {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				r.t.Fatalf("reading events partition %d", p)
			}
			fs.EachRecord(func(rec *kgo.Record) {
				if rec.Offset+1 >= end.Offset {
					done = true
				}
				if rec.Attrs.IsControl() {
					return
				}
				md, err := wire.ParseHeaders(rec.Headers)
				if err != nil {
					r.t.Fatal(err)
				}
				if want := producer.PartitionFor(rec.Key, r.partitions); rec.Partition != want {
					r.t.Fatalf("event of %s in partition %d, want %d", rec.Key, rec.Partition, want)
				}
				out[md.AggregateID] = append(out[md.AggregateID], md)
			})
		}
		cl.Close()
	}
	for id, evs := range out {
		for i, md := range evs {
			if md.Version != int64(i)+1 {
				r.t.Fatalf("aggregate %s: event %d has version %d: versions are not contiguous", id, i+1, md.Version)
			}
		}
	}
	return out
}

func TestCommandsEventsAndTypedRejections(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 3)
		tap, tapped := gateway.Tap[kastor.Event](100)
		r.start(r.config(func(cfg *gateway.Config[account, command, kastor.Event]) { cfg.Listeners = append(cfg.Listeners, tap) }))

		ok := func(rep gateway.Reply, from, to int64) {
			t.Helper()
			if rep.Status != gateway.StatusOK || rep.From != from || rep.To != to {
				t.Fatalf("reply %+v, want OK %d..%d", rep, from, to)
			}
		}
		ok(r.send("a1", "c1", openAccount{}), 1, 1)
		ok(r.send("a1", "c2", deposit{100}), 2, 2)
		ok(r.send("a1", "c3", depositTwice{5}), 3, 4)
		ok(r.send("a2", "c4", openAccount{}), 1, 1)

		// W3: rejections write nothing and come back typed and readable.
		rep := r.send("a1", "c5", withdraw{500})
		err := rep.Err("bank.account")
		if rep.Status != gateway.StatusRejected || !errors.Is(err, kastor.ErrRejected) || !strings.Contains(err.Error(), "insufficient funds: balance 110, asked 500") {
			t.Fatalf("withdraw too much: %+v / %v", rep, err)
		}
		rep = r.send("a1", "c6", deposit{1}, withExpected(2))
		var vc *kastor.VersionConflictError
		if err := rep.Err("bank.account"); !errors.As(err, &vc) || vc.Expected != 2 || vc.Actual != 4 {
			t.Fatalf("version conflict: %+v / %v", rep, err)
		}
		rep = r.send("a1", "c7", deposit{2_000_000})
		if err := rep.Err("bank.account"); !errors.Is(err, kastor.ErrInvariant) || !strings.Contains(err.Error(), "account limit") {
			t.Fatalf("invariant: %+v / %v", rep, err)
		}
		// A malformed payload.
		r.produce(&kgo.Record{Topic: r.commands, Partition: producer.PartitionFor([]byte("a1"), 3), Key: []byte("a1"), Value: []byte("{not json"),
			Headers: []kgo.RecordHeader{{Key: kastor.HeaderCommandID, Value: []byte("c8")}, {Key: kastor.HeaderType, Value: []byte("bank.Deposit")},
				{Key: wire.HeaderReplyTo, Value: []byte(callerID)}}})
		rep = r.reply("c8")
		if err := rep.Err("bank.account"); !errors.Is(err, kastor.ErrUndecodable) {
			t.Fatalf("malformed payload: %+v / %v", rep, err)
		}
		// W4: the same command ID again returns the first result and writes nothing.
		rep = r.send("a1", "c3", depositTwice{5})
		if rep.Status != gateway.StatusDuplicate || rep.From != 3 || rep.To != 4 {
			t.Fatalf("duplicate: %+v, want DUPLICATE 3..4", rep)
		}
		ok(r.send("a1", "c9", withdraw{10}), 5, 5)

		evs := r.eventsOf()
		if len(evs["a1"]) != 5 || len(evs["a2"]) != 1 {
			t.Fatalf("events: a1 has %d, a2 has %d; want 5 and 1", len(evs["a1"]), len(evs["a2"]))
		}
		// The tap saw the same committed events, in order, with their offsets.
		var tappedA1 []int64
		for len(tappedA1) < 5 {
			e := <-tapped
			if e.AggregateID == "a1" {
				if e.Offset < 0 || e.Timestamp.IsZero() {
					t.Fatalf("tapped event without position: %+v", e)
				}
				tappedA1 = append(tappedA1, e.Version)
			}
		}
		if fmt.Sprint(tappedA1) != "[1 2 3 4 5]" {
			t.Fatalf("tapped versions of a1: %v", tappedA1)
		}
		last := evs["a1"][4]
		if last.CommandID != "c9" || last.CausationID != "c9" || last.CorrelationID != "c9" || last.Type != "bank.MoneyWithdrawn" || last.AggregateType != "bank.account" {
			t.Fatalf("envelope of the last event: %+v", last)
		}
	})
}

func TestRestartKeepsStateAndDedupe(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 2)
		_, stop := r.start(r.config())
		r.send("acct", "open", openAccount{})
		r.send("acct", "dep", deposit{70})
		stop()

		// A new instance restores the shard from the events; the dedupe window came with it.
		r.start(r.config())
		if rep := r.send("acct", "dep", deposit{70}); rep.Status != gateway.StatusDuplicate || rep.From != 2 || rep.To != 2 {
			t.Fatalf("re-sent after restart: %+v, want DUPLICATE 2..2", rep)
		}
		if rep := r.send("acct", "w1", withdraw{100}); rep.Status != gateway.StatusRejected {
			t.Fatalf("state lost across restart: withdraw 100 from 70 gave %+v", rep)
		}
		if rep := r.send("acct", "w2", withdraw{70}); rep.Status != gateway.StatusOK || rep.From != 3 {
			t.Fatalf("withdraw 70: %+v", rep)
		}
		if n := len(r.eventsOf()["acct"]); n != 3 {
			t.Fatalf("%d events, want 3", n)
		}
	})
}

// TestRecoveryReadsSnapshotsAndTail is W5: after many snapshotted aggregates, a restore reads
// the snapshots and only the events after the shard checkpoint.
func TestRecoveryReadsSnapshotsAndTail(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 1)
		pol := snapshot.Policy{Every: 5, CheckpointEvery: 100, CheckpointInterval: time.Hour}
		_, stop := r.start(r.config(func(cfg *gateway.Config[account, command, kastor.Event]) { cfg.Snapshots = pol }))
		const aggs, perAgg = 200, 6
		for i := range aggs {
			r.submit(fmt.Sprintf("a%03d", i), fmt.Sprintf("open-%d", i), openAccount{})
		}
		for k := 1; k < perAgg; k++ {
			for i := range aggs {
				r.submit(fmt.Sprintf("a%03d", i), fmt.Sprintf("dep-%d-%d", i, k), deposit{1})
			}
		}
		last := fmt.Sprintf("dep-%d-%d", aggs-1, perAgg-1)
		if rep := r.reply(last); rep.Status != gateway.StatusOK {
			t.Fatalf("last command: %+v", rep)
		}
		stop()
		total := aggs * perAgg
		if evs := r.eventsOf(); len(evs) != aggs {
			t.Fatalf("%d aggregates have events, want %d", len(evs), aggs)
		}

		g, _ := r.start(r.config(func(cfg *gateway.Config[account, command, kastor.Event]) { cfg.Snapshots = pol }))
		rep := r.send("a000", "check", withdraw{perAgg - 1})
		if rep.Status != gateway.StatusOK || rep.From != perAgg+1 {
			t.Fatalf("after restore a000 answered %+v, want OK at version %d", rep, perAgg+1)
		}
		rec := g.Recoveries()
		if len(rec) != 1 {
			t.Fatalf("%d recoveries, want 1", len(rec))
		}
		t.Logf("restore read %d snapshot records and %d of %d events", rec[0].SnapshotRecords, rec[0].EventRecords, total)
		if rec[0].EventRecords >= int(pol.CheckpointEvery)+500 || rec[0].EventRecords >= total/2 {
			t.Fatalf("restore read %d events of %d: not bounded by the checkpoint", rec[0].EventRecords, total)
		}
		if rec[0].Aggregates != aggs {
			t.Fatalf("restored %d aggregates, want %d", rec[0].Aggregates, aggs)
		}
	})
}

// TestCommitIntervalGathersBatches checks that CommitInterval puts many commands in one
// transaction, and that the metrics say so.
func TestCommitIntervalGathersBatches(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	r := newRig(t, c, 2)
	reg := prometheus.NewRegistry()
	r.startOn(r.kastor(cluster.Registerer(reg)), r.config(func(cfg *gateway.Config[account, command, kastor.Event]) {
		cfg.CommitInterval = 300 * time.Millisecond
		cfg.MaxBatch = 1000
	}))
	r.send("acct", "open", openAccount{}) // the gateway is up
	const n = 60
	for i := range n {
		r.submit("acct", fmt.Sprintf("d%d", i), deposit{1})
	}
	for i := range n {
		if rep := r.reply(fmt.Sprintf("d%d", i)); rep.Status != gateway.StatusOK || rep.From != int64(i)+2 {
			t.Fatalf("d%d: %+v", i, rep)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var txns, commands float64
	for _, mf := range mfs {
		switch mf.GetName() {
		case "kastor_gateway_batch_commands":
			txns = float64(mf.GetMetric()[0].GetHistogram().GetSampleCount())
			commands = mf.GetMetric()[0].GetHistogram().GetSampleSum()
		}
	}
	for deadline := time.Now().Add(10 * time.Second); commands != n+1 && time.Now().Before(deadline); {
		// The metrics are updated just after the commit that made the replies visible.
		time.Sleep(10 * time.Millisecond)
		mfs, _ = reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "kastor_gateway_batch_commands" {
				txns = float64(mf.GetMetric()[0].GetHistogram().GetSampleCount())
				commands = mf.GetMetric()[0].GetHistogram().GetSampleSum()
			}
		}
	}
	if commands != n+1 || txns > 10 {
		t.Fatalf("%v commands in %v transactions: CommitInterval did not gather batches", commands, txns)
	}
}

func TestRequestSnapshot(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	r := newRig(t, c, 2)
	g, _ := r.start(r.config())
	r.send("acct", "open", openAccount{})
	r.send("acct", "d1", deposit{5})
	if err := g.RequestSnapshot("acct"); err != nil {
		t.Fatal(err)
	}
	r.send("acct", "d2", deposit{6}) // the snapshot goes with the shard's next transaction
	snaps, _ := r.snapshotsIn(producer.PartitionFor([]byte("acct"), 2))
	rec, ok := snaps["acct"]
	if !ok || rec.Version != 3 || len(rec.Commands) != 3 || rec.Commands[2].ID != "d2" {
		t.Fatalf("snapshot of acct: %+v (found %v), want version 3 with the last three command IDs", rec, ok)
	}
	st, err := stateCodec.Decode(kastor.Encoded{Type: rec.StateType, Fingerprint: rec.StateFingerprint, Data: rec.State})
	if err != nil || st.Balance != 11 {
		t.Fatalf("snapshot state %+v, %v; want balance 11", st, err)
	}
}

// TestUndecodableSnapshotFallsBackToEvents: a snapshot whose state no longer decodes is a
// cache miss; the aggregate is rebuilt from its events.
func TestUndecodableSnapshotFallsBackToEvents(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 1)
		g, stop := r.start(r.config())
		r.send("acct", "open", openAccount{})
		r.send("acct", "d1", deposit{10})
		if err := g.RequestSnapshot("acct"); err != nil {
			t.Fatal(err)
		}
		r.send("acct", "d2", deposit{5})
		stop()

		snaps, _ := r.snapshotsIn(0)
		rec, ok := snaps["acct"]
		if !ok {
			t.Fatal("no snapshot of acct")
		}
		rec.State = []byte("{not the state schema")
		kr, err := rec.KafkaRecord(r.snapshots, 0)
		if err != nil {
			t.Fatal(err)
		}
		r.produce(kr)

		r.start(r.config())
		if rep := r.send("acct", "w1", withdraw{15}); rep.Status != gateway.StatusOK || rep.From != 4 {
			t.Fatalf("withdraw 15 after a bad snapshot: %+v, want OK at version 4", rep)
		}
		if rep := r.send("acct", "w2", withdraw{1}); rep.Status != gateway.StatusRejected {
			t.Fatalf("withdraw from an empty account: %+v", rep)
		}
		if rep := r.send("acct", "d1", deposit{10}); rep.Status != gateway.StatusDuplicate {
			t.Fatalf("dedupe window lost in the replay: %+v", rep)
		}
	})
}

// TestUnknownTransactionOutcome: a transaction that committed but whose End reported an
// error (a lost EndTxn response) is not handled again over states that lack it. The
// gateway rejoins and restores its shards from Kafka: the next command continues the
// versions, and the command in doubt is known as already applied.
func TestUnknownTransactionOutcome(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 2)
		g, _ := r.start(r.config())
		if rep := r.send("acct", "open", openAccount{}); rep.Status != gateway.StatusOK {
			t.Fatalf("open: %+v", rep)
		}
		g.LoseEndResponses(1)
		// Committed, so its reply (written in the same transaction) arrives.
		if rep := r.send("acct", "d1", deposit{10}); rep.Status != gateway.StatusOK || rep.From != 2 {
			t.Fatalf("deposit in doubt: %+v", rep)
		}
		if rep := r.send("acct", "d2", deposit{5}); rep.Status != gateway.StatusOK || rep.From != 3 || rep.To != 3 {
			t.Fatalf("deposit after the transaction in doubt: %+v, want OK 3..3", rep)
		}
		if rep := r.send("acct", "d1", deposit{10}); rep.Status != gateway.StatusDuplicate || rep.From != 2 {
			t.Fatalf("re-sent command in doubt: %+v, want DUPLICATE 2..2", rep)
		}
		if rep := r.send("acct", "w", withdraw{15}); rep.Status != gateway.StatusOK || rep.From != 4 {
			t.Fatalf("withdraw the whole balance: %+v", rep)
		}
		if n := len(r.eventsOf()["acct"]); n != 4 {
			t.Fatalf("%d events, want 4", n)
		}
	})
}
