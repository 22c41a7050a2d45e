package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ks "github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/projection"
)

// balances is the read model of TestProjectionWithSinkOffsets: each account's balance.
type balances map[string]int64

// TestProjectionWithSinkOffsets drives a projection that holds its model in every
// instance (AllPartitions, an in-memory sink that stores its own offsets, no consumer
// group): status names the sink as the offsets' keeper, reset refuses (resetting a group
// would not reset the sink), a rebuild is cancelled, and the next rebuild, while events
// keep arriving, ends with v3 equal to the fold of the events topic.
func TestProjectionWithSinkOffsets(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		pr := newProjRig(t, ctx, c)
		cli := pr.cli
		want := balances{}
		var written atomic.Int64
		write := func(id string, amount int64) {
			var ev ks.Event = bank.Deposited{Amount: amount}
			if pr.versions[id] == 0 {
				ev = bank.Opened{Owner: id}
			}
			if err := pr.write(id, ev); err != nil {
				t.Error(err)
				return
			}
			if _, ok := ev.(bank.Deposited); ok {
				want[id] += amount
			} else {
				want[id] = 0
			}
			written.Add(1)
		}
		ids := []string{"acct-a", "acct-b", "acct-c", "acct-d"}
		for i := range 20 {
			write(ids[i%len(ids)], int64(i))
		}

		kc := c.Kastor(t, pr.ns, cluster.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		p, err := projection.New(kc, projection.Config[ks.Event]{
			Reader: consumer.Config[ks.Event]{Name: "balances", AggregateTypes: []string{bank.Type},
				Events: pr.codecs.Events, AllPartitions: true},
			Version: 1, Instance: "app-1", Interval: 100 * time.Millisecond,
			NewSink: func(v int) (consumer.Sink[ks.Event], error) {
				return consumer.NewMemory(balances{}, func(m *balances, e ks.Envelope[ks.Event]) error {
					if v == 2 {
						time.Sleep(200 * time.Millisecond) // a build slow enough to cancel
					}
					switch ev := e.Event.(type) {
					case bank.Opened:
						(*m)[e.AggregateID] = 0
					case bank.Deposited:
						(*m)[e.AggregateID] += ev.Amount
					}
					return nil
				}), nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		runApp(t, p)
		model := func() (int, balances) {
			v, sink := p.Serving()
			out := balances{}
			if m, ok := sink.(*consumer.Memory[balances, ks.Event]); ok {
				m.Read(func(b *balances) {
					for k, v := range *b {
						out[k] = v
					}
				})
			}
			return v, out
		}
		until(t, ctx, "v1 holds every event", func() bool {
			_, m := model()
			return equalBalances(m, want)
		})

		var st projectionStatus
		if r := cli("projection", "status", "balances", "-o", "json"); r.code != exitOK || json.Unmarshal([]byte(r.stdout), &st) != nil ||
			!strings.HasPrefix(st.Offsets, "sink") || st.Serving != 1 || len(st.Versions) != 1 || st.Versions[0].Group != "" || st.Registry == nil || !st.Registry.AllPartitions {
			t.Errorf("status: %d %q", r.code, r.stdout)
		}
		if r := cli("projection", "status", "balances"); r.code != exitOK || !strings.Contains(r.stdout, "v1: no consumer group") {
			t.Errorf("status text: %d %q", r.code, r.stdout)
		}
		var rows []listRow
		if r := cli("projection", "list", "-o", "json"); r.code != exitOK || json.Unmarshal([]byte(r.stdout), &rows) != nil ||
			len(rows) != 1 || rows[0].Serving != 1 || rows[0].Members != 0 {
			t.Errorf("list: %d %q", r.code, r.stdout)
		}
		// No group, no live members to refuse on: the sink's own offsets are the reason.
		if r := cli("projection", "reset", "balances", "--in-place", "--yes"); r.code != exitError || !strings.Contains(r.stderr, "stores its own offsets") {
			t.Errorf("reset of a sink that stores its offsets: %d %q", r.code, r.stderr)
		}

		// A rebuild cancelled: v1 keeps serving, and the next rebuild builds v3.
		if r := cli("projection", "rebuild", "balances", "--cancel"); r.code != exitError || !strings.Contains(r.stderr, "nothing to cancel") {
			t.Errorf("cancel with no rebuild: %d %q", r.code, r.stderr)
		}
		if r := cli("projection", "rebuild", "balances", "--no-wait"); r.code != exitOK {
			t.Fatalf("rebuild --no-wait: %d %q", r.code, r.stderr)
		}
		until(t, ctx, "v2 building", func() bool { st, ok := p.State(); return ok && st.Building == 2 })
		var cres rebuildResult
		if r := cli("projection", "rebuild", "balances", "--cancel", "-o", "json"); r.code != exitOK || json.Unmarshal([]byte(r.stdout), &cres) != nil ||
			cres.Status != projection.StatusDone || cres.From != 1 || cres.To != 2 {
			t.Fatalf("rebuild --cancel: %d %q %q", r.code, r.stdout, r.stderr)
		}
		until(t, ctx, "the cancellation", func() bool {
			st, ok := p.State()
			return ok && st.Phase == projection.PhaseServing && st.Abandoned == 2
		})
		if v, _ := p.Serving(); v != 1 {
			t.Errorf("serving v%d after the cancellation", v)
		}

		// Rebuild while events keep arriving.
		stopWriting := make(chan struct{})
		writerDone := make(chan struct{})
		go func() {
			defer close(writerDone)
			for i := 0; ; i++ {
				select {
				case <-stopWriting:
					return
				case <-time.After(20 * time.Millisecond):
					write(ids[i%len(ids)], 100+int64(i))
				}
			}
		}()
		r := cli("projection", "rebuild", "balances", "-o", "json")
		close(stopWriting)
		<-writerDone
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		var res rebuildResult
		if r.code != exitOK || json.Unmarshal([]byte(lines[len(lines)-1]), &res) != nil || res.Status != projection.StatusDone || res.From != 1 || res.To != 3 {
			t.Fatalf("rebuild: %d %q %q", r.code, r.stdout, r.stderr)
		}
		until(t, ctx, "v3 serves every event", func() bool {
			v, m := model()
			return v == 3 && equalBalances(m, want)
		})
		if written.Load() <= 20 {
			t.Errorf("only %d events written: the rebuild did not run under writes", written.Load())
		}
	})
}

func equalBalances(a, b balances) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
