package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/topics"
	"github.com/kastor-dev/kastor/wire"
)

// fakeClock is a gateway clock a test moves; it starts at the wall clock's now.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) Add(d time.Duration)     { c.ns.Add(int64(d)) }
func (c *fakeClock) clock() func() time.Time { return c.Now }

// schedRig is a rig with its schedules topic and a Sender.
type schedRig struct {
	*rig
	schedules string
	s         *gateway.Sender[command]
}

func newSchedRig(t *testing.T, c *kafkatest.Cluster, partitions int32) *schedRig {
	r := newRig(t, c, partitions)
	sr := &schedRig{rig: r, schedules: topics.TopicName(r.ns, "bank.account", topics.RoleSchedules)}
	c.CreateTopic(t, sr.schedules, partitions, 1, map[string]string{"cleanup.policy": "compact"})
	sr.s = r.sender()
	return sr
}

func sctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// startClocked runs a gateway on clock with a tap of its events.
func (r *schedRig) startClocked(clock *fakeClock, mod ...func(*gateway.Config[account, command, kastor.Event])) (*gateway.Gateway[account, command, kastor.Event], <-chan kastor.Envelope[kastor.Event], func()) {
	r.t.Helper()
	tap, tapped := gateway.Tap[kastor.Event](1000)
	cfg := r.config(append(mod, func(cfg *gateway.Config[account, command, kastor.Event]) { cfg.Listeners = append(cfg.Listeners, tap) })...)
	g, err := gateway.New(r.kc, cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	if clock != nil {
		g.SetClock(clock.clock())
	}
	return g, tapped, r.run(g)
}

// awaitEvent waits for the tapped event of command ID id.
func awaitEvent(t *testing.T, tapped <-chan kastor.Envelope[kastor.Event], id string) kastor.Envelope[kastor.Event] {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case e := <-tapped:
			if e.CommandID == id {
				return e
			}
		case <-timeout:
			t.Fatalf("no event of command %s", id)
		}
	}
}

// fireRecord writes a fire record for schedule id of aggID, as a scheduler does: one
// that a gateway must ignore unless the schedule is pending and due.
func (r *schedRig) fireRecord(aggID, id string) {
	r.t.Helper()
	ch := wire.Command{Metadata: kastor.Metadata{AggregateID: aggID, CommandID: id}, ExpectedVersion: kastor.AnyVersion, Query: wire.QueryFire}
	r.produce(&kgo.Record{Topic: r.commands, Partition: producer.PartitionFor([]byte(aggID), r.partitions), Key: []byte(aggID), Value: []byte{}, Headers: ch.AppendHeaders(nil)})
}

// barrier asks aggID's shard an outcome question and waits for the answer: every record
// written to the aggregate's commands partition before it (fire records too) has been
// handled, and nothing is written.
func (r *schedRig) barrier(t *testing.T, aggID string) {
	t.Helper()
	if _, err := r.s.Outcome(sctx(t), aggID, "barrier"); !errors.Is(err, kastor.ErrNoOutcome) {
		t.Fatalf("barrier: %v", err)
	}
}

// eventsWith counts the events of command ID id in the events topic, read back.
func (r *schedRig) eventsWith(id string) int {
	r.t.Helper()
	n := 0
	for _, evs := range r.eventsOf() {
		for _, md := range evs {
			if md.CommandID == id {
				n++
			}
		}
	}
	return n
}

// pendingInTopic reads the schedules topic back read_committed and returns the schedule
// IDs whose latest record is not a tombstone, with the trace each record carries.
func (r *schedRig) pendingInTopic(t *testing.T) map[string]kastor.TraceContext {
	t.Helper()
	ctx := sctx(t)
	ends, err := r.c.Admin().ListCommittedOffsets(ctx, r.schedules)
	if err != nil {
		t.Fatal(err)
	}
	latest := map[string]*kgo.Record{}
	for p := range r.partitions {
		end, _ := ends.Lookup(r.schedules, p)
		if end.Offset == 0 {
			continue
		}
		cl := r.c.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.schedules: {p: kgo.NewOffset().AtStart()}}),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
		for done := false; !done; {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("reading schedules partition %d", p)
			}
			fs.EachRecord(func(rec *kgo.Record) {
				if rec.Offset+1 >= end.Offset {
					done = true
				}
				if !rec.Attrs.IsControl() {
					latest[string(rec.Key)] = rec
				}
			})
		}
		cl.Close()
	}
	out := map[string]kastor.TraceContext{}
	for key, rec := range latest {
		if rec.Value == nil {
			continue
		}
		agg, id, _, err := gateway.ParseScheduleRecord(rec)
		if err != nil {
			t.Fatalf("schedule record %q: %v", key, err)
		}
		if want := producer.PartitionFor([]byte(agg), r.partitions); rec.Partition != want {
			t.Fatalf("schedule %s of %s in partition %d, want %d", id, agg, rec.Partition, want)
		}
		tc, err := wire.ParseTrace(rec.Headers)
		if err != nil {
			t.Fatalf("schedule record %q: %v", key, err)
		}
		out[id] = tc
	}
	return out
}

