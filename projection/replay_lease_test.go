package projection_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/projection"
)

// The registry's fold decides a replay request's holder from the records alone: a
// claim replaces a running one only when written after its lease end, the holder's
// renewals extend the lease and a stale holder's do not, and the first final record
// is the outcome. The records are dated 2001, long expired by any reader's clock: the
// fold must not care.
func TestReplayLeaseFold(t *testing.T) {
	t0 := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	base := projection.Request{ID: "r1", Kind: projection.RequestReplay, Namespace: "ns", Name: "p", Version: 1, RequestedAt: t0}
	rec := func(status projection.RequestStatus, inst, claim string, updated, until int) projection.Request {
		r := base
		r.Status, r.Instance, r.Claim, r.UpdatedAt = status, inst, claim, at(updated)
		if until > 0 {
			r.LeaseUntil = at(until)
		}
		return r
	}
	pending := base
	pending.Status, pending.UpdatedAt = projection.StatusPending, t0
	takenFromA := rec(projection.StatusRunning, "b", "b1", 42, 72)
	takenFromA.TakenFrom = "a"

	steps := []struct {
		what       string
		rec        projection.Request
		holder     string // the claim holding the request after the record
		leaseUntil int
		status     projection.RequestStatus
	}{
		{"the request", pending, "", 0, projection.StatusPending},
		{"a's claim of a pending request", rec(projection.StatusRunning, "a", "a1", 1, 31), "a1", 31, projection.StatusRunning},
		{"b's claim during a's lease", rec(projection.StatusRunning, "b", "b0", 2, 32), "a1", 31, projection.StatusRunning},
		{"the request again", pending, "a1", 31, projection.StatusRunning},
		{"a's renewal", rec(projection.StatusRunning, "a", "a1", 11, 41), "a1", 41, projection.StatusRunning},
		{"a's older renewal, delayed", rec(projection.StatusRunning, "a", "a1", 5, 35), "a1", 41, projection.StatusRunning},
		{"b's claim before the lease end by its own date", rec(projection.StatusRunning, "b", "b0", 40, 70), "a1", 41, projection.StatusRunning},
		{"b's claim after the lease end", takenFromA, "b1", 72, projection.StatusRunning},
		{"c's claim of the same expired lease, second", rec(projection.StatusRunning, "c", "c1", 43, 73), "b1", 72, projection.StatusRunning},
		{"a's late renewal", rec(projection.StatusRunning, "a", "a1", 44, 74), "b1", 72, projection.StatusRunning},
		{"b's renewal", rec(projection.StatusRunning, "b", "b1", 52, 82), "b1", 82, projection.StatusRunning},
		{"b's outcome", rec(projection.StatusDone, "b", "b1", 60, 0), "b1", 0, projection.StatusDone},
		{"a's outcome, second", rec(projection.StatusFailed, "a", "a1", 61, 0), "b1", 0, projection.StatusDone},
		{"a claim after the outcome", rec(projection.StatusRunning, "c", "c2", 500, 530), "b1", 0, projection.StatusDone},
	}
	var log []projection.Request
	for _, s := range steps {
		log = append(log, s.rec)
		g := projection.FoldRequests(log...)
		got, ok := g.Request("ns", "p", "r1")
		if !ok {
			t.Fatalf("after %s: no request", s.what)
		}
		var until time.Time
		if s.leaseUntil > 0 {
			until = at(s.leaseUntil)
		}
		if got.Claim != s.holder || !got.LeaseUntil.Equal(until) || got.Status != s.status {
			t.Errorf("after %s: claim %q until %v, %s; want %q until %v, %s", s.what, got.Claim, got.LeaseUntil, got.Status,
				s.holder, until, s.status)
		}
	}
	if got, _ := projection.FoldRequests(log...).Request("ns", "p", "r1"); got.Instance != "b" || got.TakenFrom != "" {
		t.Errorf("outcome by %q (taken from %q), want b's outcome record", got.Instance, got.TakenFrom)
	}

	// A release ends the lease when written, though a renewal never shortens it;
	// nothing of the released claim counts after it, and a claim dated after it wins.
	released := rec(projection.StatusRunning, "a", "a1", 20, 20)
	released.Released = true
	for _, c := range []struct {
		what   string
		log    []projection.Request
		holder string
		until  int
	}{
		{"a release", []projection.Request{pending, rec(projection.StatusRunning, "a", "a1", 1, 31), released}, "a1", 20},
		{"a renewal after the release", []projection.Request{pending, rec(projection.StatusRunning, "a", "a1", 1, 31), released,
			rec(projection.StatusRunning, "a", "a1", 21, 51)}, "a1", 20},
		{"b's claim after the release", []projection.Request{pending, rec(projection.StatusRunning, "a", "a1", 1, 31), released,
			rec(projection.StatusRunning, "b", "b1", 21, 51)}, "b1", 51},
		{"b's claim before the release's date", []projection.Request{pending, rec(projection.StatusRunning, "a", "a1", 1, 31), released,
			rec(projection.StatusRunning, "b", "b1", 19, 49)}, "a1", 20},
	} {
		got, _ := projection.FoldRequests(c.log...).Request("ns", "p", "r1")
		if got.Claim != c.holder || !got.LeaseUntil.Equal(at(c.until)) {
			t.Errorf("after %s: claim %q until %v, want %q until %v", c.what, got.Claim, got.LeaseUntil, c.holder, at(c.until))
		}
	}

	// A claim written before claims had leases expires DefaultReplayLease after it.
	legacy := rec(projection.StatusRunning, "old", "", 0, 0)
	early := rec(projection.StatusRunning, "b", "b1", 10, 40)
	late := rec(projection.StatusRunning, "b", "b2", 31, 61)
	if got, _ := projection.FoldRequests(pending, legacy, early).Request("ns", "p", "r1"); got.Instance != "old" {
		t.Errorf("a claim within the legacy claim's %v replaced it: %+v", projection.DefaultReplayLease, got)
	}
	if got, _ := projection.FoldRequests(pending, legacy, late).Request("ns", "p", "r1"); got.Claim != "b2" {
		t.Errorf("a claim after the legacy claim's lease did not replace it: %+v", got)
	}
	// Two legacy claims (no tokens) are not renewals of each other: the first wins.
	if got, _ := projection.FoldRequests(pending, legacy, rec(projection.StatusRunning, "old2", "", 1, 0)).Request("ns", "p", "r1"); got.Instance != "old" {
		t.Errorf("a second legacy claim replaced the first: %+v", got)
	}
	// Other requests keep "the first claim wins", however late the second.
	rb := base
	rb.Kind = projection.RequestRebuild
	first, second := rb, rb
	first.Status, first.Instance, first.UpdatedAt = projection.StatusRunning, "a", at(1)
	second.Status, second.Instance, second.UpdatedAt = projection.StatusRunning, "b", at(1000)
	if got, _ := projection.FoldRequests(rb, first, second).Request("ns", "p", "r1"); got.Instance != "a" {
		t.Errorf("a rebuild's second running record replaced the first: %+v", got)
	}
}

