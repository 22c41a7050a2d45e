package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/internal/partition"
	"github.com/kastor-dev/kastor/snapshot"
	"github.com/kastor-dev/kastor/wire"
)

// entry is one aggregate's state in a shard.
type entry[S any] struct {
	state       S
	version     int64
	eventOffset int64 // offset of the aggregate's last event in the events partition; -1: none
	commands    []snapshot.Command
	// refusals are the recent refused commands: a refused command ID keeps its outcome.
	refusals []snapshot.Refusal
	// raw is the undecoded snapshot record the entry was restored from, until the
	// aggregate is first needed (unpack): a restore then decodes nothing per snapshot.
	raw []byte
	// lazy holds the encoded state of the snapshot an entry was restored from until the
	// state is first needed: a shard restore then reads snapshots without decoding every
	// state, and aggregates that get no command before the next rebalance are never
	// decoded at all. isLazy says that state is still to be decoded from lazy.
	lazy   kastor.Encoded
	isLazy bool
}

// clone copies an entry so a batch can change it without touching the committed one.
// The state itself is copied by value; Aggregate.Evolve must not mutate shared state.
func (e *entry[S]) clone() *entry[S] {
	c := *e
	c.commands = append([]snapshot.Command(nil), e.commands...)
	c.refusals = append([]snapshot.Refusal(nil), e.refusals...)
	return &c
}

// refuse adds a refused command to the deduplication window of refusals.
func (e *entry[S]) refuse(f snapshot.Refusal, window int) {
	e.refusals = append(e.refusals, f)
	if over := len(e.refusals) - window; over > 0 {
		e.refusals = append(e.refusals[:0], e.refusals[over:]...)
	}
}

// outcome fills reply with the remembered outcome of command id and reports whether
// there is one: the versions of an accepted command (StatusDuplicate), or a refusal.
func (e *entry[S]) outcome(id string, reply *Reply) bool {
	if c, ok := e.seen(id); ok {
		reply.Status, reply.From, reply.To = StatusDuplicate, c.From, c.To
		return true
	}
	for i := len(e.refusals) - 1; i >= 0; i-- {
		if f := e.refusals[i]; f.ID == id {
			reply.Status, reply.Message, reply.Expected, reply.Actual = Status(f.Status), f.Message, f.Expected, f.Actual
			return true
		}
	}
	return false
}

// remember adds an accepted command to the deduplication window.
func (e *entry[S]) remember(c snapshot.Command, window int) {
	e.commands = append(e.commands, c)
	if over := len(e.commands) - window; over > 0 {
		e.commands = append(e.commands[:0], e.commands[over:]...)
	}
}

// replayed records a stored event read back: the state after it, its version and offset,
// and its command in the deduplication window (consecutive events of one command form
// one entry).
func (e *entry[S]) replayed(state S, md kastor.Metadata, offset int64, window int) {
	e.state, e.version, e.eventOffset = state, md.Version, offset
	if n := len(e.commands); n > 0 && e.commands[n-1].ID == md.CommandID && e.commands[n-1].To == md.Version-1 {
		e.commands[n-1].To = md.Version
	} else if md.CommandID != "" {
		e.remember(snapshot.Command{ID: md.CommandID, From: md.Version, To: md.Version}, window)
	}
}

func (e *entry[S]) seen(id string) (snapshot.Command, bool) {
	for i := len(e.commands) - 1; i >= 0; i-- {
		if e.commands[i].ID == id {
			return e.commands[i], true
		}
	}
	return snapshot.Command{}, false
}

// shard is the state of one owned partition.
type shard[S any] struct {
	partition int32
	aggs      map[string]*entry[S]
	// snap is the shard's snapshot bookkeeping: what changed since its checkpoint.
	snap *snapshot.Shard
	// sched are the shard's pending scheduled commands; nil without a schedules topic.
	sched *schedules
}

// Recovery describes the restore of one shard: what it read and how long it took
// (Gateway.Recoveries).
type Recovery struct {
	// Partition is the shard.
	Partition int32
	// SnapshotRecords is the number of records read in the snapshots partition.
	SnapshotRecords int
	// EventRecords is the number of events read after the shard's checkpoint: bounded by
	// snapshot.Policy, however long the history (see decision 11).
	EventRecords int
	// Aggregates is the number of aggregates the shard holds once restored.
	Aggregates int
	// Schedules is the number of pending scheduled commands restored (decision 43).
	Schedules int
	// Duration is how long the restore took.
	Duration time.Duration
}

