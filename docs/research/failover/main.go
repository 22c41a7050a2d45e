// Command failover measures what kill -9 of one of three GroupTransactSession members costs
// the shards of the survivors and of the dead member, on a real Kafka broker.
//
// It mimics kastor's gateway: each worker is a kgo.GroupTransactSession consuming a commands
// topic (one partition = one shard), restoring a shard on assignment the way the gateway
// does (OffsetFetch require_stable until no pending offsets, then wait until the shard's
// events partition has no open transaction), waiting for the restores of a batch's shards
// before the batch (awaitRestores), and writing per command one event to events/P and one
// reply to a replies partition shared by all shards (chosen by the caller), in one
// transaction of at most ~50 ms of commands. An End error restarts the session, as Run does.
//
//	failover run -brokers 127.0.0.1:39092 -scenario NAME [-sess 6s -hb 1s] [-848] [-eager]
//	    [-fence] [-kill leader|follower] [-observe 30s] [-restart 0]
//
// The run mode starts three workers (this binary, "worker" mode) as separate processes,
// produces commands to all partitions, reads replies read_committed, kills one worker with
// SIGKILL and prints per-partition recovery times and reply latencies.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	partitions = 12
	callers    = 4 // reply partitions in use: shared by all shards, as kastor's per-caller replies
)

type params struct {
	brokers  string
	prefix   string
	id       string
	sess, hb time.Duration
	txnTO    time.Duration
	kip848   bool
	eager    bool
	fence    bool
	verbose  bool
	hold     bool
}

