package consumer_test

// The Kafka table's exactly-once proof runs the projection in a real process: the test
// binary re-executes itself with KASTOR_TABLE_CHILD set, and the child runs a reader with
// a KafkaTable until SIGTERM. The parent SIGKILLs it at random moments under load.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/kafkatest"
)

const tableChildEnv = "KASTOR_TABLE_CHILD"

// tableRows is the table of the tests: per aggregate, its last version; every event
// writes one row, so the output topic's committed records show each event's effect
// exactly once, in order. Version 3 of acc-0 deletes the row (a tombstone), and the
// next version writes it again.
func tableRows(ev kastor.Envelope[kastor.Event]) ([]consumer.TableWrite, error) {
	if ev.AggregateID == "acc-0" && ev.Version == 3 {
		return []consumer.TableWrite{{Key: []byte(ev.AggregateID), Delete: true}}, nil
	}
	return []consumer.TableWrite{{Key: []byte(ev.AggregateID), Value: []byte(strconv.FormatInt(ev.Version, 10))}}, nil
}

// runTableChild runs the projection process of TestKafkaTableKill.
func runTableChild() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ns, out := os.Getenv("CHILD_NS"), os.Getenv("CHILD_TABLE")
	tb, err := consumer.NewKafkaTable(out, ns+"-table-instance-0", tableRows)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(os.Getenv("CHILD_BROKERS"), ",")...))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer cl.Close()
	kc, err := cluster.New(cl, ns, cluster.Logger(quietLogger()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	rd, err := consumer.New(kc, consumer.Config[kastor.Event]{
		Name: projection, Version: 1, AggregateTypes: []string{"bank.account"},
		Events:         codecs.Events,
		MaxPollRecords: 50, // the reader's default session timeout: what users run
	}, consumer.Sink[kastor.Event](tb))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := rd.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "reader:", err)
		return 1
	}
	return 0
}

// A projection writing a Kafka table is SIGKILLed under load, at random moments, and
// restarted with the same transactional ID: afterwards the table (read back
// read_committed) equals the fold of the events topic, and the output topic's committed
// records hold every event's row exactly once, in version order.
func TestKafkaTableKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes against real Kafka")
	}
	t.Parallel()
	c := realKafka.Get(t)
	r := newRig(t, c, 3)
	out := r.NS + ".balances.table"
	c.CreateTopic(t, out, 3, 1, map[string]string{"cleanup.policy": "compact"})
	spawn := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), tableChildEnv+"=1", "CHILD_NS="+r.NS, "CHILD_TABLE="+out,
			"CHILD_BROKERS="+strings.Join(c.Brokers(), ","))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	const naggs = 20
	batch := func() { r.Write(r.Mix(40, naggs, func(int) int64 { return 1 })...) }
	child := spawn()
	for kill := range 3 {
		// Load: events keep coming while the child applies them; kill it at a random
		// moment, mid-transaction or not.
		deadline := time.Now().Add(time.Duration(500+rand.IntN(1500)) * time.Millisecond)
		for time.Now().Before(deadline) {
			batch()
		}
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = child.Wait()
		t.Logf("kill %d: child killed", kill+1)
		batch()
		child = spawn() // same transactional ID: fences the dead one's open transaction
	}
	for range 5 {
		batch()
	}
	// Wait until the group has committed the whole events topic, then stop the child.
	r.AwaitCommitted(consumer.GroupName(r.NS, projection, 1), r.Ends())
	_ = child.Process.Signal(syscall.SIGTERM)
	if err := child.Wait(); err != nil {
		t.Errorf("child: %v", err)
	}

	// The fold of the events topic, read back.
	want := map[string]string{}
	evs := readAll(t, c, r.Events)
	for _, rec := range evs {
		md, err := producerMetadata(rec)
		if err != nil {
			t.Fatal(err)
		}
		ws, _ := tableRows(kastor.Envelope[kastor.Event]{Metadata: md})
		for _, w := range ws {
			if w.Delete {
				delete(want, string(w.Key))
			} else {
				want[string(w.Key)] = string(w.Value)
			}
		}
	}
	got, err := consumer.ReadTable(testCtx(t), r.KC, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("table has %d rows, the fold %d", len(got), len(want))
	}
	for k, v := range want {
		if string(got[k]) != v {
			t.Errorf("row %s = %q, the fold says %q", k, got[k], v)
		}
	}
	// Exactly once: per aggregate, the committed rows are versions 1, 2, 3... with no
	// repeat and no gap (the tombstone standing for version 3 of acc-0).
	next := map[string]int64{}
	for _, rec := range readAll(t, c, out) {
		k := string(rec.Key)
		next[k]++
		if rec.Value == nil {
			if k != "acc-0" || next[k] != 3 {
				t.Fatalf("tombstone for %s at version %d", k, next[k])
			}
			continue
		}
		if v, _ := strconv.ParseInt(string(rec.Value), 10, 64); v != next[k] {
			t.Fatalf("row of %s: version %d after %d: an event applied twice or skipped", k, v, next[k]-1)
		}
	}
	var total int64
	for _, n := range next {
		total += n
	}
	if total != int64(len(evs)) {
		t.Errorf("%d committed rows for %d events", total, len(evs))
	}
	t.Logf("%d events, %d rows, 3 kills", len(evs), total)
}