// leaseStore is the store both instances' sinks write to (a database shared by the
// application's instances): it counts every event each instance applied, and keeps
// each event once, dropping a replayed event whose aggregate ID and version it already
// holds, as an at-least-once sink is told to.
type leaseStore struct {
	mu       sync.Mutex
	bad      map[string]bool     // fail live, not in a replay
	applied  map[string][]string // "agg/version" -> the instances that applied it
	replayed map[string][]string // instance -> the letters it replayed, in order
	model    map[string]bool     // "agg/version" kept
	dropped  int
}

// leaseSink is one instance's sink over the store; onReplay is called after each
// replayed event is stored, with its rank in this instance's replay, and may block as
// a stalled process would.
type leaseSink struct {
	store    *leaseStore
	instance string
	onReplay func(n int)
}

func (s *leaseSink) Apply(_ context.Context, b consumer.Batch[kastor.Event]) error {
	for i, e := range b.Events {
		key := fmt.Sprintf("%s/%d", e.AggregateID, e.Version)
		st := s.store
		st.mu.Lock()
		if st.bad[key] && !b.Replay {
			st.mu.Unlock()
			return &consumer.ApplyError{Index: i, Err: errors.New("boom")}
		}
		st.applied[key] = append(st.applied[key], s.instance)
		if st.model[key] {
			st.dropped++
		}
		st.model[key] = true
		n := 0
		if b.Replay {
			st.replayed[s.instance] = append(st.replayed[s.instance], key)
			n = len(st.replayed[s.instance])
		}
		st.mu.Unlock()
		if n > 0 && s.onReplay != nil {
			s.onReplay(n)
		}
	}
	return nil
}

