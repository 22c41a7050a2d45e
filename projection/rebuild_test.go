package projection_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/projection"
)

// rebuildModel is the read model of the rebuild tests: the sum of deposits per account and
// the number of events applied.
type rebuildModel struct {
	bal map[string]int64
	n   int
}

func balanceSink(slow time.Duration) *consumer.Memory[rebuildModel, kastor.Event] {
	return consumer.NewMemory(rebuildModel{bal: map[string]int64{}}, func(m *rebuildModel, e kastor.Envelope[kastor.Event]) error {
		if slow > 0 {
			time.Sleep(slow)
		}
		if d, ok := e.Event.(bank.Deposited); ok {
			m.bal[e.AggregateID] += d.Amount
		}
		m.n++
		return nil
	})
}

func createRegistry(t *testing.T, c *kafkatest.Cluster) {
	t.Helper()
	if err := projection.CreateRegistry(testCtx(t), c.Admin(), 1); err != nil {
		t.Fatal(err)
	}
}

// startProjection runs p until the test ends; the returned function stops it.
func startProjection(t *testing.T, p *projection.Projection[kastor.Event]) func() error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = errors.New("Run did not return 30s after its context ended")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// awaitRequest waits for the outcome of a registry request.
func awaitRequest(t *testing.T, kc *cluster.Cluster, ns, id string) projection.Request {
	t.Helper()
	var out projection.Request
	_, err := projection.WatchRegistry(testCtx(t), kc, func(g *projection.Registry) (bool, error) {
		r, ok := g.Request(ns, projName, id)
		out = r
		return ok && r.Final(), nil
	})
	if err != nil {
		t.Fatalf("waiting for request %s: %v (last seen: %+v)", id, err, out)
	}
	return out
}

