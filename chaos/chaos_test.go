package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/examples/bank/account"
	"github.com/kastor-dev/kastor/examples/bank/avro"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/topics"
)

// Bounds the run asserts. failoverBound is the W6 target for a killed gateway with the
// library's defaults (10 s: a 6 s session timeout, then fencing and a restore) plus slack
// for a loaded CI machine; the raw figures are logged whatever they are.
const (
	gateways      = 3
	partitions    = 12
	failoverBound = 15 * time.Second
	// zombiePause keeps the zombie stopped well past its session timeout (6 s), so the
	// group drops it and a new owner fences it before it resumes.
	zombiePause = 10 * time.Second
	// brokerDown is how long a killed broker stays down: past the brokers' session
	// timeout (9 s), so the controller moves its leaderships.
	brokerDown = 12 * time.Second
	// brokerLossBound is how soon after the cluster's leader election every shard must
	// answer again when a broker dies (issue 14). The keep-alive of decision 40 keeps a
	// gateway's membership through a follower's death, so no eviction adds a session.
	brokerLossBound = 10 * time.Second
	// recoveryWait bounds the wait for a fault's shards to answer before the next fault:
	// past it the run goes on and the fault is reported as never recovered.
	recoveryWait = 90 * time.Second
	// baselineWindow is the load without faults whose latency is the reference.
	baselineWindow = 10 * time.Second
)

// TestChaosSingleBroker: three gateways on one broker; gateways killed (SIGKILL) every
// few seconds and restarted under their old instance name or a new one, and one stopped
// (SIGSTOP) past its session timeout, then resumed.
func TestChaosSingleBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("fault suite")
	}
	c := kafkatest.Start(t)
	r := newRun(t, c, "single", 1, 1)
	r.start()
	r.faults(func(n int) {
		if n == 1 {
			r.stopGateway()
		} else {
			r.killGateway()
		}
	})
	r.finish()
}

// TestChaosThreeBrokers: three gateways on three brokers, topics replicated three times
// with min.insync.replicas=2; brokers killed (SIGKILL) and restarted in turn, the group
// coordinator first, with a gateway killed between broker faults.
func TestChaosThreeBrokers(t *testing.T) {
	if testing.Short() {
		t.Skip("fault suite with a 3-node cluster")
	}
	c := kafkatest.Start(t, kafkatest.Nodes(3))
	if c.Backend() != kafkatest.Containers {
		t.Skip("needs a cluster whose nodes the harness controls")
	}
	r := newRun(t, c, "cluster", 3, 2)
	r.start()
	r.faults(func(n int) {
		if n%2 == 0 {
			r.killBroker(n == 0)
		} else {
			r.killGateway()
		}
	})
	r.finish()
}

// run is one test's setup, load, faults and findings.
type run struct {
	t                           *testing.T
	c                           *kafkatest.Cluster
	mode                        string
	id                          string // prefixes the namespace, command IDs and probe keys
	rnd                         *mrand.Rand
	duration                    time.Duration
	ns, group, commands, events string
	topicFile                   string
	dir                         string
	codecs                      *avro.Codecs
	fleet                       *fleet
	rec                         *recorder
	load                        loadConfig
	workers                     []*worker
	senders                     []*gateway.Sender[account.Command]
	stopLoad, stopProbes        chan struct{}
	loadDone, probesDone        sync.WaitGroup

	faultList []*fault
	zombie    *zombie
	restarts  int
	lastNode  int32 // the broker killed last

	t0, baselineEnd, faultsStart, faultsEnd time.Time
}

