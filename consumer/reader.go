package consumer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/internal/brokerwait"
	"github.com/kastor-dev/kastor/internal/kgolog"
	"github.com/kastor-dev/kastor/wire"
)

// Reader runs a projection: it reads the events topics, applies events to its sink in
// order per partition (so per aggregate), partitions in parallel, and records progress.
//
// Each round polls up to MaxPollRecords records (by default, for a sink that stores its
// offsets, everything the client has buffered), applies every partition's share,
// commits the offsets of what was applied or parked (never beyond), and only then lets
// the group rebalance (kgo.BlockRebalanceOnPoll): a partition changes owner only at a
// point where everything its previous owner applied is committed.
type Reader[E any] struct {
	cfg     *settings[E]
	sink    Sink[E]
	store   OffsetStore // the sink, when it stores its offsets
	tx      TxSink[E]   // the sink, when it writes in the reader's transaction
	topics  []string
	dlq     string
	metrics *metrics
	// poll is the most records a round takes: Config.MaxPollRecords, or, left at zero
	// for a sink that does not need a bound (see Config.MaxPollRecords), -1: everything
	// the client has buffered.
	poll int
	// borrower is set when the sink keeps nothing of a batch (batchBorrower).
	borrower bool

	running atomic.Bool
	fenced  atomic.Bool // a transactional reader's producer was fenced by another instance
	// fetchers are the consuming clients' shares of the partitions: one in a group,
	// Config.Fetchers with AllPartitions.
	fetchers []*fetcher
	// pool holds the slices franz-go decodes records into; a round's records go back
	// to it when the round is over (recycle).
	pool *recordPool
	// sem bounds the partitions applied at once, over every fetcher's rounds
	// (Config.Concurrency).
	sem chan struct{}

	mu      sync.Mutex
	parts   map[TopicPartition]*partState
	hurry   chan struct{} // closed when the group asks to rebalance during a round
	blocked bool          // a rebalance is waiting for the round to end
	client  *kgo.Client

	// crash, set by tests, makes Run return after a round without committing it, as a
	// killed process would.
	crash func() bool
}

// fetcher is one consuming client's share of the reader's partitions. The rounds of a
// fetcher touch only the state of its own partitions (partState.fetcher), so that
// several fetchers' rounds run at once.
type fetcher struct {
	id int
	// stale asks the fetcher's next round to read its partitions' dead letters again
	// (ReloadDeadLetters).
	stale atomic.Bool
}

// partState is what the reader knows of a partition it owns.
type partState struct {
	tp      TopicPartition
	fetcher int // the fetcher reading it (its id)
	// next is the offset after the last record applied, filtered or durably parked (the
	// offset to commit); -1 until known.
	next      int64
	committed int64 // last offset committed by this reader, -1 for none
	end       int64 // last stable offset as of the last fetch, -1 unknown

	// letters are the offsets of records with an unresolved dead letter of this
	// projection version: met again (after a crash, a rewind, or by a fresh in-memory
	// model), they are skipped as parked, never applied nor parked twice. A parked event
	// takes effect only through a replay (projection.Replay).
	letters map[int64]bool
	// held maps, with ParkAggregate, an aggregate ID to the offset of its first parked
	// event: its records after that offset are held.
	held   map[string]int64
	loaded bool        // letters and held were read from the dead-letter topic
	load   *letterLoad // a read of them under way (guarded by Reader.mu)

	failOffset   int64 // the event being retried, and how often it failed
	failAttempts int
	unavailable  int // consecutive failures of the sink or the dead-letter topic

	// The worker's scratch, kept from round to round (one worker at a time per
	// partition): the header parser's interned names, and the items of a window.
	headers wire.Parser
	items   []item
	envs    any // []kastor.Envelope[E], for a batchBorrower sink
}

func newPartState(tp TopicPartition) *partState {
	return &partState{tp: tp, next: -1, committed: -1, end: -1, failOffset: -1}
}

