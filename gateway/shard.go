package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/internal/partition"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/snapshot"
)

// entry is one aggregate's state in a shard.
type entry[S any] struct {
	state       S
	version     int64
	eventOffset int64 // offset of the aggregate's last event in the events partition; -1: none
	commands    []snapshot.Command
	// refusals are the recent refused commands: a refused command ID keeps its outcome.
	refusals    []snapshot.Refusal
	snapVersion int64 // version of the aggregate's latest snapshot
	// raw is the undecoded snapshot record the entry was restored from, until the
	// aggregate is first needed (unpack): a restore then decodes nothing per snapshot.
	raw []byte
	// lazy holds the encoded state of the snapshot an entry was restored from until the
	// state is first needed: a shard restore then reads snapshots without decoding every
	// state, and aggregates that get no command before the next rebalance are never
	// decoded at all. isLazy says that state is still to be decoded from lazy.
	lazy   Encoded
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
	// dirty aggregates changed since the last checkpoint; the next checkpoint snapshots them.
	dirty map[string]struct{}
	// lastEventOffset is the offset of the last event written to the shard's events partition.
	lastEventOffset int64
	sinceCheckpoint int64
	lastCheckpoint  time.Time
}

// Recovery describes the restore of one shard: what it read and how long it took. A
// restore reads the shard's snapshots and then only the events after its checkpoint, so
// EventRecords stays bounded by the checkpoint policy, however long the history.
type Recovery struct {
	Partition       int32
	SnapshotRecords int
	EventRecords    int
	Aggregates      int
	Duration        time.Duration
}

