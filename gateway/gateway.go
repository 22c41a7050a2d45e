package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/internal/brokerwait"
	"github.com/kastor-dev/kastor/internal/kgolog"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/snapshot"
)

// Gateway executes the commands of one aggregate type. Run it in as many processes as
// needed: they share the commands topic's partitions (shards) through a consumer group,
// and each shard has one writer at a time.
type Gateway[S, C, E any] struct {
	cfg     *settings[S, C, E]
	cluster *cluster.Cluster
	topics  topicSet
	metrics *metrics
	// store restores shards and decides their snapshots and checkpoints.
	store *snapshot.Store

	mu        sync.Mutex
	shards    map[int32]*shard[S]
	restoring map[int32]*restoring // assigned, restore under way
	// failed holds the owned shards whose restore failed: their commands are refused
	// UNAVAILABLE, loudly, until a retry restores them or they are assigned again.
	failed map[int32]*failure
	runCtx context.Context
	sem    chan struct{} // bounds concurrent restores
	// partitions is the partition count shared by the aggregate type's topics.
	partitions int32
	// hasSchedules says the schedules topic exists: without it, schedule operations are
	// refused UNAVAILABLE, naming the topic (decision 43).
	hasSchedules bool
	// schedWake wakes the scheduler after a commit changed the schedules.
	schedWake chan struct{}
	// now is the clock of scheduled commands: time.Now, or a test's.
	now func() time.Time

	snapReq map[int32]map[string]bool // on-demand snapshots, taken at the next batch

	replyTopics replyTopics

	restoredMu sync.Mutex
	restored   []Recovery

	// txnMu is held while a transaction is open: by each batch, and by the checkpoints
	// written on revoke, which use the same transactional producer.
	txnMu sync.Mutex

	// lostEndResponses is a fault injection for tests: that many transactions begun from
	// now on report an error from their End if they commit, as when EndTxn's response is
	// lost.
	lostEndResponses atomic.Int32
	// holdBeforeEnd is a fault injection for tests: each transaction waits this long (ns)
	// with its records written before it ends, so that a kill lands inside it.
	holdBeforeEnd atomic.Int64
	// restoreFault is a fault injection for tests: when set, a restore of shard p fails
	// with its error for p, if any, before reading.
	restoreFault atomic.Pointer[func(p int32) error]
}

