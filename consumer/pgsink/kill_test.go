package pgsink_test

// The kill test drives projections in real processes: the test binary re-executes itself
// with KASTOR_PGSINK_CHILD set, and the child runs one reader with the PostgreSQL sink
// until SIGTERM. The parent kills children with SIGKILL while it writes events.

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/consumer/pgsink"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/wire"
)

const childEnv = "KASTOR_PGSINK_CHILD"

// balanceSchema is the read model of the kill test: one row per account.
const balanceSchema = `CREATE TABLE IF NOT EXISTS account_balances (
	account_id text PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL,
	version bigint NOT NULL, open boolean NOT NULL, applied bigint NOT NULL)`

// applyBalance folds an event into account_balances; applied counts the events applied
// to the row, so an event applied twice shows.
func applyBalance(ctx context.Context, tx pgx.Tx, ev kastor.Envelope[kastor.Event]) error {
	if e, ok := ev.Event.(bank.Opened); ok {
		_, err := tx.Exec(ctx, `INSERT INTO account_balances VALUES ($1, $2, 0, $3, true, 1)`, ev.AggregateID, e.Owner, ev.Version)
		return err
	}
	var delta int64
	open := true
	switch e := ev.Event.(type) {
	case bank.Deposited:
		delta = e.Amount
	case bank.Withdrawn:
		delta = -e.Amount
	case bank.Closed:
		open = false
	default:
		return fmt.Errorf("unknown event %T", ev.Event)
	}
	tag, err := tx.Exec(ctx, `UPDATE account_balances SET balance = balance + $2, version = $3, open = $4, applied = applied + 1
		WHERE account_id = $1`, ev.AggregateID, delta, ev.Version, open)
	if err == nil && tag.RowsAffected() != 1 {
		err = fmt.Errorf("account %s not found", ev.AggregateID)
	}
	return err
}

func runChild() int {
	brokers := strings.Split(os.Getenv("CHILD_BROKERS"), ",")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	pcfg, err := pgxpool.ParseConfig(os.Getenv("CHILD_DSN"))
	if err != nil {
		return fail(err)
	}
	pcfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fail(err)
	}
	defer pool.Close()
	if err := pgsink.Migrate(ctx, pool, balanceSchema); err != nil {
		return fail(err)
	}
	sink, err := pgsink.New(ctx, pool, pgsink.Config[kastor.Event]{Name: projName, Version: 1, Apply: applyBalance})
	if err != nil {
		return fail(err)
	}
	if k, _ := strconv.Atoi(os.Getenv("CHILD_CRASH_AFTER")); k > 0 {
		// Die right after the k-th commit, before Apply returns: the database has the
		// batch, the reader does not know it.
		var n atomic.Int64
		pgsink.AfterCommit(sink, func() {
			if n.Add(1) == int64(k) && ctx.Err() == nil { // not while stopping
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		})
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return fail(err)
	}
	defer cl.Close()
	kc, err := cluster.New(cl, os.Getenv("CHILD_NS"), cluster.Logger(logger))
	if err != nil {
		return fail(err)
	}
	rd, err := consumer.New(kc, consumer.Config[kastor.Event]{
		Name: projName, Version: 1, AggregateTypes: []string{bank.Type},
		Events: codecs.Events, MaxPollRecords: 100,
		Retry: consumer.Retry{Attempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 200 * time.Millisecond},
		// The reader's default session timeout: what users run.
	}, sink)
	if err != nil {
		return fail(err)
	}
	if err := rd.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

type child struct {
	cmd  *exec.Cmd
	out  *lockedBuilder
	done chan struct{}
}

type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startChild(env []string) (*child, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), childEnv+"=1"), env...)
	ch := &child{cmd: cmd, out: &lockedBuilder{}, done: make(chan struct{})}
	cmd.Stderr = ch.out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(ch.done) }()
	return ch, nil
}

