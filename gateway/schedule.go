package gateway

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/internal/partition"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/snapshot"
	"github.com/kastor-dev/kastor/wire"
)

// Scheduled commands (docs/decisions.md, 43). A schedule, a cancel and a fire are records
// of the aggregate's commands partition, handled by the shard's owner in its transaction
// like any command: the owner is the only writer of the schedules partition, and the
// commands partition orders the operations on one schedule. A schedule ends when its
// schedule ID (a command ID) has an outcome, or when it is cancelled.

// Errors of scheduled commands. Each is matched with errors.Is; the errors returned wrap
// them with the aggregate and schedule IDs.
var (
	// ErrPastSchedule: Sender.Schedule was given a time that is not after the Sender's
	// clock's now (or no time). It is refused rather than fired at once, as a saga's
	// deadline in the past is (saga.ErrPastDeadline): a time in the past is almost always
	// a mistake, and a caller who wants "now" sends the command.
	ErrPastSchedule = errors.New("gateway: the time of a scheduled command is not in the future")
	// ErrPending: the scheduled command has not fired yet (Sender.Outcome).
	ErrPending = errors.New("gateway: the scheduled command is pending")
	// ErrCancelled: the scheduled command was cancelled before it fired; it never will.
	ErrCancelled = errors.New("gateway: the scheduled command was cancelled")
	// ErrFired: the scheduled command has fired (Sender.Cancel came too late, or
	// Sender.Schedule re-sent a schedule ID that already ran). *FiredError has its outcome.
	ErrFired = errors.New("gateway: the scheduled command has fired")
	// ErrUnknownSchedule: the aggregate has no pending schedule with that ID and does not
	// remember an outcome for it (never scheduled, or older than the dedupe window).
	ErrUnknownSchedule = errors.New("gateway: no scheduled command with this ID")
)

// FiredError is the answer to a cancel, or to a schedule re-sent, after the scheduled
// command fired: its outcome. errors.Is matches ErrFired.
type FiredError struct {
	AggregateID, ScheduleID string
	// Result is the fired command's result when it was applied (Duplicate set).
	Result Result
	// Err is the fired command's typed refusal (kastor.ErrRejected, ...), nil when it
	// was applied.
	Err error
}

func (e *FiredError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("gateway: scheduled command %s of %q has fired and was refused: %v", e.ScheduleID, e.AggregateID, e.Err)
	}
	return fmt.Sprintf("gateway: scheduled command %s of %q has fired and was applied (versions %d..%d)", e.ScheduleID, e.AggregateID, e.Result.From, e.Result.To)
}

// Is reports ErrFired.
func (e *FiredError) Is(target error) bool { return target == ErrFired }

// scheduleRefire is how long after sending a schedule's fire record the owner sends
// another if the schedule is still pending: a safety net, since a fire record is only
// lost with its whole commands partition. A second fire record is harmless: the first one
// handled ends the schedule. A variable so tests can shorten it.
var scheduleRefire = 30 * time.Second

// schedulerTick bounds the scheduler's sleep, so that a wall clock stepped forward (or a
// test's clock) is noticed within it: Go timers run on the monotonic clock.
const schedulerTick = time.Second

// scheduleKey is the key of a schedule's records in the schedules topic: the aggregate ID
// and the schedule ID, separated by NUL. Schedule IDs never hold a NUL, so the last NUL
// separates them.
func scheduleKey(aggregateID, scheduleID string) string { return aggregateID + "\x00" + scheduleID }

// schedItem is one pending scheduled command of a shard. It keeps only what firing
// needs: 10^5 pending schedules of 100-byte commands take about 52 MB
// (TestScheduleMemory).
type schedItem struct {
	key         string
	aggregateID string // key's prefix, sharing its bytes
	id          string // the schedule ID, the command ID it fires with: key's suffix
	at          time.Time
	// The stored command: payload, type and fingerprint, correlation ID, expected version.
	value       []byte
	typ         string
	fingerprint uint64
	correlation string
	expected    int64
	// trace is the span of the gateway that stored the schedule: the fire continues it.
	trace  kastor.TraceContext
	offset int64 // in the schedules partition; -1 until committed
	// next is when the scheduler sends a fire record: at, then scheduleRefire after each.
	next  time.Time
	index int // in the heap
}

