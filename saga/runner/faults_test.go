package runner_test

// Fault tests drive the transfer service in real processes: the test binary re-executes
// itself with KASTOR_SAGA_CHILD set, and the child runs what the transfer example runs in
// one process (the accounts' and the requests' gateways, the saga's router and runner),
// over the test domain's bank and transfer, with the library's defaults, until SIGTERM. The parent sends a stream of transfers,
// kills (SIGKILL), stops (SIGSTOP) and resumes children, or a broker, then reads every
// topic back with a plain read_committed client.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
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
	"github.com/kastor-dev/kastor/internal/testdomain/transfer"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/saga"
	"github.com/kastor-dev/kastor/saga/runner"
	"github.com/kastor-dev/kastor/topics"
)

const childEnv = "KASTOR_SAGA_CHILD"

// stepTimeout is each transfer step's timeout in the fault tests; the orchestrator's
// Skew is its default (saga.DefaultSkew).
const stepTimeout = 10 * time.Second

// codecs are the transfer service's codecs, as the transfer example builds them.
type codecs struct {
	accounts *bank.Codecs
	requests kastor.Codecs[transfer.RequestState, transfer.Request, kastor.Event]
	states   kastor.Codec[progress]
}

func newCodecs() (*codecs, error) {
	accounts, err := bank.NewCodecs(nil)
	if err != nil {
		return nil, err
	}
	tc, err := transfer.NewCodecs(nil)
	if err != nil {
		return nil, err
	}
	return &codecs{accounts: accounts, requests: tc.Requests, states: tc.Progress}, nil
}

// runChild runs the transfer service until SIGTERM: the accounts' and the requests'
// gateways and the saga runner (router included), each with the library's defaults.
func runChild() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "child:", err); return 2 }
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	instance := os.Getenv("CHILD_INSTANCE")
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(os.Getenv("CHILD_BROKERS"), ",")...))
	if err != nil {
		return fail(err)
	}
	defer cl.Close()
	c, err := cluster.New(cl, os.Getenv("CHILD_NS"), cluster.Logger(logger))
	if err != nil {
		return fail(err)
	}
	cs, err := newCodecs()
	if err != nil {
		return fail(err)
	}
	ga, err := gateway.New(c, gateway.Config[bank.State, bank.Command, kastor.Event]{
		Aggregate: bank.Aggregate, Commands: cs.accounts.Commands, Events: cs.accounts.Events, States: cs.accounts.States,
		InstanceID: instance + "-accounts",
	})
	if err != nil {
		return fail(err)
	}
	rcfg := gateway.ConfigFor(transfer.Aggregate, cs.requests)
	rcfg.InstanceID = instance + "-requests"
	gr, err := gateway.New(c, rcfg)
	if err != nil {
		return fail(err)
	}
	def, err := transfer.Saga(stepTimeout, 0)
	if err != nil {
		return fail(err)
	}
	scfg := runner.ConfigFor(def, cs.states, cs.requests.Events,
		map[string]kastor.Codec[bank.Command]{bank.Type: cs.accounts.Commands}, transfer.RequestType)
	scfg.InstanceID = instance
	rn, err := runner.New(c, scfg)
	if err != nil {
		return fail(err)
	}
	errs := make(chan error, 3)
	for _, run := range []func(context.Context) error{ga.Run, gr.Run, rn.Run} {
		go func() { errs <- run(ctx) }()
	}
	code := 0
	for range 3 {
		if err := <-errs; err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			code = 1
			stop()
		}
	}
	return code
}

// faultRig is one fault test's service: its namespace, topics and children.
type faultRig struct {
	t      *testing.T
	kc     *kafkatest.Cluster
	c      *cluster.Cluster
	cs     *codecs
	acct   *gateway.Sender[bank.Command]
	reqs   *gateway.Sender[transfer.Request]
	states *stateTracker
}

