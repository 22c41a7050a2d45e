package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/internal/brokerwait"
	"github.com/kastor-dev/kastor/internal/tracing"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/snapshot"
	"github.com/kastor-dev/kastor/wire"
)

// batch is the work of one transaction. Nothing in it touches the shards until the
// transaction has committed: an aborted batch is simply dropped, and the session rewinds
// to the last committed command offsets.
type batch[S, E any] struct {
	shards  map[int32]*shard[S]
	pending map[int32]map[string]*entry[S]
	events  []stagedEvent[E]
	// snaps are the snapshot bookkeeping of the transaction, per shard: the snapshots and
	// checkpoints it writes.
	snaps     map[int32]*snapshot.Txn
	snapshots int
	status    map[Status]int
	started   []time.Time // append times of the commands, for latency
	// staged records wait for the end of the batch; see send.
	staged []*kgo.Record
	// sched are the batch's changes to its shards' scheduled commands.
	sched map[int32]*schedDelta
	// spans of the commands handled, ended with the transaction (trace.go).
	spans []handledSpan

	mu         sync.Mutex
	produceErr error
	wg         sync.WaitGroup
}

type stagedEvent[E any] struct {
	rec *kgo.Record
	env kastor.Envelope[E]
}

// entry returns the batch's working copy of an aggregate, decoding a lazily restored
// state first.
func (g *Gateway[S, C, E]) entry(ctx context.Context, b *batch[S, E], sh *shard[S], id string) (*entry[S], error) {
	pm := b.pending[sh.partition]
	if pm == nil {
		pm = map[string]*entry[S]{}
		b.pending[sh.partition] = pm
	}
	if e := pm[id]; e != nil {
		return e, nil
	}
	var e *entry[S]
	if committed := sh.aggs[id]; committed != nil {
		if err := g.materialize(ctx, sh.partition, id, committed); err != nil {
			return nil, err
		}
		e = committed.clone()
	} else {
		e = &entry[S]{state: g.cfg.Aggregate.Initial(id), eventOffset: -1}
	}
	pm[id] = e
	b.snaps[sh.partition].Hold(id)
	return e, nil
}

// errLostEndResponse is the error of an injected lost EndTxn response.
var errLostEndResponse = errors.New("injected fault: the EndTxn response was lost")

// stage queues a record of the transaction; send produces it.
func (b *batch[S, E]) stage(r *kgo.Record) { b.staged = append(b.staged, r) }

// send produces the staged records. Records are held back until the batch is handled
// because the first produce of a transaction makes the partition leader register the
// partition with the coordinator (KIP-890), and while the previous transaction's markers
// are still being written the coordinator answers CONCURRENT_TRANSACTIONS and the leader
// retries only after add.partitions.to.txn.retry.backoff.ms (20 ms by default). Producing
// at the end of the commit interval gives the markers that interval to land; producing
// each record as it is handled hit the backoff in most transactions (decision 22).
func (b *batch[S, E]) send(sess *kgo.GroupTransactSession, ctx context.Context) {
	for _, r := range b.staged {
		b.wg.Add(1)
		sess.Produce(ctx, r, func(_ *kgo.Record, err error) {
			defer b.wg.Done()
			if err != nil {
				b.mu.Lock()
				if b.produceErr == nil {
					b.produceErr = err
				}
				b.mu.Unlock()
			}
		})
	}
	b.staged = b.staged[:0]
}