// TestScheduleFiresOnce: a scheduled command fires at its time (the wall clock), once,
// with the schedule ID as command ID; a forged fire record after it and a re-sent
// schedule execute nothing; cancel after the fire and Outcome give its outcome.
func TestScheduleFiresOnce(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		defer gateway.SetScheduleRefire(200 * time.Millisecond)() // a stale fire would show
		r := newSchedRig(t, c, 3)
		_, tapped, _ := r.startClocked(nil)
		ctx := sctx(t)
		if _, err := r.s.Send(ctx, cmdWithID[command]("acct", "open", openAccount{})); err != nil {
			t.Fatal(err)
		}
		if _, err := r.s.Schedule(ctx, cmdWithID[command]("acct", "past", deposit{1}), time.Now().Add(-time.Second)); !errors.Is(err, gateway.ErrPastSchedule) {
			t.Fatalf("schedule in the past: %v, want ErrPastSchedule", err)
		}
		at := time.Now().Add(5 * time.Second)
		id, err := r.s.Schedule(ctx, cmdWithID[command]("acct", "", deposit{7}), at)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.s.Outcome(ctx, "acct", id); !errors.Is(err, gateway.ErrPending) {
			t.Fatalf("outcome before the time: %v, want ErrPending", err)
		}
		got := r.pendingInTopic(t)
		trace, ok := got[id]
		if !ok || len(got) != 1 || !trace.IsValid() {
			t.Fatalf("schedules topic holds %v, want %s with its trace", got, id)
		}
		// A fire record before the time is ignored.
		r.fireRecord("acct", id)
		r.barrier(t, "acct")
		if n := r.eventsWith(id); n != 0 {
			t.Fatalf("fired before its time: %d events", n)
		}
		e := awaitEvent(t, tapped, id)
		if e.Timestamp.Before(at) {
			t.Fatalf("event at %v, before the schedule's time %v", e.Timestamp, at)
		}
		if e.CommandID != id || e.Version != 2 {
			t.Fatalf("fired event %+v, want command ID %s at version 2", e.Metadata, id)
		}
		if e.Trace.TraceID != trace.TraceID {
			t.Fatalf("fired event in trace %x, want the schedule's trace %x", e.Trace.TraceID, trace.TraceID)
		}
		// Fired once, whatever comes after: a forged fire record, a re-sent schedule.
		r.fireRecord("acct", id)
		var fe *gateway.FiredError
		if _, err := r.s.Schedule(ctx, cmdWithID[command]("acct", id, deposit{7}), time.Now().Add(time.Hour)); !errors.As(err, &fe) || fe.Result.From != 2 {
			t.Fatalf("re-sent schedule after the fire: %v, want a FiredError at version 2", err)
		}
		if err := r.s.Cancel(ctx, "acct", id); !errors.Is(err, gateway.ErrFired) {
			t.Fatalf("cancel after the fire: %v, want ErrFired", err)
		}
		res, err := r.s.Outcome(ctx, "acct", id)
		if err != nil || !res.Duplicate || res.From != 2 || res.To != 2 {
			t.Fatalf("outcome: %+v, %v; want versions 2..2", res, err)
		}
		r.barrier(t, "acct")
		if n := r.eventsWith(id); n != 1 {
			t.Fatalf("%d events of the schedule, want 1", n)
		}
		if got := r.pendingInTopic(t); len(got) != 0 {
			t.Fatalf("schedules topic still holds %v after the fire", got)
		}
		if err := r.s.Cancel(ctx, "acct", "never"); !errors.Is(err, gateway.ErrUnknownSchedule) {
			t.Fatalf("cancel of an unknown schedule: %v", err)
		}
	})
}

