package projection_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/projection"
)

// A replay with the sink healed applies a parked event and resolves it, once: a second
// replay finds nothing to do. (consumer's TestPoisonEventToDLQ checks the parking.)
func TestReplayResolvesOnce(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 1)
		r.Write(opened("a"), opened("b"), deposited("a", 1), deposited("b", 2), deposited("a", 3), deposited("b", 4))
		s := newSeen()
		f := &failing{Seen: s, Bad: map[string]bool{"a/2": true}, Err: errors.New("boom")}
		cfg := r.Config()
		_, stop := r.Start(cfg, f)
		r.AwaitCommitted(r.Group(cfg), r.Ends())
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if n := len(r.ReadDLQ()); n != 1 {
			t.Fatalf("%d dead letters, want 1", n)
		}
		f.Heal()
		res, err := projection.Replay(testCtx(t), r.KC, cfg, f)
		if err != nil || res.Resolved != 1 || len(res.Failed) != 0 {
			t.Fatalf("replay: %+v, %v", res, err)
		}
		res, err = projection.Replay(testCtx(t), r.KC, cfg, f)
		if err != nil || res.Resolved != 0 {
			t.Fatalf("second replay: %+v, %v", res, err)
		}
		if s.Count("a/2") != 1 {
			t.Errorf("a/2 applied %d times after the replays, want 1", s.Count("a/2"))
		}
	})
}

// A replay applies an aggregate parked under ParkAggregate, its parked and held events,
// in order, and a restarted reader then no longer holds it. (consumer's
// TestParkAggregate checks the holding, across a restart.)
func TestReplayParkedAggregate(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 1)
		r.Write(opened("a"), opened("b"), deposited("a", 1), deposited("b", 2), deposited("a", 3), deposited("b", 4))
		s := newSeen()
		f := &failing{Seen: s, Bad: map[string]bool{"a/2": true}, Err: errors.New("boom")}
		cfg := r.Config(func(c *consumer.Config[kastor.Event]) { c.OnFailure = consumer.ParkAggregate })
		_, stop := r.Start(cfg, f)
		r.AwaitCommitted(r.Group(cfg), r.Ends())
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		// A restarted reader holds a/4 behind a/2 too.
		r.Write(deposited("a", 5), deposited("b", 6))
		_, stop = r.Start(cfg, f)
		r.AwaitCommitted(r.Group(cfg), r.Ends())
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		// Replay: a/2, a/3, a/4 in order.
		f.Heal()
		res, err := projection.Replay(testCtx(t), r.KC, cfg, f)
		if err != nil || res.Resolved != 3 {
			t.Fatalf("replay: %+v, %v", res, err)
		}
		if fmt.Sprint(s.Order("a")) != "[1 2 3 4]" {
			t.Errorf("a applied in order %v, want [1 2 3 4]", s.Order("a"))
		}
		// After the replay, a restarted reader no longer holds a.
		r.Write(deposited("a", 7))
		_, stop = r.Start(cfg, f)
		r.AwaitCommitted(r.Group(cfg), r.Ends())
		_ = stop()
		if dups := s.Check(t, r.Versions); dups != 0 {
			t.Errorf("%d duplicates", dups)
		}
	})
}