// New validates cfg and returns a reader of c's topics applying to sink; Run starts it.
//
// The reader's topics, consumer group and dead-letter topic are named in c's namespace;
// it logs to c.Logger() (component=kastor.consumer, projection, version) and registers
// its metrics (kastor_consumer_*) on c.Registerer() when that is set. Metadata is read
// through the shared client. The clients the reader owns (its consumers, and its
// dead-letter producer or transactional group member) are made with c.NewClient, the
// reader's options overriding the shared client's: read_committed with control records
// kept, fetches that wait at most 500 ms and take at most 256 KiB per partition
// (kgo.FetchMaxPartitionBytes; decision 26), and in a group a 6 s session with a 1 s
// heartbeat, so a crashed instance's partitions move in seconds rather than franz-go's
// 45 (decision 28). The dead-letter producer waits for all in-sync replicas (acks=all)
// and does not linger.
func New[E any](c *cluster.Cluster, cfg Config[E], sink Sink[E]) (*Reader[E], error) {
	s, err := cfg.withDefaults(c)
	if err != nil {
		return nil, err
	}
	if sink == nil {
		return nil, errors.New("consumer: the sink is nil")
	}
	r := &Reader[E]{cfg: s, sink: sink, topics: s.TopicNames(s.ns), dlq: s.dlqTopic(), parts: map[TopicPartition]*partState{}, pool: &recordPool{}, sem: make(chan struct{}, s.Concurrency)}
	for i := range s.Fetchers {
		r.fetchers = append(r.fetchers, &fetcher{id: i})
	}
	r.store, _ = sink.(OffsetStore)
	r.tx, _ = sink.(TxSink[E])
	_, r.borrower = sink.(batchBorrower)
	r.poll = s.MaxPollRecords
	if cfg.MaxPollRecords == 0 && r.tx == nil && (r.store != nil || s.AllPartitions) {
		// No duplicates to bound (the sink stores its offsets) and rounds end early for a
		// rebalance: take everything buffered. Partitions then come together (a bounded
		// poll takes them one after the other, so they could not be applied in
		// parallel), and the client fetches the next data while this is applied
		// (franz-go refetches only once its buffer is drained).
		r.poll = -1
	}
	switch {
	case s.AllPartitions && r.store == nil:
		return nil, errors.New("consumer: Config.AllPartitions needs a sink that stores its offsets (OffsetStore, as Memory): without a group nothing else would remember them")
	case s.AllPartitions && r.tx != nil:
		return nil, errors.New("consumer: a transactional sink (TxSink) commits offsets to a group; it cannot run with Config.AllPartitions")
	}
	r.metrics, err = newMetrics(c.Registerer(), s.Name, s.Version)
	if err != nil {
		return nil, err
	}
	return r, nil
}

var errCrashed = errors.New("consumer: simulated crash")

// Group returns the consumer group the reader joins ("" with AllPartitions).
func (r *Reader[E]) Group() string { return r.cfg.Group }

// Topics returns the events topics the reader reads.
func (r *Reader[E]) Topics() []string { return append([]string(nil), r.topics...) }

// Run reads and applies events until ctx ends; then it finishes the round under way
// (retries stop, applied events are committed), leaves the group and returns nil. It
// returns an error at once when it cannot start: a topic or the dead-letter topic
// missing, or not authorized. Brokers that are down or restarting at the start are
// waited for, with a log line, until ctx ends. Failures after the start (fetch errors, a
// sink or dead-letter topic down) are logged and retried, never skipped. Run may be
// called once.
func (r *Reader[E]) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("consumer: Run was already called on this reader")
	}
	partitions, err := r.checkTopics(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	switch {
	case r.tx != nil:
		return r.runTransactional(ctx)
	case r.cfg.AllPartitions:
		return r.runAllPartitions(ctx, partitions)
	default:
		return r.runGroup(ctx)
	}
}

// checkTopics verifies the events and dead-letter topics exist, and returns the events
// topics' partition counts. It waits for the cluster until ctx ends (a reader started
// with a broker down starts once the metadata can be read) but not for a missing topic.
func (r *Reader[E]) checkTopics(ctx context.Context) (map[string]int32, error) {
	adm := r.cfg.kc.Admin()
	names := append(r.Topics(), r.dlq)
	var counts map[string]int32
	err := brokerwait.Do(ctx, r.cfg.log, "the metadata of topics "+strings.Join(names, ", "), func(ctx context.Context) error {
		m, err := adm.Metadata(ctx, names...)
		if err != nil {
			return fmt.Errorf("consumer: cannot read the metadata of the topics from %v: %w", r.cfg.kc.Brokers(), err)
		}
		counts = map[string]int32{}
		for _, t := range r.topics {
			if err := topicErr(m, t, "events"); err != nil {
				return err
			}
			counts[t] = int32(len(m.Topics[t].Partitions))
		}
		return topicErr(m, r.dlq, "dead-letter")
	})
	if err != nil {
		return nil, err
	}
	return counts, nil
}

