package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/wire"
)

// The Kafka Streams peer: bench/streams is a Maven project (Kafka Streams 4.1.1,
// processing.guarantee=exactly_once_v2) running the bank account of domain.go with the
// balance in a changelogged KeyValue store; per command it writes one event and one reply,
// as the gateway does. Its fat jar is built once and reused while its sources do not change;
// the build is never timed.

const streamsDir = "streams"

// streamsWarmUp is how long the latency run sends at its rate before it times commands.
const streamsWarmUp = 3 * time.Second

// peerRounds is how many throughput runs Kafka Streams' medians take: single runs move by
// 10-40 % on the shared bench machine. A round of both commit intervals takes about 40 s.
const peerRounds = 3

// streamsJar builds bench/streams (offline first, then with the network) unless the jar
// was built from the same pom.xml and sources, and returns the jar's path.
func streamsJar() (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(streamsDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "target" {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("streams peer: %w (run the bench from bench/)", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	jar := filepath.Join(streamsDir, "target", "streams-peer.jar")
	stamp := filepath.Join(streamsDir, "target", "sources.sha256")
	if old, err := os.ReadFile(stamp); err == nil && string(old) == sum {
		if _, err := os.Stat(jar); err == nil {
			return jar, nil
		}
	}
	var out []byte
	for _, args := range [][]string{{"-q", "-o", "package"}, {"-q", "package"}} {
		cmd := exec.Command("mvn", args...)
		cmd.Dir = streamsDir
		if out, err = cmd.CombinedOutput(); err == nil {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("streams peer: mvn package: %v\n%s", err, out)
	}
	return jar, os.WriteFile(stamp, []byte(sum), 0o644)
}

// streamsApp is one running Kafka Streams JVM.
type streamsApp struct {
	cmd      *exec.Cmd
	stderr   bytes.Buffer
	launched time.Time // the JVM was started
	mu       sync.Mutex
	start    time.Time // just before KafkaStreams.start()
	running  time.Time // first RUNNING state
	failed   string    // ERROR or NOT_RUNNING before we stopped it
	changed  chan struct{}
	done     chan error
	stateDir string
}

// startStreams launches the peer; extra are more of its key=value arguments (client-id=,
// config.NAME=VALUE).
func startStreams(jar string, c *kafkatest.Cluster, ts topicSet, app string, commit time.Duration, threads int, extra ...string) (*streamsApp, error) {
	dir, err := os.MkdirTemp("", "kastor-streams-")
	if err != nil {
		return nil, err
	}
	a := &streamsApp{changed: make(chan struct{}, 1), done: make(chan error, 1), stateDir: dir}
	args := []string{"-Xmx1g", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-jar", jar,
		"bootstrap=" + strings.Join(c.Brokers(), ","), "app=" + app,
		"commands=" + ts.commands, "events=" + ts.events, "replies=" + ts.replies,
		"commit-ms=" + strconv.FormatInt(commit.Milliseconds(), 10), "threads=" + strconv.Itoa(threads), "state-dir=" + dir}
	a.cmd = exec.Command("java", append(args, extra...)...)
	a.cmd.SysProcAttr = childProcAttr()
	a.cmd.Stderr = &a.stderr
	stdout, err := a.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	a.launched = time.Now()
	if err := a.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("streams peer: java: %w", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 {
				continue
			}
			ms, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
			t := time.UnixMilli(ms)
			a.mu.Lock()
			switch {
			case f[0] == "START":
				a.start = t
			case f[0] == "STATE" && f[1] == "RUNNING" && a.running.IsZero():
				a.running = t
			case f[0] == "STATE" && (f[1] == "ERROR" || f[1] == "NOT_RUNNING" || f[1] == "PENDING_ERROR"):
				a.failed = f[1]
			}
			a.mu.Unlock()
			select {
			case a.changed <- struct{}{}:
			default:
			}
		}
		a.done <- a.cmd.Wait()
	}()
	return a, nil
}

// stop terminates the JVM (SIGTERM: KafkaStreams.close, then SIGKILL after 15 s).
func (a *streamsApp) stop() {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(15 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
	os.RemoveAll(a.stateDir)
}

func (a *streamsApp) err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failed == "" {
		return nil
	}
	tail := a.stderr.String()
	if len(tail) > 4000 {
		tail = tail[len(tail)-4000:]
	}
	return fmt.Errorf("streams peer went %s:\n%s", a.failed, tail)
}

// waitRunning waits for the app's first RUNNING state.
func (a *streamsApp) waitRunning(timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		a.mu.Lock()
		ok := !a.running.IsZero()
		a.mu.Unlock()
		if ok {
			return nil
		}
		if err := a.err(); err != nil {
			return err
		}
		select {
		case <-a.changed:
		case err := <-a.done:
			return fmt.Errorf("streams peer exited (%v):\n%s", err, a.stderr.String())
		case <-deadline:
			return fmt.Errorf("streams peer not RUNNING after %v", timeout)
		}
	}
}

type streamsThroughputResult struct {
	fromStart, fromRunning, fromLaunch float64 // commands/s
	startup, rebalance                 time.Duration
}

// streamsThroughput preloads p.commands commands as for the gateway, starts the app and
// times it until its committed offsets on the commands topic cover them all: EOS commits
// those offsets in the transaction that writes the events and replies, so that is when the
// last event is visible to read_committed readers. The clock starts where gatewayThroughput's
// does, at KafkaStreams.start() (group join, assignment and empty-store setup included);
// JVM launch and class loading before it are not counted.
func streamsThroughput(ctx context.Context, c *kafkatest.Cluster, p params, jar string, commit time.Duration, threads int) (streamsThroughputResult, error) {
	var res streamsThroughputResult
	ts, err := newTopicSet(ctx, c, p.partitions)
	if err != nil {
		return res, err
	}
	if err := preload(ctx, c, ts, p); err != nil {
		return res, err
	}
	app := ts.ns + "-streams"
	a, err := startStreams(jar, c, ts, app, commit, threads)
	if err != nil {
		return res, err
	}
	defer a.stop()
	adm := c.Admin()
	deadline := time.Now().Add(10 * time.Minute)
	var n int64
	for {
		if err := a.err(); err != nil {
			return res, err
		}
		select {
		case err := <-a.done:
			a.done <- err
			return res, fmt.Errorf("streams peer exited (%v):\n%s", err, a.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("streams peer: %d of %d commands after 10 minutes", n, p.commands)
		}
		offs, err := adm.FetchOffsets(ctx, app)
		if err == nil {
			n = 0
			offs.Each(func(o kadm.OffsetResponse) {
				if o.Topic == ts.commands && o.Err == nil && o.At > 0 {
					n += o.At
				}
			})
		}
		if n >= int64(p.commands) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	end := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.start.IsZero() || a.running.IsZero() {
		return res, errors.New("streams peer printed no START or RUNNING")
	}
	cps := func(from time.Time) float64 { return float64(p.commands) / end.Sub(from).Seconds() }
	res = streamsThroughputResult{fromStart: cps(a.start), fromRunning: cps(a.running), fromLaunch: cps(a.launched),
		startup: a.start.Sub(a.launched), rebalance: a.running.Sub(a.start)}
	return res, nil
}

// streamsLatency runs the app with the given commit interval; a producer appends deposit
// commands at the given rate, each with its send time's sequence number in a header that
// Streams copies onto the event, and a read_committed consumer of the events topic times
// send -> event visible. Warm-up: the app is RUNNING and one command has come back.
func streamsLatency(ctx context.Context, c *kafkatest.Cluster, p params, jar string, commit time.Duration, rate float64) (latencies, error) {
	ts, err := newTopicSet(ctx, c, p.partitions)
	if err != nil {
		return latencies{}, err
	}
	a, err := startStreams(jar, c, ts, ts.ns+"-streams", commit, 1)
	if err != nil {
		return latencies{}, err
	}
	defer a.stop()
	if err := a.waitRunning(2 * time.Minute); err != nil {
		return latencies{}, err
	}
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	cl, err := c.NewClient(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0),
		kgo.ConsumeTopics(ts.events), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return latencies{}, err
	}
	defer cl.Close()
	tr := newTracker(func(id int64) bool { return id < 0 })
	go func() {
		for {
			fs := cl.PollFetches(lctx)
			if lctx.Err() != nil {
				return
			}
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				for _, h := range r.Headers {
					if h.Key == "bench.seq" && len(h.Value) == 8 {
						tr.seen(int64(binary.BigEndian.Uint64(h.Value)), now)
					}
				}
			})
			tr.notify()
		}
	}()
	enc, _ := cmdCodec.Encode(deposit{Amount: 1})
	send := func(i int) {
		var seq [8]byte
		binary.BigEndian.PutUint64(seq[:], uint64(i))
		acct := fmt.Sprintf("acct-%06d", (i+p.aggregates)%p.aggregates)
		md := kastor.Metadata{AggregateID: acct, CommandID: fmt.Sprintf("cmd-%d", i), Type: enc.Type, Fingerprint: enc.Fingerprint}
		hs := wire.AppendHeaders([]kgo.RecordHeader{{Key: wire.HeaderReplyTo, Value: []byte("bench")}, {Key: "bench.seq", Value: seq[:]}}, &md)
		tr.send(int64(i))
		cl.Produce(lctx, &kgo.Record{Topic: ts.commands, Partition: producer.PartitionFor([]byte(acct), p.partitions),
			Key: []byte(acct), Value: enc.Data, Headers: hs}, nil)
	}
	w, err := warmUp(tr.got, time.Minute, func(i int) error { send(-1 - i); return nil }, tr.ready)
	if err != nil {
		return latencies{}, fmt.Errorf("streams peer: %w", err)
	}
	// A fresh JVM interprets before its JIT compiles: send at the rate for a while and
	// wait for those events, so the timed commands meet compiled code, as the gateway's do.
	pace(rate, int(rate*streamsWarmUp.Seconds()), func(i int) { send(-1 - w - i) })
	noneSent := func() bool { _, _, pending := tr.counts(); return pending == 0 }
	if ok, err := await(tr.got, time.Minute, noneSent, a.err); err != nil || !ok {
		_, _, pending := tr.counts()
		return latencies{}, cmp.Or(err, fmt.Errorf("streams peer: %d warm-up events missing after a minute", pending))
	}
	total := int(rate * latencyRun.Seconds())
	pace(rate, total, send)
	if ok, err := await(tr.got, 30*time.Second, tr.timedAtLeast(total), a.err); err != nil || !ok {
		n, _, _ := tr.counts()
		return latencies{}, cmp.Or(err, fmt.Errorf("streams peer latency: %d of %d events after 30 s", n, total))
	}
	return percentiles(tr.latencies()), nil
}

// streamsBench prints the gateway beside Kafka Streams: throughput over the same preloaded
// commands (commit interval 100 ms, the EOS default, and 10 ms), and latency at the
// gateway latency run's rate with the gateway's commit interval and with 100 ms. The
// throughput figures are medians of peerRounds runs, each with one stream thread (the
// default). gw and gwLat are the gateway's figures from this run, when measured;
// otherwise they are measured here.
func streamsBench(ctx context.Context, c *kafkatest.Cluster, p params, gw float64, gwLat latencies, rate float64) error {
	jar, err := streamsJar()
	if err != nil {
		return err
	}
	if gw == 0 {
		if gw, err = gatewayThroughput(ctx, c, p); err != nil {
			return err
		}
	}
	// Rounds alternate the commit intervals, so a change in the machine's load moves both.
	commits := []time.Duration{100 * time.Millisecond, 10 * time.Millisecond}
	rounds := make([][]float64, len(commits))
	for round := range peerRounds {
		for i, commit := range commits {
			r, err := streamsThroughput(ctx, c, p, jar, commit, 1)
			if err != nil {
				return err
			}
			if verbose {
				fmt.Printf("  streams round %d, commit %v: JVM launch to start() %v, start() to RUNNING %v; commands/s from start() %.0f, from RUNNING %.0f, from JVM launch %.0f\n",
					round+1, commit, r.startup.Round(time.Millisecond), r.rebalance.Round(time.Millisecond), r.fromStart, r.fromRunning, r.fromLaunch)
			}
			rounds[i] = append(rounds[i], r.fromStart)
		}
	}
	for i, commit := range commits {
		peerRow("gateway throughput (commands/s, EOS)", gw, fmt.Sprintf("Kafka Streams EOS v2, commit %v (median of %d)", commit, peerRounds), medianF(rounds[i]))
	}
	what := "given rate"
	if rate == 0 {
		rate, what = gw/2, "half of peak"
	}
	if gwLat == (latencies{}) {
		if gwLat, err = gatewayLatency(ctx, c, p, rate); err != nil {
			return err
		}
	}
	for _, commit := range []time.Duration{p.interval, 100 * time.Millisecond} {
		lat, err := streamsLatency(ctx, c, p, jar, commit, rate)
		if err != nil {
			return err
		}
		fmt.Printf("%-44s p50 %6.1f ms  p99 %6.1f ms   Kafka Streams commit %v (send -> event read_committed) p50 %6.1f ms  p99 %6.1f ms   at %.0f commands/s (%s), gateway commit interval %v: ratio kastor/streams p99 %.2f\n",
			"gateway latency (Send round trip)", ms(gwLat.p50), ms(gwLat.p99), commit, ms(lat.p50), ms(lat.p99), rate, what, p.interval,
			float64(gwLat.p99)/float64(lat.p99))
	}
	return nil
}

func peerRow(name string, v float64, peer string, pv float64) {
	fmt.Printf("%-44s %10.0f   %s %10.0f   ratio kastor/streams %.2f\n", name, v, peer, pv, v/pv)
}