// processBatch handles the commands of one poll in one transaction.
func (g *Gateway[S, C, E]) processBatch(ctx context.Context, sess *kgo.GroupTransactSession, recs []*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	cfg := g.cfg
	// The transaction is finished even when ctx ends meanwhile: graceful shutdown commits
	// what was handled rather than leaving it to time out.
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.TransactionTimeout)
	defer cancel()
	g.txnMu.Lock()
	defer g.txnMu.Unlock()
	if err := sess.Begin(); err != nil {
		if brokerwait.Transient(brokerwait.AfterContact(err)) {
			// The session's producer could not get its producer ID while a broker was
			// going away (franz-go makes that fatal for the client): start over with a
			// new session, as after a transaction of unknown outcome.
			cfg.logger.Warn("the session's transactional producer failed: dropping every shard, then rejoining and restoring from Kafka", "err", err)
			g.dropAll()
			return &outcomeUnknownError{err: fmt.Errorf("begin transaction: %w", err)}
		}
		return fmt.Errorf("gateway: begin transaction: %w", err)
	}
	loseEnd := g.lostEndResponses.Load() > 0 && g.lostEndResponses.Add(-1) >= 0
	b := &batch[S, E]{
		shards:  map[int32]*shard[S]{},
		pending: map[int32]map[string]*entry[S]{},
		snaps:   map[int32]*snapshot.Txn{},
		status:  map[Status]int{},
	}
	spanErr := errors.New("the transaction did not commit")
	defer func() { b.endSpans(spanErr) }()
	abort := false
	handled := 0
	handleAll := func(recs []*kgo.Record) {
		for _, r := range recs {
			sh := b.shards[r.Partition]
			if sh == nil {
				sh = g.shard(r.Partition)
				if err := g.failure(r.Partition); sh == nil && err != nil {
					g.refuseUnavailable(b, r, err)
					handled++
					continue
				}
				if sh == nil {
					// Revoked, or assigned during the batch and not restored yet: abort, and
					// the next batch starts from the committed offsets.
					abort = true
					return
				}
				b.shards[r.Partition] = sh
				b.snaps[r.Partition] = sh.snap.Begin()
			}
			g.handle(tctx, b, sh, r)
			handled++
		}
	}
	handleAll(recs)
	if cfg.CommitInterval > 0 {
		deadline := time.Now().Add(cfg.CommitInterval)
		for !abort && handled < cfg.MaxBatch && ctx.Err() == nil {
			wait := time.Until(deadline)
			if wait <= 0 {
				break
			}
			pctx, pcancel := context.WithTimeout(ctx, wait)
			more := sess.PollRecords(pctx, cfg.MaxBatch-handled)
			pcancel()
			if more.IsClientClosed() {
				break
			}
			handleAll(more.Records())
		}
	}
	if !abort {
		g.takeSnapshotRequests(b.snaps)
	}
	if !abort && snapshotsDue(b) {
		// Snapshots name the offset of the last event they include: wait for the events'
		// offsets, still inside the transaction.
		b.send(sess, tctx)
		if err := sess.Client().Flush(tctx); err != nil {
			abort = true
		}
		b.wg.Wait()
		if !abort && b.produceErr == nil {
			g.stageSnapshots(b)
		}
	}
	if !abort {
		b.send(sess, tctx)
	}
	b.wg.Wait()
	if b.produceErr != nil {
		cfg.logger.Warn("aborting transaction: a record was not written", "err", b.produceErr)
		abort = true
	}
	if d := g.holdBeforeEnd.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	committed, err := sess.End(tctx, kgo.TransactionEndTry(!abort))
	if err == nil && committed && loseEnd {
		err = errLostEndResponse
	}
	if err != nil {
		if errors.Is(err, kgo.ErrClientClosed) {
			g.metrics.txns.WithLabelValues("aborted").Inc()
			return nil
		}
		// The commit may have happened: an EndTxn cut short by the deadline, or a lost
		// response, leaves its outcome unknown, and retrying End does not tell (franz-go
		// answers a second End without asking the broker). Neither the shards in memory
		// nor the session's command offsets can be trusted now: carrying on would handle
		// the batch's commands again over states that may lack their committed events,
		// and write their versions twice. Kafka knows the outcome, so start over from it.
		g.metrics.txns.WithLabelValues("unknown").Inc()
		// Logged now, at the deadline: closing the session can take until the group's
		// rebalance ends.
		cfg.logger.Warn("the outcome of a transaction is unknown: dropping every shard, then rejoining and restoring from Kafka",
			"err", err, "commands", handled)
		g.dropAll() // before the session closes: no revoke checkpoint from these states
		return &outcomeUnknownError{err: err}
	}
	if !committed {
		g.metrics.txns.WithLabelValues("aborted").Inc()
		cfg.logger.Debug("transaction aborted; its commands are read again", "commands", handled, "asked_abort", abort)
		return nil
	}
	g.metrics.txns.WithLabelValues("committed").Inc()
	spanErr = nil
	g.apply(b)
	g.metrics.batch.Observe(float64(handled))
	g.metrics.snapshots.Add(float64(b.snapshots))
	for s, n := range b.status {
		g.metrics.commands.WithLabelValues(string(s)).Add(float64(n))
	}
	now := time.Now()
	for _, t := range b.started {
		g.metrics.latency.Observe(now.Sub(t).Seconds())
	}
	if len(b.events) > 0 {
		g.metrics.events.Add(float64(len(b.events)))
		if len(cfg.Listeners) > 0 {
			envs := make([]kastor.Envelope[E], len(b.events))
			for i, se := range b.events {
				envs[i] = se.env
				envs[i].Offset = se.rec.Offset
				envs[i].Timestamp = se.rec.Timestamp
			}
			for _, l := range cfg.Listeners {
				l(ctx, envs)
			}
		}
	}
	return nil
}

