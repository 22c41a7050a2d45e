package gateway_test

// Fault tests drive gateways in real processes: the test binary re-executes itself with
// KASTOR_GATEWAY_CHILD set, and the child runs one gateway until SIGTERM. The parent can
// SIGSTOP, SIGCONT and SIGKILL it like any process.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/schema"
	"github.com/kastor-dev/kastor/wire"
)

const childEnv = "KASTOR_GATEWAY_CHILD"

func runChild() int {
	brokers := strings.Split(os.Getenv("CHILD_BROKERS"), ",")
	ns := os.Getenv("CHILD_NS")
	delay, _ := time.ParseDuration(os.Getenv("CHILD_DELAY"))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The child connects as a service does: one client, one cluster.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer cl.Close()
	c, err := cluster.New(cl, ns, cluster.Logger(logger))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if os.Getenv("CHILD_DOMAIN") == "bank" {
		return runBankChild(ctx, c, os.Getenv("CHILD_INSTANCE"))
	}
	cfg := gateway.Config[account, command, kastor.Event]{
		Aggregate: bankAggregate(),
		Commands:  commandCodec, Events: eventCodec, States: stateCodec,
		InstanceID: os.Getenv("CHILD_INSTANCE"),
		MaxBatch:   20, // the library's session and transaction timeouts: what users run
		// Static membership is the default; CHILD_DYNAMIC opts out.
		DynamicMembership: os.Getenv("CHILD_DYNAMIC") != "",
	}
	if delay > 0 {
		// Slow handling keeps the child inside a transaction most of the time, so a stop
		// lands mid-transaction.
		cfg.Interceptors = []gateway.Interceptor[command]{func(context.Context, kastor.Command[command]) error {
			time.Sleep(delay)
			return nil
		}}
	}
	g, err := gateway.New(c, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if hold, _ := time.ParseDuration(os.Getenv("CHILD_HOLD")); hold > 0 {
		g.HoldBeforeEnd(hold)
	}
	if err := g.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		return 1
	}
	return 0
}

// runBankChild runs a gateway of the bank account (internal/testdomain/bank: its domain and
// Avro codecs, schemas published first) as the bank example's gateway process does.
func runBankChild(ctx context.Context, c *cluster.Cluster, instance string) int {
	codecs, err := bank.NewCodecs(nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := schema.Publish(ctx, c.Client(), codecs.Registry, bank.Schemas()...); err != nil {
		fmt.Fprintln(os.Stderr, "publish schemas:", err)
		return 2
	}
	g, err := gateway.New(c, gateway.Config[bank.State, bank.Command, kastor.Event]{
		Aggregate: bank.Aggregate,
		Commands:  codecs.Commands, Events: codecs.Events, States: codecs.States,
		InstanceID: instance, MaxBatch: 50, // the library's timeouts: what users run
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := g.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		return 1
	}
	return 0
}

type child struct {
	cmd *exec.Cmd
	out *strings.Builder
}

func (r *rig) spawn(instance string, delay time.Duration, env ...string) *child {
	r.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "CHILD_BROKERS="+strings.Join(r.c.Brokers(), ","),
		"CHILD_NS="+r.ns, "CHILD_INSTANCE="+instance, "CHILD_DELAY="+delay.String())
	cmd.Env = append(cmd.Env, env...)
	out := &strings.Builder{}
	cmd.Stderr = &lockedWriter{w: out}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	ch := &child{cmd: cmd, out: out}
	r.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if r.t.Failed() {
			r.t.Logf("child %s stderr:\n%s", instance, out.String())
		}
	})
	return ch
}

