package runner_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
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
	"github.com/kastor-dev/kastor/wire"
)

var kafka = kafkatest.NewShared()

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild()) // a process of a fault test (faults_test.go)
	}
	kafkatest.Main(m, kafka)
}

type progress = saga.Progress[transfer.Data]

// bed is one test's service: a namespace of its own on the cluster with the accounts'
// and the requests' gateways running, and what a saga runner needs.
type bed struct {
	t        *testing.T
	c        *cluster.Cluster
	accounts *bank.Codecs
	requests kastor.Codecs[transfer.RequestState, transfer.Request, kastor.Event]
	states   kastor.Codec[progress]
	def      *saga.Definition[progress, bank.Command, kastor.Event]
	acct     *gateway.Sender[bank.Command]
	reqs     *gateway.Sender[transfer.Request]
	stall    *stall
	frozen   *frozen
	logger   *slog.Logger
}

func newBed(t *testing.T, kc *kafkatest.Cluster, timeout time.Duration, opts ...cluster.Option) *bed {
	t.Helper()
	ctx := context.Background()
	var b [3]byte
	_, _ = rand.Read(b[:])
	ns := "sagatest-" + hex.EncodeToString(b[:])
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("SAGA_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	c := kc.Kastor(t, ns, append([]cluster.Option{cluster.Logger(logger)}, opts...)...)
	file := fmt.Sprintf(`{namespace: %s, defaults: {partitions: 3, replicationFactor: 1, minInsyncReplicas: 1},
	  aggregates: [{type: bank.account}, {type: bank.transfer-request}], sagas: [{type: bank.transfer}],
	  schemas: {replicationFactor: 1}}`, ns)
	if _, err := topics.ApplyYAML(ctx, c.Admin(), []byte(file), topics.Options{}); err != nil {
		t.Fatal(err)
	}
	accounts, err := bank.NewCodecs(nil)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := transfer.NewCodecs(nil)
	if err != nil {
		t.Fatal(err)
	}
	requests := tc.Requests
	def, err := transfer.Saga(timeout, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	bd := &bed{t: t, c: c, accounts: accounts, requests: requests, states: tc.Progress, def: def,
		stall: &stall{release: make(chan struct{})}, frozen: &frozen{}, logger: logger}

	gctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { stop(); wg.Wait() })
	ga, err := gateway.New(c, gateway.Config[bank.State, bank.Command, kastor.Event]{
		Aggregate: bank.Refusing(bd.frozen.refuse), Commands: accounts.Commands, Events: accounts.Events, States: accounts.States,
		Listeners: []gateway.Listener[kastor.Event]{bd.stall.listen},
	})
	if err != nil {
		t.Fatal(err)
	}
	gr, err := gateway.New(c, gateway.ConfigFor(transfer.Aggregate, requests))
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range []func(context.Context) error{ga.Run, gr.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(gctx); err != nil {
				t.Errorf("gateway: %v", err)
			}
		}()
	}
	if bd.acct, err = gateway.NewSender(ctx, c, gateway.SenderConfig[bank.Command]{AggregateType: bank.Type, Commands: accounts.Commands}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bd.acct.Close)
	if bd.reqs, err = gateway.NewSender(ctx, c, gateway.SenderConfigFor(transfer.Aggregate, requests)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bd.reqs.Close)
	return bd
}

// runner returns a saga runner of the bed, not started.
func (b *bed) runner() *runner.Runner[progress, bank.Command, kastor.Event] {
	b.t.Helper()
	rn, err := runner.New(b.c, runner.ConfigFor(b.def, b.states, b.requests.Events,
		map[string]kastor.Codec[bank.Command]{bank.Type: b.accounts.Commands}, transfer.RequestType))
	if err != nil {
		b.t.Fatal(err)
	}
	return rn
}

// start runs rn until the returned stop is called, which returns Run's error; wait
// returns it once Run returns by itself.
func (b *bed) start(rn *runner.Runner[progress, bank.Command, kastor.Event]) (stop, wait func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rn.Run(ctx) }()
	var once sync.Once
	var err error
	wait = func() error {
		once.Do(func() { err = <-done })
		return err
	}
	stop = func() error { cancel(); return wait() }
	b.t.Cleanup(func() { _ = stop() })
	return stop, wait
}