func newRun(t *testing.T, c *kafkatest.Cluster, mode string, rf int16, minISR int) *run {
	var b [3]byte
	_, _ = rand.Read(b[:])
	s := seed(t)
	r := &run{t: t, c: c, mode: mode, id: mode + "-" + hex.EncodeToString(b[:]), rnd: mrand.New(mrand.NewPCG(s, s>>1|1)),
		duration: faultPhase(t), dir: logDir(t), load: defaultLoad, stopLoad: make(chan struct{}), stopProbes: make(chan struct{})}
	r.ns = "chaos-" + r.id
	r.group = r.ns + "." + account.Type + ".gateway"
	r.commands = topics.TopicName(r.ns, account.Type, topics.RoleCommands)
	r.events = topics.TopicName(r.ns, account.Type, topics.RoleEvents)
	t.Logf("%s: seed %d (CHAOS_SEED), fault phase %v (CHAOS_DURATION), namespace %s, brokers %v, logs in %s",
		mode, s, r.duration, r.ns, c.Brokers(), r.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	if r.topicFile, _, err = writeTopicFile(ctx, c, r.dir, r.ns, rf, minISR); err != nil {
		t.Fatal(err)
	}
	if r.codecs, err = avro.New(nil); err != nil {
		t.Fatal(err)
	}
	r.rec = newRecorder(partitions)
	return r
}

// start starts the gateways, the probes and the load, waits until every shard answers,
// and measures the load without faults for baselineWindow.
func (r *run) start() {
	t := r.t
	bin := bankBinary(t)
	r.fleet = newFleet(t, bin, r.dir, r.c.Brokers(), r.topicFile)
	r.t0 = time.Now()
	for i := range gateways {
		r.fleet.start(i, fmt.Sprintf("g%d", i))
	}
	logFile, err := os.Create(filepath.Join(r.dir, "senders.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	logger := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Two Senders share the workers and a third asks the probes' questions: several
	// callers, as several application processes would be.
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		// A client of its own per Sender, as separate processes have.
		kc := r.c.Kastor(t, r.ns, cluster.Logger(logger))
		s, err := gateway.NewSender(ctx, kc, gateway.SenderConfig[account.Command]{AggregateType: account.Type, Commands: r.codecs.Commands})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		r.senders = append(r.senders, s)
		t.Cleanup(s.Close)
	}
	w := r.rec.watch(allShards(), r.t0)
	for p, key := range probeKeys(r.id, partitions) {
		r.probesDone.Add(1)
		go func() {
			defer r.probesDone.Done()
			probe(r.senders[2], r.rec, int32(p), key, r.id, 300*time.Millisecond, r.stopProbes)
		}()
	}
	if silent := r.rec.wait(w, 2*time.Minute); len(silent) > 0 {
		t.Fatalf("shards %v never answered after the gateways started", silent)
	}
	t.Logf("every shard answers %v after the gateways started", time.Since(r.t0).Round(time.Millisecond))

	for i := range r.load.workers {
		wk := &worker{id: i, cfg: r.load, s: r.senders[i%2], rec: r.rec, rnd: mrand.New(mrand.NewPCG(r.rnd.Uint64(), uint64(i))),
			run: r.id, opened: map[string]bool{}, doubt: map[string]*command{}}
		for a := i; a < r.load.accounts; a += r.load.workers {
			wk.accounts = append(wk.accounts, fmt.Sprintf("%s-acct-%03d", r.id, a))
		}
		r.workers = append(r.workers, wk)
		r.loadDone.Add(1)
		go func() {
			defer r.loadDone.Done()
			wk.loop(r.stopLoad)
		}()
	}
	baselineStart := time.Now()
	time.Sleep(baselineWindow) // the measurement window itself
	r.baselineEnd = time.Now()
	atts, _, _ := r.rec.snapshot()
	t.Logf("baseline (%d workers, %d accounts, no fault): %v", r.load.workers, r.load.accounts, baseline(atts, baselineStart, r.baselineEnd))
}

// faults injects fault(n) for n = 0, 1, ... until the fault phase is over (at least two
// faults, whatever the duration), a few seconds apart, each once the previous fault's
// shards answer again (or recoveryWait has passed).
func (r *run) faults(fault func(n int)) {
	r.faultsStart = time.Now()
	end := r.faultsStart.Add(r.duration)
	for n := 0; n < 2 || time.Now().Before(end); n++ {
		if k := r.fleet.replaceExited(func(i int) string { r.restarts++; return fmt.Sprintf("g%d-x%d", i, r.restarts) }); k > 0 {
			r.t.Logf("restarted %d gateway(s) that had exited by themselves", k)
		}
		fault(n)
		if n >= 1 && time.Now().After(end) {
			break
		}
		time.Sleep(2*time.Second + time.Duration(r.rnd.Int64N(int64(3*time.Second)))) // spacing, not synchronisation
	}
	r.faultsEnd = time.Now()
	r.stableOwners() // the last fault's ownersAfter
}

// stableOwners waits for a stable assignment and records it as the previous fault's
// ownersAfter; it returns it (possibly partial, when the group did not settle: logged).
func (r *run) stableOwners() map[int32]string {
	ctx := context.Background()
	m, err := owners(ctx, r.c.Admin(), r.group, r.commands, partitions, 30*time.Second)
	if err != nil {
		r.t.Logf("the gateways' group is not stable: %v (using the assignment as it is)", err)
	}
	if n := len(r.faultList); n > 0 && r.faultList[n-1].ownersAfter == nil {
		r.faultList[n-1].ownersAfter = m
	}
	return m
}

// victim picks a running gateway that owns shards, at random.
func (r *run) victim(own map[int32]string) (int, *gwProc) {
	var candidates []int
	for i := range r.fleet.size() {
		p := r.fleet.slot(i)
		if !p.exited() && len(shardsOf(own, p.instance)) > 0 {
			candidates = append(candidates, i)
		}
	}
	if len(candidates) == 0 {
		for i := range r.fleet.size() {
			if !r.fleet.slot(i).exited() {
				candidates = append(candidates, i)
			}
		}
	}
	i := candidates[r.rnd.IntN(len(candidates))]
	return i, r.fleet.slot(i)
}

// killGateway kills a gateway with SIGKILL and starts it again at once, as a supervisor
// would: half the time under the same instance ID (what the example's -instance flag
// recommends, so that the transactional ID fences the dead process's open transaction),
// half the time under a new one (then the shards' new owners fence it), and waits until
// the dead gateway's shards answer again.
func (r *run) killGateway() {
	before := r.stableOwners()
	i, p := r.victim(before)
	f := &fault{n: len(r.faultList) + 1, kind: "kill", victim: p.instance, dead: shardsOf(before, p.instance), ownersBefore: before}
	f.at = time.Now()
	w := r.rec.watch(f.dead, f.at)
	p.kill()
	name := p.instance
	if r.rnd.IntN(2) == 0 {
		r.restarts++
		name = fmt.Sprintf("g%d-r%d", i, r.restarts)
		f.restart = "restarted as " + name
	} else {
		f.restart = "restarted under the same instance ID"
	}
	r.fleet.start(i, name)
	r.faultList = append(r.faultList, f)
	silent := r.rec.wait(w, recoveryWait)
	r.t.Logf("fault #%d: killed %s owning shards %v, %s; %s", f.n, p.instance, f.dead, f.restart, recovery(f.at, silent))
}

// stopGateway is the zombie: the gateway owning the most shards is stopped with SIGSTOP,
// its producer described, kept stopped past its session timeout while the others take
// its shards over, then resumed: it wakes up believing it owns its shards, with whatever
// transaction it had open.
func (r *run) stopGateway() {
	before := r.stableOwners()
	i, most := 0, -1
	for j := range r.fleet.size() {
		if p := r.fleet.slot(j); !p.exited() && len(shardsOf(before, p.instance)) > most {
			i, most = j, len(shardsOf(before, p.instance))
		}
	}
	p := r.fleet.slot(i)
	f := &fault{n: len(r.faultList) + 1, kind: "zombie", victim: p.instance, dead: shardsOf(before, p.instance), ownersBefore: before}
	f.at = time.Now()
	w := r.rec.watch(f.dead, f.at)
	if err := p.signal(syscall.SIGSTOP); err != nil {
		r.t.Fatalf("SIGSTOP %s: %v", p.instance, err)
	}
	r.faultList = append(r.faultList, f)
	z := &zombie{instance: p.instance, txnID: r.group + "-" + p.instance, stoppedAt: f.at}
	// Describe the producer a second after the stop: a request the process sent just
	// before it (an EndTxn, whose commit raises the epoch) has landed by then, and the
	// group drops the process only after its 6 s session timeout, so no fence yet.
	time.Sleep(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	var err error
	z.producerID, z.epoch, z.txnState, err = describeProducer(ctx, r.c.Admin(), z.txnID)
	cancel()
	if err != nil {
		r.t.Errorf("describing the zombie's producer %s: %v (check (e) cannot run)", z.txnID, err)
	} else {
		r.zombie = z
	}
	silent := r.rec.wait(w, recoveryWait)
	if rest := zombiePause - time.Since(f.at); rest > 0 {
		time.Sleep(rest) // the length of the fault, not synchronisation
	}
	z.resumedAt = time.Now()
	f.resumed = z.resumedAt
	if err := p.signal(syscall.SIGCONT); err != nil {
		r.t.Fatalf("SIGCONT %s: %v", p.instance, err)
	}
	r.t.Logf("fault #%d: stopped %s owning shards %v (producer %d epoch %d, transaction %s) for %v; %s",
		f.n, p.instance, f.dead, z.producerID, z.epoch, z.txnState, z.resumedAt.Sub(f.at).Round(time.Millisecond), recovery(f.at, silent))
}

// killBroker kills a broker with SIGKILL (the group coordinator when coordinator is set,
// else another one at random), keeps it down for brokerDown, starts it again and waits
// until every shard answers again.
func (r *run) killBroker(coordinator bool) {
	before := r.stableOwners()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	node := int32(-1)
	if coordinator {
		if fc, ok := r.c.Admin().FindGroupCoordinators(ctx, r.group)[r.group]; ok && fc.Err == nil {
			node = fc.NodeID
		}
	}
	if node < 0 {
		var ids []int32
		for _, id := range r.c.NodeIDs() {
			if id != r.lastNode {
				ids = append(ids, id)
			}
		}
		node = ids[r.rnd.IntN(len(ids))]
	}
	r.lastNode = node
	f := &fault{n: len(r.faultList) + 1, kind: "broker", victim: fmt.Sprintf("node %d", node), dead: allShards(), ownersBefore: before}
	if coordinator {
		f.victim += " (the group coordinator)"
	}
	f.at = time.Now()
	if err := r.c.KillNode(ctx, node); err != nil {
		r.t.Fatal(err)
	}
	r.faultList = append(r.faultList, f)
	leaders := watchLeaders(ctx, r.c.Admin(), f.at, []string{r.commands, r.events,
		topics.TopicName(r.ns, account.Type, topics.RoleReplies), topics.TopicName(r.ns, account.Type, topics.RoleSnapshots)})
	time.Sleep(brokerDown) // the length of the outage, not synchronisation
	if err := r.c.StartNode(ctx, node); err != nil {
		r.t.Fatal(err)
	}
	f.resumed = time.Now()
	f.election = <-leaders
	f.restart = fmt.Sprintf("started again after %v", f.resumed.Sub(f.at).Round(time.Millisecond))
	w := r.rec.watch(f.dead, f.resumed)
	silent := r.rec.wait(w, recoveryWait)
	r.t.Logf("fault #%d: killed broker %s, leaders answering after %s, %s; %s", f.n, f.victim, dur(f.election), f.restart, recovery(f.resumed, silent))
}

func recovery(since time.Time, silent []int32) string {
	if len(silent) > 0 {
		return fmt.Sprintf("shards %v still silent after %v", silent, time.Since(since).Round(time.Millisecond))
	}
	return fmt.Sprintf("every shard concerned answered within %v", time.Since(since).Round(time.Millisecond))
}

func allShards() []int32 {
	out := make([]int32, partitions)
	for i := range out {
		out[i] = int32(i)
	}
	return out
}

// finish stops the load, settles every command whose outcome is unknown, stops the
// gateways, reads the log back and checks it, and reports the figures.
func (r *run) finish() {
	t := r.t
	close(r.stopLoad)
	if !waitGroup(&r.loadDone, 5*time.Minute) {
		t.Fatal("the workers did not finish their last commands within 5 minutes")
	}
	// Commands whose outcome is still unknown (their questions timed out during a fault)
	// are asked again, now that the faults are over; their accounts got nothing since.
	for _, w := range r.workers {
		for _, c := range w.doubt {
			if !w.resolve(c) {
				t.Errorf("the outcome of command %s is still unknown: %s", c.id, c.history())
			}
		}
	}
	close(r.stopProbes)
	if !waitGroup(&r.probesDone, time.Minute) {
		t.Error("the probes did not stop within a minute")
	}
	for _, s := range r.senders {
		s.Close()
	}
	for _, msg := range r.fleet.stopAll(30 * time.Second) {
		t.Errorf("%s", msg)
	}
	for _, msg := range r.fleet.unexpectedExits() {
		t.Errorf("%s", msg)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := awaitSettled(ctx, r.c.Admin(), r.events, time.Minute); err != nil {
		t.Fatal(err)
	}
	evs, markers, err := readBack(ctx, r.c, r.events, partitions, r.codecs)
	if err != nil {
		t.Fatal(err)
	}
	atts, cmds, errs := r.rec.snapshot()
	r.dump(atts)
	for _, e := range errs {
		t.Errorf("sender: %s", e)
	}
	r.report(atts, cmds, evs)

	violations := func(check string, list []string) {
		if len(list) == 0 {
			t.Logf("check %s: passed", check)
			return
		}
		const show = 20
		t.Errorf("check %s FAILED: %d violation(s)", check, len(list))
		for _, v := range list[:min(show, len(list))] {
			t.Errorf("  %s", v)
		}
		if len(list) > show {
			t.Errorf("  ... and %d more", len(list)-show)
		}
	}
	violations("(a) versions 1..n per aggregate", checkVersions(evs, partitions))
	violations("(b) at most one execution per command ID", checkOneExecution(evs, cmds))
	violations("(c) what callers were told is in the log", checkTold(evs, cmds))
	balances, unresolved := checkBalances(evs, cmds)
	violations("(d) balances from the log = balances from what callers were told", balances)
	if len(unresolved) > 0 {
		violations("every command's outcome learned", unresolved)
	}
	if r.zombie != nil {
		zv, seen := checkZombie(evs, markers, *r.zombie)
		violations(fmt.Sprintf("(e) nothing committed by the zombie %s (producer %d, epoch <= %d) after it resumed", r.zombie.instance, r.zombie.producerID, r.zombie.epoch), zv)
		if seen == 0 {
			t.Errorf("check (e) proved nothing: no committed event of the zombie's producer %d from before its stop (the wrong producer?)", r.zombie.producerID)
		}
		t.Logf("the zombie's producer had %d committed events before its stop; its transaction was %s when it stopped", seen, r.zombie.txnState)
	}
	r.assertFailover(atts)
}

// report logs the figures: the faults, the failover, the longest silences, and counts.
func (r *run) report(atts []attempt, cmds map[string]*command, evs []event) {
	t := r.t
	counts := map[string]int{}
	for _, c := range cmds {
		kind, _, _, _ := c.outcome()
		counts[kind.String()]++
		for _, tl := range c.told {
			if tl.detail == "duplicate" {
				counts["duplicate answers"]++
			}
			if tl.via == "outcome" {
				counts["settled by Outcome"]++
			}
		}
		if c.attempts > 1 {
			counts["sent more than once"]++
		}
	}
	timeouts := 0
	for _, a := range atts {
		if a.timedOut && !a.probe {
			timeouts++
		}
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
	}
	t.Logf("%s: %d commands (%s), %d attempts (%d timed out), %d events in the log; %d gateway processes started",
		r.mode, len(cmds), strings.Join(parts, ", "), len(atts), timeouts, len(evs), len(r.fleet.all))
	t.Logf("baseline without faults: %v", baseline(atts, r.baselineEnd.Add(-baselineWindow), r.baselineEnd))
	for i, f := range r.faultList {
		horizon := r.faultsEnd.Add(recoveryWait)
		if i+1 < len(r.faultList) {
			horizon = r.faultList[i+1].at
		}
		t.Logf("%s", describeFault(f, computeFailover(f, atts, horizon), r.t0))
	}
	gaps := longestGaps(atts, partitions, r.faultsStart, r.faultsEnd)
	var top []string
	for _, g := range gaps[:min(5, len(gaps))] {
		top = append(top, fmt.Sprintf("shard %d %v from +%v", g.partition, ms(g.length), ms(g.start.Sub(r.t0))))
	}
	t.Logf("longest time any shard went without an answer during the faults: %s", strings.Join(top, "; "))
	fenced := r.fleet.logLines("fenced a departed instance")
	errorsLogged := r.fleet.logLines("level=ERROR")
	t.Logf("gateway logs: %d departed instances fenced, %d ERROR lines", len(fenced), len(errorsLogged))
	for _, l := range errorsLogged[:min(10, len(errorsLogged))] {
		t.Logf("  %s", l)
	}
}

// assertFailover fails the run when a killed or stopped gateway's shards did not all
// answer again within failoverBound, or a broker fault left a shard silent past
// recoveryWait after the broker was back.
func (r *run) assertFailover(atts []attempt) {
	for i, f := range r.faultList {
		horizon := r.faultsEnd.Add(recoveryWait)
		if i+1 < len(r.faultList) {
			horizon = r.faultList[i+1].at
		}
		switch f.kind {
		case "kill", "zombie":
			fo := computeFailover(f, atts, horizon)
			if len(fo.missing) > 0 || fo.allAnswered > failoverBound {
				r.t.Errorf("fault #%d (%s %s): the dead shards %v answered again after %s (missing %v), want within %v (W6)",
					f.n, f.kind, f.victim, f.dead, dur(fo.allAnswered), fo.missing, failoverBound)
			}
		case "broker":
			// Broker loss is a pause: once every partition's leader answers again (new ones
			// elected, or the broker back first), every shard answers within
			// brokerLossBound.
			if fo := computeFailover(f, atts, horizon); f.election >= 0 {
				over := fo.allAnswered - f.election
				if over > brokerLossBound {
					r.t.Errorf("fault #%d (broker %s): leaders answered again after %v but shards only after %v (per shard %v), want within %v more (issue 14)",
						f.n, f.victim, ms(f.election), ms(fo.allAnswered), fo.perShard, brokerLossBound)
				} else {
					r.t.Logf("fault #%d (broker %s): leaders answered again after %v, every shard %v later (bound %v)",
						f.n, f.victim, ms(f.election), ms(over), brokerLossBound)
				}
			}
			after := *f
			after.at = f.resumed
			if fo := computeFailover(&after, atts, horizon); len(fo.missing) > 0 {
				r.t.Errorf("fault #%d (broker %s): shards %v never answered after the broker was back", f.n, f.victim, fo.missing)
			}
		}
	}
	if len(r.faultList) > 0 && slices.IndexFunc(r.faultList, func(f *fault) bool { return f.kind != "broker" && len(f.dead) == 0 }) >= 0 {
		r.t.Logf("note: a gateway fault hit a gateway that owned no shard")
	}
}

// dump writes every attempt to attempts.csv in the log directory, with the faults, for a
// closer look at a run than the report gives.
func (r *run) dump(atts []attempt) {
	var b strings.Builder
	b.WriteString("# faults (ms since the gateways started): n,kind,victim,at,resumed,shards\n")
	for _, f := range r.faultList {
		resumed := int64(-1)
		if !f.resumed.IsZero() {
			resumed = f.resumed.Sub(r.t0).Milliseconds()
		}
		fmt.Fprintf(&b, "# %d,%s,%s,%d,%d,%v\n", f.n, f.kind, f.victim, f.at.Sub(r.t0).Milliseconds(), resumed, f.dead)
	}
	b.WriteString("partition,start_ms,end_ms,answered,verdict,probe,timed_out\n")
	for _, a := range atts {
		fmt.Fprintf(&b, "%d,%d,%d,%t,%t,%t,%t\n", a.partition, a.start.Sub(r.t0).Milliseconds(), a.end.Sub(r.t0).Milliseconds(),
			a.answered, a.verdict, a.probe, a.timedOut)
	}
	if err := os.WriteFile(filepath.Join(r.dir, "attempts.csv"), []byte(b.String()), 0o644); err != nil {
		r.t.Logf("writing attempts.csv: %v", err)
	}
}

func waitGroup(wg *sync.WaitGroup, timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}