// handle executes one command, answers one outcome question, or does one operation on a
// scheduled command, and stages its records and reply.
func (g *Gateway[S, C, E]) handle(ctx context.Context, b *batch[S, E], sh *shard[S], r *kgo.Record) {
	id := string(r.Key)
	b.started = append(b.started, r.Timestamp)
	reply := Reply{AggregateID: id, From: 1, To: 0}
	ch, herr := wire.ParseCommand(r.Headers)
	sp := g.commandSpan(ctx, r, &ch)
	reply.CommandID, reply.AttemptID, reply.Trace = ch.CommandID, ch.AttemptID, sp.TraceContext()
	dest, derr := g.replyDest(ctx, &ch)
	defer func() {
		g.stageReply(b, dest, &reply)
		b.spans = append(b.spans, handledSpan{sp, reply.Status})
	}()
	fail := func(s Status, err error) { reply.Status, reply.Message = s, err.Error() }

	if derr != nil {
		// Not executed: its outcome could not reach the caller, which would wait for it.
		g.cfg.logger.Warn("command refused: its reply cannot be delivered", "command_id", ch.CommandID,
			"partition", r.Partition, "offset", r.Offset, "err", derr)
		fail(StatusUndecodable, derr)
		return
	}
	if herr != nil {
		fail(StatusUndecodable, herr)
		return
	}
	if ch.CommandID == "" {
		fail(StatusUndecodable, errors.New("the command has no kastor.command.id header"))
		return
	}
	if len(id) == 0 || id[0] == 0 {
		fail(StatusUndecodable, fmt.Errorf("aggregate ID %q is empty or starts with NUL", id))
		return
	}
	if !ch.Deadline.IsZero() && time.Now().After(ch.Deadline) {
		fail(StatusExpired, fmt.Errorf("read %v after its deadline; not executed", time.Since(ch.Deadline).Round(time.Millisecond)))
		return
	}
	switch ch.Query {
	case wire.QueryOutcome:
		g.answerOutcome(ctx, b, sh, id, &reply)
		return
	case wire.QuerySchedule:
		g.scheduleAdd(ctx, b, sh, r, &ch, &reply)
		return
	case wire.QueryCancel:
		g.scheduleCancel(ctx, b, sh, r, &ch, &reply)
		return
	case wire.QueryFire:
		g.scheduleFire(ctx, b, sh, r, &ch, &reply)
		return
	}
	g.execute(ctx, b, sh, &ch, r.Value, *r, &reply)
}