// restore rebuilds a shard with the snapshot store (snapshot.Store.Restore): the
// snapshots partition first, then the events partition from the shard checkpoint (or from
// the start when there is none), replayed into the shard's entries by restoreTarget.
func (g *Gateway[S, C, E]) restore(ctx context.Context, p int32) (*shard[S], Recovery, error) {
	start := time.Now()
	if f := g.restoreFault.Load(); f != nil {
		if err := (*f)(p); err != nil {
			return nil, Recovery{}, fmt.Errorf("gateway: restore shard %d: %w", p, err)
		}
	}
	sh := &shard[S]{partition: p}
	snap, st, err := g.store.Restore(ctx, p, &restoreTarget[S, C, E]{g: g, sh: sh})
	if err != nil {
		var ue *kastor.UndecodableError
		if errors.As(err, &ue) {
			return nil, Recovery{}, fmt.Errorf("gateway: cannot restore shard %d: %w (Evolve must accept every stored event; fix the codec or add an upcaster)", p, err)
		}
		return nil, Recovery{}, fmt.Errorf("gateway: restore shard %d: %w", p, err)
	}
	sh.snap = snap
	if g.schedulesOn() {
		if sh.sched, err = g.restoreSchedules(ctx, p); err != nil {
			return nil, Recovery{}, err
		}
	}
	return sh, Recovery{Partition: p, SnapshotRecords: st.SnapshotRecords, EventRecords: st.EventRecords, Aggregates: len(sh.aggs),
		Schedules: sh.sched.len(), Duration: time.Since(start)}, nil
}

// restoreTarget fills a shard's entries from what a restore reads (snapshot.Target):
// snapshot records kept undecoded until their aggregate is needed, then the event tail
// replayed through the gateway's codec and Evolve.
type restoreTarget[S, C, E any] struct {
	g  *Gateway[S, C, E]
	sh *shard[S]
	// slab: entries are allocated 256 at a time, as a restore creates one per aggregate
	// (see decision 16).
	slab []entry[S]
}

// Reserve sizes the shard's map; the cap bounds the waste when compaction has removed
// most records.
func (t *restoreTarget[S, C, E]) Reserve(n int64) {
	t.sh.aggs = make(map[string]*entry[S], min(n, 1<<18))
}

func (t *restoreTarget[S, C, E]) Snapshot(id string, value []byte) {
	if len(t.slab) == 0 {
		t.slab = make([]entry[S], 256)
	}
	e := &t.slab[0]
	t.slab = t.slab[1:]
	e.raw, e.isLazy = value, true
	t.sh.aggs[id] = e
}

func (t *restoreTarget[S, C, E]) Delete(id string) { delete(t.sh.aggs, id) }

