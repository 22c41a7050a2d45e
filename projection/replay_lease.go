package projection

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// errLeaseLost stops the executor of a replay request whose claim no longer holds.
var errLeaseLost = errors.New("projection: this instance no longer holds the replay request's lease")

// replayClaim is this instance's latest claim of a replay request.
type replayClaim struct {
	token string // its Request.Claim
	// over is the holder (holderOf) the claim was written to replace: the claim is not
	// written again while the registry still shows that holder, since it is on its way.
	over string
	ran  bool // an executor was started for it: a claim is executed once
}

// holderOf identifies who holds request r in the registry: "" while it is pending, else
// its claim (a claim written before claims had tokens: its instance and time).
func holderOf(r *Request) string {
	switch {
	case r.Status == StatusPending:
		return ""
	case r.Claim != "":
		return r.Claim
	}
	return r.Instance + "@" + r.UpdatedAt.String()
}

// replayRun is this instance's execution of a replay request under one claim. The
// controller moves the lease's end as it reads renewals back; the executor and the
// renewer ask hold whether they may go on.
type replayRun struct {
	req   Request // the claim as the registry accepted it
	lease time.Duration
	stop  chan struct{} // closed when the executor returned: the renewer stops

	mu    sync.Mutex
	until time.Time // the lease's end as last read back from the registry
	lost  error     // sticky: a claim once lost is never executed again
	// ended is set with the executor's outcome when it returned: on a stop, the outcome
	// may not have reached the controller (see releaseReplays).
	ended bool
	out   replayOutcome
}

// observe takes in the request as the registry now has it.
func (run *replayRun) observe(r *Request) {
	run.mu.Lock()
	defer run.mu.Unlock()
	if r.Claim != run.req.Claim {
		if run.lost == nil {
			run.lost = fmt.Errorf("%w: instance %s took it over", errLeaseLost, r.Instance)
		}
		return
	}
	if r.LeaseUntil.After(run.until) {
		run.until = r.LeaseUntil
	}
}

// hold reports errLeaseLost once another claim replaced this one, or once less than a
// sixth of the lease is left before the end last read back. Other instances take the
// request over only when the lease has expired by their clocks, so stopping that early
// keeps two executors from applying letters at once while the clocks agree to within
// a sixth of the lease. The loss is sticky: the letters this executor read at its start
// may have been resolved by a later holder since.
func (run *replayRun) hold() error {
	run.mu.Lock()
	defer run.mu.Unlock()
	if run.lost == nil && time.Now().After(run.until.Add(-run.lease/6)) {
		run.lost = fmt.Errorf("%w: no renewal was read back before %s", errLeaseLost, run.until.Add(-run.lease/6).Format(time.RFC3339Nano))
	}
	return run.lost
}

// replayOutcome is what an executor of a replay request returned.
type replayOutcome struct {
	run *replayRun
	res ReplayResult
	err error
}

// replayRequest claims a replay request that is pending or whose lease expired,
// executes it once the registry shows this instance's claim, and keeps the lease of a
// replay it executes up to date.
func (c *controller[E]) replayRequest(ctx context.Context, st *State, r Request) {
	if run := c.replaying[r.ID]; run != nil {
		// Never claimed anew while an executor runs here, even on a lost claim: it may be
		// in the middle of applying a letter.
		run.observe(&r)
		return
	}
	cl := c.replayClaims[r.ID]
	switch {
	case r.Status == StatusRunning && cl != nil && r.Claim == cl.token && !cl.ran:
		cl.ran = true
		c.executeReplay(ctx, st, r)
	case r.Status == StatusPending, r.Status == StatusRunning && time.Now().After(r.LeaseEnd()):
		if cl != nil && cl.over == holderOf(&r) {
			return
		}
		c.claimReplay(ctx, st, r)
	}
}

// claimReplay writes a claim of r. The fold accepts it when r is pending, or when it is
// written after the current claim's lease end; of several instances claiming at once
// the first in the registry wins, everywhere.
func (c *controller[E]) claimReplay(ctx context.Context, st *State, r Request) {
	cl := &replayClaim{token: newID(), over: holderOf(&r)}
	if r.Status == StatusRunning {
		c.log.Info("claiming a replay request whose lease expired", "request", r.ID, "holder", r.Instance,
			"leaseUntil", r.LeaseEnd())
		r.TakenFrom = r.Instance
	}
	now := time.Now().UTC()
	r.Status, r.Instance, r.Claim, r.UpdatedAt, r.LeaseUntil = StatusRunning, c.p.instance, cl.token, now, now.Add(c.p.lease)
	if r.Version == 0 {
		r.Version = st.Serving
	}
	c.replayClaims[r.ID] = cl
	if err := c.reg.write(ctx, requestKey(r.Namespace, r.Name, r.ID), r); err != nil {
		c.log.Warn("claiming a replay request failed", "request", r.ID, "err", err)
		delete(c.replayClaims, r.ID)
	}
}