// readAll reads a topic from the start to its last stable offsets, read_committed,
// without control records.
func readAll(t *testing.T, c *kafkatest.Cluster, topic string) []*kgo.Record {
	t.Helper()
	ctx := testCtx(t)
	ends, err := c.Admin().ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	cl := c.Client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []*kgo.Record
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v", topic, ctx.Err())
		}
		fs.EachRecord(func(rec *kgo.Record) {
			end, ok := want[rec.Partition]
			if !ok || rec.Offset >= end {
				return
			}
			if !rec.Attrs.IsControl() {
				out = append(out, rec)
			}
			if rec.Offset+1 >= end {
				delete(want, rec.Partition)
			}
		})
	}
	return out
}

// Two live instances with the same transactional ID: the second fences the first, whose
// Run returns a fencing error, and the table still holds each event exactly once.
func TestKafkaTableZombieFenced(t *testing.T) {
	t.Parallel()
	c := realKafka.Get(t)
	r := newRig(t, c, 3)
	out := r.NS + ".balances.table"
	c.CreateTopic(t, out, 3, 1, map[string]string{"cleanup.policy": "compact"})
	r.Write(r.Mix(100, 10, func(int) int64 { return 1 })...)
	newReader := func() *consumer.Reader[kastor.Event] {
		tb, err := consumer.NewKafkaTable(out, r.NS+"-same-id", tableRows)
		if err != nil {
			t.Fatal(err)
		}
		rd, err := consumer.New(r.KC, r.Config(func(c *consumer.Config[kastor.Event]) { c.MaxPollRecords = 10 }), consumer.Sink[kastor.Event](tb))
		if err != nil {
			t.Fatal(err)
		}
		return rd
	}
	zombie := newReader()
	zctx, zcancel := context.WithCancel(testCtx(t))
	defer zcancel()
	zdone := make(chan error, 1)
	go func() { zdone <- zombie.Run(zctx) }()
	waitCommittedSome(t, c, r)
	_, stop := r.Start(r.Config(func(c *consumer.Config[kastor.Event]) { c.MaxPollRecords = 10 }), newSinkSameID(t, r, out))
	r.Write(r.Mix(100, 10, func(int) int64 { return 1 })...)
	select {
	case err := <-zdone:
		if err == nil || !strings.Contains(err.Error(), "fenced") {
			t.Errorf("the zombie's Run returned %v, want a fencing error", err)
		}
		t.Logf("zombie: %v", err)
	case <-time.After(40 * time.Second):
		t.Fatal("the zombie was not fenced")
	}
	r.AwaitCommitted(consumer.GroupName(r.NS, projection, 1), r.Ends())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	next := map[string]int64{}
	for _, rec := range readAll(t, c, out) {
		k := string(rec.Key)
		next[k]++
		if rec.Value != nil {
			if v, _ := strconv.ParseInt(string(rec.Value), 10, 64); v != next[k] {
				t.Fatalf("row of %s: version %d after %d", k, v, next[k]-1)
			}
		}
	}
	var total int64
	for _, n := range next {
		total += n
	}
	if total != 200 {
		t.Errorf("%d committed rows for 200 events", total)
	}
}

func newSinkSameID(t *testing.T, r *rig, out string) consumer.Sink[kastor.Event] {
	tb, err := consumer.NewKafkaTable(out, r.NS+"-same-id", tableRows)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// waitCommittedSome waits until the group has committed offsets.
func waitCommittedSome(t *testing.T, c *kafkatest.Cluster, r *rig) {
	ctx := testCtx(t)
	for ctx.Err() == nil {
		offs, err := c.Admin().FetchOffsets(ctx, consumer.GroupName(r.NS, projection, 1))
		if err == nil && len(offs) > 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("nothing committed")
}