// TestScheduleRefusalIsItsOutcome: a fired command the domain refuses is the schedule's
// outcome, remembered (decision 27): nothing is written, and a restarted gateway answers
// it too.
func TestScheduleRefusalIsItsOutcome(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newSchedRig(t, c, 2)
		clock := newFakeClock()
		_, _, stop := r.startClocked(clock)
		ctx := sctx(t)
		if _, err := r.s.Send(ctx, cmdWithID[command]("acct", "open", openAccount{})); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(time.Hour)
		if _, err := r.s.Schedule(ctx, cmdWithID[command]("acct", "w", withdraw{50}), at); err != nil {
			t.Fatal(err)
		}
		clock.Set(at.Add(time.Second))
		// The fire is handled before any later record of the partition: wait for the
		// outcome rather than for time.
		for {
			_, err := r.s.Outcome(ctx, "acct", "w")
			if errors.Is(err, gateway.ErrPending) {
				continue
			}
			wantRefused(t, "fired withdrawal", err, "w")
			break
		}
		stop()
		r.startClocked(clock)
		_, err := r.s.Outcome(ctx, "acct", "w")
		wantRefused(t, "after a restart", err, "w")
		var fe *gateway.FiredError
		if err := r.s.Cancel(ctx, "acct", "w"); !errors.As(err, &fe) || !errors.Is(fe.Err, kastor.ErrRejected) {
			t.Fatalf("cancel after a refused fire: %v", err)
		}
		if n := r.eventsWith("w"); n != 0 {
			t.Fatalf("a refused fire wrote %d events", n)
		}
	})
}

// TestScheduleFiresAfterRestart: a gateway stopped before the time, and another started
// after it, fires the schedule once, without any input.
func TestScheduleFiresAfterRestart(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newSchedRig(t, c, 2)
		clock := newFakeClock()
		_, _, stop := r.startClocked(clock)
		ctx := sctx(t)
		if _, err := r.s.Send(ctx, cmdWithID[command]("acct", "open", openAccount{})); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(time.Hour)
		if _, err := r.s.Schedule(ctx, cmdWithID[command]("acct", "later", deposit{3}), at); err != nil {
			t.Fatal(err)
		}
		stop()
		clock.Set(at.Add(time.Minute)) // due while no gateway ran
		g, tapped, _ := r.startClocked(clock)
		awaitEvent(t, tapped, "later")
		r.barrier(t, "acct")
		if n := r.eventsWith("later"); n != 1 {
			t.Fatalf("%d events of the schedule, want 1", n)
		}
		restored := 0
		for _, rec := range g.Recoveries() {
			restored += rec.Schedules
		}
		if restored != 1 {
			t.Fatalf("the restart restored %d schedules, want 1", restored)
		}
	})
}

// TestScheduleCancelBeforeDue: a schedule cancelled before its time never fires, even
// with its time long past and a fire record written; the cancel is its outcome.
func TestScheduleCancelBeforeDue(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newSchedRig(t, c, 2)
		clock := newFakeClock()
		reg := prometheus.NewRegistry()
		g, err := gateway.New(r.kastor(cluster.Registerer(reg)), r.config())
		if err != nil {
			t.Fatal(err)
		}
		g.SetClock(clock.clock())
		stop := r.run(g)
		ctx := sctx(t)
		if _, err := r.s.Send(ctx, cmdWithID[command]("acct", "open", openAccount{})); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(time.Hour)
		if _, err := r.s.Schedule(ctx, cmdWithID[command]("acct", "x", deposit{5}), at); err != nil {
			t.Fatal(err)
		}
		awaitGauge(t, reg, "kastor_gateway_schedules_pending", 1)
		if err := r.s.Cancel(ctx, "acct", "x"); err != nil {
			t.Fatal(err)
		}
		awaitGauge(t, reg, "kastor_gateway_schedules_pending", 0)
		clock.Set(at.Add(time.Hour))
		r.fireRecord("acct", "x")
		r.barrier(t, "acct")
		if n := r.eventsWith("x"); n != 0 {
			t.Fatalf("a cancelled schedule fired: %d events", n)
		}
		if got := r.pendingInTopic(t); len(got) != 0 {
			t.Fatalf("schedules topic holds %v after the cancel", got)
		}
		if _, err := r.s.Outcome(ctx, "acct", "x"); !errors.Is(err, gateway.ErrCancelled) {
			t.Fatalf("outcome of a cancelled schedule: %v", err)
		}
		if err := r.s.Cancel(ctx, "acct", "x"); err != nil {
			t.Fatalf("cancel again: %v", err)
		}
		if _, err := r.s.Schedule(ctx, cmdWithID[command]("acct", "x", deposit{5}), time.Now().Add(time.Hour)); !errors.Is(err, gateway.ErrCancelled) {
			t.Fatalf("a cancelled schedule ID scheduled again: %v, want ErrCancelled", err)
		}
		// The cancel survives a restart (it is remembered with the aggregate's snapshot).
		stop()
		r.startClocked(clock)
		r.fireRecord("acct", "x")
		r.barrier(t, "acct")
		if _, err := r.s.Outcome(ctx, "acct", "x"); !errors.Is(err, gateway.ErrCancelled) {
			t.Fatalf("outcome after a restart: %v", err)
		}
		if n := r.eventsWith("x"); n != 0 {
			t.Fatalf("a cancelled schedule fired after a restart: %d events", n)
		}
	})
}