// executeReplay runs Replay for the claim r this instance holds, renewing the lease
// until the executor returns; the controller records the outcome (replayed).
func (c *controller[E]) executeReplay(ctx context.Context, st *State, r Request) {
	if c.serving == nil || c.serving.version != r.Version {
		r.LeaseUntil = time.Time{}
		c.finish(ctx, r, StatusFailed, fmt.Sprintf("version %d does not serve here (serving: %d); replay the dead letters of the serving version", r.Version, st.Serving))
		return
	}
	run := &replayRun{req: r, lease: c.p.lease, stop: make(chan struct{}), until: r.LeaseEnd()}
	c.replaying[r.ID] = run
	if r.TakenFrom != "" {
		c.log.Info("took over a replay request; letters resolved before are not applied again", "request", r.ID, "from", r.TakenFrom)
	}
	cfg, sink := c.p.readerConfig(r.Version), c.serving.sink
	// The renewer is waited for on a stop too: a renewal must not follow the release.
	c.executors.Add(2)
	go func() {
		defer c.executors.Done()
		c.renewLease(ctx, run)
	}()
	go func() {
		defer c.executors.Done()
		res, err := replay(ctx, c.p.kc, cfg, sink, run.hold)
		run.mu.Lock()
		run.ended, run.out = true, replayOutcome{run: run, res: res, err: err}
		run.mu.Unlock()
		close(run.stop)
		if c.p.replayEnded != nil {
			c.p.replayEnded(r.ID, err)
		}
		select {
		case c.replays <- replayOutcome{run: run, res: res, err: err}:
		case <-ctx.Done():
		}
	}()
}

// renewLease writes a renewal of run's claim every third of the lease until the
// executor returns or the claim is lost: a lost claim is never renewed, so a stalled
// instance that wakes up does not write over the instance that took its request.
func (c *controller[E]) renewLease(ctx context.Context, run *replayRun) {
	t := time.NewTicker(run.lease / 3)
	defer t.Stop()
	key := requestKey(run.req.Namespace, run.req.Name, run.req.ID)
	for {
		select {
		case <-ctx.Done():
			return
		case <-run.stop:
			return
		case <-t.C:
		}
		if run.hold() != nil {
			return
		}
		if c.p.renewalsPaused != nil && c.p.renewalsPaused() {
			continue
		}
		r := run.req
		now := time.Now().UTC()
		r.UpdatedAt, r.LeaseUntil = now, now.Add(run.lease)
		if err := c.reg.write(ctx, key, r); err != nil {
			c.log.Warn("renewing a replay request's lease failed", "request", r.ID, "err", err)
		}
	}
}

// replayed records an executor's outcome, unless its claim was lost: the instance that
// holds the request now records its own, and the request's outcome is its first final
// record, so a stale one must not be written.
func (c *controller[E]) replayed(ctx context.Context, o replayOutcome) {
	run := o.run
	if ctx.Err() != nil && errors.Is(o.err, context.Canceled) {
		return // stopped with the projection, not failed: releaseReplays gives the claim up
	}
	delete(c.replaying, run.req.ID)
	if err := run.hold(); err != nil {
		c.log.Warn("a replay stopped without recording its outcome: its lease was lost", "request", run.req.ID,
			"resolved", o.res.Resolved, "err", err)
		return
	}
	r := run.req
	r.Resolved, r.Failed, r.Kept = o.res.Resolved, len(o.res.Failed), o.res.Kept
	r.Status, r.UpdatedAt, r.LeaseUntil = StatusDone, time.Now().UTC(), time.Time{}
	if o.err != nil {
		r.Status, r.Error = StatusFailed, o.err.Error()
	} else if len(o.res.Failed) > 0 {
		r.Error = o.res.Failed[0].Err.Error()
	}
	if err := c.reg.write(ctx, requestKey(r.Namespace, r.Name, r.ID), r); err != nil {
		c.log.Warn("recording a replay's outcome failed", "request", r.ID, "err", err)
	}
}

// releaseReplays runs when the projection stops, once the replay executors and their
// renewers have returned. A replay that stopped because the projection did gives its
// claim up (Request.Released): the lease ends now, and another instance takes the
// request over at its next look instead of a lease later. Letters it resolved stay
// resolved; the new holder starts again from the unresolved ones. A replay that ended
// by itself has its outcome recorded, in case it did not reach the controller's loop.
func (c *controller[E]) releaseReplays() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runs := make([]*replayRun, 0, len(c.replaying))
	for _, run := range c.replaying {
		runs = append(runs, run)
	}
	for _, run := range runs {
		run.mu.Lock()
		ended, out, until := run.ended, run.out, run.until
		run.mu.Unlock()
		if ended && !errors.Is(out.err, context.Canceled) {
			c.replayed(ctx, out)
			continue
		}
		delete(c.replaying, run.req.ID)
		if run.hold() != nil {
			continue // lost: the claim is not this instance's to give up
		}
		r := run.req
		now := time.Now().UTC()
		r.UpdatedAt, r.LeaseUntil, r.Released = now, now, true
		if err := c.reg.write(ctx, requestKey(r.Namespace, r.Name, r.ID), r); err != nil {
			c.log.Warn("giving up a replay request's claim failed; another instance takes it over when its lease expires",
				"request", r.ID, "leaseUntil", until, "err", err)
			continue
		}
		c.log.Info("stopped a replay and gave its claim up; another instance takes it over", "request", r.ID,
			"resolved", out.res.Resolved)
	}
}