func (b *bed) open(ctx context.Context, id string, deposit int64) {
	b.t.Helper()
	if _, err := b.acct.Send(ctx, kastor.NewCommand[bank.Command](id, bank.Open{Owner: id})); err != nil {
		b.t.Fatal(err)
	}
	if deposit > 0 {
		if _, err := b.acct.Send(ctx, kastor.NewCommand[bank.Command](id, bank.Deposit{Amount: deposit})); err != nil {
			b.t.Fatal(err)
		}
	}
}

func (b *bed) request(ctx context.Context, id, from, to string, amount int64) {
	b.t.Helper()
	if _, err := b.reqs.Send(ctx, kastor.NewCommand(id, transfer.Request{From: from, To: to, Amount: amount})); err != nil {
		b.t.Fatal(err)
	}
}

func finished(i saga.Instance[progress]) bool { return i.Done || i.State.Stuck != "" }

// TestTransfers runs a transfer that completes, one whose credit is refused (the source
// is refunded) and one whose credit gets no outcome: the gateway is held after the debit,
// the credit's deadline fires with no input and the saga refunds. Then it reads the
// topics back (check).
func TestTransfers(t *testing.T) {
	kafka.Backends(t, func(t *testing.T, kc *kafkatest.Cluster) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		b := newBed(t, kc, 2*time.Second)
		rn := b.runner()
		_, _ = b.start(rn)
		b.open(ctx, "alice", 100)
		b.open(ctx, "bob", 0)
		b.open(ctx, "dave", 50)

		b.request(ctx, "t-ok", "alice", "bob", 30)
		ok, err := rn.Await(ctx, "t-ok", finished)
		if err != nil || ok.State.Failed || ok.Version != 3 {
			t.Fatalf("t-ok: %+v, %v", ok, err)
		}

		b.request(ctx, "t-refused", "alice", "carol", 20) // carol has no account
		refused, err := rn.Await(ctx, "t-refused", finished)
		if err != nil || !refused.State.Failed || !strings.Contains(refused.State.Reason, "account is not open") {
			t.Fatalf("t-refused: %+v, %v", refused, err)
		}

		b.stall.set("dave")
		b.request(ctx, "t-timeout", "dave", "bob", 10)
		// The gateway is held after the debit: nothing reaches the inputs topic, and the
		// credit's deadline (plus the skew) fires all the same.
		comp, err := rn.Await(ctx, "t-timeout", func(i saga.Instance[progress]) bool { return i.State.Compensating })
		if err != nil || !strings.Contains(comp.State.Reason, "no outcome within 2s") {
			t.Fatalf("t-timeout compensating: %+v, %v", comp, err)
		}
		b.stall.unblock()
		timedOut, err := rn.Await(ctx, "t-timeout", finished)
		if err != nil || !timedOut.State.Failed {
			t.Fatalf("t-timeout: %+v, %v", timedOut, err)
		}

		b.check(ctx, map[string]int64{"alice": 70, "bob": 30, "dave": 50}, "t-ok", "t-refused", "t-timeout")
	})
}