func newFaultRig(t *testing.T, kc *kafkatest.Cluster, replication int) *faultRig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var b [3]byte
	_, _ = rand.Read(b[:])
	ns := "sagafault-" + hex.EncodeToString(b[:])
	c := kc.Kastor(t, ns, cluster.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	minISR := max(replication-1, 1)
	file := fmt.Sprintf(`{namespace: %s, defaults: {partitions: 6, replicationFactor: %d, minInsyncReplicas: %d},
	  aggregates: [{type: bank.account}, {type: bank.transfer-request}], sagas: [{type: bank.transfer}],
	  schemas: {replicationFactor: %d}}`, ns, replication, minISR, replication)
	if _, err := topics.ApplyYAML(ctx, c.Admin(), []byte(file), topics.Options{}); err != nil {
		t.Fatal(err)
	}
	cs, err := newCodecs()
	if err != nil {
		t.Fatal(err)
	}
	r := &faultRig{t: t, kc: kc, c: c, cs: cs}
	if r.acct, err = gateway.NewSender(ctx, c, gateway.SenderConfig[bank.Command]{AggregateType: bank.Type, Commands: cs.accounts.Commands}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.acct.Close)
	if r.reqs, err = gateway.NewSender(ctx, c, gateway.SenderConfigFor(transfer.Aggregate, cs.requests)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.reqs.Close)
	r.states = r.trackStates()
	return r
}

// proc is one child process.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// spawn starts a child named name.
func (r *faultRig) spawn(name string) *proc {
	r.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "CHILD_BROKERS="+strings.Join(r.kc.Brokers(), ","),
		"CHILD_NS="+r.c.Namespace(), "CHILD_INSTANCE="+name)
	p := &proc{name: name, cmd: cmd, out: &lockedBuffer{}}
	cmd.Stderr = p.out
	if dir := os.Getenv("SAGA_TEST_LOGDIR"); dir != "" {
		f, err := os.Create(fmt.Sprintf("%s/%s-%s.log", dir, r.t.Name(), name))
		if err != nil {
			r.t.Fatal(err)
		}
		r.t.Cleanup(func() { f.Close() })
		cmd.Stderr = io.MultiWriter(p.out, f)
	}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if r.t.Failed() || os.Getenv("SAGA_TEST_LOG") != "" {
			r.t.Logf("---- child %s ----\n%s", name, tailLines(p.out.String(), 60))
		}
	})
	return p
}

func (p *proc) signal(t *testing.T, s syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		t.Fatalf("%s: signal %v: %v", p.name, s, err)
	}
}

// awaitLog waits until the child's log has a line with every word of one of alts.
func (p *proc) awaitLog(t *testing.T, timeout time.Duration, alts ...[]string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		sc := bufio.NewScanner(strings.NewReader(p.out.String()))
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			for _, words := range alts {
				all := true
				for _, w := range words {
					all = all && strings.Contains(sc.Text(), w)
				}
				if all {
					return sc.Text()
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no log line with %v within %v", p.name, alts, timeout)
		}
		time.Sleep(50 * time.Millisecond) // polls a log, which has no offset to await
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stateTracker follows the state topic, read_committed, and keeps each instance's
// latest record.
type stateTracker struct {
	mu      sync.Mutex
	latest  map[string]saga.Instance[progress]
	changed chan struct{} // closed and replaced on every change
	err     error
}

func (r *faultRig) trackStates() *stateTracker {
	st := &stateTracker{latest: map[string]saga.Instance[progress]{}, changed: make(chan struct{})}
	cl, err := r.c.NewClient(kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeTopics(topics.SagaTopicName(r.c.Namespace(), transfer.SagaType, topics.RoleSagaState)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	r.t.Cleanup(func() { cancel(); <-done; cl.Close() })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			n := 0
			fs.EachRecord(func(rec *kgo.Record) {
				ir, ok, err := runner.DecodeStateRecord(rec)
				if err == nil && ok {
					var inst saga.Instance[progress]
					if inst, err = runner.DecodeInstance(ir, r.cs.states); err == nil {
						st.mu.Lock()
						st.latest[inst.ID] = inst
						st.mu.Unlock()
						n++
					}
				}
				if err != nil {
					st.mu.Lock()
					st.err = errors.Join(st.err, fmt.Errorf("state record %d/%d: %w", rec.Partition, rec.Offset, err))
					st.mu.Unlock()
				}
			})
			if n > 0 {
				st.mu.Lock()
				close(st.changed)
				st.changed = make(chan struct{})
				st.mu.Unlock()
			}
		}
	}()
	return st
}

// finished counts the finished instances (done or stuck) among ids (nil: all).
func (st *stateTracker) finished(ids []string) (n int, ch <-chan struct{}) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if ids == nil {
		for _, inst := range st.latest {
			if finished(inst) {
				n++
			}
		}
	}
	for _, id := range ids {
		if inst, ok := st.latest[id]; ok && finished(inst) {
			n++
		}
	}
	return n, st.changed
}

// await waits until at least n of ids (nil: any instance) are finished.
func (st *stateTracker) await(t *testing.T, ids []string, n int, timeout time.Duration, what string) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		got, ch := st.finished(ids)
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s: %d transfers finished within %v, want %d", what, got, timeout, n)
		}
	}
}