func (p *params) flags(fs *flag.FlagSet) {
	fs.StringVar(&p.brokers, "brokers", "127.0.0.1:39092", "")
	fs.StringVar(&p.prefix, "prefix", "", "topic and group prefix")
	fs.StringVar(&p.id, "id", "", "worker id")
	fs.DurationVar(&p.sess, "sess", 0, "SessionTimeout (0: franz-go default)")
	fs.DurationVar(&p.hb, "hb", 0, "HeartbeatInterval (0: franz-go default)")
	fs.DurationVar(&p.txnTO, "txnto", 10*time.Second, "TransactionTimeout (kastor default 10s)")
	fs.BoolVar(&p.kip848, "848", false, "ServerSideBalancer (KIP-848)")
	fs.BoolVar(&p.eager, "eager", false, "eager RangeBalancer instead of the default cooperative-sticky")
	fs.BoolVar(&p.fence, "fence", false, "on assignment, fence (InitProducerID) other transactional IDs with an open transaction on events/P")
	fs.BoolVar(&p.verbose, "v", false, "franz-go info logs to stderr")
	fs.BoolVar(&p.hold, "hold", true, "keep each transaction open until ~50 ms after its poll (a loaded gateway: a kill lands in an open transaction)")
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: failover run|worker [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	var p params
	p.flags(fs)
	var r runParams
	if os.Args[1] == "run" {
		r.flags(fs)
	}
	fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "worker":
		worker(p)
	case "configs":
		showConfigs(p)
	case "run":
		if err := run(p, r); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

func topicNames(prefix string) (cmds, events, replies string) {
	return prefix + "-commands", prefix + "-events", prefix + "-replies"
}

func now() int64 { return time.Now().UnixNano() }

// ---------------------------------------------------------------- worker

var outMu sync.Mutex

func emit(format string, args ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

// leaderBalancer reports when this member computes the group's assignment (it is the leader).
type leaderBalancer struct{ kgo.GroupBalancer }

func (b leaderBalancer) MemberBalancer(m []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	emit("L %d", now())
	return b.GroupBalancer.MemberBalancer(m)
}

type restoring struct {
	done   chan struct{}
	cancel context.CancelFunc
}

type wstate struct {
	p        params
	mu       sync.Mutex
	ready    map[int32]bool
	restores map[int32]*restoring
	cmds     string
	events   string
	replies  string
	txnID    string
}

func worker(p params) {
	cmds, events, replies := topicNames(p.prefix)
	var b [4]byte
	rand.Read(b[:])
	w := &wstate{p: p, ready: map[int32]bool{}, restores: map[int32]*restoring{}, cmds: cmds, events: events, replies: replies,
		txnID: p.prefix + "-" + p.id + "-" + hex.EncodeToString(b[:])}
	for {
		w.session()
		w.dropAll()
		emit("S %d", now()) // new session (new member) after an unknown outcome
	}
}

func (w *wstate) session() {
	p := w.p
	opts := []kgo.Opt{
		kgo.SeedBrokers(p.brokers),
		kgo.ClientID("w" + p.id),
		kgo.TransactionalID(w.txnID),
		kgo.TransactionTimeout(p.txnTO),
		kgo.ConsumerGroup(p.prefix + "-group"),
		kgo.ConsumeTopics(w.cmds),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, cl *kgo.Client, m map[string][]int32) {
			emit("AS %d %s", now(), plist(m[w.cmds]))
			for _, part := range m[w.cmds] {
				w.startRestore(cl, part)
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			emit("RV %d %s", now(), plist(m[w.cmds]))
			w.drop(m[w.cmds])
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			emit("LO %d %s", now(), plist(m[w.cmds]))
			w.drop(m[w.cmds])
		}),
	}
	if p.verbose {
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string { return "w" + p.id + " " + time.Now().Format("15:04:05.000") + " " })))
	}
	if p.sess > 0 {
		opts = append(opts, kgo.SessionTimeout(p.sess))
	}
	if p.hb > 0 {
		opts = append(opts, kgo.HeartbeatInterval(p.hb))
	}
	switch {
	case p.kip848:
		opts = append(opts, kgo.ServerSideBalancer()) // default CooperativeStickyBalancer is a *stickyBalancer: "uniform" assignor
	case p.eager:
		opts = append(opts, kgo.Balancers(leaderBalancer{kgo.RangeBalancer()}))
	default:
		opts = append(opts, kgo.Balancers(leaderBalancer{kgo.CooperativeStickyBalancer()}))
	}
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		emit("E %d %v", now(), err)
		os.Exit(1)
	}
	defer sess.Close()
	ctx := context.Background()
	for {
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fetches := sess.PollRecords(pctx, 1000)
		cancel()
		if fetches.IsClientClosed() {
			return
		}
		recs := fetches.Records()
		if len(recs) == 0 {
			continue
		}
		w.awaitRestores(recs)
		if err := w.batch(sess, recs, start); err != nil {
			emit("U %d %v", now(), strings.ReplaceAll(err.Error(), "\n", " "))
			return
		}
		if d := 50*time.Millisecond - time.Since(start); d > 0 {
			time.Sleep(d)
		}
	}
}