func awaitState(t *testing.T, p *projection.Projection[kastor.Event], ok func(projection.State) bool) projection.State {
	t.Helper()
	ctx := testCtx(t)
	for {
		st, known := p.State()
		if known && ok(st) {
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("state never reached; last: %+v", st)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// The rebuild proof: version 1 serves (and answers queries) while version 2 is built
// from the earliest offsets with writes going on; the switch happens only once version
// 2 has applied up to the end offsets captured at the start; version 2 then holds the
// full fold of every event, and version 1's group is deleted.
func TestProjectionRebuildWhileWriting(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 3)
		createRegistry(t, c)
		want := map[string]int64{}
		total := 0
		write := func(evs []ev) {
			for _, e := range evs {
				if d, ok := e.Event.(bank.Deposited); ok {
					want[e.Agg] += d.Amount
				}
			}
			total += len(evs)
			r.Write(evs...)
		}
		write(r.Mix(600, 20, func(i int) int64 { return int64(i % 13) }))

		var p *projection.Projection[kastor.Event]
		var switchErr atomic.Value // string: what went wrong at the switch
		var switched atomic.Bool
		p, err := projection.New(r.KC, projection.Config[kastor.Event]{
			Reader:   r.Config(func(cfg *consumer.Config[kastor.Event]) { cfg.Version = 0 }),
			Version:  1,
			Interval: 100 * time.Millisecond,
			NewSink: func(v int) (consumer.Sink[kastor.Event], error) {
				if v == 2 {
					return balanceSink(300 * time.Microsecond), nil // a rebuild long enough to overlap writes
				}
				return balanceSink(0), nil
			},
			OnSwitch: func(from, to int) {
				if from != 1 {
					return
				}
				st, _ := p.State()
				_, sink := p.Serving()
				applied := sink.(*consumer.Memory[rebuildModel, kastor.Event]).Offsets()
				for tp, end := range st.EndOffsets() {
					if end > 0 && applied[tp] < end {
						switchErr.Store("switched to 2 before it caught up: " + tp.Topic + " applied below the captured end")
					}
				}
				if to != 2 || st.Phase != projection.PhaseSwitched || len(st.Ends) == 0 {
					switchErr.Store("unexpected switch state")
				}
				switched.Store(true)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		startProjection(t, p)
		ctx := testCtx(t)
		awaitState(t, p, func(st projection.State) bool { return st.Serving == 1 })
		for {
			if _, s := p.Serving(); s != nil {
				if err := s.(*consumer.Memory[rebuildModel, kastor.Event]).WaitFor(ctx, r.Ends()); err != nil {
					t.Fatal(err)
				}
				break
			}
			time.Sleep(10 * time.Millisecond)
		}

		// Queries: until the switch, version 1 answers, with a model that never goes back.
		stopQueries := make(chan struct{})
		var queries, duringRebuild atomic.Int64
		var queryErr atomic.Value
		var qwg sync.WaitGroup
		qwg.Go(func() {
			last := 0
			for {
				select {
				case <-stopQueries:
					return
				case <-time.After(time.Millisecond):
				}
				v, s := p.Serving()
				if v == 1 {
					n := 0
					s.(*consumer.Memory[rebuildModel, kastor.Event]).Read(func(m *rebuildModel) { n = m.n })
					if n < last || n == 0 {
						queryErr.Store("version 1 answered from a model that went back")
					}
					last = n
					queries.Add(1)
					if st, _ := p.State(); st.Phase == projection.PhaseRebuilding {
						duringRebuild.Add(1)
					}
				} else if st, _ := p.State(); st.Serving != v || st.Phase == projection.PhaseRebuilding {
					queryErr.Store("a version other than 1 served before the switch was recorded")
				}
			}
		})

		id, err := p.Rebuild(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Writes go on during the rebuild.
		stopWrites := make(chan struct{})
		var wwg sync.WaitGroup
		wwg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stopWrites:
					return
				case <-time.After(5 * time.Millisecond):
				}
				write(r.Mix(5, 20, func(j int) int64 { return int64(i + j) }))
			}
		})
		res := awaitRequest(t, r.KC, r.NS, id)
		// The outcome is recorded with the switch; instances switch when they read it.
		awaitState(t, p, func(st projection.State) bool { return st.Serving == 2 })
		for !switched.Load() && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // some writes after the switch too
		close(stopWrites)
		wwg.Wait()
		close(stopQueries)
		qwg.Wait()
		if res.Status != projection.StatusDone || res.From != 1 || res.To != 2 {
			t.Fatalf("rebuild outcome: %+v", res)
		}
		if e, _ := switchErr.Load().(string); e != "" || !switched.Load() {
			t.Fatalf("switch: %q (switched: %v)", e, switched.Load())
		}
		if e, _ := queryErr.Load().(string); e != "" {
			t.Fatal(e)
		}
		if duringRebuild.Load() == 0 {
			t.Errorf("no query was answered during the rebuild (%d queries in all)", queries.Load())
		}
		v, s := p.Serving()
		if v != 2 {
			t.Fatalf("serving %d after the rebuild", v)
		}
		m := s.(*consumer.Memory[rebuildModel, kastor.Event])
		if err := m.WaitFor(ctx, r.Ends()); err != nil {
			t.Fatal(err)
		}
		m.Read(func(got *rebuildModel) {
			if got.n != total {
				t.Errorf("version 2 applied %d events, %d were written", got.n, total)
			}
			for agg, w := range want {
				if got.bal[agg] != w {
					t.Errorf("%s: version 2 has %d, the full fold %d", agg, got.bal[agg], w)
				}
			}
		})
		st := awaitState(t, p, func(st projection.State) bool { return st.Phase == projection.PhaseServing && st.Serving == 2 })
		if st.Previous != 1 || st.Building != 0 {
			t.Errorf("final state: %+v", st)
		}
		groups, err := c.Admin().ListGroups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(groups.Groups(), consumer.GroupName(r.NS, projName, 1)) {
			t.Errorf("version 1's group was not deleted: %v", groups.Groups())
		}
		t.Logf("%d events, %d queries answered by version 1 (%d during the rebuild)", total, queries.Load(), duringRebuild.Load())
	})
}