// transferLoad sends transfers between accounts from a few workers, each waiting for its
// request's acknowledgement (re-sending it under the same ID after a timeout) before the
// next.
type transferLoad struct {
	mu     sync.Mutex
	ids    []string
	stop   chan struct{}
	wg     sync.WaitGroup
	errors []error
}

func (r *faultRig) runTransfers(accounts []string, workers int) *transferLoad {
	l := &transferLoad{stop: make(chan struct{})}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rnd := mrand.New(mrand.NewPCG(uint64(w), 16))
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				from := accounts[rnd.IntN(len(accounts))]
				to := accounts[rnd.IntN(len(accounts))]
				for to == from {
					to = accounts[rnd.IntN(len(accounts))]
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				cmd := kastor.NewCommand(id, transfer.Request{From: from, To: to, Amount: int64(1 + rnd.IntN(50))})
				cmd.ID = "request-" + id // re-sent under the same ID: executed once (W4)
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_, err := r.reqs.Send(ctx, cmd)
					cancel()
					if err == nil {
						break
					}
					if !errors.Is(err, kastor.ErrTimeout) && !errors.Is(err, kastor.ErrExpired) {
						l.mu.Lock()
						l.errors = append(l.errors, fmt.Errorf("transfer %s: %w", id, err))
						l.mu.Unlock()
						return
					}
				}
				l.mu.Lock()
				l.ids = append(l.ids, id)
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// halt stops the load and returns the transfers it requested.
func (l *transferLoad) halt(t *testing.T) []string {
	t.Helper()
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := errors.Join(l.errors...); err != nil {
		t.Fatal(err)
	}
	return append([]string(nil), l.ids...)
}

const initialBalance = 100000

// openAccounts opens the accounts, each with initialBalance, through the children's
// gateways.
func (r *faultRig) openAccounts(n int) []string {
	r.t.Helper()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("acct-%d", i)
		ids = append(ids, id)
		open := kastor.NewCommand[bank.Command](id, bank.Open{Owner: id})
		deposit := kastor.NewCommand[bank.Command](id, bank.Deposit{Amount: initialBalance})
		open.ID, deposit.ID = "open-"+id, "deposit-"+id // the same IDs when re-sent
		for _, c := range []kastor.Command[bank.Command]{open, deposit} {
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := r.acct.Send(ctx, c)
				cancel()
				if err == nil {
					break
				}
				if !errors.Is(err, kastor.ErrTimeout) && !errors.Is(err, kastor.ErrExpired) {
					r.t.Fatalf("%s: %v", c.ID, err)
				}
			}
		}
	}
	return ids
}

// finish waits until every transfer is finished, then checks the topics: checkSaga
// (versions contiguous, each command once and only for a committed version, each
// executed once, the balances the transfers' final states imply, nothing parked), no
// transfer stuck, and no record committed by a fenced producer (checkEpochs).
func (r *faultRig) finish(ids []string, accounts []string) {
	t := r.t
	t.Helper()
	r.states.await(t, ids, len(ids), 3*time.Minute, "after the load")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	want := map[string]int64{}
	for _, a := range accounts {
		want[a] = initialBalance
	}
	completed, compensated := 0, 0
	r.states.mu.Lock()
	for _, id := range ids {
		inst := r.states.latest[id]
		switch {
		case inst.State.Stuck != "":
			t.Errorf("transfer %s stuck: %s", id, inst.State.Stuck)
		case inst.State.Failed:
			compensated++
		default:
			completed++
			d := inst.State.Data
			want[d.From] -= d.Amount
			want[d.To] += d.Amount
		}
	}
	err := r.states.err
	r.states.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d transfers: %d completed, %d compensated", len(ids), completed, compensated)
	checkSaga(ctx, t, r.c, r.cs.accounts, want, ids...)
	ns := r.c.Namespace()
	for _, topic := range []string{
		topics.SagaTopicName(ns, transfer.SagaType, topics.RoleSagaState),
		topics.SagaTopicName(ns, transfer.SagaType, topics.RoleSagaInputs),
		topics.TopicName(ns, bank.Type, topics.RoleCommands),
		topics.TopicName(ns, bank.Type, topics.RoleEvents),
	} {
		checkEpochs(t, topic, readAll(ctx, t, r.c, topic))
	}
}