// New validates cfg and returns a gateway of cluster c; Run starts it. The topics are
// those of c's namespace (topics.TopicName), the logs go to c's logger with the
// attributes component=kastor.gateway, aggregate and instance, and the metrics
// (kastor_gateway_*, labelled with the aggregate type) are registered with c's registerer
// when it has one.
//
// Run's clients are built from c's client's options (c.NewClient): a transactional
// consumer group member, and read_committed readers for the restores. The gateway's own
// options come after and win: its client ID (kastor-gateway-<instance>), transactional
// ID, group, session timeout, isolation level, partitioner and acks. Requests outside the
// session (fencing a transactional ID, a static member's leave) go over c's client.
func New[S, C, E any](c *cluster.Cluster, cfg Config[S, C, E]) (*Gateway[S, C, E], error) {
	if c == nil {
		return nil, errors.New("gateway: nil *cluster.Cluster")
	}
	sc, err := cfg.withDefaults(c)
	if err != nil {
		return nil, err
	}
	g := &Gateway[S, C, E]{
		cfg:       sc,
		cluster:   c,
		topics:    topicsOf(sc.namespace, sc.Aggregate.Type),
		shards:    map[int32]*shard[S]{},
		restoring: map[int32]*restoring{},
		failed:    map[int32]*failure{},
		sem:       make(chan struct{}, sc.MaxConcurrentRestores),
		schedWake: make(chan struct{}, 1),
		now:       time.Now,
	}
	g.store = &snapshot.Store{
		Client: c.Client(), Snapshots: g.topics.snapshots, Events: g.topics.events,
		Policy: sc.Snapshots, TransactionTimeout: sc.TransactionTimeout, Logger: sc.logger,
	}
	g.metrics, err = newMetrics(c.Registerer(), sc.Aggregate.Type)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// checkTopics verifies the aggregate type's topics exist with one partition count, and
// returns it. The schedules topic is optional: when it is missing, scheduled commands are
// refused (g.hasSchedules), and a topic created later is seen at the next session.
func (g *Gateway[S, C, E]) checkTopics(ctx context.Context, cl *kgo.Client) (int32, error) {
	names := []string{g.topics.commands, g.topics.events, g.topics.snapshots, g.topics.replies, g.topics.schedules}
	var m kadm.Metadata
	err := brokerwait.Do(ctx, g.cfg.logger, "the cluster's metadata of "+strings.Join(names, ", "), func(ctx context.Context) error {
		var err error
		m, err = kadm.NewClient(cl).Metadata(ctx, names...)
		if err != nil {
			return err
		}
		for _, name := range names {
			if td, ok := m.Topics[name]; ok && td.Err != nil && !errors.Is(td.Err, kerr.UnknownTopicOrPartition) && brokerwait.Transient(td.Err) {
				return td.Err // a leader being elected, say
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("gateway: metadata: %w", err)
	}
	var n int32 = -1
	hasSchedules := true
	for _, name := range names {
		td, ok := m.Topics[name]
		if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
			if name == g.topics.schedules {
				hasSchedules = false
				continue
			}
			return 0, fmt.Errorf("gateway: topic %q is missing (create the topic set with `kastor topics apply`)", name)
		}
		if td.Err != nil {
			return 0, fmt.Errorf("gateway: topic %q: %w", name, td.Err)
		}
		p := int32(len(td.Partitions))
		if n >= 0 && p != n {
			return 0, fmt.Errorf("gateway: topic %q has %d partitions and %q has %d: an aggregate type's topics must have the same count, since a partition number is a shard in all of them",
				name, p, g.topics.commands, n)
		}
		n = p
	}
	g.mu.Lock()
	g.hasSchedules = hasSchedules
	g.mu.Unlock()
	return n, nil
}

// Run executes commands until ctx ends, then finishes the open transaction, leaves the
// group and returns nil. It returns an error when it cannot go on: topics missing, or the
// cluster unreachable beyond retries. A shard it cannot restore (a stored record it cannot
// read) does not end it: that shard's commands are refused with a *kastor.UnavailableError,
// and the failure is logged and counted (kastor_gateway_shards_failed). A transaction
// whose outcome it cannot know (an EndTxn cut short) does not end it: it rejoins the group
// and restores its shards from Kafka, as a restarted instance would (docs/decisions.md, 23).
func (g *Gateway[S, C, E]) Run(ctx context.Context) error {
	// The cluster answers with these settings, and the topics are there, before any session:
	// from then on an EOF on a new connection's first read is a broker going away, not TLS
	// or SASL misconfigured (runSession; see decision 30).
	if _, err := g.checkTopics(ctx, g.cluster.Client()); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	// Other processes on this host tell this instance alive by its lock (decision 41).
	lock, err := holdLiveLock(g.cfg.Group, g.cfg.InstanceID)
	if err != nil {
		g.cfg.logger.Warn("cannot hold the instance's lock file: a process replacing this one on this host waits for its session to expire", "err", err)
	}
	// A stop leaves the group; an error does not (see runSession).
	defer func() { lock.release(ctx.Err() != nil) }()
	for first := true; ; first = false {
		err := g.runSession(ctx, first)
		var unknown *outcomeUnknownError
		if !errors.As(err, &unknown) || ctx.Err() != nil {
			return err
		}
		// The shards are forgotten (processBatch dropped them before the session closed,
		// so no revoke checkpoint was written from them). Join again with the same
		// transactional ID: its InitProducerID bumps the epoch, which completes or aborts
		// the transaction in doubt, and the shards are restored from what Kafka committed.
		g.cfg.logger.Info("rejoining the group after a transaction of unknown outcome")
	}
}

// logMembership logs a change of the shards owned, with the group member ID and
// generation that tell one instance's memberships apart.
func (g *Gateway[S, C, E]) logMembership(cl *kgo.Client, level slog.Level, msg string, m map[string][]int32) {
	member, gen := cl.GroupMetadata()
	g.cfg.logger.Log(context.Background(), level, msg, "partitions", m[g.topics.commands], "member_id", member, "generation", gen)
}

// outcomeUnknownError is a transaction end whose outcome the gateway cannot know.
type outcomeUnknownError struct{ err error }

func (e *outcomeUnknownError) Error() string {
	return fmt.Sprintf("gateway: the outcome of a transaction is unknown: %v", e.err)
}

func (e *outcomeUnknownError) Unwrap() error { return e.err }

// coordinatorFailover is how long a heartbeat is retried while the group coordinator
// cannot be reached: long enough to ride out the election of a new coordinator after a
// broker's death (about 10 s with Kafka's default broker.session.timeout.ms of 9 s), so
// that every member keeps its shards instead of all of them dropping and restoring every
// shard at once (see decision 30).
const coordinatorFailover = 30 * time.Second

// retryTimeout is the session client's retry limit per request: the shared client's for
// everything but the group's own requests, which follow the session timeout as franz-go's
// default does, except heartbeats, retried through a coordinator failover.
func (g *Gateway[S, C, E]) retryTimeout() func(int16) time.Duration {
	shared, _ := g.cluster.Client().OptValue(kgo.RetryTimeoutFn).(func(int16) time.Duration)
	session := g.cfg.SessionTimeout
	return func(key int16) time.Duration {
		switch key {
		case (*kmsg.HeartbeatRequest)(nil).Key():
			return max(session, coordinatorFailover)
		case (*kmsg.JoinGroupRequest)(nil).Key(), (*kmsg.SyncGroupRequest)(nil).Key():
			return session
		}
		if shared == nil {
			return 30 * time.Second
		}
		return shared(key)
	}
}

// runSession is one group membership with one transactional producer session.
func (g *Gateway[S, C, E]) runSession(ctx context.Context, first bool) error {
	cfg := g.cfg
	// The session's client is built from the cluster's options followed by these, which
	// win.
	opts := []kgo.Opt{
		kgo.TransactionalID(cfg.txnID(cfg.InstanceID)),
		// Operators tell processes apart in broker logs, quotas and group listings, and
		// fenceDeparted tells live instances from departed ones by it.
		kgo.ClientID(clientIDPrefix + cfg.InstanceID),
		kgo.TransactionTimeout(cfg.TransactionTimeout),
		kgo.ConsumerGroup(cfg.Group),
		kgo.SessionTimeout(cfg.SessionTimeout),
		// Cooperative: a member's death moves only its shards; the others keep theirs and
		// go on committing (franz-go's default, pinned: decision 28).
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.HeartbeatInterval(cfg.HeartbeatInterval),
		kgo.RetryTimeoutFn(g.retryTimeout()),
		// Retried at most a second apart (brokerwait.ClientOptions), a heartbeat reaches a
		// new coordinator within the session timeout; the retry timeouts above bound the
		// retries, not a count (see decision 30).
		kgo.RequestRetries(math.MaxInt32),
		kgo.ConsumeTopics(g.topics.commands),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.OnPartitionsAssigned(func(_ context.Context, cl *kgo.Client, m map[string][]int32) {
			g.logMembership(cl, slog.LevelInfo, "shards assigned", m)
			if len(m[g.topics.commands]) > 0 {
				// A shard taken over from a crashed instance restores once that instance's
				// open transaction ends: end it now rather than at its timeout.
				go g.fenceDeparted(g.context(), cl)
			}
			// A shard's commands are not fetched until it is restored: a batch waiting
			// for one restore would hold up every shard this instance already serves.
			cl.PauseFetchPartitions(map[string][]int32{g.topics.commands: m[g.topics.commands]})
			// The callback's client, not the session's as Run stores it: the group can
			// be joined, and this called, before NewGroupTransactSession has returned.
			for _, p := range m[g.topics.commands] {
				g.startRestore(cl, p)
			}
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
			g.logMembership(cl, slog.LevelInfo, "shards revoked", m)
			if cfg.Snapshots.OnRevoke {
				g.checkpointRevoked(ctx, cl, m[g.topics.commands])
			}
			g.drop(m)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, cl *kgo.Client, m map[string][]int32) {
			// franz-go calls this with nothing owned when a join fails (its error is logged).
			level := slog.LevelWarn
			if len(m[g.topics.commands]) == 0 {
				level = slog.LevelDebug
			}
			g.logMembership(cl, level, "shards lost (this instance was fenced or left the group)", m)
			g.drop(m)
		}),
		kgo.WithLogger(kgolog.New(cfg.logger)),
	}
	opts = append(opts, brokerwait.ClientOptions()...)
	// A refused dial is retried, not final: a heartbeat's coordinator lookup that picks a
	// dead broker must not cost this instance its membership (decision 30).
	opts = append(opts, brokerwait.RefusedRetryable(g.cluster.Client())...)
	runCtx, cancelRestores := context.WithCancel(ctx)
	defer cancelRestores()
	g.mu.Lock()
	g.runCtx = runCtx
	g.mu.Unlock()
	// A predecessor under this instance ID (a restart under the same name, or this
	// instance's own previous session after an unknown outcome) may have a transaction
	// open: end it now rather than at its timeout, before this session's producer exists
	// (decision 28).
	g.fenceOwn(ctx)
	// Run reached the cluster with these settings: an EOF on a new connection's first read
	// is a broker going away (or a proxy in front of a dead one), not TLS or SASL
	// misconfigured, and must not fail a transaction's end (see decision 30).
	opts = append(opts, kgo.AlwaysRetryEOF())
	stopped := false
	if !cfg.DynamicMembership {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
		// franz-go does not leave the group on close for a static member (a restart would
		// take its shards back): a stop hands them over at once instead of a session later.
		// Runs after the session's Close (deferred below).
		defer func() {
			if stopped {
				g.leaveGroup()
			}
		}()
	}
	// A member that died without leaving would hold up the rebalance this join starts
	// (decision 41).
	g.prepareJoin(ctx, first)
	sess, err := kgo.NewGroupTransactSession(cluster.Options(g.cluster.Client(), opts...)...)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	defer sess.Close()
	// Renews the membership while franz-go's heartbeats wait (decision 40); stops before
	// the session closes (deferred calls run last first).
	keepCtx, stopKeep := context.WithCancel(ctx)
	keepDone := make(chan struct{})
	go func() { defer close(keepDone); g.keepAlive(keepCtx, sess.Client()) }()
	defer func() { stopKeep(); <-keepDone }()
	p, err := g.checkTopics(ctx, sess.Client())
	if ctx.Err() != nil {
		stopped = true
		return nil
	}
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.partitions = p
	g.mu.Unlock()
	cfg.logger.Info("gateway started", "group", cfg.Group, "partitions", p,
		"session_timeout", cfg.SessionTimeout, "transaction_timeout", cfg.TransactionTimeout)
	if g.schedulesOn() {
		app, err := producer.New(g.cluster.Client(), producer.Logger(cfg.logger))
		if err != nil {
			return fmt.Errorf("gateway: the scheduler's producer: %w", err)
		}
		schedCtx, stopSched := context.WithCancel(runCtx)
		schedDone := make(chan struct{})
		go func() { defer close(schedDone); g.runScheduler(schedCtx, app) }()
		defer func() { stopSched(); <-schedDone; app.Close() }()
	} else {
		cfg.logger.Info("scheduled commands are off: their topic does not exist", "topic", g.topics.schedules)
	}

	for {
		fetches := sess.PollRecords(ctx, cfg.MaxBatch)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			break
		}
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && fetchErr == nil {
				fetchErr = fmt.Errorf("gateway: fetch %s/%d: %w", t, p, err)
			}
		})
		if fetchErr != nil {
			cfg.logger.Warn("fetch error; retrying", "err", fetchErr)
			continue
		}
		if err := g.awaitRestores(ctx, fetches); err != nil {
			if ctx.Err() != nil {
				break
			}
			return err
		}
		if err := g.processBatch(ctx, sess, fetches.Records()); err != nil {
			return err
		}
	}
	cfg.logger.Info("gateway stopping")
	stopped = true
	return nil
}