func (w *wstate) batch(sess *kgo.GroupTransactSession, recs []*kgo.Record, start time.Time) error {
	tctx, cancel := context.WithTimeout(context.Background(), w.p.txnTO)
	defer cancel()
	if err := sess.Begin(); err != nil {
		return err
	}
	abort := false
	parts := map[int32]bool{}
	var wg sync.WaitGroup
	var perr error
	var pmu sync.Mutex
	promise := func(_ *kgo.Record, err error) {
		defer wg.Done()
		if err != nil {
			pmu.Lock()
			perr = err
			pmu.Unlock()
		}
	}
	for _, r := range recs {
		w.mu.Lock()
		ok := w.ready[r.Partition]
		w.mu.Unlock()
		if !ok {
			abort = true // revoked, or not restored yet: the next batch starts from the committed offsets
			break
		}
		parts[r.Partition] = true
		// value: "<caller> <sent ns>"
		caller, _ := strconv.Atoi(strings.Fields(string(r.Value))[0])
		wg.Add(2)
		sess.Produce(tctx, &kgo.Record{Topic: w.events, Partition: r.Partition, Value: r.Value}, promise)
		sess.Produce(tctx, &kgo.Record{Topic: w.replies, Partition: int32(caller % callers), Value: []byte(fmt.Sprintf("%d %s", r.Partition, r.Value))}, promise)
	}
	wg.Wait()
	if perr != nil {
		abort = true
	}
	if d := 45*time.Millisecond - time.Since(start); w.p.hold && d > 0 {
		time.Sleep(d)
	}
	t0 := time.Now()
	committed, err := sess.End(tctx, kgo.TransactionEndTry(!abort))
	if err != nil {
		return fmt.Errorf("end after %v: %w", time.Since(t0).Round(time.Millisecond), err)
	}
	if committed {
		ps := make([]int32, 0, len(parts))
		for p := range parts {
			ps = append(ps, p)
		}
		emit("C %d %s %d", now(), plist(ps), time.Since(t0).Milliseconds())
	} else {
		emit("A %d %d", now(), time.Since(t0).Milliseconds())
	}
	return nil
}

func (w *wstate) startRestore(cl *kgo.Client, part int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ready[part] || w.restores[part] != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &restoring{done: make(chan struct{}), cancel: cancel}
	w.restores[part] = r
	go func() {
		defer close(r.done)
		start := time.Now()
		adm := kadm.NewClient(cl)
		var fenced []string
		if w.p.fence {
			fenced = w.fenceZombies(ctx, cl, adm, part)
		}
		tFence := time.Since(start)
		// awaitStableOffset
		for ctx.Err() == nil {
			resp, err := adm.FetchOffsetsForTopics(kadm.RequireStable(ctx), w.p.prefix+"-group", w.cmds)
			if err == nil {
				if o, ok := resp.Lookup(w.cmds, part); !ok || o.Err == nil {
					break
				}
			}
			sleep(ctx, 100*time.Millisecond)
		}
		tStable := time.Since(start)
		// settledEventsEnd: wait until events/P has no open transaction (LSO == HWM)
		for ctx.Err() == nil {
			lso, err1 := adm.ListCommittedOffsets(ctx, w.events)
			hw, err2 := adm.ListEndOffsets(ctx, w.events)
			if err1 == nil && err2 == nil {
				l, _ := lso.Lookup(w.events, part)
				h, _ := hw.Lookup(w.events, part)
				if l.Err == nil && h.Err == nil && l.Offset >= h.Offset {
					break
				}
			}
			sleep(ctx, 50*time.Millisecond)
		}
		if ctx.Err() != nil {
			return
		}
		emit("R %d %d %d %d %d %s", now(), part, tFence.Milliseconds(), tStable.Milliseconds(), time.Since(start).Milliseconds(), strings.Join(fenced, ","))
		w.mu.Lock()
		if w.restores[part] == r {
			delete(w.restores, part)
			w.ready[part] = true
		}
		w.mu.Unlock()
	}()
}

