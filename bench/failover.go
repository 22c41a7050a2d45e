package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/wire"
)

// The failover figure (issue #14): three instances serve a steady load; one is killed with
// SIGKILL; how long until every partition it owned answers again, and what the survivors'
// reply p99 is meanwhile, for kastor's gateway (three OS processes: the bench binary run
// again as a gateway child, with the library's defaults) beside Kafka Streams (three JVMs
// of bench/streams, exactly_once_v2) with its defaults, and with a tuned configuration in a
// row labelled so.

const (
	// failoverPartitions: 4 partitions per instance, so each owns several.
	failoverPartitions = 12
	// failoverAccountsPerPartition accounts per partition take the commands in turn.
	failoverAccountsPerPartition = 2
	// failoverWarmUp is how long the load runs, once every partition has answered, before
	// the baseline window (JIT, caches, a first checkpoint).
	failoverWarmUp = 5 * time.Second
	// failoverBaseline is the no-fault window before a kill whose p99 is the "before".
	failoverBaseline = 10 * time.Second
	// failoverAttempt is the per-attempt timeout of the gateway's senders: a command not
	// answered within it is sent again with the same command ID.
	failoverAttempt = 5 * time.Second
	// failoverInFlight: the survivors' commands sent this long before a kill belong to
	// the failover window, not to the baseline.
	failoverInFlight = time.Second
	// failoverStraggle bounds the wait for the survivors' commands of the failover window
	// to be answered, after the dead partitions answered.
	failoverStraggle = 30 * time.Second

	gatewayChildEnv = "KASTOR_BENCH_GATEWAY_CHILD"
)

// streamsTuned is what Kafka Streams users set for fast failover: the consumer's session
// timeout and heartbeat at kastor's defaults (6 s, the least a stock broker accepts, and
// 1 s) instead of 45 s and 3 s, and one standby replica per task, so that a task moves to
// an instance that already holds its state (the Streams documentation's advice for
// failover time).
var streamsTuned = []string{"config.session.timeout.ms=6000", "config.heartbeat.interval.ms=1000", "config.num.standby.replicas=1"}

// failoverCmd is one command of the load: its partition, when it was first sent, when
// the attempt that was answered was sent, and when its reply (and, for Streams, its
// event) was read, committed.
type failoverCmd struct {
	partition         int32
	sent, attempt, at time.Time
	event             time.Time
}

// failoverLoad records the commands of a failover run.
type failoverLoad struct {
	mu   sync.Mutex
	cmds []*failoverCmd
	err  error
}

func (l *failoverLoad) add(p int32) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cmds = append(l.cmds, &failoverCmd{partition: p, sent: time.Now()})
	return len(l.cmds) - 1
}

// answered notes command i's first reply, at, to the attempt sent at attempt.
func (l *failoverLoad) answered(i int, attempt, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i < 0 || i >= len(l.cmds) || !l.cmds[i].at.IsZero() {
		return
	}
	c := l.cmds[i]
	c.at = at
	if attempt.IsZero() {
		attempt = c.sent
	}
	c.attempt = attempt
}

func (l *failoverLoad) eventSeen(i int, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i >= 0 && i < len(l.cmds) && l.cmds[i].event.IsZero() {
		l.cmds[i].event = at
	}
}

func (l *failoverLoad) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
	}
}

func (l *failoverLoad) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// served reports whether every partition of ps has answered a command.
func (l *failoverLoad) served(ps []int32) bool {
	first := l.firstAnswers(ps, time.Time{})
	return len(first) == len(ps)
}

// firstAnswers returns, per partition of ps, the first reply to an attempt sent at or
// after t: an attempt written after a kill can only be answered by a live instance.
func (l *failoverLoad) firstAnswers(ps []int32, t time.Time) map[int32]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[int32]time.Time{}
	for _, c := range l.cmds {
		if c.at.IsZero() || c.attempt.Before(t) || !slices.Contains(ps, c.partition) {
			continue
		}
		if f, ok := out[c.partition]; !ok || c.at.Before(f) {
			out[c.partition] = c.at
		}
	}
	return out
}

// windowStats are the reply latencies (first send to reply) of the commands to the
// partitions ps first sent in [from, to); unanswered ones count as their age at now.
type windowStats struct {
	n, unanswered int
	p50, p99, max time.Duration
	// ev are the same for the events (Streams only): send to event read, committed.
	evP99 time.Duration
}