// topicErr says what is wrong with topic in the metadata, if anything. An error the topic
// has while it elects leaders (LEADER_NOT_AVAILABLE) is transient: checkTopics waits.
func topicErr(m kadm.Metadata, topic, what string) error {
	td, ok := m.Topics[topic]
	switch {
	case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
		return missingTopic(topic, what)
	case td.Err != nil:
		return fmt.Errorf("consumer: %s topic %q: %w", what, topic, td.Err)
	}
	return nil
}

// consumerOpts are the options every consuming client of the reader has, after the
// shared client's (cluster.Cluster.NewClient).
func (r *Reader[E]) consumerOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers come through so a partition's position can reach its last
		// stable offset exactly (a rebuild's "caught up" and lag 0 need it); they are
		// skipped, never applied.
		kgo.KeepControlRecords(),
		// A fetch waiting for data on the partitions already owned does not include newly
		// assigned ones: a short wait bounds how long they stay unread after a rebalance
		// (the default is 5s). Idle, it costs a fetch request per broker per wait.
		kgo.FetchMaxWait(500 * time.Millisecond),
		// A quarter of franz-go's 1 MiB per partition. kastor events compress about ten
		// to one, so a catch-up's 1 MiB partition fetch decompresses to some 10 MB and
		// decodes into as much again of records and headers: by the time a round
		// applies them they are out of the CPU caches, and the reader holds hundreds of
		// megabytes of fetched data for the collector to scan. 256 KiB made the
		// in-memory projection's catch-up about a tenth faster (decision 26); a batch
		// larger than that still comes whole (Kafka returns at least one batch).
		kgo.FetchMaxPartitionBytes(256 << 10),
		kgo.WithLogger(kgolog.New(r.cfg.log)),
		// Records are decoded into slices taken from the reader's pool and given back
		// after the round that applied them (Reader.recycle). Decompressed batches are
		// not pooled: a codec may keep slices of Encoded.Data, which must then stay
		// valid.
		kgo.WithPools(r.pool),
	}
}

// groupOpts are the options of the group-consuming clients.
func (r *Reader[E]) groupOpts() []kgo.Opt {
	opts := append(r.consumerOpts(),
		kgo.ConsumerGroup(r.cfg.Group),
		// A crashed instance's partitions move after 6 s, not franz-go's 45 (decision 28).
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(time.Second),
		kgo.ConsumeTopics(r.topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(r.assigned),
		kgo.OnPartitionsRevoked(r.dropped),
		kgo.OnPartitionsLost(r.dropped),
		kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) { r.hurryUp() }),
		kgo.AdjustFetchOffsetsFn(r.adjustOffsets),
	)
	return opts
}

func (r *Reader[E]) runGroup(ctx context.Context) error {
	cl, err := r.cfg.kc.NewClient(r.groupOpts()...)
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	dlq, err := r.dlqProducer()
	if err != nil {
		cl.Close()
		return err
	}
	defer dlq.Close()
	r.setClient(cl)
	r.cfg.log.Info("reader started", "group", r.cfg.Group, "topics", r.topics)
	produce := func(ctx context.Context, rec *kgo.Record) error { return dlq.ProduceSync(ctx, rec).FirstErr() }
	for {
		fetches := cl.PollRecords(ctx, r.poll)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			break
		}
		rewinds := r.round(ctx, r.fetchers[0], fetches, produce)
		if r.crash != nil && r.crash() {
			cl.CloseAllowingRebalance()
			return errCrashed
		}
		r.commit(ctx, cl)
		cl.SetOffsets(rewinds)
		r.allowRebalance(cl)
		r.recycle(fetches)
	}
	r.allowRebalance(cl)
	cl.Close() // leaves the group: everything applied is committed already
	r.cfg.log.Info("reader stopped", "group", r.cfg.Group)
	return nil
}