// fenceZombies aborts, by bumping their epoch, the open transactions of other transactional
// IDs that wrote to events/part: this member owns the shard now, so they are zombies.
func (w *wstate) fenceZombies(ctx context.Context, cl *kgo.Client, adm *kadm.Client, part int32) []string {
	var fenced []string
	ps, err := adm.DescribeProducers(ctx, kadm.TopicsSet{w.events: {part: {}}})
	if err != nil {
		emit("X %d describe producers: %v", now(), err)
		return nil
	}
	var pids []int64
	ps.EachProducer(func(d kadm.DescribedProducer) {
		if d.CurrentTxnStartOffset >= 0 {
			pids = append(pids, d.ProducerID)
		}
	})
	if len(pids) == 0 {
		return nil
	}
	txns, err := adm.ListTransactions(ctx, pids, []string{"Ongoing"})
	if err != nil {
		emit("X %d list transactions: %v", now(), err)
		return nil
	}
	for _, t := range txns {
		if t.TxnID == w.txnID {
			continue
		}
		for ctx.Err() == nil {
			req := kmsg.NewPtrInitProducerIDRequest()
			req.TransactionalID = kmsg.StringPtr(t.TxnID)
			req.TransactionTimeoutMillis = int32(w.p.txnTO.Milliseconds())
			resp, err := req.RequestWith(ctx, cl)
			if err == nil {
				err = kerr.ErrorForCode(resp.ErrorCode)
			}
			if err == nil {
				fenced = append(fenced, t.TxnID)
				break
			}
			if !errors.Is(err, kerr.ConcurrentTransactions) && !errors.Is(err, kerr.CoordinatorLoadInProgress) && !errors.Is(err, kerr.NotCoordinator) {
				emit("X %d fence %s: %v", now(), t.TxnID, err)
				break
			}
			sleep(ctx, 20*time.Millisecond)
		}
	}
	return fenced
}

func (w *wstate) awaitRestores(recs []*kgo.Record) {
	seen := map[int32]bool{}
	for _, r := range recs {
		if seen[r.Partition] {
			continue
		}
		seen[r.Partition] = true
		w.mu.Lock()
		rs := w.restores[r.Partition]
		w.mu.Unlock()
		if rs != nil {
			<-rs.done
		}
	}
}

func (w *wstate) drop(ps []int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range ps {
		delete(w.ready, p)
		if r := w.restores[p]; r != nil {
			r.cancel()
			delete(w.restores, p)
		}
	}
}

func (w *wstate) dropAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for p, r := range w.restores {
		r.cancel()
		delete(w.restores, p)
	}
	w.ready = map[int32]bool{}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func plist(ps []int32) string {
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(int(p))
	}
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

func parseList(s string) []int32 {
	if s == "-" || s == "" {
		return nil
	}
	var out []int32
	for _, f := range strings.Split(s, ",") {
		n, _ := strconv.Atoi(f)
		out = append(out, int32(n))
	}
	return out
}

// ---------------------------------------------------------------- orchestrator

type runParams struct {
	scenario string
	kill     string
	observe  time.Duration
	restart  time.Duration
}

func (r *runParams) flags(fs *flag.FlagSet) {
	fs.StringVar(&r.scenario, "scenario", "x", "")
	fs.StringVar(&r.kill, "kill", "follower", "leader or follower (classic); any member for 848")
	fs.DurationVar(&r.observe, "observe", 30*time.Second, "how long to observe after the kill")
	fs.DurationVar(&r.restart, "restart", 0, "restart the killed worker (new member, new txn id) after this long (0: never)")
}

type event struct {
	t     int64
	kind  string
	parts []int32
	text  string
}

type proc struct {
	id     string
	cmd    *exec.Cmd
	killed bool
}

type orch struct {
	mu     sync.Mutex
	events map[string][]event // by worker id
	procs  map[string]*proc
}

func (o *orch) add(id string, e event) {
	o.mu.Lock()
	o.events[id] = append(o.events[id], e)
	o.mu.Unlock()
}

func (o *orch) start(p params, id string) error {
	args := []string{"worker", "-brokers", p.brokers, "-prefix", p.prefix, "-id", id, "-txnto", p.txnTO.String()}
	if p.sess > 0 {
		args = append(args, "-sess", p.sess.String())
	}
	if p.hb > 0 {
		args = append(args, "-hb", p.hb.String())
	}
	if p.kip848 {
		args = append(args, "-848")
	}
	if p.eager {
		args = append(args, "-eager")
	}
	if p.fence {
		args = append(args, "-fence")
	}
	if p.verbose {
		args = append(args, "-v")
	}
	args = append(args, "-hold="+strconv.FormatBool(p.hold))
	cmd := exec.Command(os.Args[0], args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	o.mu.Lock()
	o.procs[id] = &proc{id: id, cmd: cmd}
	o.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 {
				continue
			}
			t, _ := strconv.ParseInt(f[1], 10, 64)
			e := event{t: t, kind: f[0], text: sc.Text()}
			switch f[0] {
			case "C", "AS", "RV", "LO":
				if len(f) > 2 {
					e.parts = parseList(f[2])
				}
			case "R":
				n, _ := strconv.Atoi(f[2])
				e.parts = []int32{int32(n)}
			}
			o.add(id, e)
		}
		cmd.Wait()
	}()
	return nil
}