func (l *failoverLoad) window(ps []int32, from, to time.Time) windowStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	var lats, evs []time.Duration
	st := windowStats{}
	for _, c := range l.cmds {
		if c.sent.Before(from) || !c.sent.Before(to) || !slices.Contains(ps, c.partition) {
			continue
		}
		if c.at.IsZero() {
			st.unanswered++
			lats = append(lats, now.Sub(c.sent))
		} else {
			lats = append(lats, c.at.Sub(c.sent))
		}
		if !c.event.IsZero() {
			evs = append(evs, c.event.Sub(c.sent))
		}
	}
	st.n = len(lats)
	if st.n == 0 {
		return st
	}
	slices.Sort(lats)
	st.p50, st.p99, st.max = lats[st.n/2], lats[st.n*99/100], lats[st.n-1]
	if len(evs) > 0 {
		slices.Sort(evs)
		st.evP99 = evs[len(evs)*99/100]
	}
	return st
}

// timeline returns, per step of sending time from from to to, the largest reply latency
// of the commands to ps sent then (ms; "-" when none was sent, "?" when one is unanswered).
func (l *failoverLoad) timeline(ps []int32, from, to time.Time, step time.Duration) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := int((to.Sub(from) + step - 1) / step)
	worst := make([]time.Duration, n)
	open := make([]bool, n)
	for _, c := range l.cmds {
		if c.sent.Before(from) || !c.sent.Before(to) || !slices.Contains(ps, c.partition) {
			continue
		}
		i := int(c.sent.Sub(from) / step)
		if c.at.IsZero() {
			open[i] = true
		} else {
			worst[i] = max(worst[i], c.at.Sub(c.sent))
		}
	}
	var b strings.Builder
	for i := range n {
		switch {
		case open[i]:
			b.WriteString(" ?")
		case worst[i] == 0:
			b.WriteString(" -")
		default:
			fmt.Fprintf(&b, " %.0f", ms(worst[i]))
		}
	}
	return b.String()
}

// pending counts the commands to ps first sent in [from, to) not answered yet.
func (l *failoverLoad) pending(ps []int32, from, to time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.cmds {
		if !c.sent.Before(from) && c.sent.Before(to) && c.at.IsZero() && slices.Contains(ps, c.partition) {
			n++
		}
	}
	return n
}

// failoverAccounts returns failoverAccountsPerPartition accounts per partition, and their
// partitions.
func failoverAccounts() ([]string, []int32) {
	per := map[int32]int{}
	var accts []string
	var parts []int32
	for i := 0; len(accts) < failoverPartitions*failoverAccountsPerPartition; i++ {
		id := fmt.Sprintf("acct-%06d", i)
		p := producer.PartitionFor([]byte(id), failoverPartitions)
		if per[p] < failoverAccountsPerPartition {
			per[p]++
			accts = append(accts, id)
			parts = append(parts, p)
		}
	}
	return accts, parts
}

func allPartitions() []int32 {
	ps := make([]int32, failoverPartitions)
	for i := range ps {
		ps[i] = int32(i)
	}
	return ps
}

// failoverResult is one kill.
type failoverResult struct {
	dead []int32
	// timeline is the survivors' worst reply latency per second of sending, from 2 s
	// before the kill until the dead partitions answered (verbose output).
	timeline       string
	took           time.Duration           // kill -> every dead partition answered again
	perPartition   map[int32]time.Duration // kill -> that partition's first answer
	before, during windowStats             // the survivors' replies
}