// slot keeps one projection process running: whenever it dies (killed by the test, or
// by itself after a commit), the slot starts a new one, until it is closed.
type slot struct {
	name    string
	env     []string
	crashes *atomic.Int32 // how many more children may be told to kill themselves
	rng     *rand.Rand

	mu      sync.Mutex
	cur     *child
	all     []*child
	deaths  int
	closing bool
	err     error
	done    chan struct{}
}

func newSlot(t *testing.T, name string, env []string, crashes *atomic.Int32, seed uint64) *slot {
	t.Helper()
	s := &slot{name: name, env: env, crashes: crashes, rng: rand.New(rand.NewPCG(seed, 3)), done: make(chan struct{})}
	c, err := startChild(s.childEnv())
	if err != nil {
		t.Fatal(err)
	}
	s.cur, s.all = c, []*child{c}
	go s.supervise()
	t.Cleanup(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		for _, c := range s.all {
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		<-s.done
		if t.Failed() {
			for i, c := range s.all {
				t.Logf("child %s%d (pid %d) stderr:\n%s", name, i, c.cmd.Process.Pid, c.out.String())
			}
		}
	})
	return s
}

// childEnv is the environment of the next child: the first, and then one in two, are
// told to kill themselves after a few commits, while the crash budget lasts.
func (s *slot) childEnv() []string {
	env := append([]string(nil), s.env...)
	if (len(s.all) == 0 || s.rng.IntN(2) == 0) && s.crashes.Add(-1) >= 0 {
		env = append(env, fmt.Sprintf("CHILD_CRASH_AFTER=%d", 2+s.rng.IntN(30)))
	}
	return env
}

func (s *slot) supervise() {
	defer close(s.done)
	for {
		s.mu.Lock()
		c := s.cur
		s.mu.Unlock()
		<-c.done
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return
		}
		s.deaths++
		next, err := startChild(s.childEnv())
		if err != nil {
			s.err = err
			s.mu.Unlock()
			return
		}
		s.cur = next
		s.all = append(s.all, next)
		s.mu.Unlock()
	}
}

// kill kills the running child with SIGKILL; the slot restarts it.
func (s *slot) kill() {
	s.mu.Lock()
	c := s.cur
	s.mu.Unlock()
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// stop stops the running child with SIGTERM, restarting no more, and returns how many
// children died before.
func (s *slot) stop(t *testing.T) int {
	t.Helper()
	s.mu.Lock()
	s.closing = true
	c := s.cur
	s.mu.Unlock()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		if code := c.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("child %s exited with %d:\n%s", s.name, code, c.out.String())
		}
	case <-time.After(60 * time.Second):
		t.Errorf("child %s still running 60s after SIGTERM", s.name)
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		t.Errorf("restarting child %s: %v", s.name, s.err)
	}
	return s.deaths
}

// account is an account as the load generator and the fold see it.
type account struct {
	Owner   string
	Balance int64
	Version int64
	Open    bool
	Applied int64
}

func fold(accts map[string]*account, id string, version int64, e kastor.Event) {
	a := accts[id]
	if a == nil {
		a = &account{}
		accts[id] = a
	}
	switch e := e.(type) {
	case bank.Opened:
		a.Owner, a.Open = e.Owner, true
	case bank.Deposited:
		a.Balance += e.Amount
	case bank.Withdrawn:
		a.Balance -= e.Amount
	case bank.Closed:
		a.Open = false
	}
	a.Version = version
	a.Applied++
}

