package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kastor-dev/kastor/consumer"
)

// controller is a Projection's Run: one goroutine that owns the readers and turns the
// registry's content into actions. It changes what runs here only on what it reads
// back from the registry, never on what it wrote, so every instance acts on the same
// accepted transitions.
type controller[E any] struct {
	p   *Projection[E]
	reg *registryClient
	adm *kadm.Client
	log *slog.Logger

	serving, building *versionRun[E]
	// proposed is the epoch this instance last proposed, so it proposes a transition once
	// and waits to read the outcome back.
	proposed int64
	claimed  map[string]bool // requests this instance wrote a claim or an outcome for
	dropped  map[int]bool    // abandoned versions whose group this instance deleted
	replays  chan replayOutcome
	// replayClaims holds this instance's latest claim of each replay request, and
	// replaying the executors of replays still running here, by request ID
	// (replay_lease.go).
	replayClaims map[string]*replayClaim
	replaying    map[string]*replayRun
	// executors counts the replay executors' goroutines: the sinks they apply through
	// are closed only once they all returned.
	executors sync.WaitGroup
	progress  RebuildProgress // last written
	// resolutions is the count of letter-resolving requests last acted on (see
	// Registry.resolutions).
	resolutions int
}

// view is what the controller needs of the registry, copied out of the watcher.
type view struct {
	state    State
	known    bool
	requests []Request
	// resolutions counts the replays and purges that resolved dead letters.
	resolutions int
}

func (c *controller[E]) ns() string   { return c.p.kc.Namespace() }
func (c *controller[E]) name() string { return c.p.cfg.Reader.Name }