func run(p params, r runParams) error {
	if p.prefix == "" {
		var b [3]byte
		rand.Read(b[:])
		p.prefix = r.scenario + "-" + hex.EncodeToString(b[:])
	}
	cmds, events, replies := topicNames(p.prefix)
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.brokers), kgo.ProducerLinger(5*time.Millisecond), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	for _, t := range []string{cmds, events, replies} {
		if _, err := adm.CreateTopic(ctx, partitions, 1, nil, t); err != nil {
			return err
		}
	}
	time.Sleep(time.Second)

	o := &orch{events: map[string][]event{}, procs: map[string]*proc{}}
	for _, id := range []string{"1", "2", "3"} {
		if err := o.start(p, id); err != nil {
			return err
		}
	}
	defer func() {
		o.mu.Lock()
		for _, pr := range o.procs {
			if !pr.killed {
				pr.cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		o.mu.Unlock()
	}()

	// Replies reader (read_committed), as a Sender's reply reader.
	type lat struct {
		t, sent int64
		part    int32
	}
	var latMu sync.Mutex
	var lats []lat
	rcl, err := kgo.NewClient(kgo.SeedBrokers(p.brokers), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeTopics(replies), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer rcl.Close()
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	go func() {
		for rctx.Err() == nil {
			fs := rcl.PollFetches(rctx)
			tn := now()
			fs.EachRecord(func(rec *kgo.Record) {
				f := strings.Fields(string(rec.Value)) // "<part> <caller> <sent>"
				if len(f) != 3 {
					return
				}
				pp, _ := strconv.Atoi(f[0])
				sent, _ := strconv.ParseInt(f[2], 10, 64)
				latMu.Lock()
				lats = append(lats, lat{t: tn, sent: sent, part: int32(pp)})
				latMu.Unlock()
			})
		}
	}()

	// Command producer: one command per partition every 50 ms.
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		n := 0
		for pctx.Err() == nil {
			<-tick.C
			for part := int32(0); part < partitions; part++ {
				n++
				cl.Produce(pctx, &kgo.Record{Topic: cmds, Partition: part, Value: []byte(fmt.Sprintf("%d %d", n%callers, now()))}, nil)
			}
		}
	}()

	// Wait until every partition commits, then 8 s of no-fault baseline.
	deadline := time.Now().Add(90 * time.Second)
	for {
		if time.Now().After(deadline) {
			return errors.New("the group did not start committing on every partition")
		}
		time.Sleep(500 * time.Millisecond)
		ow := o.ownersAt(now(), 2*time.Second)
		if len(ow) == partitions {
			break
		}
		if os.Getenv("FAILOVER_DEBUG") != "" {
			o.mu.Lock()
			n := 0
			for _, evs := range o.events {
				n += len(evs)
			}
			o.mu.Unlock()
			fmt.Fprintf(os.Stderr, "waiting: %d partitions committing, %d events\n", len(ow), n)
			o.mu.Lock()
			for id, evs := range o.events {
				for _, e := range evs[max(0, len(evs)-3):] {
					fmt.Fprintf(os.Stderr, "   w%s %s\n", id, e.text)
				}
			}
			o.mu.Unlock()
		}
	}
	time.Sleep(5 * time.Second) // let the backlog of the initial join drain
	tBase := now()
	time.Sleep(8 * time.Second)

	// Pick the victim.
	o.mu.Lock()
	var leader string
	var lt int64
	for id, evs := range o.events {
		for _, e := range evs {
			if e.kind == "L" && e.t > lt {
				leader, lt = id, e.t
			}
		}
	}
	o.mu.Unlock()
	victim := "3"
	switch {
	case r.kill == "leader" && leader != "":
		victim = leader
	case r.kill == "follower":
		for _, id := range []string{"3", "2", "1"} {
			if id != leader {
				victim = id
				break
			}
		}
	}
	owners := o.ownersAt(now(), 2*time.Second)
	var deadParts []int32
	for part, id := range owners {
		if id == victim {
			deadParts = append(deadParts, part)
		}
	}
	sort.Slice(deadParts, func(i, j int) bool { return deadParts[i] < deadParts[j] })
	o.mu.Lock()
	o.procs[victim].killed = true
	victimProc := o.procs[victim].cmd.Process
	o.mu.Unlock()
	tKill := now()
	victimProc.Signal(syscall.SIGKILL)
	fmt.Printf("scenario %s: leader=w%s killed=w%s (dead shards %v) at +%.1fs after baseline start\n",
		r.scenario, leader, victim, deadParts, float64(tKill-tBase)/1e9)
	if r.restart > 0 {
		time.Sleep(r.restart)
		if err := o.start(p, victim+"r"); err != nil {
			return err
		}
		fmt.Printf("restarted the killed worker as w%sr at +%.1fs\n", victim, float64(now()-tKill)/1e9)
		time.Sleep(r.observe - r.restart)
	} else {
		time.Sleep(r.observe)
	}
	tEnd := now()
	pcancel()
	time.Sleep(300 * time.Millisecond)
	rcancel()

	// ---- analysis
	dead := map[int32]bool{}
	for _, p := range deadParts {
		dead[p] = true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	// per partition: commit times (any worker) after the kill
	commits := map[int32][]int64{}
	for _, evs := range o.events {
		for _, e := range evs {
			if e.kind == "C" {
				for _, p := range e.parts {
					commits[p] = append(commits[p], e.t)
				}
			}
		}
	}
	fmt.Printf("%-4s %-5s %-22s %-22s\n", "part", "dead?", "first commit after kill", "max commit gap after kill")
	var worstDead, worstSurvGap float64
	for part := int32(0); part < partitions; part++ {
		ts := commits[part]
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		var first int64 = -1
		prev := tKill
		var maxGap int64
		var gapAt int64
		for _, t := range ts {
			if t <= tKill {
				continue
			}
			if first < 0 {
				first = t
			}
			if t-prev > maxGap {
				maxGap, gapAt = t-prev, prev
			}
			prev = t
		}
		if tEnd-prev > maxGap {
			maxGap, gapAt = tEnd-prev, prev
		}
		fs := "never"
		if first >= 0 {
			fs = fmt.Sprintf("%.2fs", float64(first-tKill)/1e9)
		}
		fmt.Printf("%-4d %-5v %-22s %.2fs (from +%.2fs)\n", part, dead[part], fs, float64(maxGap)/1e9, float64(gapAt-tKill)/1e9)
		if dead[part] {
			if first < 0 {
				worstDead = float64(tEnd-tKill) / 1e9
			} else if v := float64(first-tKill) / 1e9; v > worstDead {
				worstDead = v
			}
		} else if v := float64(maxGap) / 1e9; v > worstSurvGap {
			worstSurvGap = v
		}
	}
	// reply latencies
	latMu.Lock()
	var base, survDuring, deadDuring []float64
	for _, l := range lats {
		ms := float64(l.t-l.sent) / 1e6
		switch {
		case l.sent >= tBase && l.sent < tKill:
			base = append(base, ms)
		case l.sent >= tKill && l.sent < tEnd-int64(3*time.Second):
			if dead[l.part] {
				deadDuring = append(deadDuring, ms)
			} else {
				survDuring = append(survDuring, ms)
			}
		}
	}
	latMu.Unlock()
	fmt.Printf("reply latency ms (p50/p99/max, n): baseline %s | survivors' shards after kill %s | dead shards after kill %s\n",
		pct(base), pct(survDuring), pct(deadDuring))
	fmt.Printf("SUMMARY %s: dead shards first commit after kill: %.2fs; survivors' max commit gap: %.2fs\n", r.scenario, worstDead, worstSurvGap)
	// worker event log (non-commit) after the kill
	ids := make([]string, 0, len(o.events))
	for id := range o.events {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		var aborted int
		for _, e := range o.events[id] {
			if e.t < tKill-int64(time.Second) {
				continue
			}
			switch e.kind {
			case "C":
			case "A":
				aborted++
			default:
				f := strings.Fields(e.text)
				rest := strings.Join(f[2:], " ")
				fmt.Printf("  w%-3s +%6.2fs %s %s\n", id, float64(e.t-tKill)/1e9, e.kind, rest)
			}
		}
		if aborted > 0 {
			fmt.Printf("  w%-3s %d aborted transactions after the kill\n", id, aborted)
		}
	}
	return nil
}

// ownersAt maps each partition to the worker that committed it within window before t.
func (o *orch) ownersAt(t int64, window time.Duration) map[int32]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[int32]string{}
	last := map[int32]int64{}
	for id, evs := range o.events {
		for _, e := range evs {
			if e.kind != "C" || e.t > t || e.t < t-int64(window) {
				continue
			}
			for _, p := range e.parts {
				if e.t > last[p] {
					last[p], out[p] = e.t, id
				}
			}
		}
	}
	return out
}

func pct(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	sort.Float64s(v)
	q := func(f float64) float64 { return v[min(len(v)-1, int(f*float64(len(v))))] }
	return fmt.Sprintf("%.0f/%.0f/%.0f n=%d", q(0.5), q(0.99), v[len(v)-1], len(v))
}

// showConfigs prints the broker's group and transaction settings that bound failure detection,
// and tries to set a KIP-848 group's consumer.session.timeout.ms below the broker minimum.
func showConfigs(p params) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.brokers))
	if err != nil {
		panic(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	rc, err := adm.DescribeBrokerConfigs(ctx, 1)
	if err != nil {
		panic(err)
	}
	for _, c := range rc {
		for _, kv := range c.Configs {
			if strings.HasPrefix(kv.Key, "group.") && (strings.Contains(kv.Key, "session") || strings.Contains(kv.Key, "heartbeat") || strings.Contains(kv.Key, "rebalance") || strings.Contains(kv.Key, "protocols")) ||
				strings.HasPrefix(kv.Key, "transaction.") {
				fmt.Printf("%s=%s (%s)\n", kv.Key, kv.MaybeValue(), kv.Source)
			}
		}
	}
	for _, v := range []string{"6000", "45000"} {
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		res := kmsg.NewIncrementalAlterConfigsRequestResource()
		res.ResourceType = kmsg.ConfigResourceTypeGroupConfig
		res.ResourceName = "probe-group"
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name = "consumer.session.timeout.ms"
		c.Value = kmsg.StringPtr(v)
		res.Configs = append(res.Configs, c)
		req.Resources = append(req.Resources, res)
		resp, err := req.RequestWith(ctx, cl)
		fmt.Printf("IncrementalAlterConfigs GROUP probe-group consumer.session.timeout.ms=%s: err=%v", v, err)
		if err == nil {
			for _, r := range resp.Resources {
				msg := ""
				if r.ErrorMessage != nil {
					msg = *r.ErrorMessage
				}
				fmt.Printf(" -> %v %s", kerr.ErrorForCode(r.ErrorCode), msg)
			}
		}
		fmt.Println()
	}
}