// A running reader told of a replay (ReloadDeadLetters; a Projection does it when the
// registry records a replay or purge) stops holding the replayed aggregate: its next
// events are applied, not held, without waiting for a new assignment.
func TestParkedAggregateFlowsAfterReplayWhileRunning(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	r := newRig(t, c, 1)
	r.Write(opened("a"), deposited("a", 1), deposited("a", 2))
	s := newSeen()
	f := &failing{Seen: s, Bad: map[string]bool{"a/2": true}, Err: errors.New("boom")}
	cfg := r.Config(func(c *consumer.Config[kastor.Event]) { c.OnFailure = consumer.ParkAggregate })
	rd, stop := r.Start(cfg, f)
	defer func() { _ = stop() }()
	r.AwaitCommitted(r.Group(cfg), r.Ends())
	f.Heal()
	if res, err := projection.Replay(testCtx(t), r.KC, cfg, f); err != nil || res.Resolved != 2 {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	rd.ReloadDeadLetters()
	r.Write(deposited("a", 4))
	r.AwaitCommitted(r.Group(cfg), r.Ends())
	letters, err := consumer.ReadDeadLetters(testCtx(t), r.KC, r.DLQ, cfg.Name, cfg.Version)
	if err != nil || len(letters) != 0 {
		t.Errorf("unresolved dead letters %v (%v), want none: a/4 was held again", letters, err)
	}
	if dups := s.Check(t, r.Versions); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
	if fmt.Sprint(s.Order("a")) != "[1 2 3 4]" {
		t.Errorf("a applied in order %v, want [1 2 3 4]", s.Order("a"))
	}
}

// A replay that fails again for an aggregate keeps its later letters in order.
func TestReplayKeepsOrderOnFailure(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	r := newRig(t, c, 1)
	r.Write(opened("a"), deposited("a", 1), deposited("a", 2), opened("b"), deposited("b", 1))
	s := newSeen()
	f := &failing{Seen: s, Bad: map[string]bool{"a/2": true, "b/2": true}, Err: errors.New("boom")}
	cfg := r.Config(func(c *consumer.Config[kastor.Event]) { c.OnFailure = consumer.ParkAggregate })
	_, stop := r.Start(cfg, f)
	r.AwaitCommitted(r.Group(cfg), r.Ends())
	_ = stop()
	f.Fail("a/2") // b is fixed, a is not
	res, err := projection.Replay(testCtx(t), r.KC, cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resolved != 1 || len(res.Failed) != 1 || res.Kept != 1 || res.Failed[0].Letter.Offset != 1 {
		t.Errorf("replay result %+v, want b resolved, a/2 failed, a/3 kept", res)
	}
}

// A replay into a fresh in-memory model, which skipped the parked event it met again,
// applies the event and resolves it. (consumer's TestFreshMemorySkipsParkedEvents checks
// the skipping.)
func TestReplayIntoFreshMemory(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	r := newRig(t, c, 1)
	r.Write(opened("a"), deposited("a", 1), deposited("a", 2))
	var broken atomic.Bool
	broken.Store(true)
	apply := func(m *balances, e kastor.Envelope[kastor.Event]) error {
		if e.Version == 2 && broken.Load() {
			return errors.New("no")
		}
		return foldBalance(m, e)
	}
	cfg := r.Config(func(c *consumer.Config[kastor.Event]) { c.AllPartitions = true })
	first := consumer.NewMemory(balances{}, apply)
	_, stop := r.Start(cfg, first)
	if err := first.WaitFor(testCtx(t), r.Ends()); err != nil {
		t.Fatal(err)
	}
	_ = stop()
	broken.Store(false) // fixed code, restarted process
	fresh := consumer.NewMemory(balances{}, apply)
	r.Start(cfg, fresh)
	if err := fresh.WaitForVersion(testCtx(t), "a", 3); !errors.Is(err, consumer.ErrParked) {
		t.Errorf("fresh model: WaitForVersion past the parked event: %v, want ErrParked", err)
	}
	res, err := projection.Replay(testCtx(t), r.KC, cfg, fresh)
	if err != nil || res.Resolved != 1 {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	if err := fresh.WaitForVersion(testCtx(t), "a", 3); err != nil {
		t.Errorf("after the replay: %v", err)
	}
	fresh.Read(func(m *balances) {
		if m.Balance["a"] != 3 || m.Events != 3 {
			t.Errorf("model after replay %+v", *m)
		}
	})
}

// With AllPartitions and several fetchers, a reload of the dead letters after a replay
// reaches the fetcher that holds the replayed aggregate, so its later events flow; every
// event is applied once and in order per aggregate. (consumer's
// TestAllPartitionsFetchers checks the dealing and the parking.)
func TestReplayReachesEveryFetcher(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		for _, n := range []int{1, 3, 8} {
			t.Run(fmt.Sprint("fetchers-", n), func(t *testing.T) {
				r := newRig(t, c, 6)
				var batch []ev
				for i := range 40 {
					agg := fmt.Sprintf("acc-%d", i)
					batch = append(batch, opened(agg), deposited(agg, 1), deposited(agg, 2))
				}
				r.Write(batch...)
				broken := map[string]bool{"acc-3": true, "acc-4": true, "acc-17": true}
				var healed atomic.Bool
				s := newSeen()
				mem := consumer.NewMemory(balances{}, func(m *balances, e kastor.Envelope[kastor.Event]) error {
					if !healed.Load() && broken[e.AggregateID] && e.Version == 2 {
						return errors.New("not yet")
					}
					s.Add(e)
					return foldBalance(m, e)
				})
				cfg := r.Config(func(c *consumer.Config[kastor.Event]) {
					c.AllPartitions, c.Fetchers, c.OnFailure = true, n, consumer.ParkAggregate
				})
				rd, _ := r.Start(cfg, mem)
				if err := mem.WaitFor(testCtx(t), r.Ends()); err != nil {
					t.Fatal(err)
				}
				// Versions 2 and 3 of each broken aggregate are parked (failed, then held).
				if got := len(r.ReadDLQ()); got != 2*len(broken) {
					t.Fatalf("%d dead letters, want %d", got, 2*len(broken))
				}
				healed.Store(true)
				if res, err := projection.Replay(testCtx(t), r.KC, cfg, mem); err != nil || res.Resolved != 2*len(broken) {
					t.Fatalf("replay: %+v, %v", res, err)
				}
				rd.ReloadDeadLetters()
				var more []ev
				for agg := range broken {
					more = append(more, deposited(agg, 4))
				}
				r.Write(more...)
				if err := mem.WaitFor(testCtx(t), r.Ends()); err != nil {
					t.Fatal(err)
				}
				letters, err := consumer.ReadDeadLetters(testCtx(t), r.KC, r.DLQ, cfg.Name, cfg.Version)
				if err != nil || len(letters) != 0 {
					t.Errorf("unresolved dead letters %v (%v), want none: a fetcher kept holding its aggregate", letters, err)
				}
				if dups := s.Check(t, r.Versions); dups != 0 {
					t.Errorf("%d duplicates", dups)
				}
				mem.Read(func(m *balances) {
					if len(m.Balance) != 40 || m.Events != 40*3+len(broken) {
						t.Errorf("model holds %d accounts and %d events, want 40 and %d", len(m.Balance), m.Events, 40*3+len(broken))
					}
					for agg, b := range m.Balance {
						if want := int64(3) + 4*map[bool]int64{true: 1}[broken[agg]]; b != want {
							t.Errorf("%s balance %d, want %d", agg, b, want)
						}
					}
				})
				for agg := range broken {
					if fmt.Sprint(s.Order(agg)) != "[1 2 3 4]" {
						t.Errorf("%s applied in order %v, want [1 2 3 4]", agg, s.Order(agg))
					}
				}
			})
		}
	})
}