// generate writes valid bank histories over naccts accounts in transactions of 1 to 30
// events, one in ten aborted, until stop is closed. It returns the committed state.
// committed counts the events committed so far.
func (r *rig) generate(t *testing.T, naccts int, stop <-chan struct{}, committed *atomic.Int64) (done func() (map[string]*account, int)) {
	w := r.c.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionalID(r.ns+"-load"),
		kgo.TransactionTimeout(10*time.Second))
	state := map[string]*account{}
	finished := make(chan struct{})
	var failure error
	written := 0
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	go func() {
		defer close(finished)
		ctx := context.Background()
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			next := map[string]*account{} // copies of the accounts this transaction changes
			get := func(id string) *account {
				if a, ok := next[id]; ok {
					return a
				}
				a := &account{}
				if s, ok := state[id]; ok {
					*a = *s
				}
				next[id] = a
				return a
			}
			var recs []*kgo.Record
			add := func(id string, e kastor.Event) {
				a := get(id)
				fold(next, id, a.Version+1, e)
				enc, err := codecs.Events.Encode(e)
				if err != nil {
					panic(err)
				}
				md := kastor.Metadata{AggregateType: bank.Type, AggregateID: id, Version: a.Version,
					Type: enc.Type, Fingerprint: enc.Fingerprint, CommandID: fmt.Sprintf("%s-%d", id, a.Version)}
				recs = append(recs, &kgo.Record{Topic: r.events, Key: []byte(id), Value: enc.Data,
					Headers: wire.Headers(&md), Partition: producer.PartitionFor([]byte(id), r.partitions)})
			}
			for range 1 + rng.IntN(30) {
				id := fmt.Sprintf("acct-%d", rng.IntN(naccts))
				a := get(id)
				switch {
				case a.Version == 0:
					add(id, bank.Opened{Owner: "owner of " + id})
				case !a.Open: // closed: nothing more
				case a.Balance < 20 && rng.IntN(20) == 0:
					if a.Balance > 0 {
						add(id, bank.Withdrawn{Amount: a.Balance})
					}
					add(id, bank.Closed{})
				case rng.IntN(3) == 0 && a.Balance > 0:
					add(id, bank.Withdrawn{Amount: 1 + rng.Int64N(a.Balance)})
				default:
					add(id, bank.Deposited{Amount: 1 + rng.Int64N(100)})
				}
			}
			if len(recs) == 0 {
				continue
			}
			commit := rng.IntN(10) != 0
			err := w.BeginTransaction()
			if err == nil {
				err = w.ProduceSync(ctx, recs...).FirstErr()
			}
			if err == nil {
				err = w.EndTransaction(ctx, kgo.TransactionEndTry(commit))
			}
			if err != nil {
				failure = err
				return
			}
			if commit {
				for id, a := range next {
					state[id] = a
				}
				written += len(recs)
				committed.Add(int64(len(recs)))
			}
		}
	}()
	return func() (map[string]*account, int) {
		<-finished
		if failure != nil {
			t.Fatalf("writing events: %v", failure)
		}
		return state, written
	}
}