// runAllPartitions reads every partition without a group, from the sink's offsets.
// The partitions are dealt in turn to the fetchers, each a client of its own with its
// own loop of rounds.
func (r *Reader[E]) runAllPartitions(ctx context.Context, counts map[string]int32) error {
	var total int
	for _, n := range counts {
		total += int(n)
	}
	nf := max(min(len(r.fetchers), total), 1)
	starts := make([]map[string]map[int32]kgo.Offset, nf)
	i := 0
	for _, t := range r.topics {
		// Nothing else to do until the sink answers: wait for it as long as Run runs.
		stored, err := r.storedOffsets(ctx, t, 0)
		if err != nil {
			return fmt.Errorf("consumer: stored offsets of %s: %w", t, err)
		}
		r.mu.Lock()
		for p := int32(0); p < counts[t]; p++ {
			tp := TopicPartition{t, p}
			st := newPartState(tp)
			st.fetcher = i % nf
			i++
			at := kgo.NewOffset().AtStart()
			if o, ok := stored[p]; ok {
				at = kgo.NewOffset().At(o)
				st.next = o
			}
			if starts[st.fetcher] == nil {
				starts[st.fetcher] = map[string]map[int32]kgo.Offset{}
			}
			if starts[st.fetcher][t] == nil {
				starts[st.fetcher][t] = map[int32]kgo.Offset{}
			}
			starts[st.fetcher][t][p] = at
			r.parts[tp] = st
		}
		r.mu.Unlock()
	}
	r.mu.Lock()
	sts := make([]*partState, 0, len(r.parts))
	for _, st := range r.parts {
		sts = append(sts, st)
	}
	r.preloadLetters(ctx, sts)
	r.mu.Unlock()
	clients := make([]*kgo.Client, 0, nf)
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()
	for _, start := range starts {
		cl, err := r.cfg.kc.NewClient(append(r.consumerOpts(), kgo.ConsumePartitions(start))...)
		if err != nil {
			return fmt.Errorf("consumer: %w", err)
		}
		clients = append(clients, cl)
	}
	dlq, err := r.dlqProducer()
	if err != nil {
		return err
	}
	defer dlq.Close()
	r.setClient(clients[0])
	r.cfg.log.Info("reader started on all partitions", "topics", r.topics, "fetchers", nf)
	produce := func(ctx context.Context, rec *kgo.Record) error { return dlq.ProduceSync(ctx, rec).FirstErr() }
	var wg sync.WaitGroup
	for i, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := r.fetchers[i]
			for {
				fetches := cl.PollRecords(ctx, r.poll)
				if ctx.Err() != nil || fetches.IsClientClosed() {
					return
				}
				cl.SetOffsets(r.round(ctx, f, fetches, produce))
				r.recycle(fetches)
			}
		}()
	}
	wg.Wait()
	r.cfg.log.Info("reader stopped")
	return nil
}

// dlqProducer is the idempotent producer of dead letters: acks=all, so a parked record
// is durable before the reader moves past the original.
func (r *Reader[E]) dlqProducer() (*kgo.Client, error) {
	cl, err := r.cfg.kc.NewClient(
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.WithLogger(kgolog.New(r.cfg.log)),
	)
	if err != nil {
		return nil, fmt.Errorf("consumer: dead-letter producer: %w", err)
	}
	return cl, nil
}

func (r *Reader[E]) setClient(cl *kgo.Client) {
	r.mu.Lock()
	r.client = cl
	r.mu.Unlock()
}

// assigned starts fresh state for new partitions, and the read of their dead letters.
func (r *Reader[E]) assigned(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var fresh []*partState
	for t, ps := range m {
		for _, p := range ps {
			tp := TopicPartition{t, p}
			if r.parts[tp] == nil {
				r.parts[tp] = newPartState(tp)
				fresh = append(fresh, r.parts[tp])
			}
		}
	}
	r.preloadLetters(ctx, fresh)
	r.cfg.log.Info("partitions assigned", "partitions", m)
}

// dropped forgets revoked or lost partitions: their applied offsets are committed (the
// round ended before the rebalance could run), and the new owner continues.
func (r *Reader[E]) dropped(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for t, ps := range m {
		for _, p := range ps {
			delete(r.parts, TopicPartition{t, p})
			r.metrics.lag.DeleteLabelValues(t, fmt.Sprint(p))
		}
	}
	r.cfg.log.Info("partitions revoked", "partitions", m)
}