// restore rebuilds a shard: the snapshots partition first, then the events partition from
// the shard checkpoint (or from the start when there is none).
func (g *Gateway[S, C, E]) restore(ctx context.Context, p int32) (*shard[S], Recovery, error) {
	start := time.Now()
	cfg := g.cfg
	if f := g.restoreFault.Load(); f != nil {
		if err := (*f)(p); err != nil {
			return nil, Recovery{}, fmt.Errorf("gateway: restore shard %d: %w", p, err)
		}
	}
	// One client reads both partitions, and one request finds both ends. The events end,
	// once settled, is final: this instance is the shard's only writer and has not begun.
	rd, err := partition.NewReader(g.cluster.Client())
	if err != nil {
		return nil, Recovery{}, fmt.Errorf("gateway: restore shard %d: %w", p, err)
	}
	defer rd.Close()
	rd.Logger = cfg.logger.With("partition", p)
	rd.Prefetch(g.topics.snapshots, p, 0)
	ends, err := rd.Ends(ctx, g.topics.snapshots, g.topics.events)
	if err != nil {
		return nil, Recovery{}, fmt.Errorf("gateway: restore shard %d: %w", p, err)
	}
	snapEnd, err := partition.End(ends, g.topics.snapshots, p)
	if err != nil {
		return nil, Recovery{}, fmt.Errorf("gateway: restore shard %d: %w", p, err)
	}
	eventsEnd, err := g.settledEventsEnd(ctx, rd, ends, p)
	if err != nil {
		return nil, Recovery{}, fmt.Errorf("gateway: restore shard %d: %w", p, err)
	}
	// The snapshots partition's end offset bounds its number of aggregates (compaction
	// only lowers it): sizing the map from it saves rehashing 100,000s of entries, and the
	// cap bounds the waste when compaction has removed most records.
	sh := &shard[S]{partition: p, aggs: make(map[string]*entry[S], min(snapEnd, 1<<18)), dirty: map[string]struct{}{}, lastEventOffset: -1, lastCheckpoint: time.Now()}
	// Entries are allocated 256 at a time: a restore creates one per aggregate, often
	// 100,000s of them, and the allocator and the GC are most of its CPU time.
	var slab []entry[S]
	scan := snapshot.NewScan(nil, func(id string) { delete(sh.aggs, id) })
	scan.PutEncoded = func(id string, value []byte) {
		if len(slab) == 0 {
			slab = make([]entry[S], 256)
		}
		e := &slab[0]
		slab = slab[1:]
		e.raw, e.isLazy = value, true
		sh.aggs[id] = e
	}
	snapRead, err := rd.Read(ctx, g.topics.snapshots, p, 0, snapEnd, func(r *kgo.Record) error { scan.Add(r); return nil })
	if err != nil {
		return nil, Recovery{}, fmt.Errorf("gateway: restore shard %d: snapshots: %w", p, err)
	}
	if scan.Ignored > 0 {
		cfg.logger.Warn("snapshot records ignored; the shard's events are replayed from the start",
			"partition", p, "ignored", scan.Ignored, "first", scan.Err())
	}

	st, err := rd.Read(ctx, g.topics.events, p, scan.UsableCheckpoint()+1, eventsEnd, func(r *kgo.Record) error {
		md, err := producer.Metadata(r.Headers)
		if err == nil && (md.Type == "" || md.Version < 1) {
			err = fmt.Errorf("no %s or %s header: not a kastor event (another producer wrote it)", kastor.HeaderType, kastor.HeaderVersion)
		}
		if err != nil {
			return &kastor.UndecodableError{What: "event", Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
		}
		id := string(r.Key)
		e := sh.aggs[id]
		if e == nil {
			e = &entry[S]{state: cfg.Aggregate.Initial(id), eventOffset: -1}
			sh.aggs[id] = e
		}
		sh.lastEventOffset = r.Offset
		if err := g.unpack(ctx, p, id, e); err != nil {
			return err
		}
		if r.Offset <= e.eventOffset {
			return nil // included in the aggregate's snapshot
		}
		if err := g.materialize(ctx, p, id, e); err != nil {
			return err
		}
		if r.Offset <= e.eventOffset {
			return nil // the aggregate was replayed up to here
		}
		if md.Version != e.version+1 {
			return fmt.Errorf("gateway: %s %q: event at %s/%d@%d has version %d after version %d: %w",
				cfg.Aggregate.Type, id, r.Topic, r.Partition, r.Offset, md.Version, e.version, errNotContiguous)
		}
		ev, err := cfg.Events.Decode(Encoded{Type: md.Type, Fingerprint: md.Fingerprint, Data: r.Value})
		if err != nil {
			return &kastor.UndecodableError{What: "event", Type: md.Type, Fingerprint: md.Fingerprint, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
		}
		e.replayed(cfg.Aggregate.Evolve(e.state, ev), md, r.Offset, cfg.DedupeWindow)
		sh.dirty[id] = struct{}{}
		sh.sinceCheckpoint++
		return nil
	})
	if err != nil {
		var ue *kastor.UndecodableError
		if errors.As(err, &ue) {
			return nil, Recovery{}, fmt.Errorf("gateway: cannot restore shard %d: %w (Evolve must accept every stored event; fix the codec or add an upcaster)", p, err)
		}
		return nil, Recovery{}, fmt.Errorf("gateway: restore shard %d: %w", p, err)
	}
	if st.End > 0 && sh.lastEventOffset < st.End-1 {
		// The tail ended in transaction markers; new events go after them.
		sh.lastEventOffset = st.End - 1
	}
	return sh, Recovery{Partition: p, SnapshotRecords: snapRead.Records, EventRecords: st.Records, Aggregates: len(sh.aggs), Duration: time.Since(start)}, nil
}

// settledEventsEnd is where the restore of shard p stops reading events: the events
// partition's last stable offset once no transaction is open there. The previous owner's
// last transaction can have its command offsets committed and stable (awaitStableOffset)
// while the marker that makes its events readable is not yet written or replicated; a
// restore stopping before them would write their versions again (the W2 test caught it).
// Only previous owners write this partition, and this instance has not begun, so an open
// transaction there is theirs: one that committed settles in milliseconds, a paused
// owner's is aborted by the broker after its timeout.
func (g *Gateway[S, C, E]) settledEventsEnd(ctx context.Context, rd *partition.Reader, ends kadm.ListedOffsets, p int32) (int64, error) {
	lso, err := partition.End(ends, g.topics.events, p)
	if err != nil {
		return 0, err
	}
	// The broker looks for timed-out transactions every 10 s by default.
	sctx, cancel := context.WithTimeout(ctx, g.cfg.TransactionTimeout+time.Minute)
	defer cancel()
	start := time.Now()
	settled, err := rd.Settled(sctx, g.topics.events, p)
	if err != nil {
		return 0, err
	}
	if settled != lso {
		g.cfg.logger.Info("waited for a previous owner's transaction to settle before restoring", "partition", p,
			"from_offset", lso, "to_offset", settled, "took", time.Since(start).Round(time.Millisecond))
	}
	return settled, nil
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
		*e = entry[S]{version: rec.Version, eventOffset: rec.EventOffset, commands: rec.Commands, refusals: rec.Refusals, snapVersion: rec.Version,
			lazy: Encoded{Type: rec.StateType, Fingerprint: rec.StateFingerprint, Data: rec.State}, isLazy: true}
		return nil
	}
	g.cfg.logger.Warn("snapshot record cannot be decoded; replaying the aggregate's events",
		"partition", p, "aggregate_id", id, "err", err)
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
		e.state, e.lazy, e.isLazy = state, Encoded{}, false
		return nil
	}
	g.cfg.logger.Warn("snapshot state cannot be decoded; replaying the aggregate's events",
		"partition", p, "aggregate_id", id, "err", err)
	fresh, err := g.replay(ctx, p, id)
	if err != nil {
		return err
	}
	*e = *fresh
	return nil
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
		md, err := producer.Metadata(r.Headers)
		if err != nil {
			return &kastor.UndecodableError{What: "event", Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
		}
		ev, err := cfg.Events.Decode(Encoded{Type: md.Type, Fingerprint: md.Fingerprint, Data: r.Value})
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