// execute runs one command (headers ch, payload value, read from src) through the
// command path: dedupe, interceptors, Decide, Evolve, invariants; it stages its events
// and fills reply. It returns the aggregate's working copy, nil when the command failed
// before it was needed (an undecodable payload, a state that cannot be rebuilt).
func (g *Gateway[S, C, E]) execute(ctx context.Context, b *batch[S, E], sh *shard[S], ch *wire.Command, value []byte, src kgo.Record, reply *Reply) *entry[S] {
	cfg := g.cfg
	id := string(src.Key)
	r := &src
	fail := func(s Status, err error) { reply.Status, reply.Message = s, err.Error() }
	payload, err := cfg.Commands.Decode(kastor.Encoded{Type: ch.Type, Fingerprint: ch.Fingerprint, Data: value})
	if err != nil {
		fail(StatusUndecodable, &kastor.UndecodableError{What: "command", Type: ch.Type, Fingerprint: ch.Fingerprint, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err})
		return nil
	}
	e, err := g.entry(ctx, b, sh, id)
	if err != nil {
		// The aggregate cannot be rebuilt: its stored events do not decode.
		fail(StatusRejected, fmt.Errorf("kastor: cannot rebuild the aggregate's state: %w", err))
		return nil
	}
	if e.outcome(ch.CommandID, reply) {
		reply.Repeat = true
		return e
	}
	// A verdict of the domain (an interceptor's, Decide's, the version check's or an
	// invariant's) is the command ID's outcome like an accepted command's: it is
	// remembered, and written with the aggregate's snapshot in this transaction, since a
	// refusal has no event to find it by (see decision 27).
	refuse := func(s Status, err error) {
		fail(s, err)
		e.refuse(snapshot.Refusal{ID: ch.CommandID, Status: string(s), Message: reply.Message, Expected: reply.Expected, Actual: reply.Actual}, cfg.DedupeWindow)
		b.snaps[sh.partition].MarkDue(id)
	}
	correlation := ch.CorrelationID
	if correlation == "" {
		correlation = ch.CommandID
	}
	cmd := kastor.Command[C]{AggregateID: id, ID: ch.CommandID, ExpectedVersion: ch.ExpectedVersion, CorrelationID: correlation, Payload: payload}
	for _, ic := range cfg.Interceptors {
		if err := ic(ctx, cmd); err != nil {
			refuse(StatusRejected, err)
			return e
		}
	}
	out, err := cfg.Aggregate.Execute(e.state, e.version, cmd)
	if err != nil {
		var vc *kastor.VersionConflictError
		var re *kastor.RejectedError
		var ie *kastor.InvariantError
		switch {
		case errors.As(err, &vc):
			reply.Expected, reply.Actual = vc.Expected, vc.Actual
			refuse(StatusConflict, err)
		case errors.As(err, &re):
			refuse(StatusRejected, re.Err)
		case errors.As(err, &ie):
			refuse(StatusInvariant, ie.Err)
		default:
			refuse(StatusRejected, err)
		}
		return e
	}
	// Encode every event before staging any, so a codec failure writes nothing. Such a
	// failure is the program's, not a verdict on the command: it is not remembered.
	encoded := make([]kastor.Encoded, len(out.Events))
	for i, ev := range out.Events {
		if encoded[i], err = cfg.Events.Encode(ev); err != nil {
			fail(StatusRejected, fmt.Errorf("kastor: cannot encode event %d of the command: %w", i+1, err))
			return e
		}
		if encoded[i].Data == nil {
			// A record with a null value is a tombstone to every Kafka tool: a zero-field
			// event is written as an empty value instead.
			encoded[i].Data = []byte{}
		}
	}
	before := e.version
	recs := make([]*kgo.Record, len(out.Events))
	for i, ev := range out.Events {
		md := kastor.Metadata{
			AggregateType: cfg.Aggregate.Type, AggregateID: id, Version: before + int64(i) + 1,
			Type: encoded[i].Type, Fingerprint: encoded[i].Fingerprint,
			CommandID: ch.CommandID, CorrelationID: correlation, CausationID: ch.CommandID,
			Trace: reply.Trace,
		}
		if t, ok := any(ev).(kastor.Tagged); ok {
			md.Tags = t.Tags()
		}
		rec := &kgo.Record{Topic: g.topics.events, Partition: sh.partition, Key: r.Key, Value: encoded[i].Data, Headers: wire.Headers(&md)}
		b.stage(rec)
		b.events = append(b.events, stagedEvent[E]{rec: rec, env: kastor.Envelope[E]{Metadata: md, Event: ev, Topic: g.topics.events, Partition: sh.partition}})
		recs[i] = rec
	}
	e.state, e.version = out.State, out.Version
	e.remember(snapshot.Command{ID: ch.CommandID, From: before + 1, To: out.Version}, cfg.DedupeWindow)
	b.snaps[sh.partition].Wrote(id, before, out.Version, recs)
	reply.Status, reply.From, reply.To = StatusOK, before+1, out.Version
	return e
}

// refuseUnavailable answers a command of a shard that failed to restore: not executed,
// nothing remembered, the reason in the reply. Its offset commits with the batch.
func (g *Gateway[S, C, E]) refuseUnavailable(b *batch[S, E], r *kgo.Record, why error) {
	ch, _ := wire.ParseCommand(r.Headers)
	reply := Reply{CommandID: ch.CommandID, AttemptID: ch.AttemptID, AggregateID: string(r.Key), Status: StatusUnavailable, From: 1, To: 0, Message: why.Error(),
		Trace: tracing.Fallback(ch.Trace).TraceContext()}
	dest, _ := g.replyDest(context.Background(), &ch)
	g.stageReply(b, dest, &reply)
}