// adjustOffsets starts assigned partitions where the sink's stored offsets say, for a
// sink that stores them, and records where each partition starts.
func (r *Reader[E]) adjustOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	if r.store != nil {
		for t, ps := range offsets {
			// Inside the group's sync: wait a while for a sink that is down rather than
			// leave and rejoin at once, which would rebalance every instance again and
			// again; past the bound, rejoin (and try again then).
			stored, err := r.storedOffsets(ctx, t, storedOffsetsPatience)
			if err != nil {
				r.cfg.log.Error("reading the sink's stored offsets; rejoining", "topic", t, "err", err)
				return nil, fmt.Errorf("consumer: stored offsets of %s: %w", t, err)
			}
			for p := range ps {
				if o, ok := stored[p]; ok {
					ps[p] = kgo.NewOffset().At(o).WithEpoch(-1)
				} else {
					ps[p] = kgo.NewOffset().AtStart()
				}
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for t, ps := range offsets {
		for p, o := range ps {
			tp := TopicPartition{t, p}
			st := r.parts[tp]
			if st == nil {
				st = newPartState(tp)
				r.parts[tp] = st
			}
			if eo := o.EpochOffset(); eo.Offset >= 0 {
				st.next = eo.Offset
				if r.store == nil {
					st.committed = eo.Offset
				}
			}
		}
	}
	return offsets, nil
}

// storedOffsetsPatience bounds how long an assignment waits for a sink that is down
// before the reader rejoins the group; it stays well under franz-go's default rebalance
// timeout (60 s), which the other members wait on.
const storedOffsetsPatience = 20 * time.Second

// storedOffsets reads the sink's offsets of topic, retrying errors matching
// ErrUnavailable with the reader's backoff for up to patience (0: until ctx ends).
func (r *Reader[E]) storedOffsets(ctx context.Context, topic string, patience time.Duration) (map[int32]int64, error) {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		stored, err := r.store.StoredOffsets(ctx, topic)
		if err == nil || !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			return stored, err
		}
		d := r.cfg.Retry.backoff(attempt)
		if patience > 0 && time.Since(start)+d > patience {
			return nil, err
		}
		r.cfg.log.Warn("the sink cannot give its stored offsets; waiting", "topic", topic, "attempt", attempt, "retry_in", d, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(d):
		}
	}
}

// hurryUp is called when a rebalance waits for the round: retries and backoffs stop,
// and the partitions under retry are read again from their failed event next round.
func (r *Reader[E]) hurryUp() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.blocked {
		r.blocked = true
		if r.hurry != nil {
			close(r.hurry)
		}
	}
}

func (r *Reader[E]) allowRebalance(cl *kgo.Client) {
	r.mu.Lock()
	r.blocked = false
	r.hurry = nil
	r.mu.Unlock()
	cl.AllowRebalance()
}