// foldTopic reads the events topic back (read_committed) to ends and folds it.
func (r *rig) foldTopic(t *testing.T, ends map[consumer.TopicPartition]int64) (map[string]*account, int) {
	t.Helper()
	ctx := testCtx(t, 60*time.Second)
	cl := r.c.Client(t, kgo.ConsumeTopics(r.events), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.KeepControlRecords())
	accts := map[string]*account{}
	at := map[int32]int64{}
	n := 0
	for {
		done := true
		for tp, end := range ends {
			if at[tp.Partition] < end {
				done = false
			}
		}
		if done {
			return accts, n
		}
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading the events topic back: %v", ctx.Err())
		}
		var err error
		fs.EachRecord(func(rec *kgo.Record) {
			at[rec.Partition] = rec.Offset + 1
			if rec.Attrs.IsControl() || err != nil {
				return
			}
			md, merr := wire.ParseHeaders(rec.Headers)
			if merr != nil {
				err = merr
				return
			}
			ev, derr := codecs.Events.Decode(kastor.Encoded{Type: md.Type, Fingerprint: md.Fingerprint, Data: rec.Value})
			if derr != nil {
				err = derr
				return
			}
			if a := accts[md.AggregateID]; a != nil && a.Version+1 != md.Version || a == nil && md.Version != 1 {
				err = fmt.Errorf("%s: version %d in the topic after %v", md.AggregateID, md.Version, a)
				return
			}
			fold(accts, md.AggregateID, md.Version, ev)
			n++
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func readModel(t *testing.T, pool *pgxpool.Pool) map[string]*account {
	t.Helper()
	rows, _ := pool.Query(testCtx(t, 30*time.Second), `SELECT account_id, owner, balance, version, open, applied FROM account_balances`)
	out := map[string]*account{}
	var id string
	var a account
	if _, err := pgx.ForEachRow(rows, []any{&id, &a.Owner, &a.Balance, &a.Version, &a.Open, &a.Applied}, func() error {
		c := a
		out[id] = &c
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// Two projection processes share the partitions. Under a steady load of events, they
// die with SIGKILL: killed by the test at random moments, or by themselves right after
// a database commit (before the reader learns of it); each is restarted at once. Once
// the load stops and the projection has caught up with the topic, the PostgreSQL read
// model equals a fold of the events topic read back: every committed event applied
// exactly once, aborted ones never, nothing parked.
func TestKill9ReadModelEqualsFold(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("kills processes for about 30s")
	}
	start := time.Now()
	r := newRig(t, 6)
	dsn, pool := newDB(t)
	t.Logf("%v: Kafka and PostgreSQL ready", time.Since(start).Round(time.Millisecond))
	env := []string{"CHILD_BROKERS=" + strings.Join(r.c.Brokers(), ","), "CHILD_NS=" + r.ns, "CHILD_DSN=" + dsn}
	stop := make(chan struct{})
	var committed atomic.Int64
	load := r.generate(t, 60, stop, &committed)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	var crashes atomic.Int32
	crashes.Store(4)
	slots := []*slot{newSlot(t, "a", env, &crashes, seed), newSlot(t, "b", env, &crashes, seed+1)}
	// Kill only under load: once the first transactions are in.
	for deadline := time.Now().Add(60 * time.Second); committed.Load() < 50; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the load has not started after 60s")
		}
	}
	t.Logf("%v: the load runs", time.Since(start).Round(time.Millisecond))
	rng := rand.New(rand.NewPCG(seed, 2))
	const kills = 5
	for k := range kills {
		time.Sleep(time.Duration(800+rng.IntN(1700)) * time.Millisecond)
		i := rng.IntN(len(slots))
		slots[i].kill()
		t.Logf("%v: kill %d: child %s killed", time.Since(start).Round(time.Millisecond), k+1, slots[i].name)
	}
	time.Sleep(time.Second)
	for deadline := time.Now().Add(30 * time.Second); committed.Load() < 500 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	state, written := load()
	ends := r.ends()
	t.Logf("%v: load stopped after %d events", time.Since(start).Round(time.Millisecond), written)
	t0 := time.Now()

	// The parent's own handle on the projection's offsets (the table exists: New only
	// checks it).
	sink := newSink(t, pool, func(c *pgsink.Config[kastor.Event]) { c.Apply = applyBalance })
	waitFor(t, sink, ends, 90*time.Second)
	t.Logf("caught up %v after the load stopped", time.Since(t0))
	deaths := 0
	for _, s := range slots {
		deaths += s.stop(t)
	}

	want, n := r.foldTopic(t, ends)
	if n != written {
		t.Errorf("the topic holds %d committed events, the load wrote %d", n, written)
	}
	got := readModel(t, pool)
	t.Logf("%d events over %d accounts; %d processes died: %d killed by the test, %d by themselves after a commit",
		n, len(want), deaths, kills, deaths-kills)
	if deaths <= kills {
		t.Logf("no child killed itself after a commit this time")
	}
	if len(got) != len(want) {
		t.Errorf("the read model has %d accounts, the fold %d", len(got), len(want))
	}
	for id, w := range want {
		if g := got[id]; g == nil || *g != *w {
			t.Errorf("%s: read model %+v, fold %+v", id, g, w)
		}
		if s := state[id]; s == nil || *s != *w {
			t.Errorf("%s: the fold %+v differs from what the load committed %+v", id, w, s)
		}
	}
	if ds := r.deadLetters(); len(ds) != 0 {
		t.Errorf("%d events parked, want none: %+v", len(ds), ds[0])
	}
}