// TestRestartMidTransfer stops the runner while transfers are in flight and starts
// another: once by cancelling its context, once by a crash with a transaction open
// (written, not ended, its producer left behind as a kill leaves it). The topics read
// back show each instance's versions contiguous, each command once, and the balances
// the transfers imply.
func TestRestartMidTransfer(t *testing.T) {
	for _, mode := range []string{"cancel", "crash"} {
		t.Run(mode, func(t *testing.T) {
			kafka.Backends(t, func(t *testing.T, kc *kafkatest.Cluster) {
				ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
				defer cancel()
				b := newBed(t, kc, 10*time.Second)
				accounts := []string{"a0", "a1", "a2", "a3"}
				for _, a := range accounts {
					b.open(ctx, a, 1000)
				}
				first := b.runner()
				var leftOpen []*kgo.Client
				if mode == "crash" {
					first.CrashAtCommit(4, func(cl *kgo.Client) { leftOpen = append(leftOpen, cl) })
				}
				t.Cleanup(func() {
					for _, cl := range leftOpen {
						cl.Close()
					}
				})
				stop, wait := b.start(first)
				const n = 16
				var ids []string
				for i := range n {
					id := fmt.Sprintf("t-%02d", i)
					ids = append(ids, id)
					to := accounts[(i+1)%len(accounts)]
					if i%5 == 4 {
						to = "nobody" // refused: refunded
					}
					b.request(ctx, id, accounts[i%len(accounts)], to, int64(10+i))
				}
				if mode == "crash" {
					// The fourth transaction crashes the runner mid-batch.
					if err := wait(); !errors.Is(err, runner.ErrCrashed) {
						t.Fatalf("the first runner: %v, want the injected crash", err)
					}
				} else {
					// Mid-transfer: the first transfer has begun (its debit sent), the
					// others are anywhere from unrouted to done.
					if _, err := first.Await(ctx, ids[0], func(i saga.Instance[progress]) bool { return i.Version >= 1 }); err != nil {
						t.Fatal(err)
					}
					if err := stop(); err != nil {
						t.Fatalf("the first runner: %v", err)
					}
				}
				second := b.runner()
				_, _ = b.start(second)
				want := map[string]int64{}
				for _, a := range accounts {
					want[a] = 1000
				}
				for i, id := range ids {
					inst, err := second.Await(ctx, id, finished)
					if err != nil {
						t.Fatalf("%s: %v", id, err)
					}
					if inst.State.Stuck != "" {
						t.Fatalf("%s stuck: %s", id, inst.State.Stuck)
					}
					if !inst.State.Failed {
						want[inst.State.Data.From] -= int64(10 + i)
						want[inst.State.Data.To] += int64(10 + i)
					} else if !strings.Contains(inst.State.Reason, "account is not open") {
						t.Errorf("%s failed for another reason than the missing account: %s", id, inst.State.Reason)
					}
				}
				b.check(ctx, want, ids...)
			})
		})
	}
}

// check reads the topics back read_committed and checks: each instance's record versions
// are 1..n, each once; every command the saga sent appears once, and only for a version
// that was committed; each command executed at most once (its events carry its ID, from
// one execution); the balances are want's; nothing was parked.
func (b *bed) check(ctx context.Context, want map[string]int64, instances ...string) {
	b.t.Helper()
	checkSaga(ctx, b.t, b.c, b.accounts, want, instances...)
}

// checkSaga is bed.check on the topics of cluster c.
func checkSaga(ctx context.Context, t *testing.T, c *cluster.Cluster, accounts *bank.Codecs, want map[string]int64, instances ...string) {
	t.Helper()
	for _, r := range checkSagaTopics(ctx, t, c, accounts, want, instances...) {
		d, _, _ := wire.ParseDeadLetter(r.Headers)
		t.Errorf("parked: key %q, %+v", r.Key, d)
	}
}