// newRound returns the channel closed when a rebalance asks the round to end (nil,
// never closed, without a group: the rounds of several fetchers run at once there).
func (r *Reader[E]) newRound() <-chan struct{} {
	if r.cfg.AllPartitions {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hurry = make(chan struct{})
	if r.blocked {
		close(r.hurry)
	}
	return r.hurry
}

// round applies one poll of fetcher f's client, partitions in parallel, and returns
// the offsets to rewind to for partitions that stopped before their end.
func (r *Reader[E]) round(ctx context.Context, f *fetcher, fetches kgo.Fetches, produce produceFunc) map[string]map[int32]kgo.EpochOffset {
	fetches.EachError(func(t string, p int32, err error) {
		if !errors.Is(err, context.Canceled) {
			r.cfg.log.Warn("fetch error; retrying", "topic", t, "partition", p, "err", err)
		}
	})
	hurry := r.newRound()
	r.forgetStaleLetters(f)
	type job struct {
		st   *partState
		recs []*kgo.Record
	}
	var jobs []job
	var load []*partState
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		tp := TopicPartition{fp.Topic, fp.Partition}
		r.mu.Lock()
		st := r.parts[tp]
		if st == nil { // a fetch racing an assignment callback
			st = newPartState(tp)
			st.fetcher = f.id
			r.parts[tp] = st
		}
		if fp.LastStableOffset >= 0 {
			st.end = fp.LastStableOffset
		}
		r.mu.Unlock()
		if len(fp.Records) == 0 {
			return
		}
		if !st.loaded {
			load = append(load, st)
		}
		jobs = append(jobs, job{st, fp.Records})
	})
	if len(jobs) == 0 {
		return nil
	}
	work := context.WithoutCancel(ctx)
	rewinds := map[string]map[int32]kgo.EpochOffset{}
	if len(load) > 0 {
		r.awaitPreloads(ctx, load)
		// The partitions not loaded yet are read together with every other owned one
		// that is not (and has no read under way): partitions whose records come in
		// later rounds then cost no read of the dead-letter topic each.
		load = load[:0]
		r.mu.Lock()
		for _, st := range r.parts {
			if st.fetcher == f.id && !st.loaded && st.load == nil {
				load = append(load, st)
			}
		}
		r.mu.Unlock()
		var err error
		if len(load) > 0 && ctx.Err() == nil {
			if err = r.loadHeld(ctx, load); err != nil {
				r.cfg.log.Error("reading the dead-letter topic for parked aggregates; retrying", "err", err)
				r.metrics.failures.WithLabelValues("dlq").Inc()
			}
		}
		// Without the dead letters, events of parked aggregates could overtake them and
		// parked events be applied: apply nothing of a partition not loaded this round.
		kept := jobs[:0]
		for _, j := range jobs {
			if !j.st.loaded {
				addRewind(rewinds, j.st.tp, j.recs[0].Offset)
				continue
			}
			kept = append(kept, j)
		}
		jobs = kept
		if err != nil {
			sleep(ctx, hurry, r.cfg.Retry.MaxBackoff)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, j := range jobs {
		r.sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-r.sem; wg.Done() }()
			w := &worker[E]{r: r, st: j.st, stop: ctx, hurry: hurry, work: work, produce: produce, tx: r.tx != nil}
			if at, ok := w.run(j.recs); !ok {
				mu.Lock()
				addRewind(rewinds, j.st.tp, at)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.mu.Lock()
	for _, j := range jobs {
		if st := j.st; st.end >= 0 && st.next >= 0 {
			r.metrics.lag.WithLabelValues(st.tp.Topic, fmt.Sprint(st.tp.Partition)).Set(float64(max(st.end-st.next, 0)))
		}
	}
	r.mu.Unlock()
	return rewinds
}

// recycle gives a round's records back to the pool once nothing uses them, and trims
// the pool after a small round: the reader is caught up.
func (r *Reader[E]) recycle(fetches kgo.Fetches) {
	recycle(fetches)
	if fetches.NumRecords() < poolIdleRecords {
		r.pool.trim(poolIdleRecords)
	}
}

func addRewind(m map[string]map[int32]kgo.EpochOffset, tp TopicPartition, at int64) {
	if m[tp.Topic] == nil {
		m[tp.Topic] = map[int32]kgo.EpochOffset{}
	}
	m[tp.Topic][tp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: at}
}

// commit commits the offsets of what the round applied or parked.
func (r *Reader[E]) commit(ctx context.Context, cl *kgo.Client) {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	r.mu.Lock()
	for tp, st := range r.parts {
		if st.next >= 0 && st.next != st.committed {
			if offsets[tp.Topic] == nil {
				offsets[tp.Topic] = map[int32]kgo.EpochOffset{}
			}
			offsets[tp.Topic][tp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: st.next}
		}
	}
	r.mu.Unlock()
	if len(offsets) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var commitErr error
	cl.CommitOffsetsSync(cctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			commitErr = err
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if e := kerr.ErrorForCode(p.ErrorCode); e != nil {
					if commitErr == nil {
						commitErr = fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, e)
					}
					continue
				}
				if st := r.parts[TopicPartition{t.Topic, p.Partition}]; st != nil {
					st.committed = offsets[t.Topic][p.Partition].Offset
				}
			}
		}
	})
	if commitErr != nil {
		// The events stay applied; a new owner re-applies them (at-least-once).
		r.cfg.log.Warn("committing offsets failed; the next owner of these partitions will see their events again", "err", commitErr)
	}
}

// PartitionProgress is a reader's position in one partition.
type PartitionProgress struct {
	Topic     string
	Partition int32
	// Applied is the offset after the last record applied, filtered or parked: where the
	// projection stands. -1 when not known yet.
	Applied int64
	// Committed is the offset the reader last committed to the group, -1 for none.
	Committed int64
	// End is the partition's last stable offset (the end read_committed readers see).
	End int64
	// Lag is End - Applied, the records still to read; -1 when Applied is not known.
	Lag int64
}

