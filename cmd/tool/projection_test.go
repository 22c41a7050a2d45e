package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	ks "github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/projection"
	"github.com/kastor-dev/kastor/schema"
	"github.com/kastor-dev/kastor/wire"
)

// TestProjectionAndDLQCommands runs a projection as an application would (a
// projection.Projection in the test process) and drives it with the projection and dlq
// commands: status, list, reset refused while members are live, dead letters listed,
// shown, replayed and purged, a rebuild followed to its switch with -o json, and the
// errors once the application is stopped.
func TestProjectionAndDLQCommands(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		pr := newProjRig(t, ctx, c)
		ns, cli, codecs := pr.ns, pr.cli, pr.codecs
		write := func(id string, ev ks.Event) {
			if err := pr.write(id, ev); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 10 {
			for _, id := range []string{"acct-a", "acct-b", "acct-c"} {
				if i == 0 {
					write(id, bank.Opened{Owner: id})
				} else {
					write(id, bank.Deposited{Amount: int64(i)})
				}
			}
		}
		write("acct-bad", bank.Deposited{Amount: 7})

		// The application: a projection whose handler fails on acct-bad while failing is set.
		var failing atomic.Bool
		failing.Store(true)
		kc := c.Kastor(t, ns, cluster.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		p, err := projection.New(kc, projection.Config[ks.Event]{
			Reader: consumer.Config[ks.Event]{Name: "balances", AggregateTypes: []string{bank.Type},
				Events: codecs.Events, Retry: consumer.Retry{Attempts: 1}},
			Version: 1, Instance: "app-1", Interval: 100 * time.Millisecond,
			NewSink: func(int) (consumer.Sink[ks.Event], error) {
				return consumer.Handler(func(_ context.Context, e ks.Envelope[ks.Event]) error {
					if e.AggregateID == "acct-bad" && failing.Load() {
						return errBad
					}
					return nil
				}), nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		stop := runApp(t, p)

		// status: wait for the serving version to catch up (lag 0 everywhere).
		var st projectionStatus
		until(t, ctx, "v1 caught up", func() bool {
			r := cli("projection", "status", "balances", "-o", "json")
			if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &st) != nil || len(st.Versions) == 0 {
				return false
			}
			v := st.Versions[0]
			return st.Serving == 1 && v.Lag == 0 && len(v.Partitions) == 3 && len(v.Members) == 1
		})
		if st.Phase != projection.PhaseServing || st.Offsets != "group" || st.Versions[0].Role != "serving" {
			t.Errorf("status: %+v", st)
		}
		if r := cli("projection", "status", "balances"); r.code != exitOK || !strings.Contains(r.stdout, "serving v1") || !strings.Contains(r.stdout, "1 member(s)") {
			t.Errorf("status text: %q", r.stdout)
		}
		var rows []listRow
		if r := cli("projection", "list", "-o", "json"); r.code != exitOK || json.Unmarshal([]byte(r.stdout), &rows) != nil ||
			len(rows) != 1 || rows[0].Name != "balances" || rows[0].Serving != 1 || rows[0].Members != 1 {
			t.Errorf("list: %d %q", r.code, r.stdout)
		}

		// reset needs the group idle.
		if r := cli("projection", "reset", "balances", "--yes"); r.code != exitUsage || !strings.Contains(r.stderr, "--in-place") {
			t.Errorf("reset without --in-place: %d %q", r.code, r.stderr)
		}
		if r := cli("projection", "reset", "balances", "--in-place", "--yes"); r.code != exitError || !strings.Contains(r.stderr, "1 live member(s)") {
			t.Errorf("reset with live members: %d %q", r.code, r.stderr)
		}

		// Dead letters: listed, shown decoded, replayed by the application.
		var counts []dlqCount
		if r := cli("dlq", "list", "-o", "json"); r.code != exitOK || json.Unmarshal([]byte(r.stdout), &counts) != nil ||
			len(counts) != 1 || counts[0].Unresolved != 1 || counts[0].Version != 1 {
			t.Errorf("dlq list: %d %q", r.code, r.stdout)
		}
		var letters []letterOut
		if r := cli("dlq", "show", "balances", "-o", "json"); r.code != exitOK || json.Unmarshal([]byte(r.stdout), &letters) != nil ||
			len(letters) != 1 || letters[0].Reason != consumer.ReasonFailed || letters[0].AggregateID != "acct-bad" ||
			!strings.Contains(strings.ReplaceAll(string(letters[0].Event), " ", ""), `"amount":7`) || !strings.Contains(letters[0].Error, "bad account") {
			t.Errorf("dlq show: %d %q", r.code, r.stdout)
		}
		failing.Store(false)
		var rep replayResult
		if r := cli("dlq", "replay", "balances", "-o", "json"); r.code != exitOK || json.Unmarshal([]byte(r.stdout), &rep) != nil ||
			rep.Applied != 1 || rep.Failed != 0 || rep.Instance != "app-1" {
			t.Errorf("dlq replay: %d %q %q", r.code, r.stdout, r.stderr)
		}

		// rebuild -o json: progress lines, then the result; v2 serves.
		r := cli("projection", "rebuild", "balances", "-o", "json")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		var res rebuildResult
		if r.code != exitOK || json.Unmarshal([]byte(lines[len(lines)-1]), &res) != nil ||
			res.Type != "result" || res.Status != projection.StatusDone || res.From != 1 || res.To != 2 {
			t.Fatalf("rebuild: %d %q %q", r.code, r.stdout, r.stderr)
		}
		for _, l := range lines[:len(lines)-1] {
			var pl progressLine
			if json.Unmarshal([]byte(l), &pl) != nil || pl.Type != "progress" || pl.Version != 2 || pl.Total != 31 || pl.Done > pl.Total {
				t.Errorf("progress line %q", l)
			}
		}
		until(t, ctx, "v2 serving", func() bool { v, _ := p.Serving(); return v == 2 })

		// purge: a new dead letter of v2, refused without --yes, then resolved.
		failing.Store(true)
		write("acct-bad", bank.Deposited{Amount: 8})
		until(t, ctx, "a v2 dead letter", func() bool {
			r := cli("dlq", "list", "-o", "json")
			counts = nil
			_ = json.Unmarshal([]byte(r.stdout), &counts)
			for _, c := range counts {
				if c.Version == 2 && c.Unresolved == 1 {
					return true
				}
			}
			return false
		})
		if r := cli("dlq", "purge", "balances"); r.code != exitError || !strings.Contains(r.stderr, "re-run with --yes") {
			t.Errorf("purge without --yes: %d %q", r.code, r.stderr)
		}
		var pur purgeResult
		if r := cli("dlq", "purge", "balances", "--yes", "-o", "json"); r.code != exitOK || json.Unmarshal([]byte(r.stdout), &pur) != nil || pur.Resolved != 1 || pur.Version != 2 {
			t.Errorf("purge: %d %q", r.code, r.stdout)
		}
		if r := cli("dlq", "show", "balances", "-o", "json"); r.code != exitOK || strings.TrimSpace(r.stdout) != "[]" {
			t.Errorf("dlq show after the purge: %q", r.stdout)
		}

		// The application stopped: nothing can execute a rebuild; the idle group resets.
		stop()
		if r := cli("projection", "rebuild", "balances"); r.code != exitError || !strings.Contains(r.stderr, "no instance is running projection balances") {
			t.Errorf("rebuild with no instance: %d %q", r.code, r.stderr)
		}
		var reset resetResult
		if r := cli("projection", "reset", "balances", "--in-place", "--yes", "-o", "json"); r.code != exitOK ||
			json.Unmarshal([]byte(r.stdout), &reset) != nil || reset.Version != 2 || len(reset.Offsets) != 3 {
			t.Errorf("reset: %d %q %q", r.code, r.stdout, r.stderr)
		}
		until(t, ctx, "v2 reset", func() bool {
			r := cli("projection", "status", "balances", "-o", "json")
			return json.Unmarshal([]byte(r.stdout), &st) == nil && len(st.Versions) > 0 && st.Versions[len(st.Versions)-1].Lag == 32
		})
	})
}

// runApp runs p as the application would, until stop (called at cleanup too).
func runApp(t *testing.T, p *projection.Projection[ks.Event]) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Projection.Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// projRig is a namespace with the bank topics, the projection registry and the balances
// projection's dead-letter topic, the bank schemas published, and a writer of events.
type projRig struct {
	t        *testing.T
	ctx      context.Context
	ns       string
	codecs   *bank.Codecs
	cl       *kgo.Client
	versions map[string]int64
	file     string
	brokers  string
}

func newProjRig(t *testing.T, ctx context.Context, c *kafkatest.Cluster) *projRig {
	r := &projRig{t: t, ctx: ctx, ns: namespace(t), versions: map[string]int64{}, brokers: strings.Join(c.Brokers(), ",")}
	if res := r.cli("topics", "apply"); res.code != exitOK {
		t.Fatalf("topics apply: %d", res.code)
	}
	if res := r.cli("projection", "init", "--replication-factor", "1"); res.code != exitOK {
		t.Fatalf("projection init: %d %s", res.code, res.stderr)
	}
	c.CreateTopic(t, consumer.DLQTopic(r.ns, "balances"), 3, 1, nil)
	var err error
	if r.codecs, err = bank.NewCodecs(nil); err != nil {
		t.Fatal(err)
	}
	r.cl = c.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := schema.Publish(ctx, r.cl, r.codecs.Registry, bank.Schemas()...); err != nil {
		t.Fatal(err)
	}
	return r
}

// cli runs the kastor command against the rig's namespace and cluster.
func (r *projRig) cli(args ...string) result {
	if r.file == "" {
		r.file = writeFile(r.t, oneNodeYAML(r.ns))
	}
	return kastor(r.t, append(args, "-f", r.file, "--brokers", r.brokers)...)
}

// write appends ev as aggregate id's next event.
func (r *projRig) write(id string, ev ks.Event) error {
	enc, err := r.codecs.Events.Encode(ev)
	if err != nil {
		return err
	}
	r.versions[id]++
	md := ks.Metadata{AggregateType: bank.Type, AggregateID: id, Version: r.versions[id], Type: enc.Type, Fingerprint: enc.Fingerprint}
	rec := &kgo.Record{Topic: r.ns + ".bank.account.events", Partition: producer.PartitionFor([]byte(id), 3), Key: []byte(id), Value: enc.Data, Headers: wire.Headers(&md)}
	return r.cl.ProduceSync(r.ctx, rec).FirstErr()
}

var errBad = errorString("bad account")

type errorString string

func (e errorString) Error() string { return string(e) }

// until polls cond until it holds or ctx ends.
func until(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: never happened", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