// writeLeaseEvents writes three events for each of naggs aggregates, and returns a
// store whose sinks fail the second of each when applied live (not in a replay).
func writeLeaseEvents(r *rig, naggs int) (*leaseStore, []ev) {
	store := &leaseStore{bad: map[string]bool{}, applied: map[string][]string{}, replayed: map[string][]string{}, model: map[string]bool{}}
	var evs []ev
	for i := range naggs {
		agg := fmt.Sprintf("acc-%d", i)
		evs = append(evs, opened(agg), deposited(agg, 1), deposited(agg, 2))
		store.bad[agg+"/2"] = true
	}
	r.Write(evs...)
	return store, evs
}

// leaseInstances returns a constructor of the instances of one projection over r,
// applying through leaseSinks into store, with replay leases of lease.
func leaseInstances(r *rig, store *leaseStore, lease time.Duration) func(name string, onReplay func(n int)) *projection.Projection[kastor.Event] {
	return func(name string, onReplay func(n int)) *projection.Projection[kastor.Event] {
		p, err := projection.New(r.KC, projection.Config[kastor.Event]{
			Reader:      r.Config(func(cfg *consumer.Config[kastor.Event]) { cfg.Version = 0 }),
			Version:     1,
			Instance:    name,
			Interval:    100 * time.Millisecond,
			ReplayLease: lease,
			NewSink: func(int) (consumer.Sink[kastor.Event], error) {
				return &leaseSink{store: store, instance: name, onReplay: onReplay}, nil
			},
		})
		if err != nil {
			r.T.Fatal(err)
		}
		return p
	}
}

// registryRequest returns request id as the registry has it now.
func registryRequest(t *testing.T, kc *cluster.Cluster, ns, id string) projection.Request {
	t.Helper()
	g, err := projection.ReadRegistry(testCtx(t), kc)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := g.Request(ns, projName, id)
	if !ok {
		t.Fatalf("request %s is not in the registry", id)
	}
	return r
}

func await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-testCtx(t).Done():
		t.Fatalf("timed out waiting for %s", what)
	}
}