func (t *restoreTarget[S, C, E]) Event(ctx context.Context, id string, r *kgo.Record) (bool, error) {
	g, sh, cfg := t.g, t.sh, t.g.cfg
	md, err := wire.ParseHeaders(r.Headers)
	if err == nil && (md.Type == "" || md.Version < 1) {
		err = fmt.Errorf("no %s or %s header: not a kastor event (another producer wrote it)", kastor.HeaderType, kastor.HeaderVersion)
	}
	if err != nil {
		return false, &kastor.UndecodableError{What: "event", Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
	}
	e := sh.aggs[id]
	if e == nil {
		e = &entry[S]{state: cfg.Aggregate.Initial(id), eventOffset: -1}
		sh.aggs[id] = e
	}
	if err := g.unpack(ctx, sh.partition, id, e); err != nil {
		return false, err
	}
	if r.Offset <= e.eventOffset {
		return false, nil // included in the aggregate's snapshot
	}
	if err := g.materialize(ctx, sh.partition, id, e); err != nil {
		return false, err
	}
	if r.Offset <= e.eventOffset {
		return false, nil // the aggregate was replayed up to here
	}
	if md.Version != e.version+1 {
		return false, fmt.Errorf("gateway: %s %q: event at %s/%d@%d has version %d after version %d: %w",
			cfg.Aggregate.Type, id, r.Topic, r.Partition, r.Offset, md.Version, e.version, errNotContiguous)
	}
	ev, err := cfg.Events.Decode(kastor.Encoded{Type: md.Type, Fingerprint: md.Fingerprint, Data: r.Value})
	if err != nil {
		return false, &kastor.UndecodableError{What: "event", Type: md.Type, Fingerprint: md.Fingerprint, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
	}
	e.replayed(cfg.Aggregate.Evolve(e.state, ev), md, r.Offset, cfg.DedupeWindow)
	return true, nil
}

// snapSource shows the snapshot bookkeeping a shard's aggregates (snapshot.Source): a
// transaction's working copies over the committed entries (pending is nil on handover).
type snapSource[S, C, E any] struct {
	g       *Gateway[S, C, E]
	sh      *shard[S]
	pending map[string]*entry[S]
}

func (s snapSource[S, C, E]) lookup(id string) *entry[S] {
	if e := s.pending[id]; e != nil {
		return e
	}
	return s.sh.aggs[id]
}

// Aggregate is false for a lazily restored entry: unchanged since its snapshot.
func (s snapSource[S, C, E]) Aggregate(id string) (snapshot.Record, bool) {
	e := s.lookup(id)
	if e == nil || e.isLazy {
		return snapshot.Record{}, false
	}
	return snapshot.Record{AggregateID: id, Version: e.version, EventOffset: e.eventOffset, Commands: e.commands, Refusals: e.refusals}, true
}

func (s snapSource[S, C, E]) EncodeState(rec *snapshot.Record) error {
	st, err := s.g.cfg.States.Encode(s.lookup(rec.AggregateID).state)
	if err != nil {
		return err
	}
	rec.StateType, rec.StateFingerprint, rec.State = st.Type, st.Fingerprint, st.Data
	return nil
}

// unpack decodes the snapshot record a restored entry holds (version, event offset,
// recent commands; the state stays encoded until materialize). A record that cannot be
// decoded is a cache miss: the aggregate is rebuilt from all of its events.
func (g *Gateway[S, C, E]) unpack(ctx context.Context, p int32, id string, e *entry[S]) error {
	if e.raw == nil {
		return nil
	}
	rec, err := snapshot.DecodeValue(id, e.raw)
	if err == nil {
		*e = entry[S]{version: rec.Version, eventOffset: rec.EventOffset, commands: rec.Commands, refusals: rec.Refusals,
			lazy: kastor.Encoded{Type: rec.StateType, Fingerprint: rec.StateFingerprint, Data: rec.State}, isLazy: true}
		return nil
	}
	// Refusals write no event: those this record held are lost, so a refused command
	// re-sent now would run. Said at ERROR: the record was not written by a gateway.
	g.cfg.logger.Error("snapshot record cannot be decoded; replaying the aggregate's events, without the refusals it recorded",
		"topic", g.topics.snapshots, "partition", p, "aggregate_id", id, "err", err)
	fresh, err := g.replay(ctx, p, id)
	if err != nil {
		return err
	}
	*e = *fresh
	return nil
}

// materialize decodes a lazily restored entry's state. A snapshot whose state cannot be
// decoded (its schema no longer resolves) is a cache miss: the aggregate is rebuilt from
// all of its events instead.
func (g *Gateway[S, C, E]) materialize(ctx context.Context, p int32, id string, e *entry[S]) error {
	if err := g.unpack(ctx, p, id, e); err != nil {
		return err
	}
	if !e.isLazy {
		return nil
	}
	state, err := g.cfg.States.Decode(e.lazy)
	if err == nil {
		e.state, e.lazy, e.isLazy = state, kastor.Encoded{}, false
		return nil
	}
	g.cfg.logger.Warn("snapshot state cannot be decoded; replaying the aggregate's events",
		"partition", p, "aggregate_id", id, "err", err)
	fresh, err := g.replay(ctx, p, id)
	if err != nil {
		return err
	}
	// The record itself decoded: its refusals and its accepted commands that wrote no
	// event exist nowhere else, and a re-sent command must get its outcome back.
	fresh.refusals = e.refusals
	fresh.commands = mergeCommands(e.commands, fresh.commands, g.cfg.DedupeWindow)
	*e = *fresh
	return nil
}

// mergeCommands is the dedupe window of a snapshot's commands and those replayed from
// the events: the snapshot's that no event records (accepted, nothing written), then
// the replayed ones, the most recent window of them.
func mergeCommands(snap, replayed []snapshot.Command, window int) []snapshot.Command {
	seen := make(map[string]bool, len(replayed))
	for _, c := range replayed {
		seen[c.ID] = true
	}
	var out []snapshot.Command
	for _, c := range snap {
		if !seen[c.ID] {
			out = append(out, c)
		}
	}
	out = append(out, replayed...)
	if window > 0 && len(out) > window {
		out = out[len(out)-window:]
	}
	return out
}

// errNotContiguous is an events partition whose versions of an aggregate skip or repeat.
var errNotContiguous = errors.New("the events topic is not contiguous")

// unusableData reports whether a restore failed on a stored record it cannot use, which
// no retry fixes.
func unusableData(err error) bool {
	var ue *kastor.UndecodableError
	return errors.As(err, &ue) || errors.Is(err, errNotContiguous)
}

// replay rebuilds one aggregate from every event of its partition.
func (g *Gateway[S, C, E]) replay(ctx context.Context, p int32, id string) (*entry[S], error) {
	cfg := g.cfg
	e := &entry[S]{state: cfg.Aggregate.Initial(id), eventOffset: -1}
	_, err := partition.ReadToEnd(ctx, g.cluster.Client(), g.topics.events, p, 0, func(r *kgo.Record) error {
		if string(r.Key) != id {
			return nil
		}
		md, err := wire.ParseHeaders(r.Headers)
		if err != nil {
			return &kastor.UndecodableError{What: "event", Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
		}
		ev, err := cfg.Events.Decode(kastor.Encoded{Type: md.Type, Fingerprint: md.Fingerprint, Data: r.Value})
		if err != nil {
			return &kastor.UndecodableError{What: "event", Type: md.Type, Fingerprint: md.Fingerprint, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
		}
		e.replayed(cfg.Aggregate.Evolve(e.state, ev), md, r.Offset, cfg.DedupeWindow)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: replay %s %q: %w", cfg.Aggregate.Type, id, err)
	}
	return e, nil
}