func (c *child) signal(t *testing.T, s syscall.Signal) {
	t.Helper()
	if err := c.cmd.Process.Signal(s); err != nil {
		t.Fatalf("signal %v: %v", s, err)
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// load sends deposits of 1 to n accounts, one command in flight per account, and records
// every acknowledged (OK) reply until stop is closed.
type load struct {
	mu    sync.Mutex
	acked map[string]gateway.Reply // by command ID
	done  sync.WaitGroup           // the load's goroutines
}

func (r *rig) runLoad(t *testing.T, accounts int, stop <-chan struct{}) *load {
	l := &load{acked: map[string]gateway.Reply{}}
	// Open the accounts first, through whichever gateway runs.
	for i := range accounts {
		if rep := r.send(fmt.Sprintf("acct-%d", i), fmt.Sprintf("open-%d", i), openAccount{}); rep.Status != gateway.StatusOK {
			t.Fatalf("open: %+v", rep)
		}
	}
	replies := r.c.Client(t, kgo.ConsumeTopics(r.replies), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	l.done.Add(2)
	go func() {
		defer l.done.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			fs := replies.PollFetches(ctx)
			cancel()
			fs.EachRecord(func(rec *kgo.Record) {
				rep, err := gateway.DecodeReply(rec.Value)
				if err == nil && rep.Status == gateway.StatusOK {
					l.mu.Lock()
					l.acked[rep.CommandID] = rep
					l.mu.Unlock()
				}
			})
		}
	}()
	go func() {
		defer l.done.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			acct := fmt.Sprintf("acct-%d", i%accounts)
			enc, _ := commandCodec.Encode(deposit{1})
			md := kastor.Metadata{AggregateID: acct, CommandID: fmt.Sprintf("d-%d", i), Type: enc.Type, Fingerprint: enc.Fingerprint}
			hs := wire.Headers(&md)
			hs = append(hs, kgo.RecordHeader{Key: wire.HeaderReplyTo, Value: []byte(callerID)})
			r.cl.Produce(context.Background(), &kgo.Record{Topic: r.commands, Partition: producer.PartitionFor([]byte(acct), r.partitions),
				Key: []byte(acct), Value: enc.Data, Headers: hs}, nil)
		}
	}()
	return l
}

func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// waitAcked waits until the load has more than n acknowledged commands.
func (l *load) waitAcked(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for l.count() <= n {
		if time.Now().After(deadline) {
			t.Fatalf("no progress: %d acknowledged commands after %v, want more than %d", l.count(), timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkAcked verifies every acknowledged command's events are present exactly once, with
// the versions its reply gave. The load must be stopped: its replies are all counted
// before the events are read, so every acknowledged command committed before the read.
func (r *rig) checkAcked(t *testing.T, l *load) {
	l.done.Wait()
	evs := r.eventsOf() // also checks versions are contiguous per aggregate
	byCmd := map[string][]int64{}
	for _, list := range evs {
		for _, md := range list {
			byCmd[md.CommandID] = append(byCmd[md.CommandID], md.Version)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, rep := range l.acked {
		got := byCmd[id]
		if len(got) != 1 || got[0] != rep.From {
			t.Fatalf("acknowledged command %s (version %d): events with versions %v", id, rep.From, got)
		}
	}
	for id, vs := range byCmd {
		if len(vs) != 1 && !strings.HasPrefix(id, "open-") {
			t.Fatalf("command %s has %d events: applied more than once", id, len(vs))
		}
	}
}

// TestW1PausedWriterCannotCommit stops a gateway with SIGSTOP in the middle of its work,
// past its session timeout, lets a second gateway take its shards, then resumes the first:
// nothing the paused one had in flight may become visible. Every acknowledged command's
// event is present exactly once and every account's versions are contiguous, so a
// commit by the paused writer (which would repeat versions the new owner wrote) fails it.
func TestW1PausedWriterCannotCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	c := realKafka.Get(t)
	r := newRig(t, c, 2)
	a := r.spawn("a", 3*time.Millisecond)
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopLoad := func() { stopOnce.Do(func() { close(stop) }) }
	defer stopLoad()
	l := r.runLoad(t, 6, stop)
	l.waitAcked(t, 200, time.Minute)

	a.signal(t, syscall.SIGSTOP)
	stoppedAt := l.count()
	r.spawn("b", 0)
	// b makes progress only once the group has dropped a (session timeout) and b has
	// restored the shards.
	l.waitAcked(t, stoppedAt+200, 2*time.Minute)
	a.signal(t, syscall.SIGCONT)
	// a now finds it lost its shards and tries to finish what it had in flight, while b
	// keeps writing.
	l.waitAcked(t, l.count()+300, time.Minute)
	stopLoad()

	r.checkAcked(t, l)
	aborted := r.abortedRecords(t)
	t.Logf("acknowledged %d commands; %d event records aborted", l.count(), aborted)
	if aborted == 0 {
		t.Fatal("no event record was aborted: the paused gateway was not stopped inside a transaction, so the test proved nothing")
	}
}

// abortedRecords counts data records of the events topic that read_uncommitted returns and
// read_committed does not.
func (r *rig) abortedRecords(t *testing.T) int {
	committed := r.positions(t, kgo.ReadCommitted())
	all := r.positions(t, kgo.ReadUncommitted())
	n := 0
	for pos := range all {
		if !committed[pos] {
			n++
		}
	}
	return n
}

// positions returns the (partition, offset) of every data record in the events topic.
func (r *rig) positions(t *testing.T, iso kgo.IsolationLevel) map[[2]int64]bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ends, err := r.c.Admin().ListEndOffsets(ctx, r.events)
	if err != nil {
		t.Fatal(err)
	}
	out := map[[2]int64]bool{}
	for p := range r.partitions {
		end, _ := ends.Lookup(r.events, p)
		if end.Offset == 0 {
			continue
		}
		cl := r.c.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.events: {p: kgo.NewOffset().AtStart()}}),
			kgo.FetchIsolationLevel(iso), kgo.KeepControlRecords())
		for done := false; !done; {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("reading events partition %d: %v", p, ctx.Err())
			}
			fs.EachRecord(func(rec *kgo.Record) {
				if rec.Offset+1 >= end.Offset {
					done = true
				}
				if !rec.Attrs.IsControl() {
					out[[2]int64{int64(p), rec.Offset}] = true
				}
			})
		}
		cl.Close()
	}
	return out
}