// leaveGroup removes this static member from the group.
func (g *Gateway[S, C, E]) leaveGroup() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.removeMember(ctx, nil, "kastor: the gateway stopped"); err != nil {
		g.cfg.logger.Warn("cannot leave the group; the shards move after the session timeout", "err", err)
	}
}

// restoring is a shard restore under way in the background.
type restoring struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed
}

// failure is an owned shard whose restore failed: its commands are refused UNAVAILABLE
// with err. A failure that is not the data's is retried in the background until cancel.
type failure struct {
	err    error
	cancel context.CancelFunc
}

// startRestore restores shard p in the background, so the group's rebalance is not held up
// (a long restore inside the assignment callback would stop heartbeats) and the other
// shards are served meanwhile; p's commands are fetched once the restore has ended (the
// assignment paused p), and the loop still waits for a restore whose commands it holds.
func (g *Gateway[S, C, E]) startRestore(cl *kgo.Client, p int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.restoring[p]; ok {
		return
	}
	if _, ok := g.shards[p]; ok {
		return
	}
	ctx, cancel := context.WithCancel(g.runCtxLocked())
	r := &restoring{cancel: cancel, done: make(chan struct{})}
	g.restoring[p] = r
	go func() {
		defer close(r.done)
		defer func() {
			if ctx.Err() == nil { // restored or failed, and still owned: its commands flow
				cl.ResumeFetchPartitions(map[string][]int32{g.topics.commands: {p}})
			}
		}()
		if !g.acquireRestore(ctx) {
			r.err = ctx.Err()
			return
		}
		defer g.releaseRestore()
		// The previous owner may have a transaction that already committed its command
		// offsets and is still finishing: its events must be read, so wait until the
		// shard's committed offset is stable before reading the events (KIP-447).
		if err := g.awaitStableOffset(ctx, cl, p); err != nil {
			r.err = err
			return
		}
		sh, st, err := g.restore(ctx, p)
		if err != nil {
			r.err = err
			if ctx.Err() == nil {
				g.fail(p, r, err)
			}
			return
		}
		g.restoredOK(st)
		g.mu.Lock()
		if g.restoring[p] == r { // still ours
			delete(g.restoring, p)
			g.shards[p] = sh
			g.gauges()
		}
		g.mu.Unlock()
	}()
}