// newSchedItem returns the item of a schedule of ch, the headers of a stored command.
func newSchedItem(ch *wire.Command, value []byte, offset int64) *schedItem {
	key := scheduleKey(ch.AggregateID, ch.CommandID)
	return &schedItem{key: key, aggregateID: key[:len(ch.AggregateID)], id: key[len(ch.AggregateID)+1:], at: ch.ScheduleAt,
		value: value, typ: ch.Type, fingerprint: ch.Fingerprint, correlation: ch.CorrelationID, expected: ch.ExpectedVersion,
		trace: ch.Trace, offset: offset}
}

// command returns the headers of the stored command, as the schedules topic holds them.
func (it *schedItem) command(aggregateType string) wire.Command {
	return wire.Command{
		Metadata: kastor.Metadata{AggregateType: aggregateType, AggregateID: it.aggregateID, Type: it.typ, Fingerprint: it.fingerprint,
			CommandID: it.id, CorrelationID: it.correlation, Trace: it.trace},
		ExpectedVersion: it.expected, ScheduleAt: it.at,
	}
}

// schedHeap orders items by next.
type schedHeap []*schedItem

func (h schedHeap) Len() int           { return len(h) }
func (h schedHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h schedHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *schedHeap) Push(x any) {
	it := x.(*schedItem)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *schedHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	it.index = -1
	return it
}

// schedules are a shard's pending scheduled commands, as committed.
type schedules struct {
	mu    sync.Mutex
	items map[string]*schedItem
	h     schedHeap
}

func newSchedules() *schedules { return &schedules{items: map[string]*schedItem{}} }

func (s *schedules) get(key string) *schedItem {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.items[key]
}

func (s *schedules) len() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

// putLocked adds or replaces an item.
func (s *schedules) putLocked(it *schedItem) {
	if old := s.items[it.key]; old != nil {
		heap.Remove(&s.h, old.index)
	}
	it.next = it.at
	s.items[it.key] = it
	heap.Push(&s.h, it)
}

func (s *schedules) deleteLocked(key string) {
	if old := s.items[key]; old != nil {
		heap.Remove(&s.h, old.index)
		delete(s.items, key)
	}
}

// due returns the items whose fire record is to be sent at now, and moves their next
// send scheduleRefire later; and the time of the earliest next send after that.
func (s *schedules) due(now time.Time) (fire []*schedItem, next time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.h) > 0 && !s.h[0].next.After(now) {
		it := s.h[0]
		fire = append(fire, it)
		it.next = now.Add(scheduleRefire)
		heap.Fix(&s.h, 0)
	}
	if len(s.h) > 0 {
		return fire, s.h[0].next, true
	}
	return fire, time.Time{}, false
}

// retry makes an item's fire record due again at t (its send failed).
func (s *schedules) retry(key string, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if it := s.items[key]; it != nil && it.next.After(t) {
		it.next = t
		heap.Fix(&s.h, it.index)
	}
}

// schedDelta is what one transaction does to a shard's schedules.
type schedDelta struct {
	put       map[string]*schedItem
	del       map[string]bool
	scheduled int
	cancelled int
	fired     int
}

// schedDeltaOf returns the batch's delta of shard p.
func (b *batch[S, E]) schedDeltaOf(p int32) *schedDelta {
	if b.sched == nil {
		b.sched = map[int32]*schedDelta{}
	}
	d := b.sched[p]
	if d == nil {
		d = &schedDelta{put: map[string]*schedItem{}, del: map[string]bool{}}
		b.sched[p] = d
	}
	return d
}

// schedLookup returns the pending schedule key of shard sh as the batch left it, or nil.
func (b *batch[S, E]) schedLookup(sh *shard[S], key string) *schedItem {
	if d := b.sched[sh.partition]; d != nil {
		if d.del[key] {
			return nil
		}
		if it := d.put[key]; it != nil {
			return it
		}
	}
	return sh.sched.get(key)
}

// schedulesOn reports whether the aggregate type has a schedules topic.
func (g *Gateway[S, C, E]) schedulesOn() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.hasSchedules
}

// schedulesMissing is the error of a schedule operation without a schedules topic.
func (g *Gateway[S, C, E]) schedulesMissing() error {
	return fmt.Errorf("scheduled commands need the topic %q, which does not exist: create it with `kastor topics apply` (it is in the plan of every aggregate type) and restart the gateways", g.topics.schedules)
}