// An instance claims a replay request, applies some dead letters, and stalls in the
// middle of one (applied, not yet marked resolved) without renewing its lease. Another
// instance takes the request over once the lease has expired and finishes it; a late
// renewal of the stalled instance's claim does not take it back; the stalled instance,
// woken up, stops at its next letter and records no outcome. Every letter is in the
// store once: the one in flight was applied by both and dropped once by aggregate ID and
// version, and no other letter was applied twice.
func TestReplayTakenOverAfterLeaseExpires(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 2)
		createRegistry(t, c)
		const naggs, k = 6, 2 // a stalls in its (k+1)th letter
		const lease = 3 * time.Second
		store, evs := writeLeaseEvents(r, naggs)

		newInstance := leaseInstances(r, store, lease)

		// a parks one letter per aggregate, then stalls in its replay.
		var aStalled atomic.Bool
		aFrozen, releaseA, aEnded := make(chan struct{}), make(chan struct{}), make(chan struct{})
		var aErr error
		a := newInstance("a", func(n int) {
			if n == k+1 {
				aStalled.Store(true)
				close(aFrozen)
				<-releaseA
			}
		})
		projection.PauseRenewals(a, aStalled.Load)
		projection.OnReplayEnded(a, func(_ string, err error) { aErr = err; close(aEnded) })
		startProjection(t, a)
		awaitState(t, a, func(st projection.State) bool { return st.Serving == 1 })
		r.AwaitCommitted(consumer.GroupName(r.NS, projName, 1), r.Ends())
		ctx := testCtx(t)
		letters, err := consumer.ReadDeadLetters(ctx, r.KC, r.DLQ, projName, 1)
		if err != nil || len(letters) != naggs {
			t.Fatalf("%d dead letters (%v), want %d", len(letters), err, naggs)
		}

		req, err := projection.SubmitRequest(ctx, r.KC, projection.Request{Kind: projection.RequestReplay, Namespace: r.NS, Name: projName,
			Version: 1, By: "test"})
		if err != nil {
			t.Fatal(err)
		}
		await(t, aFrozen, "a to stall in its replay")
		claimA := registryRequest(t, r.KC, r.NS, req.ID)
		if claimA.Status != projection.StatusRunning || claimA.Instance != "a" || claimA.Claim == "" || claimA.LeaseUntil.IsZero() {
			t.Fatalf("a's claim: %+v", claimA)
		}

		// b starts, waits for a's lease to expire, takes the request over, and is held at
		// its first letter while a's late renewal is written.
		bBlocked, releaseB := make(chan struct{}), make(chan struct{})
		b := newInstance("b", func(n int) {
			if n == 1 {
				close(bBlocked)
				<-releaseB
			}
		})
		startProjection(t, b)
		await(t, bBlocked, "b to take the replay over")
		claimB := registryRequest(t, r.KC, r.NS, req.ID)
		if claimB.Status != projection.StatusRunning || claimB.Instance != "b" || claimB.TakenFrom != "a" || claimB.Claim == claimA.Claim {
			t.Fatalf("the request while b executes it: %+v", claimB)
		}
		if !claimB.UpdatedAt.After(claimA.LeaseUntil) {
			t.Errorf("b claimed at %v, within a's lease until %v", claimB.UpdatedAt, claimA.LeaseUntil)
		}
		lateRenewal := claimA
		lateRenewal.LeaseUntil = time.Now().UTC().Add(lease)
		if _, err := projection.SubmitRequest(ctx, r.KC, lateRenewal); err != nil {
			t.Fatal(err)
		}
		if got := registryRequest(t, r.KC, r.NS, req.ID); got.Claim != claimB.Claim || got.Instance != "b" {
			t.Fatalf("a's late renewal took the request back: %+v", got)
		}

		// a wakes up: it finishes the letter it was applying, then stops.
		close(releaseA)
		await(t, aEnded, "a's executor to return")
		if !errors.Is(aErr, projection.ErrLeaseLost) {
			t.Errorf("a's executor returned %v, want a lost lease", aErr)
		}
		close(releaseB)
		res := awaitRequest(t, r.KC, r.NS, req.ID)
		if res.Status != projection.StatusDone || res.Instance != "b" || res.Claim != claimB.Claim || res.TakenFrom != "a" ||
			res.Resolved != naggs-k || res.Failed != 0 || res.Kept != 0 {
			t.Errorf("outcome %+v; want done by b, taken from a, %d resolved", res, naggs-k)
		}
		if letters, err := consumer.ReadDeadLetters(ctx, r.KC, r.DLQ, projName, 1); err != nil || len(letters) != 0 {
			t.Errorf("unresolved dead letters after the replay: %d (%v)", len(letters), err)
		}

		store.mu.Lock()
		defer store.mu.Unlock()
		ra, rb := store.replayed["a"], store.replayed["b"]
		if len(ra) != k+1 || len(rb) != naggs-k || rb[0] != ra[k] {
			t.Fatalf("a replayed %v, b replayed %v; want b to start again at a's letter in flight", ra, rb)
		}
		inFlight := ra[k]
		var keys []string
		for key := range store.applied {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			by := store.applied[key]
			want := 1
			if key == inFlight {
				want = 2 // the documented window: applied, not yet marked, when a stalled
			}
			if len(by) != want {
				t.Errorf("%s applied %d times (by %v), want %d", key, len(by), by, want)
			}
		}
		if len(store.model) != len(evs) || store.dropped != 1 {
			t.Errorf("the store holds %d events with %d duplicates dropped; want %d events, the letter in flight dropped once",
				len(store.model), store.dropped, len(evs))
		}
		for i := range naggs {
			for v := 1; v <= 3; v++ {
				if key := fmt.Sprintf("acc-%d/%d", i, v); !store.model[key] {
					t.Errorf("%s is not in the store", key)
				}
			}
		}
	})
}