func (g *Gateway[S, C, E]) acquireRestore(ctx context.Context) bool {
	select {
	case g.sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (g *Gateway[S, C, E]) releaseRestore() { <-g.sem }

func (g *Gateway[S, C, E]) restoredOK(st Recovery) {
	g.metrics.restores.WithLabelValues("ok").Inc()
	g.metrics.recovery.Observe(st.Duration.Seconds())
	g.cfg.logger.Info("shard restored", "partition", st.Partition, "snapshots_read", st.SnapshotRecords,
		"events_read", st.EventRecords, "aggregates", st.Aggregates, "took", st.Duration.Round(time.Millisecond))
	g.restoredMu.Lock()
	g.restored = append(g.restored, st)
	g.restoredMu.Unlock()
}

// context returns the context of the running session's background work.
func (g *Gateway[S, C, E]) context() context.Context {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.runCtxLocked()
}

func (g *Gateway[S, C, E]) runCtxLocked() context.Context {
	if g.runCtx == nil {
		return context.Background()
	}
	return g.runCtx
}

// The waits between the restore attempts of a failed shard. Variables so tests can
// shorten them.
var (
	restoreRetryFirst = time.Second
	restoreRetryMax   = 30 * time.Second
)

// fail marks owned shard p as failed: its commands are refused UNAVAILABLE with the reason
// instead of waiting, and the failure is logged and counted. A restore that met a record
// it cannot use (an event that does not decode, versions that are not contiguous) is not
// tried again: the shard stays failed until it is assigned again (after a fix, a restart
// of this instance reassigns it). Any other failure (the cluster refused a request, or
// stayed unreachable beyond a wait's bound) is tried again in the background, from 1 s to
// 30 s apart, and the shard serves once a restore succeeds.
func (g *Gateway[S, C, E]) fail(p int32, r *restoring, err error) {
	g.metrics.restores.WithLabelValues("failed").Inc()
	retry := !unusableData(err)
	if retry {
		g.cfg.logger.Error("cannot restore shard: its commands are refused UNAVAILABLE while the restore is tried again",
			"topic", g.topics.events, "partition", p, "err", err)
	} else {
		g.cfg.logger.Error("cannot restore shard: its commands are refused UNAVAILABLE until it is assigned again",
			"topic", g.topics.events, "partition", p, "err", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.restoring[p] != r {
		return
	}
	delete(g.restoring, p)
	f := &failure{err: err, cancel: func() {}}
	if retry {
		var ctx context.Context
		ctx, f.cancel = context.WithCancel(g.runCtxLocked())
		go g.retryRestore(ctx, p, f)
	}
	g.failed[p] = f
	g.gauges()
}

// retryRestore tries the restore of failed shard p again until it succeeds, fails on the
// data, or ctx ends (the shard was revoked, or the session ended). Commands are refused
// meanwhile and nothing is written to p, so a restore reads what the last one would have.
func (g *Gateway[S, C, E]) retryRestore(ctx context.Context, p int32, f *failure) {
	wait := restoreRetryFirst
	for attempt := 2; ; attempt++ {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, restoreRetryMax)
		if !g.acquireRestore(ctx) {
			return
		}
		sh, st, err := g.restore(ctx, p)
		g.releaseRestore()
		if ctx.Err() != nil {
			return
		}
		g.mu.Lock()
		if g.failed[p] != f { // revoked, or assigned again
			g.mu.Unlock()
			return
		}
		if err == nil {
			delete(g.failed, p)
			g.shards[p] = sh
			g.gauges()
			g.mu.Unlock()
			g.restoredOK(st)
			g.cfg.logger.Info("failed shard restored: its commands are served again", "partition", p, "attempts", attempt)
			return
		}
		f.err = err
		g.mu.Unlock()
		g.metrics.restores.WithLabelValues("failed").Inc()
		if unusableData(err) {
			g.cfg.logger.Error("cannot restore shard: its commands are refused UNAVAILABLE until it is assigned again",
				"topic", g.topics.events, "partition", p, "err", err, "attempts", attempt)
			return
		}
		g.cfg.logger.Warn("cannot restore shard yet; retrying", "partition", p, "err", err, "attempts", attempt, "next_in", wait)
	}
}

// gauges updates the shard gauges; g.mu is held.
func (g *Gateway[S, C, E]) gauges() {
	g.metrics.owned.Set(float64(len(g.shards)))
	g.metrics.failed.Set(float64(len(g.failed)))
	pending := 0
	for _, sh := range g.shards {
		pending += sh.sched.len()
	}
	g.metrics.pending.Set(float64(pending))
}

// failure returns why owned shard p failed to restore, or nil.
func (g *Gateway[S, C, E]) failure(p int32) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.failed[p]; f != nil {
		return f.err
	}
	return nil
}

// awaitStableOffset waits until no transaction with offsets for partition p of the commands
// topic is pending: OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT until then.
func (g *Gateway[S, C, E]) awaitStableOffset(ctx context.Context, cl *kgo.Client, p int32) error {
	adm := kadm.NewClient(cl)
	w := brokerwait.NewWaiter(g.cfg.logger.With("partition", p), "the committed offset of the shard before its restore")
	for {
		resp, err := adm.FetchOffsetsForTopics(kadm.RequireStable(ctx), g.cfg.Group, g.topics.commands)
		if err == nil {
			if o, ok := resp.Lookup(g.topics.commands, p); !ok || o.Err == nil {
				w.Resumed()
				return nil
			} else {
				err = o.Err
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, kerr.UnstableOffsetCommit) {
			err = errors.New("a previous owner's transaction holding the shard's offsets is still open")
		}
		w.Failed(err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// awaitRestores waits for the restores of the partitions the fetches hold commands for. A
// restore that failed has marked its shard failed (fail): its commands are refused.
func (g *Gateway[S, C, E]) awaitRestores(ctx context.Context, fetches kgo.Fetches) error {
	var waits []*restoring
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) == 0 {
			return
		}
		g.mu.Lock()
		if r := g.restoring[fp.Partition]; r != nil {
			waits = append(waits, r)
		}
		g.mu.Unlock()
	})
	for _, r := range waits {
		select {
		case <-r.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// drop forgets revoked or lost shards, and stops their restores: another instance owns
// them now.
func (g *Gateway[S, C, E]) drop(m map[string][]int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range m[g.topics.commands] {
		delete(g.shards, p)
		if f := g.failed[p]; f != nil {
			f.cancel()
			delete(g.failed, p)
		}
		if r := g.restoring[p]; r != nil {
			r.cancel()
			delete(g.restoring, p)
		}
	}
	g.gauges()
}

// dropAll forgets every shard and stops every restore.
func (g *Gateway[S, C, E]) dropAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for p, r := range g.restoring {
		r.cancel()
		delete(g.restoring, p)
	}
	clear(g.shards)
	for _, f := range g.failed {
		f.cancel()
	}
	clear(g.failed)
	g.gauges()
}

// RequestSnapshot asks for a snapshot of an aggregate. It is written in the next
// transaction of the aggregate's shard, that is, with the next command batch this instance
// handles for that shard. It returns a *kastor.NotOwnerError when this instance does not
// own the aggregate's shard: ask the gateway that does, or wait for the policy.
func (g *Gateway[S, C, E]) RequestSnapshot(aggregateID string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.partitions == 0 {
		return fmt.Errorf("gateway: %w", kastor.ErrShuttingDown)
	}
	p := producer.PartitionFor([]byte(aggregateID), g.partitions)
	if g.shards[p] == nil {
		return &kastor.NotOwnerError{Topic: g.topics.commands, Partition: p}
	}
	if g.snapReq == nil {
		g.snapReq = map[int32]map[string]bool{}
	}
	if g.snapReq[p] == nil {
		g.snapReq[p] = map[string]bool{}
	}
	g.snapReq[p][aggregateID] = true
	return nil
}

// takeSnapshotRequests makes the on-demand requests of the batch's shards due in their
// transactions.
func (g *Gateway[S, C, E]) takeSnapshotRequests(snaps map[int32]*snapshot.Txn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for p, t := range snaps {
		for id := range g.snapReq[p] {
			t.MarkDue(id)
		}
		delete(g.snapReq, p)
	}
}

// Recoveries returns the shard restores this gateway has done, oldest first.
func (g *Gateway[S, C, E]) Recoveries() []Recovery {
	g.restoredMu.Lock()
	defer g.restoredMu.Unlock()
	return append([]Recovery(nil), g.restored...)
}

// shard returns the restored shard p, or nil when it is not (or no longer) owned.
func (g *Gateway[S, C, E]) shard(p int32) *shard[S] {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.shards[p]
}