// scheduleAdd stores a scheduled command: a record in the schedules partition, written in
// the batch's transaction, and the reply SCHEDULED. A schedule ID that is pending gets
// SCHEDULED again, and one that already has an outcome gets that outcome (W4): the first
// schedule of an ID wins.
func (g *Gateway[S, C, E]) scheduleAdd(ctx context.Context, b *batch[S, E], sh *shard[S], r *kgo.Record, ch *wire.Command, reply *Reply) {
	id := string(r.Key)
	fail := func(s Status, err error) { reply.Status, reply.Message = s, err.Error() }
	switch {
	case sh.sched == nil:
		fail(StatusUnavailable, g.schedulesMissing())
		return
	case ch.ScheduleAt.IsZero():
		fail(StatusUndecodable, fmt.Errorf("a scheduled command without a %s header", wire.HeaderScheduleAt))
		return
	case strings.IndexByte(ch.CommandID, 0) >= 0:
		fail(StatusUndecodable, fmt.Errorf("schedule ID %q holds a NUL", ch.CommandID))
		return
	}
	key := scheduleKey(id, ch.CommandID)
	if it := b.schedLookup(sh, key); it != nil {
		scheduledReply(reply, it.at)
		reply.Repeat = true
		return
	}
	if ok, err := g.remembered(ctx, b, sh, id, reply); err != nil || ok {
		if err != nil {
			fail(StatusRejected, err)
			return
		}
		reply.Repeat = true
		return
	}
	if _, err := g.cfg.Commands.Decode(kastor.Encoded{Type: ch.Type, Fingerprint: ch.Fingerprint, Data: r.Value}); err != nil {
		fail(StatusUndecodable, &kastor.UndecodableError{What: "command", Type: ch.Type, Fingerprint: ch.Fingerprint, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err})
		return
	}
	value := r.Value
	if value == nil {
		value = []byte{} // a null value is a tombstone
	}
	stored := *ch
	stored.AggregateID = id
	stored.Trace = reply.Trace // this request's span, which the fire continues (decision 42)
	it := newSchedItem(&stored, value, -1)
	sch := it.command(g.cfg.Aggregate.Type)
	d := b.schedDeltaOf(sh.partition)
	delete(d.del, key)
	d.put[key] = it
	d.scheduled++
	b.stage(&kgo.Record{Topic: g.topics.schedules, Partition: sh.partition, Key: []byte(key), Value: value, Headers: sch.AppendHeaders(nil)})
	scheduledReply(reply, it.at)
}

func scheduledReply(reply *Reply, at time.Time) {
	reply.Status, reply.Message = StatusScheduled, "due at "+at.UTC().Format(time.RFC3339Nano)
}

// scheduleEnd removes a pending schedule in the batch: its tombstone in the schedules
// partition.
func (g *Gateway[S, C, E]) scheduleEnd(b *batch[S, E], sh *shard[S], it *schedItem) {
	d := b.schedDeltaOf(sh.partition)
	delete(d.put, it.key)
	d.del[it.key] = true
	b.stage(&kgo.Record{Topic: g.topics.schedules, Partition: sh.partition, Key: []byte(it.key), Value: nil})
}

// scheduleCancel cancels a pending schedule: its tombstone, and CANCELLED remembered as
// the schedule ID's outcome with the aggregate's refusals (decision 27), so that a later
// fire, cancel, schedule or outcome question of the ID finds it. A schedule that has
// fired answers its outcome; an unknown one NONE.
func (g *Gateway[S, C, E]) scheduleCancel(ctx context.Context, b *batch[S, E], sh *shard[S], r *kgo.Record, ch *wire.Command, reply *Reply) {
	id := string(r.Key)
	if sh.sched == nil {
		reply.Status, reply.Message = StatusUnavailable, g.schedulesMissing().Error()
		return
	}
	it := b.schedLookup(sh, scheduleKey(id, ch.CommandID))
	if it == nil {
		ok, err := g.remembered(ctx, b, sh, id, reply)
		switch {
		case err != nil:
			reply.Status, reply.Message = StatusRejected, err.Error()
		case ok:
			reply.Repeat = true
		default:
			reply.Status, reply.Message = StatusNone, "no pending scheduled command with this ID, and no outcome: never scheduled, or older than the dedupe window"
		}
		return
	}
	e, err := g.entry(ctx, b, sh, id)
	if err != nil {
		reply.Status, reply.Message = StatusRejected, fmt.Sprintf("kastor: cannot rebuild the aggregate's state: %v", err)
		return
	}
	g.scheduleEnd(b, sh, it)
	b.schedDeltaOf(sh.partition).cancelled++
	reply.Status, reply.Message = StatusCancelled, "cancelled before its time, "+it.at.UTC().Format(time.RFC3339Nano)
	e.refuse(snapshot.Refusal{ID: it.id, Status: string(StatusCancelled), Message: reply.Message}, g.cfg.DedupeWindow)
	b.snaps[sh.partition].MarkDue(id)
}