// Two instances run the same projection: a rebuild requested through one switches both
// exactly once, and the registry records each transition once.
func TestProjectionSwitchOnceAcrossInstances(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 4)
		createRegistry(t, c)
		r.Write(r.Mix(200, 10, func(i int) int64 { return int64(i) })...)
		var mu sync.Mutex
		switches := map[string][][2]int{}
		newInstance := func(name string) *projection.Projection[kastor.Event] {
			p, err := projection.New(r.KC, projection.Config[kastor.Event]{
				Reader:   r.Config(func(cfg *consumer.Config[kastor.Event]) { cfg.Version = 0 }),
				Version:  1,
				Instance: name,
				Interval: 100 * time.Millisecond,
				NewSink:  func(int) (consumer.Sink[kastor.Event], error) { return balanceSink(0), nil },
				OnSwitch: func(from, to int) {
					mu.Lock()
					switches[name] = append(switches[name], [2]int{from, to})
					mu.Unlock()
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			startProjection(t, p)
			return p
		}
		a, b := newInstance("a"), newInstance("b")
		awaitState(t, b, func(st projection.State) bool { return st.Serving == 1 })
		r.AwaitCommitted(consumer.GroupName(r.NS, projName, 1), r.Ends())
		id, err := b.Rebuild(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if res := awaitRequest(t, r.KC, r.NS, id); res.Status != projection.StatusDone || res.To != 2 {
			t.Fatalf("rebuild outcome: %+v", res)
		}
		for _, p := range []*projection.Projection[kastor.Event]{a, b} {
			st := awaitState(t, p, func(st projection.State) bool { return st.Phase == projection.PhaseServing && st.Serving == 2 })
			// register, rebuilding, switched, serving: one accepted record each.
			if st.Epoch != 4 {
				t.Errorf("epoch %d after one rebuild, want 4: %+v", st.Epoch, st)
			}
			if v, _ := p.Serving(); v != 2 {
				t.Errorf("an instance serves %d", v)
			}
		}
		mu.Lock()
		for _, name := range []string{"a", "b"} {
			if got := switches[name]; !slices.Equal(got, [][2]int{{0, 1}, {1, 2}}) {
				t.Errorf("instance %s switched %v, want [[0 1] [1 2]]", name, got)
			}
		}
		mu.Unlock()
		// Version 2's group has everything; version 1's is gone.
		r.AwaitCommitted(consumer.GroupName(r.NS, projName, 2), r.Ends())
		groups, err := c.Admin().ListGroups(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(groups.Groups(), consumer.GroupName(r.NS, projName, 1)) {
			t.Errorf("version 1's group was not deleted")
		}
	})
}

// A cancelled rebuild leaves the serving version alone, stops the build, deletes its
// consumer group, fails the rebuild request, and the next rebuild builds a new version
// from the earliest offsets (never resuming the abandoned one).
func TestProjectionRebuildCancel(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 4)
		createRegistry(t, c)
		events := r.Mix(100, 4, func(i int) int64 { return int64(i) })
		r.Write(events...)
		p, err := projection.New(r.KC, projection.Config[kastor.Event]{
			Reader:   r.Config(func(cfg *consumer.Config[kastor.Event]) { cfg.Version = 0 }),
			Version:  1,
			Instance: "a",
			Interval: 100 * time.Millisecond,
			NewSink: func(v int) (consumer.Sink[kastor.Event], error) {
				if v == 2 {
					return balanceSink(100 * time.Millisecond), nil // slow enough to be cancelled
				}
				return balanceSink(0), nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		startProjection(t, p)
		awaitState(t, p, func(st projection.State) bool { return st.Serving == 1 })
		r.AwaitCommitted(consumer.GroupName(r.NS, projName, 1), r.Ends())
		ctx := testCtx(t)

		if id, err := p.CancelRebuild(ctx); err != nil {
			t.Fatal(err)
		} else if res := awaitRequest(t, r.KC, r.NS, id); res.Status != projection.StatusFailed || !strings.Contains(res.Error, "no rebuild is running") {
			t.Errorf("cancel with no rebuild: %+v", res)
		}

		rebuild, err := p.Rebuild(ctx)
		if err != nil {
			t.Fatal(err)
		}
		awaitState(t, p, func(st projection.State) bool {
			return st.Phase == projection.PhaseRebuilding && st.Building == 2
		})
		cancelID, err := p.CancelRebuild(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res := awaitRequest(t, r.KC, r.NS, cancelID); res.Status != projection.StatusDone || res.Version != 2 {
			t.Fatalf("cancel: %+v", res)
		}
		if res := awaitRequest(t, r.KC, r.NS, rebuild); res.Status != projection.StatusFailed || !strings.Contains(res.Error, "cancelled by request "+cancelID) {
			t.Errorf("cancelled rebuild request: %+v", res)
		}
		st := awaitState(t, p, func(st projection.State) bool { return st.Phase == projection.PhaseServing && st.Abandoned == 2 })
		if st.Serving != 1 || st.Building != 0 {
			t.Errorf("state after the cancellation: %+v", st)
		}
		if v, _ := p.Serving(); v != 1 {
			t.Errorf("serving v%d after the cancellation", v)
		}
		for {
			groups, err := c.Admin().ListGroups(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(groups.Groups(), consumer.GroupName(r.NS, projName, 2)) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatal("the cancelled build's group was never deleted")
			case <-time.After(100 * time.Millisecond):
			}
		}

		// The next rebuild builds v3 from the earliest offsets.
		rebuild, err = p.Rebuild(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res := awaitRequest(t, r.KC, r.NS, rebuild); res.Status != projection.StatusDone || res.From != 1 || res.To != 3 {
			t.Fatalf("rebuild after the cancellation: %+v", res)
		}
		awaitState(t, p, func(st projection.State) bool { return st.Serving == 3 })
		_, s := p.Serving()
		m := s.(*consumer.Memory[rebuildModel, kastor.Event])
		if err := m.WaitFor(ctx, r.Ends()); err != nil {
			t.Fatal(err)
		}
		m.Read(func(got *rebuildModel) {
			if got.n != len(events) {
				t.Errorf("version 3 applied %d events, %d were written", got.n, len(events))
			}
		})
	})
}