// replyDest returns where the reply to command ch goes: its caller's key in the aggregate
// type's replies topic, or in the topic it names (wire.HeaderReplyTopic). When that topic
// cannot take replies, the error says why and the destination is none.
func (g *Gateway[S, C, E]) replyDest(ctx context.Context, ch *wire.Command) (replyDest, error) {
	dest := replyDest{key: ch.ReplyTo, topic: g.topics.replies, partitions: g.partitions}
	if ch.ReplyTopic == "" || ch.ReplyTo == "" {
		return dest, nil
	}
	n, err := g.replyPartitions(ctx, ch.ReplyTopic)
	if err != nil {
		return replyDest{}, err
	}
	dest.topic, dest.partitions = ch.ReplyTopic, n
	return dest, nil
}

// replyDest is where a reply goes: the caller's key, in the aggregate type's replies
// topic or the topic the command named (wire.HeaderReplyTopic).
type replyDest struct {
	key        string // "": no reply
	topic      string
	partitions int32
}

// stageReply counts a reply's status and stages its record for dest (none for a
// submitted command).
func (g *Gateway[S, C, E]) stageReply(b *batch[S, E], dest replyDest, reply *Reply) {
	if reply.Status == "" {
		return // a fire record that fired nothing: no outcome, no reply
	}
	b.status[reply.Status]++
	if dest.key == "" {
		return
	}
	v, err := reply.Encode()
	if err != nil {
		g.cfg.logger.Error("encoding a reply", "err", err)
		return
	}
	b.stage(&kgo.Record{
		Topic: dest.topic, Partition: producer.PartitionFor([]byte(dest.key), dest.partitions),
		Key: []byte(dest.key), Value: v, Headers: reply.headers(),
	})
}

// answerOutcome answers an outcome question from the aggregate's dedupe window, as it is
// after the commands before the question in the shard: the batch's pending entry, else
// the committed one. It decodes no state and creates no entry.
func (g *Gateway[S, C, E]) answerOutcome(ctx context.Context, b *batch[S, E], sh *shard[S], id string, reply *Reply) {
	if it := b.schedLookup(sh, scheduleKey(id, reply.CommandID)); it != nil {
		scheduledReply(reply, it.at)
		return
	}
	e := b.pending[sh.partition][id]
	if e == nil {
		if e = sh.aggs[id]; e != nil {
			if err := g.unpack(ctx, sh.partition, id, e); err != nil {
				reply.Status, reply.Message = StatusRejected, fmt.Sprintf("kastor: cannot read the aggregate's dedupe window: %v", err)
				return
			}
		}
	}
	if e != nil && e.outcome(reply.CommandID, reply) {
		reply.Repeat = true
		return
	}
	reply.Status, reply.Message = StatusNone, "no outcome: not executed before this question, or older than the dedupe window"
}

// snapshotsDue reports whether any shard of the batch writes snapshots or a checkpoint.
func snapshotsDue[S, E any](b *batch[S, E]) bool {
	for _, t := range b.snaps {
		if t.Due() {
			return true
		}
	}
	return false
}

// stageSnapshots stages the records the snapshot bookkeeping asks for (snapshot.Txn): the
// snapshots due and the shard checkpoints due, after the batch's events have their
// offsets.
func (g *Gateway[S, C, E]) stageSnapshots(b *batch[S, E]) {
	for _, se := range b.events {
		e := b.pending[se.env.Partition][se.env.AggregateID]
		e.eventOffset = max(e.eventOffset, se.rec.Offset)
	}
	for p, sh := range b.shards {
		recs, n := b.snaps[p].Records(snapSource[S, C, E]{g: g, sh: sh, pending: b.pending[p]})
		for _, r := range recs {
			b.stage(r)
		}
		b.snapshots += n
	}
}

// apply merges a committed batch into the shards that are still owned.
func (g *Gateway[S, C, E]) apply(b *batch[S, E]) {
	for _, se := range b.events {
		e := b.pending[se.env.Partition][se.env.AggregateID]
		e.eventOffset = max(e.eventOffset, se.rec.Offset)
	}
	for p, sh := range b.shards {
		if g.shard(p) != sh {
			continue // revoked after the commit: the new owner restores from Kafka
		}
		for id, e := range b.pending[p] {
			sh.aggs[id] = e
		}
		b.snaps[p].Committed()
		if d := b.sched[p]; d != nil {
			g.applySchedules(sh, d)
		}
	}
	if len(b.sched) > 0 {
		g.mu.Lock()
		g.gauges()
		g.mu.Unlock()
	}
}