// awaitGauge waits until gauge name is want: the gateway updates it just after the
// commit that made the reply visible.
func awaitGauge(t *testing.T, reg *prometheus.Registry, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := -1.0
		for _, mf := range mfs {
			if mf.GetName() == name {
				got = mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %v, want %v", name, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestScheduleCancelRacingFire: cancels sent as schedules come due each get one
// outcome, cancelled or fired, and the events topic agrees: a fired schedule has its
// event once, a cancelled one none.
func TestScheduleCancelRacingFire(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newSchedRig(t, c, 3)
		clock := newFakeClock()
		r.startClocked(clock)
		ctx := sctx(t)
		const n = 30
		accounts := r.accountPerPartition()
		at := time.Now().Add(time.Hour)
		for _, acct := range accounts {
			if _, err := r.s.Send(ctx, cmdWithID[command](acct, "open-"+acct, openAccount{})); err != nil {
				t.Fatal(err)
			}
		}
		for i := range n {
			acct := accounts[int32(i)%r.partitions]
			if _, err := r.s.Schedule(ctx, cmdWithID[command](acct, fmt.Sprintf("s%d", i), deposit{1}), at); err != nil {
				t.Fatal(err)
			}
		}
		// Halfway through the cancels every schedule comes due: the scheduler writes their
		// fire records at its next wake (a commit, or its tick), while cancels keep coming.
		time.AfterFunc(time.Duration(n)*25*time.Millisecond, func() { clock.Set(at.Add(time.Second)) })
		var wg sync.WaitGroup
		results := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Spread around the moment the clock moves, so that some cancels are
				// written before the fire records and some after: a spread, not a
				// synchronisation; the checks hold for any interleaving.
				time.Sleep(time.Duration(i) * 50 * time.Millisecond)
				results[i] = r.s.Cancel(ctx, accounts[int32(i)%r.partitions], fmt.Sprintf("s%d", i))
			}()
		}
		wg.Wait()
		for _, acct := range accounts {
			r.barrier(t, acct)
		}
		// Every fire record has been handled once each schedule has an outcome, and the
		// barriers came after the cancels.
		cancelled, fired := 0, 0
		for i, err := range results {
			id := fmt.Sprintf("s%d", i)
			evs := r.eventsWith(id)
			switch {
			case err == nil:
				cancelled++
				if evs != 0 {
					t.Errorf("%s: cancelled, but %d events", id, evs)
				}
			case errors.Is(err, gateway.ErrFired):
				fired++
				if evs != 1 {
					t.Errorf("%s: fired, but %d events", id, evs)
				}
			default:
				t.Errorf("%s: cancel: %v", id, err)
			}
		}
		t.Logf("%d cancelled, %d fired", cancelled, fired)
		// Those cancelled stay so: move the clock on, write their fire records, and read
		// the topics back.
		clock.Add(time.Hour)
		for i, err := range results {
			if err == nil {
				r.fireRecord(accounts[int32(i)%r.partitions], fmt.Sprintf("s%d", i))
			}
		}
		for _, acct := range accounts {
			r.barrier(t, acct)
		}
		for i, err := range results {
			id := fmt.Sprintf("s%d", i)
			if want := map[bool]int{true: 0, false: 1}[err == nil]; r.eventsWith(id) != want {
				t.Errorf("%s: %d events, want %d", id, r.eventsWith(id), want)
			}
		}
		if got := r.pendingInTopic(t); len(got) != 0 {
			t.Fatalf("schedules still pending: %v", got)
		}
	})
}