// Progress is a snapshot of a reader's positions in the partitions it owns.
type Progress struct {
	Group      string
	Partitions []PartitionProgress
}

// CaughtUp reports whether every partition has reached the end offsets given (for
// example, the end offsets captured when a rebuild started).
func (p Progress) CaughtUp(ends map[TopicPartition]int64) bool {
	at := map[TopicPartition]int64{}
	for _, pp := range p.Partitions {
		at[TopicPartition{pp.Topic, pp.Partition}] = pp.Applied
	}
	for tp, end := range ends {
		if a, ok := at[tp]; !ok || a < end {
			return false
		}
	}
	return true
}

// Progress returns the reader's positions in the partitions it owns, with their end
// offsets asked of the brokers now.
func (r *Reader[E]) Progress(ctx context.Context) (Progress, error) {
	r.mu.Lock()
	cl := r.client
	out := Progress{Group: r.cfg.Group}
	for _, st := range r.parts {
		out.Partitions = append(out.Partitions, PartitionProgress{
			Topic: st.tp.Topic, Partition: st.tp.Partition,
			Applied: st.next, Committed: st.committed, End: st.end, Lag: -1,
		})
	}
	r.mu.Unlock()
	sort.Slice(out.Partitions, func(i, j int) bool {
		a, b := out.Partitions[i], out.Partitions[j]
		return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
	})
	if cl == nil {
		return out, nil
	}
	if err := fillEnds(ctx, r.cfg.kc.Admin(), r.topics, out.Partitions); err != nil {
		return out, err
	}
	return out, nil
}

// fillEnds sets End and Lag of ps from the brokers' offsets. A partition with no
// position yet starts at its log start, so its lag counts from there.
func fillEnds(ctx context.Context, adm *kadm.Client, topics []string, ps []PartitionProgress) error {
	ends, err := adm.ListCommittedOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("consumer: end offsets: %w", err)
	}
	var starts kadm.ListedOffsets
	for i := range ps {
		pp := &ps[i]
		if o, ok := ends.Lookup(pp.Topic, pp.Partition); ok {
			pp.End = o.Offset
		}
		from := pp.Applied
		if from < 0 {
			if starts == nil {
				if starts, err = adm.ListStartOffsets(ctx, topics...); err == nil {
					err = starts.Error()
				}
				if err != nil {
					return fmt.Errorf("consumer: start offsets: %w", err)
				}
			}
			if o, ok := starts.Lookup(pp.Topic, pp.Partition); ok {
				from = o.Offset
			}
		}
		if from >= 0 && pp.End >= 0 {
			pp.Lag = max(pp.End-from, 0)
		}
	}
	return nil
}

// GroupProgress is the progress of a projection's consumer group as the brokers know
// it, whether or not a reader runs (for tools: `kastor projection status`). Applied and
// Committed are the group's committed offsets (-1 for none: the projection starts at
// the log start, and Lag counts from there). A sink that stores its own offsets may be
// ahead of the group: the reader commits to the group after the sink.
func GroupProgress(ctx context.Context, adm *kadm.Client, group string, topics ...string) (Progress, error) {
	out := Progress{Group: group}
	md, err := adm.Metadata(ctx, topics...)
	if err != nil {
		return out, fmt.Errorf("consumer: metadata: %w", err)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = committed.Error()
	}
	if errors.Is(err, kerr.GroupIDNotFound) { // a group that never committed
		committed, err = nil, nil
	}
	if err != nil {
		return out, fmt.Errorf("consumer: committed offsets of %s: %w", group, err)
	}
	for _, t := range topics {
		td, ok := md.Topics[t]
		if !ok || td.Err != nil {
			return out, missingTopic(t, "events")
		}
		for p := int32(0); p < int32(len(td.Partitions)); p++ {
			pp := PartitionProgress{Topic: t, Partition: p, Applied: -1, Committed: -1, End: -1, Lag: -1}
			if o, ok := committed.Lookup(t, p); ok && o.At >= 0 {
				pp.Applied, pp.Committed = o.At, o.At
			}
			out.Partitions = append(out.Partitions, pp)
		}
	}
	return out, fillEnds(ctx, adm, topics, out.Partitions)
}