// scheduleFire runs a pending schedule that is due by the gateway's clock, through the
// command path with its schedule ID as command ID, and removes it in the same
// transaction. A fire record for a schedule no longer pending (cancelled, fired) or not
// due yet (a clock stepped back, a fire record from elsewhere) does nothing. A fire that
// gives the ID no outcome (the payload no longer decodes, the aggregate cannot be
// rebuilt, an event cannot be encoded) leaves the schedule pending, logged, to fire again.
func (g *Gateway[S, C, E]) scheduleFire(ctx context.Context, b *batch[S, E], sh *shard[S], r *kgo.Record, ch *wire.Command, reply *Reply) {
	id := string(r.Key)
	it := b.schedLookup(sh, scheduleKey(id, ch.CommandID))
	if it == nil {
		g.cfg.logger.Debug("fire record for no pending schedule (cancelled, or fired already): ignored", "aggregate_id", id, "schedule_id", ch.CommandID)
		return
	}
	if now := g.now(); it.at.After(now) {
		g.cfg.logger.Debug("fire record before the schedule's time: ignored", "aggregate_id", id, "schedule_id", it.id, "at", it.at, "now", now)
		return
	}
	reply.CommandID, reply.AttemptID = it.id, ""
	cmd := it.command(g.cfg.Aggregate.Type)
	e := g.execute(ctx, b, sh, &cmd, it.value, kgo.Record{Topic: g.topics.schedules, Partition: sh.partition, Offset: it.offset, Key: []byte(id)}, reply)
	var seen Reply
	if e == nil || !e.outcome(it.id, &seen) {
		g.cfg.logger.Error("scheduled command fired without an outcome; it stays pending and fires again",
			"aggregate_id", id, "schedule_id", it.id, "status", string(reply.Status), "err", reply.Message)
		return
	}
	g.scheduleEnd(b, sh, it)
	b.schedDeltaOf(sh.partition).fired++
	g.cfg.logger.Info("scheduled command fired", "aggregate_id", id, "schedule_id", it.id, "at", it.at,
		"late", g.now().Sub(it.at).Round(time.Millisecond), "status", string(reply.Status))
}

// remembered fills reply with the outcome aggregate id remembers for reply.CommandID, as
// the batch left it, and reports whether there is one. It decodes no state.
func (g *Gateway[S, C, E]) remembered(ctx context.Context, b *batch[S, E], sh *shard[S], id string, reply *Reply) (bool, error) {
	e := b.pending[sh.partition][id]
	if e == nil {
		if e = sh.aggs[id]; e != nil {
			if err := g.unpack(ctx, sh.partition, id, e); err != nil {
				return false, fmt.Errorf("kastor: cannot read the aggregate's dedupe window: %w", err)
			}
		}
	}
	return e != nil && e.outcome(reply.CommandID, reply), nil
}

// applySchedules merges a committed batch's schedule changes into shard sh.
func (g *Gateway[S, C, E]) applySchedules(sh *shard[S], d *schedDelta) {
	if sh.sched != nil {
		sh.sched.mu.Lock()
		for key := range d.del {
			sh.sched.deleteLocked(key)
		}
		for _, it := range d.put {
			sh.sched.putLocked(it)
		}
		sh.sched.mu.Unlock()
	}
	g.metrics.schedules.WithLabelValues("scheduled").Add(float64(d.scheduled))
	g.metrics.schedules.WithLabelValues("cancelled").Add(float64(d.cancelled))
	g.metrics.schedules.WithLabelValues("fired").Add(float64(d.fired))
	g.wakeScheduler()
}

// wakeScheduler makes the scheduler look at the shards' schedules again.
func (g *Gateway[S, C, E]) wakeScheduler() {
	select {
	case g.schedWake <- struct{}{}:
	default:
	}
}