// measureKill runs kill, waits until every partition of dead has answered an attempt sent
// after the kill (at most limit: the failover time is the last of those first answers),
// then until the survivors' commands of the failover window are answered (at most
// failoverStraggle, the rest counted at their age). The survivors' "before" are their
// commands sent in the failoverBaseline before that window.
func measureKill(l *failoverLoad, dead []int32, limit time.Duration, kill func() error) (failoverResult, error) {
	res := failoverResult{dead: dead, perPartition: map[int32]time.Duration{}}
	var surviving []int32
	for _, p := range allPartitions() {
		if !slices.Contains(dead, p) {
			surviving = append(surviving, p)
		}
	}
	t0 := time.Now()
	if err := kill(); err != nil {
		return res, err
	}
	for deadline := t0.Add(limit); ; {
		first := l.firstAnswers(dead, t0)
		if len(first) == len(dead) {
			for p, at := range first {
				d := at.Sub(t0)
				res.perPartition[p] = d
				res.took = max(res.took, d)
			}
			break
		}
		if err := l.failed(); err != nil {
			return res, err
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("%d of the dead instance's partitions %v did not answer within %v of the kill", len(dead)-len(first), dead, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	end := t0.Add(res.took)
	// A command sent just before the kill may be caught by it (in the victim's open
	// transaction, or behind it in a read_committed reader): the before window ends a
	// second before the kill, and the failover window starts there.
	mid := t0.Add(-failoverInFlight)
	for deadline := time.Now().Add(failoverStraggle); l.pending(surviving, mid, end) > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	res.timeline = l.timeline(surviving, t0.Add(-2*time.Second), end, time.Second)
	res.before = l.window(surviving, mid.Add(-failoverBaseline), mid)
	res.during = l.window(surviving, mid, end)
	return res, l.failed()
}

// groupAssignment returns the partitions of topic each member of group owns, by the
// instance name instance extracts from the member's client ID (members it rejects are
// skipped), and whether the group is stable.
func groupAssignment(ctx context.Context, adm *kadm.Client, group, topic string, instance func(clientID string) (string, bool)) (map[string][]int32, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	gs, err := adm.DescribeGroups(ctx, group)
	if err == nil {
		err = gs.Error()
	}
	if err != nil {
		return nil, false, err
	}
	out := map[string][]int32{}
	for _, m := range gs[group].Members {
		name, ok := instance(m.ClientID)
		if !ok {
			continue
		}
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			continue
		}
		for _, tp := range a.Topics {
			if tp.Topic == topic {
				out[name] = append(out[name], tp.Partitions...)
			}
		}
	}
	return out, gs[group].State == "Stable", nil
}

// awaitSpread waits until the group is stable with exactly the instances named sharing
// every partition of topic, each owning some.
func awaitSpread(ctx context.Context, adm *kadm.Client, group, topic string, instance func(string) (string, bool), timeout time.Duration, failed func() error, names ...string) (map[string][]int32, error) {
	deadline := time.Now().Add(timeout)
	for {
		a, stable, err := groupAssignment(ctx, adm, group, topic, instance)
		n := 0
		for _, ps := range a {
			n += len(ps)
		}
		ok := err == nil && stable && len(a) == len(names) && n == failoverPartitions
		for _, name := range names {
			ok = ok && len(a[name]) > 0
		}
		if ok {
			for _, ps := range a {
				slices.Sort(ps)
			}
			return a, nil
		}
		if failed != nil {
			if err := failed(); err != nil {
				return nil, err
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("group %s did not settle on %v within %v: %v (stable %v, %v)", group, names, timeout, a, stable, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// awaitServed waits until every partition has answered, then for failoverWarmUp.
func awaitServed(l *failoverLoad, timeout time.Duration, failed func() error) error {
	deadline := time.Now().Add(timeout)
	for !l.served(allPartitions()) {
		if err := cmpErr(l.failed(), failed); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not every partition answered within %v of the load's start", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(failoverWarmUp)
	return nil
}

func cmpErr(err error, failed func() error) error {
	if err != nil || failed == nil {
		return err
	}
	return failed()
}

// --- kastor ---

// gatewayChild is a gateway process: the bench binary run again with gatewayChildEnv.
type gatewayChild struct {
	name   string
	cmd    *exec.Cmd
	out    *lockedBuffer
	done   chan error
	killed atomic.Bool // by the bench, on purpose
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func spawnGateway(c *kafkatest.Cluster, ts topicSet, name string) (*gatewayChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), gatewayChildEnv+"=1", "BENCH_CHILD_BROKERS="+strings.Join(c.Brokers(), ","),
		"BENCH_CHILD_NS="+ts.ns, "BENCH_CHILD_INSTANCE="+name)
	cmd.SysProcAttr = childProcAttr()
	g := &gatewayChild{name: name, cmd: cmd, out: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = g.out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { g.done <- cmd.Wait() }()
	return g, nil
}

// exited returns an error when the child has exited.
func (g *gatewayChild) exited() error {
	select {
	case err := <-g.done:
		g.done <- err
		return fmt.Errorf("gateway %s exited (%v):\n%s", g.name, err, tail(g.out.String(), 4000))
	default:
		return nil
	}
}

func (g *gatewayChild) kill() {
	_ = g.cmd.Process.Kill()
	err := <-g.done
	g.done <- err
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// runGatewayChild runs one gateway with the library's defaults (gateway.Config's zero
// values for the session, heartbeat, transaction timeout, batch and commit interval) until
// SIGTERM or SIGKILL.
func runGatewayChild() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(os.Getenv("BENCH_CHILD_BROKERS"), ",")...))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer cl.Close()
	kc, err := cluster.New(cl, os.Getenv("BENCH_CHILD_NS"), cluster.Logger(logger))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	g, err := gateway.New(kc, gateway.Config[account, deposit, deposited]{
		Aggregate: accountAggregate,
		Commands:  cmdCodec, Events: jsonCodec[deposited]{typ: "bank.MoneyDeposited"}, States: jsonCodec[account]{typ: "bank.Account"},
		InstanceID: os.Getenv("BENCH_CHILD_INSTANCE"),
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

func gatewayInstance(clientID string) (string, bool) {
	return strings.CutPrefix(clientID, "kastor-gateway-")
}

// kastorFailover runs three gateway processes under the load, kills a follower, then
// (after a fourth joined) the group's leader.
func kastorFailover(ctx context.Context, c *kafkatest.Cluster, rate float64, logDir string) (follower, leader failoverResult, err error) {
	ts, err := newTopicSet(ctx, c, failoverPartitions)
	if err != nil {
		return follower, leader, err
	}
	group := ts.ns + "." + accountAggregate.Type + ".gateway"
	adm := c.Admin()
	var children []*gatewayChild
	defer func() {
		for _, g := range children {
			g.kill()
			if logDir != "" {
				_ = os.WriteFile(filepath.Join(logDir, ts.ns+"-gateway-"+g.name+".log"), []byte(g.out.String()), 0o644)
			}
		}
		if err != nil {
			for _, g := range children {
				err = fmt.Errorf("%w\n--- gateway %s:\n%s", err, g.name, tail(g.out.String(), 2000))
			}
		}
	}()
	spawn := func(name string) (*gatewayChild, error) {
		g, err := spawnGateway(c, ts, name)
		if err == nil {
			children = append(children, g)
		}
		return g, err
	}
	exited := func() error {
		for _, g := range children {
			if err := g.exited(); err != nil && !g.killed.Load() {
				return err
			}
		}
		return nil
	}
	settle := func(names ...string) (map[string][]int32, error) {
		return awaitSpread(ctx, adm, group, ts.commands, gatewayInstance, 2*time.Minute, exited, names...)
	}
	// The first gateway alone first: the classic protocol keeps its first member as the
	// group's leader while it lives.
	a, err := spawn("a")
	if err != nil {
		return follower, leader, err
	}
	if _, err = settle("a"); err != nil {
		return follower, leader, err
	}
	b, err := spawn("b")
	if err != nil {
		return follower, leader, err
	}
	if _, err = spawn("c"); err != nil {
		return follower, leader, err
	}
	if _, err = settle("a", "b", "c"); err != nil {
		return follower, leader, err
	}

	s, err := gateway.NewSender(ctx, ts.kc, gateway.SenderConfig[deposit]{AggregateType: accountAggregate.Type, Commands: cmdCodec})
	if err != nil {
		return follower, leader, err
	}
	defer s.Close()
	l := &failoverLoad{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	accts, parts := failoverAccounts()
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			k := i % len(accts)
			n := l.add(parts[k])
			wg.Add(1)
			go func() {
				defer wg.Done()
				sendUntilAnswered(s, l, n, accts[k], stop)
			}()
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	if err = awaitServed(l, time.Minute, exited); err != nil {
		return follower, leader, err
	}

	kill := func(victim *gatewayChild, alive ...string) (failoverResult, error) {
		if _, err := settle(append([]string{victim.name}, alive...)...); err != nil {
			return failoverResult{}, err
		}
		// The baseline starts once every partition answered a command sent after the
		// group settled: a joining instance's restores are not part of it.
		settled := time.Now()
		for len(l.firstAnswers(allPartitions(), settled)) < failoverPartitions {
			if err := cmpErr(l.failed(), exited); err != nil {
				return failoverResult{}, err
			}
			if time.Since(settled) > time.Minute {
				return failoverResult{}, fmt.Errorf("not every partition answered within a minute of the group settling on %s, %v", victim.name, alive)
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(failoverBaseline + failoverInFlight)
		// The assignment again, just before the kill: it is what the victim owned.
		asg, err := settle(append([]string{victim.name}, alive...)...)
		if err != nil {
			return failoverResult{}, err
		}
		return measureKill(l, asg[victim.name], time.Minute, func() error {
			victim.killed.Store(true)
			return victim.cmd.Process.Kill()
		})
	}
	if follower, err = kill(b, "a", "c"); err != nil {
		return follower, leader, err
	}
	if verbose {
		fmt.Printf("  kastor, follower killed: %s\n", describeKill(follower))
		fmt.Printf("    %s\n", fenceLines(children, "b"))
	}
	if _, err = spawn("d"); err != nil {
		return follower, leader, err
	}
	if leader, err = kill(a, "c", "d"); err != nil {
		return follower, leader, err
	}
	if verbose {
		fmt.Printf("  kastor, leader killed: %s\n", describeKill(leader))
		fmt.Printf("    %s\n", fenceLines(children, "a"))
	}
	return follower, leader, nil
}

// fenceLines reports whether a survivor fenced the victim's open transaction (the kill
// landed inside a transaction) and how long the fence took, from the survivors' logs.
func fenceLines(children []*gatewayChild, victim string) string {
	var out []string
	for _, g := range children {
		for line := range strings.SplitSeq(g.out.String(), "\n") {
			if strings.Contains(line, "fenced a departed instance") && strings.Contains(line, "-"+victim+" ") {
				out = append(out, g.name+": "+line)
			}
		}
	}
	if len(out) == 0 {
		return "no survivor fenced an open transaction of the victim (the kill fell between its transactions)"
	}
	return strings.Join(out, "\n    ")
}

// sendUntilAnswered sends command n (ID f-n) to acct through s, one attempt at a time
// with failoverAttempt each, again with the same ID after a timeout or an expiry, until
// it is answered or the load stops.
func sendUntilAnswered(s *gateway.Sender[deposit], l *failoverLoad, n int, acct string, stop <-chan struct{}) {
	cmd := kastor.Command[deposit]{AggregateID: acct, ID: "f-" + strconv.Itoa(n), ExpectedVersion: kastor.AnyVersion, Payload: deposit{Amount: 1}}
	for {
		attempt := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), failoverAttempt)
		_, err := s.Send(ctx, cmd)
		cancel()
		if err == nil {
			l.answered(n, attempt, time.Now())
			return
		}
		if !errors.Is(err, kastor.ErrTimeout) && !errors.Is(err, kastor.ErrExpired) {
			select {
			case <-stop:
			default:
				l.fail(fmt.Errorf("command %s to %s: %w", cmd.ID, acct, err))
			}
			return
		}
		select {
		case <-stop:
			return
		default:
		}
	}
}

func describeKill(r failoverResult) string {
	var per []string
	for _, p := range r.dead {
		per = append(per, fmt.Sprintf("%d:%.2fs", p, r.perPartition[p].Seconds()))
	}
	return fmt.Sprintf("dead partitions %v answered again after %s (per partition %s); survivors before: %s; during: %s\n    survivors' worst reply (ms) per second sent, from 2 s before the kill:%s",
		r.dead, r.took.Round(time.Millisecond), strings.Join(per, " "), describeWindow(r.before), describeWindow(r.during), r.timeline)
}

func describeWindow(w windowStats) string {
	s := fmt.Sprintf("%d replies, p50 %.0f ms, p99 %.0f ms, max %.0f ms", w.n, ms(w.p50), ms(w.p99), ms(w.max))
	if w.evP99 > 0 {
		s += fmt.Sprintf(", events p99 %.0f ms", ms(w.evP99))
	}
	if w.unanswered > 0 {
		s += fmt.Sprintf(", %d unanswered (counted at their age)", w.unanswered)
	}
	return s
}

// --- Kafka Streams ---

func streamsInstance(clientID string) (string, bool) {
	name, _, ok := strings.Cut(clientID, "-StreamThread-")
	return name, ok
}

// streamsFailover runs three Kafka Streams JVMs (extra: their settings besides the
// defaults) under the same load, and kills a follower with SIGKILL.
func streamsFailover(ctx context.Context, c *kafkatest.Cluster, jar string, rate float64, limit time.Duration, extra []string) (res failoverResult, err error) {
	ts, err := newTopicSet(ctx, c, failoverPartitions)
	if err != nil {
		return res, err
	}
	app := ts.ns + "-streams"
	adm := c.Admin()
	var apps []*streamsApp
	defer func() {
		for _, a := range apps {
			_ = a.cmd.Process.Kill()
			<-a.done
			os.RemoveAll(a.stateDir)
		}
	}()
	start := func(name string) (*streamsApp, error) {
		// commit.interval.ms 100 is Streams' default under exactly_once_v2.
		a, err := startStreams(jar, c, ts, app, 100*time.Millisecond, 1, append([]string{"client-id=" + name}, extra...)...)
		if err == nil {
			apps = append(apps, a)
		}
		return a, err
	}
	a, err := start("peer-a")
	if err != nil {
		return res, err
	}
	if err = a.waitRunning(2 * time.Minute); err != nil {
		return res, err
	}
	b, err := start("peer-b")
	if err != nil {
		return res, err
	}
	cc, err := start("peer-c")
	if err != nil {
		return res, err
	}
	for _, x := range []*streamsApp{b, cc} {
		if err = x.waitRunning(2 * time.Minute); err != nil {
			return res, err
		}
	}
	var victim *streamsApp
	failed := func() error {
		for _, x := range apps {
			if x == victim {
				continue
			}
			if err := x.err(); err != nil {
				return err
			}
		}
		return nil
	}
	names := []string{"peer-a", "peer-b", "peer-c"}
	if _, err = awaitSpread(ctx, adm, app, ts.commands, streamsInstance, 2*time.Minute, failed, names...); err != nil {
		return res, err
	}

	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cl, err := c.NewClient(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0),
		kgo.ConsumeTopics(ts.replies, ts.events), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return res, err
	}
	defer cl.Close()
	l := &failoverLoad{}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			fs := cl.PollFetches(lctx)
			if lctx.Err() != nil {
				return
			}
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				switch r.Topic {
				case ts.replies:
					var rep struct {
						CommandID string `json:"commandId"`
					}
					if json.Unmarshal(r.Value, &rep) == nil {
						if n, err := strconv.Atoi(strings.TrimPrefix(rep.CommandID, "f-")); err == nil {
							l.answered(n, time.Time{}, now)
						}
					}
				case ts.events:
					for _, h := range r.Headers {
						if h.Key == "kastor.command.id" {
							if n, err := strconv.Atoi(strings.TrimPrefix(string(h.Value), "f-")); err == nil {
								l.eventSeen(n, now)
							}
						}
					}
				}
			})
		}
	}()
	enc, _ := cmdCodec.Encode(deposit{Amount: 1})
	accts, parts := failoverAccounts()
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-lctx.Done():
				return
			case <-tick.C:
			}
			k := i % len(accts)
			n := l.add(parts[k])
			md := kastor.Metadata{AggregateID: accts[k], CommandID: "f-" + strconv.Itoa(n), Type: enc.Type, Fingerprint: enc.Fingerprint}
			hs := wire.AppendHeaders([]kgo.RecordHeader{{Key: wire.HeaderReplyTo, Value: []byte("bench")}}, &md)
			cl.Produce(lctx, &kgo.Record{Topic: ts.commands, Partition: parts[k], Key: []byte(accts[k]), Value: enc.Data, Headers: hs},
				func(_ *kgo.Record, err error) {
					if err != nil && lctx.Err() == nil {
						l.fail(fmt.Errorf("produce a command: %w", err))
					}
				})
		}
	}()
	defer func() { cancel(); wg.Wait() }()
	if err = awaitServed(l, 2*time.Minute, failed); err != nil {
		return res, err
	}
	time.Sleep(failoverBaseline + failoverInFlight)
	asg, err := awaitSpread(ctx, adm, app, ts.commands, streamsInstance, time.Minute, failed, names...)
	if err != nil {
		return res, err
	}
	res, err = measureKill(l, asg["peer-b"], limit, func() error {
		victim = b
		return b.cmd.Process.Kill()
	})
	if err == nil {
		err = failed()
	}
	return res, err
}

// --- the figure ---

type failoverOpts struct {
	rate           float64
	streams, tuned bool
	logDir         string
}

// failoverFlags registers the failover figure's flags.
func failoverFlags() *failoverOpts {
	o := &failoverOpts{}
	flag.Float64Var(&o.rate, "failover-rate", 300, "commands/s of the failover figure's load")
	flag.BoolVar(&o.streams, "failover-streams", true, "measure Kafka Streams beside kastor in the failover figure (false: kastor alone, when investigating)")
	flag.BoolVar(&o.tuned, "failover-tuned", true, "measure Kafka Streams tuned for failover too, beside its defaults")
	flag.StringVar(&o.logDir, "failover-logs", "", "write the failover gateways' logs (info level) into this directory")
	return o
}

// failoverBench prints the failover figure: kastor's gateway (library defaults) beside
// Kafka Streams with its defaults, in the same run, then Streams tuned for failover
// (when tuned) and kastor's leader kill.
func failoverBench(ctx context.Context, c *kafkatest.Cluster, o failoverOpts) error {
	rate, tuned := o.rate, o.tuned && o.streams
	began := time.Now()
	if verbose {
		defer func() { fmt.Printf("  failover part took %v\n", time.Since(began).Round(time.Second)) }()
	}
	kf, kl, err := kastorFailover(ctx, c, rate, o.logDir)
	if err != nil {
		return fmt.Errorf("kastor failover: %w", err)
	}
	if !o.streams {
		fmt.Printf("failover: 3 instances, 12 partitions, %.0f commands/s, one instance killed with SIGKILL\n", rate)
		fmt.Printf("%-44s %8.2f s   survivors' reply p99 %6.0f ms during, %6.0f ms before\n",
			"failover, follower killed (kastor)", kf.took.Seconds(), ms(kf.during.p99), ms(kf.before.p99))
		fmt.Printf("%-44s %8.2f s   survivors' reply p99 %6.0f ms during, %6.0f ms before\n",
			"failover, group leader killed (kastor)", kl.took.Seconds(), ms(kl.during.p99), ms(kl.before.p99))
		return nil
	}
	jar, err := streamsJar()
	if err != nil {
		return err
	}
	sd, err := streamsFailover(ctx, c, jar, rate, 3*time.Minute, nil)
	if err != nil {
		return fmt.Errorf("kafka streams failover (defaults): %w", err)
	}
	if verbose {
		fmt.Printf("  kafka streams (defaults): %s\n", describeKill(sd))
	}
	var st failoverResult
	if tuned {
		if st, err = streamsFailover(ctx, c, jar, rate, 2*time.Minute, streamsTuned); err != nil {
			return fmt.Errorf("kafka streams failover (tuned): %w", err)
		}
		if verbose {
			fmt.Printf("  kafka streams (tuned: %s): %s\n", strings.Join(streamsTuned, " "), describeKill(st))
		}
	}
	fmt.Printf("failover: 3 instances, 12 partitions, %.0f commands/s, one instance killed with SIGKILL\n", rate)
	failoverRow("failover, kill -9 -> dead shards answer", kf, "Kafka Streams EOS v2, defaults", sd)
	if tuned {
		failoverRow("failover, kill -9 -> dead shards answer", kf, "Kafka Streams EOS v2, tuned", st)
	}
	fmt.Printf("%-44s %8.2f s   survivors' reply p99 %6.0f ms during, %6.0f ms before\n",
		"failover, group leader killed (kastor)", kl.took.Seconds(), ms(kl.during.p99), ms(kl.before.p99))
	return nil
}

func failoverRow(name string, k failoverResult, peer string, s failoverResult) {
	fmt.Printf("%-44s %8.2f s   %s %8.2f s   ratio kastor/streams %.2f\n", name, k.took.Seconds(), peer, s.took.Seconds(), k.took.Seconds()/s.took.Seconds())
	fmt.Printf("%-44s p99 %6.0f ms during, %6.0f ms before   %s p99 %6.0f ms during, %6.0f ms before\n",
		"  survivors' reply p99 (Send / read_committed)", ms(k.during.p99), ms(k.before.p99), peer, ms(s.during.p99), ms(s.before.p99))
}