// checkSagaTopics is checkSaga but for the dead-letter topic, whose records it returns.
func checkSagaTopics(ctx context.Context, t *testing.T, c *cluster.Cluster, accounts *bank.Codecs, want map[string]int64, instances ...string) []*kgo.Record {
	t.Helper()
	ns := c.Namespace()
	state := readAll(ctx, t, c, topics.SagaTopicName(ns, transfer.SagaType, topics.RoleSagaState))
	versions := map[string][]int64{}
	// sentAt are the commands each committed version sent: the record of version v lists
	// them among its pending commands, with v in their IDs.
	sentAt := map[string]bool{}
	for _, r := range state {
		inst, ok, err := runner.DecodeStateRecord(r)
		if err != nil {
			t.Fatalf("state record at %d/%d: %v", r.Partition, r.Offset, err)
		}
		if !ok {
			continue
		}
		versions[inst.ID] = append(versions[inst.ID], inst.Version)
		for _, p := range inst.Pending {
			if _, v, ok := commandVersion(p.ID); ok && v == inst.Version {
				sentAt[p.ID] = true
			}
		}
	}
	for _, id := range instances {
		vs := versions[id]
		for i, v := range vs {
			if v != int64(i+1) {
				t.Fatalf("instance %s: versions %v, want 1..%d each once", id, vs, len(vs))
			}
		}
		if len(vs) == 0 {
			t.Fatalf("instance %s has no record", id)
		}
	}
	cmds := readAll(ctx, t, c, topics.TopicName(ns, bank.Type, topics.RoleCommands))
	seen := map[string]bool{}
	for _, r := range cmds {
		wc, err := wire.ParseCommand(r.Headers)
		if err != nil {
			t.Fatal(err)
		}
		inst, v, ok := commandVersion(wc.CommandID)
		if !ok {
			continue // a Sender's command
		}
		if seen[wc.CommandID] {
			t.Fatalf("command %s appears twice on the commands topic", wc.CommandID)
		}
		seen[wc.CommandID] = true
		if !slices.Contains(versions[inst], v) {
			t.Fatalf("command %s of a version of %s that was never committed (versions %v)", wc.CommandID, inst, versions[inst])
		}
		if wc.ReplyTo != inst || wc.CorrelationID != inst || wc.CausationID == "" || wc.ReplyTopic != topics.SagaTopicName(ns, transfer.SagaType, topics.RoleSagaInputs) {
			t.Fatalf("command %s: headers %+v", wc.CommandID, wc)
		}
	}
	for id := range sentAt {
		if !seen[id] {
			t.Fatalf("command %s of a committed version is not on the commands topic", id)
		}
	}
	events := readAll(ctx, t, c, topics.TopicName(ns, bank.Type, topics.RoleEvents))
	got := map[string]int64{}
	executed := map[string]int{}
	for _, r := range events {
		md, err := wire.ParseHeaders(r.Headers)
		if err != nil {
			t.Fatal(err)
		}
		executed[md.CommandID]++
		ev, err := accounts.Events.Decode(kastor.Encoded{Type: md.Type, Fingerprint: md.Fingerprint, Data: r.Value})
		if err != nil {
			t.Fatal(err)
		}
		switch e := ev.(type) {
		case bank.Deposited:
			got[md.AggregateID] += e.Amount
		case bank.Withdrawn:
			got[md.AggregateID] -= e.Amount
		}
	}
	for id, n := range executed {
		if n != 1 {
			t.Fatalf("command %s wrote %d events, want 1: executed more than once", id, n)
		}
	}
	for acct, w := range want {
		if got[acct] != w {
			t.Errorf("account %s: balance %d, want %d (all: %v)", acct, got[acct], w, got)
		}
	}
	return readAll(ctx, t, c, topics.SagaTopicName(ns, transfer.SagaType, topics.RoleSagaDLQ))
}

// commandVersion parses a saga command ID (bank.transfer/<instance>/<version>/<i>).
func commandVersion(id string) (inst string, version int64, ok bool) {
	rest, found := strings.CutPrefix(id, transfer.SagaType+"/")
	if !found {
		return "", 0, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return "", 0, false
	}
	v, err := strconv.ParseInt(parts[1], 10, 64)
	return parts[0], v, err == nil
}

// readAll reads every partition of topic to its last stable offset with a plain
// read_committed client.
func readAll(ctx context.Context, t *testing.T, c *cluster.Cluster, topic string) []*kgo.Record {
	t.Helper()
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
	if len(want) == 0 {
		return nil
	}
	cl, err := c.NewClient(kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v (left: %v)", topic, ctx.Err(), want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if r.Offset+1 >= end {
				delete(want, r.Partition)
			}
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
		})
	}
	return out
}

// frozen are the accounts whose deposits the accounts' gateway refuses.
type frozen struct {
	mu       sync.Mutex
	accounts map[string]bool
}

func (f *frozen) set(account string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.accounts == nil {
		f.accounts = map[string]bool{}
	}
	f.accounts[account] = on
}

func (f *frozen) refuse(s bank.State, c bank.Command) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, deposit := c.(bank.Deposit); deposit && f.accounts[s.Owner] {
		return errors.New("account frozen")
	}
	return nil
}

// stall holds the accounts' gateway after the first debit of one account until released.
type stall struct {
	mu      sync.Mutex
	account string
	once    sync.Once
	release chan struct{}
}

func (s *stall) set(account string) {
	s.mu.Lock()
	s.account = account
	s.mu.Unlock()
}

func (s *stall) unblock() { s.once.Do(func() { close(s.release) }) }

func (s *stall) listen(ctx context.Context, events []kastor.Envelope[kastor.Event]) {
	s.mu.Lock()
	acct := s.account
	s.mu.Unlock()
	if acct == "" || !slices.ContainsFunc(events, func(e kastor.Envelope[kastor.Event]) bool {
		_, debit := e.Event.(bank.Withdrawn)
		return debit && e.AggregateID == acct
	}) {
		return
	}
	select {
	case <-s.release:
	case <-ctx.Done():
	}
}