// checkEpochs fails when a committed record of a partition was written by a producer
// with a lower epoch than an earlier committed record of the same producer ID: a write
// by a producer after it was fenced (each fence bumps the transactional ID's epoch).
func checkEpochs(t *testing.T, topic string, recs []*kgo.Record) {
	t.Helper()
	type key struct {
		p  int32
		id int64
	}
	top := map[key]int16{}
	for _, rec := range recs {
		k := key{rec.Partition, rec.ProducerID}
		if e, ok := top[k]; ok && rec.ProducerEpoch < e {
			t.Fatalf("%s partition %d offset %d: committed by producer %d epoch %d after epoch %d wrote: a fenced producer's write",
				topic, rec.Partition, rec.Offset, rec.ProducerID, rec.ProducerEpoch, e)
		}
		top[k] = max(top[k], rec.ProducerEpoch)
	}
}

// TestFaultRunnerKilled: two processes serve a stream of transfers; one is killed with
// SIGKILL (its runner, router and gateways with it) and replaced by a new process.
func TestFaultRunnerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	r := newFaultRig(t, kafka.Get(t), 1)
	a := r.spawn("a")
	r.spawn("b")
	accounts := r.openAccounts(8)
	l := r.runTransfers(accounts, 3)
	r.states.await(t, nil, 20, 2*time.Minute, "before the kill")

	a.signal(t, syscall.SIGKILL)
	_ = a.cmd.Wait()
	n, _ := r.states.finished(nil)
	r.spawn("c")
	r.states.await(t, nil, n+40, 2*time.Minute, "after the kill")
	r.finish(l.halt(t), accounts)
}

// TestFaultZombieRunner: a process stopped with SIGSTOP past its session timeout, while
// the other takes its partitions and goes on, then resumed (SIGCONT): it must find it
// lost its partitions (or have its transactions refused) and commit nothing.
func TestFaultZombieRunner(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	r := newFaultRig(t, kafka.Get(t), 1)
	a := r.spawn("a")
	r.spawn("b")
	accounts := r.openAccounts(8)
	l := r.runTransfers(accounts, 3)
	a.awaitLog(t, time.Minute, []string{"saga partition restored"})
	r.states.await(t, nil, 20, 2*time.Minute, "before the stop")

	a.signal(t, syscall.SIGSTOP)
	stopped := time.Now()
	n, _ := r.states.finished(nil)
	// b finishes transfers only once the groups have dropped a (the 6 s session) and b
	// has restored a's partitions: every transfer goes through both gateways and the
	// runner, and each process owned about half of their partitions.
	r.states.await(t, nil, n+40, 2*time.Minute, "while a is stopped")
	if d := time.Since(stopped); d < 6*time.Second {
		t.Logf("progress %v after the stop: a owned none of the partitions these transfers used", d)
	}
	a.signal(t, syscall.SIGCONT)
	line := a.awaitLog(t, time.Minute, []string{"kastor.saga", "partitions lost"}, []string{"kastor.saga", "rejoining"})
	t.Logf("the resumed runner: %s", line)
	n, _ = r.states.finished(nil)
	r.states.await(t, nil, n+40, 2*time.Minute, "after a resumed")
	r.finish(l.halt(t), accounts)
}

// TestFaultBrokerKilled: on three brokers (replication 3, min.insync.replicas 2), one is
// killed under load and restarted.
func TestFaultBrokerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test with a 3-node cluster")
	}
	kc := kafkatest.Start(t, kafkatest.Nodes(3))
	if kc.Backend() != kafkatest.Containers {
		t.Skip("needs a cluster whose nodes the harness controls")
	}
	r := newFaultRig(t, kc, 3)
	r.spawn("a")
	r.spawn("b")
	accounts := r.openAccounts(8)
	l := r.runTransfers(accounts, 3)
	r.states.await(t, nil, 20, 2*time.Minute, "before the broker's kill")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The leader of the state topic's partition 0: a broker the runners write to.
	victim, err := kc.LeaderOf(ctx, topics.SagaTopicName(r.c.Namespace(), transfer.SagaType, topics.RoleSagaState), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := kc.KillNode(ctx, victim); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	n, _ := r.states.finished(nil)
	r.states.await(t, nil, n+40, 2*time.Minute, "with a broker down")
	t.Logf("node %d killed: 40 more transfers finished %v after", victim, time.Since(killed).Round(time.Millisecond))
	if err := kc.StartNode(ctx, victim); err != nil {
		t.Fatal(err)
	}
	n, _ = r.states.finished(nil)
	r.states.await(t, nil, n+40, 2*time.Minute, "after the broker's restart")
	r.finish(l.halt(t), accounts)
}