func (c *controller[E]) run(ctx context.Context) error {
	// Replays run in goroutines of their own: when Run returns, even on an error, they
	// stop and stop renewing their leases, so other instances take their requests over.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.claimed = map[string]bool{}
	c.dropped = map[int]bool{}
	c.replays = make(chan replayOutcome, 4)
	c.replayClaims = map[string]*replayClaim{}
	c.replaying = map[string]*replayRun{}
	updates := make(chan view, 1)
	tailErr := make(chan error, 1)
	tctx, cancelTail := context.WithCancel(ctx)
	go func() {
		tailErr <- c.reg.watch(tctx, func(g *Registry) (bool, error) {
			var v view
			v.state, v.known = g.State(c.ns(), c.name())
			for _, r := range g.pending(c.ns(), c.name()) {
				v.requests = append(v.requests, *r)
			}
			v.resolutions = g.resolutions(c.ns(), c.name())
			select { // keep only the latest view
			case <-updates:
			default:
			}
			updates <- v
			return false, nil
		})
	}()
	defer func() {
		// Replays first: an executor may be applying a letter through the serving sink,
		// which stopAll closes.
		cancel()
		c.executors.Wait()
		c.releaseReplays()
		cancelTail()
		<-tailErr
		c.stopAll()
	}()
	tick := time.NewTicker(c.p.interval)
	defer tick.Stop()
	var cur *view
	for {
		var servingDone, buildingDone <-chan struct{}
		if c.serving != nil {
			servingDone = c.serving.done
		}
		if c.building != nil {
			buildingDone = c.building.done
		}
		ticked := false
		select {
		case <-ctx.Done():
			return nil
		case err := <-tailErr:
			tailErr <- err
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("projection: reading %s: %w", RegistryTopic, err)
		case v := <-updates:
			cur = &v
		case <-tick.C:
			ticked = true
		case o := <-c.replays:
			c.replayed(ctx, o)
			continue
		case <-servingDone:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("projection: projection %s version %d stopped: %w", c.name(), c.serving.version, c.serving.err)
		case <-buildingDone:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("projection: projection %s version %d (rebuilding) stopped: %w", c.name(), c.building.version, c.building.err)
		}
		if cur == nil {
			continue
		}
		if err := c.step(ctx, cur, ticked); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

func (c *controller[E]) stopAll() {
	for _, r := range []*versionRun[E]{c.building, c.serving} {
		if r != nil {
			if err := r.stop(); err != nil {
				c.log.Warn("reader stopped with an error", "version", r.version, "err", err)
			}
		}
	}
	c.building, c.serving = nil, nil
}

// step acts on the registry's current content.
func (c *controller[E]) step(ctx context.Context, v *view, ticked bool) error {
	if !v.known {
		return c.register(ctx)
	}
	st := v.state
	c.p.mu.Lock()
	c.p.state, c.p.haveState = st, true
	c.p.mu.Unlock()
	if err := c.follow(ctx, &st); err != nil {
		return err
	}
	if v.resolutions != c.resolutions {
		// A replay or purge resolved dead letters, maybe in another instance: the
		// aggregates they held here may flow again.
		c.resolutions = v.resolutions
		for _, run := range []*versionRun[E]{c.serving, c.building} {
			if run != nil {
				run.reader.ReloadDeadLetters()
			}
		}
	}
	switch st.Phase {
	case PhaseRebuilding:
		if c.building == nil && st.Building > 0 {
			run, err := c.p.startVersion(ctx, st.Building)
			if err != nil {
				return err
			}
			c.building = run
			c.log.Info("rebuild started: building the next version beside the serving one",
				"serving", st.Serving, "building", st.Building, "request", st.RequestID)
		}
		if ticked || c.progress.Version != st.Building {
			if err := c.checkCaughtUp(ctx, &st); err != nil {
				c.log.Warn("checking the rebuild's progress failed", "err", err)
			}
		}
	case PhaseSwitched:
		if c.serving != nil && c.serving.version == st.Serving && c.proposed < st.Epoch+1 {
			c.retire(ctx, &st)
		}
	case PhaseServing:
		if ticked {
			c.dropAbandoned(ctx, &st)
		}
	}
	c.requests(ctx, &st, v.requests)
	// Last, since stopping a reader waits for its sink's Apply: a cancellation's outcome
	// is recorded first.
	if c.building != nil && (st.Phase != PhaseRebuilding || st.Building != c.building.version) {
		// A build that is no longer wanted: cancelled, or the registry moved on without it.
		c.log.Info("stopping a build the registry no longer wants", "version", c.building.version, "phase", st.Phase)
		if err := c.building.stop(); err != nil {
			c.log.Warn("the abandoned build's reader stopped with an error", "version", c.building.version, "err", err)
		}
		c.building = nil
	}
	return nil
}

// register records the projection in the registry at its first run.
func (c *controller[E]) register(ctx context.Context) error {
	if c.proposed == 1 {
		return nil
	}
	sink, err := c.p.cfg.NewSink(c.p.cfg.Version)
	if err != nil {
		return fmt.Errorf("projection: NewSink(%d): %w", c.p.cfg.Version, err)
	}
	_, sinkOffsets := sink.(consumer.OffsetStore)
	if cl, ok := sink.(interface{ Close() error }); ok {
		_ = cl.Close()
	}
	c.proposed = 1
	return c.propose(ctx, State{Epoch: 1, Phase: PhaseServing, Serving: c.p.cfg.Version,
		SinkOffsets: sinkOffsets, AllPartitions: c.p.cfg.Reader.AllPartitions})
}

// propose writes a state transition. It takes effect, here and in every instance, when
// it is read back as the next epoch.
func (c *controller[E]) propose(ctx context.Context, s State) error {
	s.Namespace, s.Name, s.Topics, s.Instance = c.ns(), c.name(), c.p.topics, c.p.instance
	s.UpdatedAt = time.Now().UTC()
	c.proposed = s.Epoch
	return c.reg.write(ctx, stateKey(s.Namespace, s.Name), s)
}

// follow makes the version the registry names the one serving here.
func (c *controller[E]) follow(ctx context.Context, st *State) error {
	if c.serving != nil && c.serving.version == st.Serving {
		return nil
	}
	from := 0
	if c.serving != nil {
		from = c.serving.version
	}
	var next *versionRun[E]
	if c.building != nil && c.building.version == st.Serving {
		// With AllPartitions each instance's model is its own: it serves the new version
		// only once its own reader has caught up too.
		if st.AllPartitions && c.serving != nil {
			pr, err := c.building.reader.Progress(ctx)
			if err != nil || !caughtUp(pr, st) {
				return nil
			}
		}
		next, c.building = c.building, nil
	} else {
		run, err := c.p.startVersion(ctx, st.Serving)
		if err != nil {
			return err
		}
		next = run
	}
	old := c.serving
	c.serving = next
	c.p.mu.Lock()
	c.p.serving, c.p.sink = next.version, next.sink
	c.p.mu.Unlock()
	if c.p.cfg.OnSwitch != nil {
		c.p.cfg.OnSwitch(from, next.version)
	}
	if old != nil {
		c.log.Info("switched", "from", from, "to", next.version)
		if err := old.stop(); err != nil {
			c.log.Warn("the previous version's reader stopped with an error", "version", old.version, "err", err)
		}
	}
	if c.building != nil && st.Phase != PhaseRebuilding {
		// A build that is no longer wanted (the registry moved on without it).
		_ = c.building.stop()
		c.building = nil
	}
	return nil
}

// checkCaughtUp reports the rebuild's progress and proposes the switch once the
// building version reached the captured end offsets.
func (c *controller[E]) checkCaughtUp(ctx context.Context, st *State) error {
	var pr consumer.Progress
	var err error
	if st.AllPartitions {
		if c.building == nil {
			return nil
		}
		pr, err = c.building.reader.Progress(ctx)
	} else {
		// The group's committed offsets: the view across all instances, and behind what
		// the sinks applied (a reader commits after its sink).
		pr, err = consumer.GroupProgress(ctx, c.adm, consumer.GroupName(c.ns(), c.name(), st.Building), st.Topics...)
	}
	if err != nil {
		return err
	}
	done, total := progressOf(pr, st)
	ok := caughtUp(pr, st)
	rp := RebuildProgress{Namespace: c.ns(), Name: c.name(), Version: st.Building, Done: done, Total: total,
		CaughtUp: ok, Instance: c.p.instance, At: time.Now().UTC()}
	if rp.Version != c.progress.Version || rp.Done != c.progress.Done || rp.At.Sub(c.progress.At) > 10*c.p.interval {
		if err := c.reg.write(ctx, progressKey(c.ns(), c.name()), rp); err != nil {
			return err
		}
		c.progress = rp
	}
	if !ok || c.proposed >= st.Epoch+1 {
		return nil
	}
	c.log.Info("the building version caught up with the end offsets captured at the start: switching",
		"from", st.Serving, "to", st.Building)
	next := *st
	next.Epoch, next.Phase, next.Previous, next.Serving, next.Building = st.Epoch+1, PhaseSwitched, st.Serving, st.Building, 0
	next.SwitchedAt = time.Now().UTC()
	if c.building != nil {
		_, next.SinkOffsets = c.building.sink.(consumer.OffsetStore)
	}
	if err := c.propose(ctx, next); err != nil {
		return err
	}
	if st.RequestID != "" {
		req := Request{ID: st.RequestID, Kind: RequestRebuild, Namespace: c.ns(), Name: c.name(), Status: StatusDone,
			Version: st.Building, From: st.Serving, To: st.Building, Instance: c.p.instance, UpdatedAt: time.Now().UTC()}
		return c.reg.write(ctx, requestKey(c.ns(), c.name(), req.ID), req)
	}
	return nil
}

// caughtUp reports whether pr reached the captured ends. A partition with nothing to
// read (end at its start) is caught up even if the group never committed on it.
func caughtUp(pr consumer.Progress, st *State) bool {
	applied := map[consumer.TopicPartition]int64{}
	for _, pp := range pr.Partitions {
		applied[consumer.TopicPartition{Topic: pp.Topic, Partition: pp.Partition}] = pp.Applied
	}
	starts := offsetMap(st.Starts)
	for _, e := range st.Ends {
		tp := consumer.TopicPartition{Topic: e.Topic, Partition: e.Partition}
		if e.Offset <= starts[tp] {
			continue
		}
		if a, ok := applied[tp]; !ok || a < e.Offset {
			return false
		}
	}
	return true
}

// progressOf counts the offsets between the captured starts and ends that pr passed.
func progressOf(pr consumer.Progress, st *State) (done, total int64) {
	applied := map[consumer.TopicPartition]int64{}
	for _, pp := range pr.Partitions {
		applied[consumer.TopicPartition{Topic: pp.Topic, Partition: pp.Partition}] = pp.Applied
	}
	starts := offsetMap(st.Starts)
	for _, e := range st.Ends {
		tp := consumer.TopicPartition{Topic: e.Topic, Partition: e.Partition}
		n := max(e.Offset-starts[tp], 0)
		total += n
		if a, ok := applied[tp]; ok && a >= 0 {
			done += min(max(a-starts[tp], 0), n)
		}
	}
	return done, total
}

// retire deletes the previous version's consumer group once every instance left it,
// then records the projection serving again.
func (c *controller[E]) retire(ctx context.Context, st *State) {
	if st.Previous > 0 && !st.AllPartitions {
		group := consumer.GroupName(c.ns(), c.name(), st.Previous)
		resp, err := c.adm.DeleteGroup(ctx, group)
		if err == nil {
			err = resp.Err
		}
		switch {
		case err == nil, errors.Is(err, kerr.GroupIDNotFound):
		case errors.Is(err, kerr.NonEmptyGroup):
			return // instances are still leaving it: retried at the next tick
		default:
			c.log.Warn("deleting the retired version's consumer group failed; retrying", "group", group, "err", err)
			return
		}
		c.log.Info("retired the previous version's consumer group", "group", group)
	}
	next := *st
	next.Epoch, next.Phase = st.Epoch+1, PhaseServing
	if err := c.propose(ctx, next); err != nil {
		c.log.Warn("recording the retirement failed; retrying", "err", err)
		c.proposed = 0
	}
}

// requests acts on pending requests.
func (c *controller[E]) requests(ctx context.Context, st *State, reqs []Request) {
	for _, r := range reqs {
		switch r.Kind {
		case RequestRebuild:
			c.rebuildRequest(ctx, st, r)
		case RequestReplay:
			c.replayRequest(ctx, st, r)
		case RequestCancel:
			c.cancelRequest(ctx, st, r)
		}
	}
}

func (c *controller[E]) finish(ctx context.Context, r Request, status RequestStatus, msg string) {
	r.Status, r.Error, r.Instance, r.UpdatedAt = status, msg, c.p.instance, time.Now().UTC()
	if err := c.reg.write(ctx, requestKey(r.Namespace, r.Name, r.ID), r); err != nil {
		c.log.Warn("recording a request's outcome failed", "request", r.ID, "err", err)
	}
}

// rebuildRequest starts a rebuild: it captures the end offsets and proposes the
// rebuilding state. Instances that propose at once all capture ends after the request
// was made; the first proposal in the registry is the one everybody follows.
func (c *controller[E]) rebuildRequest(ctx context.Context, st *State, r Request) {
	if st.RequestID == r.ID || r.Status != StatusPending {
		return
	}
	switch st.Phase {
	case PhaseSwitched:
		return // the switch completes first
	case PhaseRebuilding:
		if !c.claimed[r.ID] {
			c.claimed[r.ID] = true
			c.finish(ctx, r, StatusFailed, fmt.Sprintf("a rebuild of version %d is already running (request %s)", st.Building, st.RequestID))
		}
		return
	}
	if c.proposed >= st.Epoch+1 {
		return
	}
	starts, err := c.adm.ListStartOffsets(ctx, st.Topics...)
	if err == nil {
		err = starts.Error()
	}
	var ends kadm.ListedOffsets
	if err == nil {
		if ends, err = c.adm.ListCommittedOffsets(ctx, st.Topics...); err == nil {
			err = ends.Error()
		}
	}
	if err != nil {
		c.log.Warn("capturing the offsets of a rebuild failed; retrying", "err", err)
		return
	}
	next := *st
	// Never st.Abandoned again: its group and sink hold a cancelled build's work.
	next.Epoch, next.Phase, next.Building, next.RequestID = st.Epoch+1, PhaseRebuilding, max(st.Serving, st.Abandoned)+1, r.ID
	next.Starts, next.Ends = listed(starts), listed(ends)
	next.StartedAt, next.SwitchedAt = time.Now().UTC(), time.Time{}
	if err := c.propose(ctx, next); err != nil {
		c.log.Warn("recording a rebuild's start failed; retrying", "err", err)
		c.proposed = 0
		return
	}
	r.Status, r.Version, r.From, r.To, r.Instance, r.UpdatedAt = StatusRunning, next.Building, st.Serving, next.Building, c.p.instance, time.Now().UTC()
	_ = c.reg.write(ctx, requestKey(r.Namespace, r.Name, r.ID), r)
}

// cancelRequest abandons the rebuild in progress. The transition names the cancel
// request, so every instance can tell whether the cancellation or a concurrent switch
// won, and the outcome is recorded only once the registry has it.
func (c *controller[E]) cancelRequest(ctx context.Context, st *State, r Request) {
	if r.Status != StatusPending || c.claimed[r.ID] {
		return
	}
	switch {
	case st.RequestID == r.ID:
		c.claimed[r.ID] = true
		if st.Cancelled != "" {
			rb := Request{ID: st.Cancelled, Kind: RequestRebuild, Namespace: c.ns(), Name: c.name(), Status: StatusFailed,
				Error: "cancelled by request " + r.ID, Version: st.Abandoned, From: st.Serving, To: st.Abandoned}
			c.finish(ctx, rb, StatusFailed, rb.Error)
		}
		r.Version = st.Abandoned
		c.finish(ctx, r, StatusDone, "")
	case st.Phase != PhaseRebuilding:
		c.claimed[r.ID] = true
		c.finish(ctx, r, StatusFailed, fmt.Sprintf("no rebuild is running: version %d serves", st.Serving))
	case c.proposed < st.Epoch+1:
		next := *st
		next.Epoch, next.Phase, next.Building, next.RequestID = st.Epoch+1, PhaseServing, 0, r.ID
		next.Abandoned, next.Cancelled, next.Starts, next.Ends = st.Building, st.RequestID, nil, nil
		if err := c.propose(ctx, next); err != nil {
			c.log.Warn("recording a rebuild's cancellation failed; retrying", "err", err)
			c.proposed = 0
		}
	}
}

// dropAbandoned deletes the consumer group of a cancelled build once its readers left it.
func (c *controller[E]) dropAbandoned(ctx context.Context, st *State) {
	if st.Abandoned == 0 || st.AllPartitions || c.dropped[st.Abandoned] || c.building != nil {
		return
	}
	group := consumer.GroupName(c.ns(), c.name(), st.Abandoned)
	resp, err := c.adm.DeleteGroup(ctx, group)
	if err == nil {
		err = resp.Err
	}
	switch {
	case err == nil, errors.Is(err, kerr.GroupIDNotFound):
		c.dropped[st.Abandoned] = true
		c.log.Info("deleted the consumer group of the cancelled build", "group", group)
	case errors.Is(err, kerr.NonEmptyGroup):
		// Instances are still stopping its reader: retried at the next tick.
	default:
		c.log.Warn("deleting the cancelled build's consumer group failed; retrying", "group", group, "err", err)
	}
}

func listed(l kadm.ListedOffsets) []PartitionOffset {
	var out []PartitionOffset
	l.Each(func(o kadm.ListedOffset) {
		out = append(out, PartitionOffset{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset})
	})
	return out
}