// TestScheduleClockStepsBack: a clock stepped back delays a schedule, never loses it nor
// fires it early.
func TestScheduleClockStepsBack(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		defer gateway.SetScheduleRefire(100 * time.Millisecond)()
		r := newSchedRig(t, c, 1)
		clock := newFakeClock()
		_, tapped, _ := r.startClocked(clock)
		ctx := sctx(t)
		if _, err := r.s.Send(ctx, cmdWithID[command]("acct", "open", openAccount{})); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(time.Hour)
		if _, err := r.s.Schedule(ctx, cmdWithID[command]("acct", "s", deposit{2}), at); err != nil {
			t.Fatal(err)
		}
		clock.Set(at.Add(-time.Second))
		clock.Add(-24 * time.Hour) // stepped back a day
		r.fireRecord("acct", "s")
		r.barrier(t, "acct")
		if n := r.eventsWith("s"); n != 0 {
			t.Fatalf("fired before its time after the clock stepped back: %d events", n)
		}
		if _, err := r.s.Outcome(ctx, "acct", "s"); !errors.Is(err, gateway.ErrPending) {
			t.Fatalf("outcome: %v, want ErrPending", err)
		}
		clock.Set(at.Add(time.Second))
		e := awaitEvent(t, tapped, "s")
		if e.Version != 2 {
			t.Fatalf("fired at version %d, want 2", e.Version)
		}
		r.barrier(t, "acct")
		if n := r.eventsWith("s"); n != 1 {
			t.Fatalf("%d events, want 1", n)
		}
	})
}

// TestScheduleMovesWithItsShard: schedules stay with their shards through a rebalance to
// another gateway, and fire once there.
func TestScheduleMovesWithItsShard(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newSchedRig(t, c, 4)
		clock := newFakeClock()
		r.startClocked(clock, func(cfg *gateway.Config[account, command, kastor.Event]) { cfg.InstanceID = "a" })
		ctx := sctx(t)
		accounts := r.accountPerPartition()
		at := time.Now().Add(time.Hour)
		for _, acct := range accounts {
			if _, err := r.s.Send(ctx, cmdWithID[command](acct, "open-"+acct, openAccount{})); err != nil {
				t.Fatal(err)
			}
			if _, err := r.s.Schedule(ctx, cmdWithID[command](acct, "s-"+acct, deposit{4}), at); err != nil {
				t.Fatal(err)
			}
		}
		gb, tappedB, _ := r.startClocked(clock, func(cfg *gateway.Config[account, command, kastor.Event]) { cfg.InstanceID = "b" })
		spread := r.awaitSpread(t, "a", "b")
		// b serves its shards once restored: wait for one of its accounts to answer.
		for _, p := range spread["b"] {
			r.barrier(t, accounts[p])
		}
		restored := 0
		for _, rec := range gb.Recoveries() {
			restored += rec.Schedules
		}
		if restored != len(spread["b"]) {
			t.Fatalf("b restored %d schedules for its %d shards %v, want one each", restored, len(spread["b"]), spread["b"])
		}
		clock.Set(at.Add(time.Second))
		want := map[string]bool{}
		for _, p := range spread["b"] {
			want["s-"+accounts[p]] = true
		}
		for len(want) > 0 {
			select {
			case e := <-tappedB:
				delete(want, e.CommandID)
			case <-ctx.Done():
				t.Fatalf("b fired none of %v", want)
			}
		}
		for _, acct := range accounts {
			for {
				_, err := r.s.Outcome(ctx, acct, "s-"+acct)
				if !errors.Is(err, gateway.ErrPending) {
					if err != nil {
						t.Fatalf("outcome of s-%s: %v", acct, err)
					}
					break
				}
			}
		}
		for _, acct := range accounts {
			if n := r.eventsWith("s-" + acct); n != 1 {
				t.Errorf("s-%s: %d events, want 1", acct, n)
			}
		}
	})
}

// TestScheduleWithoutTopic: without the schedules topic the gateway runs, and refuses
// scheduled commands with an error naming the topic.
func TestScheduleWithoutTopic(t *testing.T) {
	c := kafkatest.StartEmbedded(t)
	r := newRig(t, c, 1)
	r.start(r.config())
	s := r.sender()
	ctx := sctx(t)
	if _, err := s.Send(ctx, cmdWithID[command]("acct", "open", openAccount{})); err != nil {
		t.Fatal(err)
	}
	name := topics.TopicName(r.ns, "bank.account", topics.RoleSchedules)
	_, err := s.Schedule(ctx, cmdWithID[command]("acct", "s", deposit{1}), time.Now().Add(time.Hour))
	if !errors.Is(err, kastor.ErrUnavailable) || !strings.Contains(err.Error(), name) {
		t.Fatalf("schedule without the topic: %v, want ErrUnavailable naming %s", err, name)
	}
	if err := s.Cancel(ctx, "acct", "s"); !errors.Is(err, kastor.ErrUnavailable) || !strings.Contains(err.Error(), name) {
		t.Fatalf("cancel without the topic: %v", err)
	}
}