// An instance stopped gracefully in the middle of a replay gives its claim up: another
// instance takes the request over at once, long before the lease would have expired,
// finishes it, and no letter the first resolved is applied again.
func TestReplayReleasedOnStop(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 2)
		createRegistry(t, c)
		const naggs, k = 6, 2 // a is stopped in its (k+1)th letter
		const lease = 2 * time.Minute
		store, _ := writeLeaseEvents(r, naggs)
		newInstance := leaseInstances(r, store, lease)
		inLetter, stopping := make(chan struct{}), make(chan struct{})
		a := newInstance("a", func(n int) {
			if n == k+1 {
				close(inLetter)
				<-stopping // the letter ends only once a is told to stop
			}
		})
		stopA := startProjection(t, a)
		awaitState(t, a, func(st projection.State) bool { return st.Serving == 1 })
		r.AwaitCommitted(consumer.GroupName(r.NS, projName, 1), r.Ends())
		ctx := testCtx(t)
		req, err := projection.SubmitRequest(ctx, r.KC, projection.Request{Kind: projection.RequestReplay, Namespace: r.NS, Name: projName,
			Version: 1, By: "test"})
		if err != nil {
			t.Fatal(err)
		}
		await(t, inLetter, "a to be in its replay")
		claimA := registryRequest(t, r.KC, r.NS, req.ID)
		stopped := make(chan error, 1)
		go func() { stopped <- stopA() }()
		close(stopping)
		if err := <-stopped; err != nil {
			t.Fatalf("a's Run: %v", err)
		}
		got := registryRequest(t, r.KC, r.NS, req.ID)
		if got.Status != projection.StatusRunning || got.Claim != claimA.Claim || !got.Released || !got.LeaseUntil.Before(claimA.LeaseUntil) {
			t.Fatalf("after a stopped, the request is %+v; want a's claim released", got)
		}

		b := newInstance("b", nil)
		startProjection(t, b)
		res := awaitRequest(t, r.KC, r.NS, req.ID)
		if res.Status != projection.StatusDone || res.Instance != "b" || res.TakenFrom != "a" || res.Failed != 0 || res.Kept != 0 {
			t.Fatalf("outcome %+v; want done by b, taken from a", res)
		}
		if !res.UpdatedAt.Before(claimA.LeaseUntil) {
			t.Errorf("b finished at %v, not before a's lease would have ended (%v)", res.UpdatedAt, claimA.LeaseUntil)
		}
		if letters, err := consumer.ReadDeadLetters(ctx, r.KC, r.DLQ, projName, 1); err != nil || len(letters) != 0 {
			t.Errorf("unresolved dead letters after the replay: %d (%v)", len(letters), err)
		}
		store.mu.Lock()
		defer store.mu.Unlock()
		ra, rb := store.replayed["a"], store.replayed["b"]
		if len(ra) != k+1 || len(ra)+len(rb) < naggs || len(ra)+len(rb) > naggs+1 {
			t.Fatalf("a replayed %v, b replayed %v; want a's %d letters, then b the rest (from a's last, if a could not mark it)", ra, rb, k+1)
		}
		for key, by := range store.applied {
			if len(by) > 1 && key != ra[k] {
				t.Errorf("%s applied %d times (by %v): only the letter a was stopped in may be applied twice", key, len(by), by)
			}
		}
		for i := range naggs {
			for v := 1; v <= 3; v++ {
				if key := fmt.Sprintf("acc-%d/%d", i, v); !store.model[key] {
					t.Errorf("%s is not in the store", key)
				}
			}
		}
	})
}