// restoreSchedules reads schedules partition p to its last stable offset, read_committed:
// the shard's pending schedules. The restore runs once the previous owner's transactions
// have ended (awaitStableOffset), and every transaction that writes a schedule commits
// command offsets. A record that is not a schedule (another producer's) is logged and
// skipped.
func (g *Gateway[S, C, E]) restoreSchedules(ctx context.Context, p int32) (*schedules, error) {
	s := newSchedules()
	_, err := partition.ReadToEnd(ctx, g.cluster.Client(), g.topics.schedules, p, 0, func(r *kgo.Record) error {
		if r.Value == nil {
			s.deleteLocked(string(r.Key))
			return nil
		}
		it, err := parseSchedule(r)
		if err != nil {
			g.cfg.logger.Error("skipping a record of the schedules topic that is not a scheduled command", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			return nil
		}
		s.putLocked(it)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: restore the schedules of shard %d: %w", p, err)
	}
	return s, nil
}

// parseSchedule decodes a record of the schedules topic (not a tombstone): its key is
// scheduleKey(aggregate ID, schedule ID), its headers the command's envelope (aggregate
// ID, command ID = schedule ID, type, fingerprint, correlation ID), the expected version
// and wire.HeaderScheduleAt, its value the command's payload.
func parseSchedule(r *kgo.Record) (*schedItem, error) {
	ch, err := wire.ParseCommand(r.Headers)
	if err != nil {
		return nil, err
	}
	switch {
	case ch.AggregateID == "":
		return nil, fmt.Errorf("no %s header", kastor.HeaderAggregateID)
	case ch.CommandID == "":
		return nil, fmt.Errorf("no %s header", kastor.HeaderCommandID)
	case strings.IndexByte(ch.CommandID, 0) >= 0:
		return nil, fmt.Errorf("schedule ID %q holds a NUL", ch.CommandID)
	case ch.ScheduleAt.IsZero():
		return nil, fmt.Errorf("no %s header", wire.HeaderScheduleAt)
	case string(r.Key) != scheduleKey(ch.AggregateID, ch.CommandID):
		return nil, fmt.Errorf("key %q is not the aggregate ID and schedule ID of the headers (%q, %q)", r.Key, ch.AggregateID, ch.CommandID)
	}
	// A copy: a fetched record's value may share the fetch's buffer, which a pending
	// schedule would otherwise keep alive.
	return newSchedItem(&ch, bytes.Clone(r.Value), r.Offset), nil
}

// runScheduler sends the fire records of the owned shards' due schedules until ctx ends:
// a record of the commands partition (key the aggregate ID, command ID the schedule ID,
// wire.HeaderQuery fire, no payload), written with app outside the transactions. The
// owner handles it like any command, in order with the schedule's cancels, in a
// transaction that commits command offsets: a zombie's fire is refused by the group
// generation like its commands, and a fire record it wrote is handled by the new owner,
// which fires only what is pending and due.
func (g *Gateway[S, C, E]) runScheduler(ctx context.Context, app *producer.Appender) {
	for {
		wait := schedulerTick
		now := g.now()
		var fire []*schedItem
		g.mu.Lock()
		for _, sh := range g.shards {
			if sh.sched == nil {
				continue
			}
			due, next, ok := sh.sched.due(now)
			fire = append(fire, due...)
			if ok {
				wait = min(wait, max(next.Sub(now), time.Millisecond))
			}
		}
		g.mu.Unlock()
		if len(fire) > 0 {
			g.sendFires(ctx, app, fire)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-g.schedWake:
		case <-t.C:
		}
		t.Stop()
	}
}

// sendFires writes the fire records of items; a failed one is due again a second later.
func (g *Gateway[S, C, E]) sendFires(ctx context.Context, app *producer.Appender, items []*schedItem) {
	recs := make([]*kgo.Record, len(items))
	for i, it := range items {
		ch := wire.Command{Metadata: kastor.Metadata{AggregateID: it.aggregateID, CommandID: it.id, Trace: it.trace}, ExpectedVersion: kastor.AnyVersion, Query: wire.QueryFire}
		recs[i] = &kgo.Record{Topic: g.topics.commands, Key: []byte(it.aggregateID), Value: []byte{}, Headers: ch.AppendHeaders(nil)}
		g.cfg.logger.Debug("scheduled command due: sending its fire record", "aggregate_id", it.aggregateID, "schedule_id", it.id, "at", it.at)
	}
	err := app.Append(ctx, recs...)
	if err == nil || ctx.Err() != nil {
		return
	}
	g.cfg.logger.Warn("cannot write the fire records of due scheduled commands; retrying in a second", "count", len(items), "err", err)
	retry := g.now().Add(time.Second)
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, it := range items {
		p := producer.PartitionFor([]byte(it.aggregateID), g.partitions)
		if sh := g.shards[p]; sh != nil && sh.sched != nil {
			sh.sched.retry(it.key, retry)
		}
	}
}
