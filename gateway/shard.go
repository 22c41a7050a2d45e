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
)

// entry is one aggregate's state in a shard.
type entry[S any] struct {
	state       S
	version     int64
	eventOffset int64 // offset of the aggregate's last event in the events partition; -1: none
	commands    []snapshot.Command
	snapVersion int64 // version of the aggregate's latest snapshot
}

// clone copies an entry so a batch can change it without touching the committed one.
// The state itself is copied by value; Aggregate.Evolve must not mutate shared state.
func (e *entry[S]) clone() *entry[S] {
	c := *e
	c.commands = append([]snapshot.Command(nil), e.commands...)
	return &c
}

// remember adds an accepted command to the deduplication window.
func (e *entry[S]) remember(c snapshot.Command, window int) {
	e.commands = append(e.commands, c)
	if over := len(e.commands) - window; over > 0 {
		e.commands = append(e.commands[:0], e.commands[over:]...)
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
	snaps, err := snapshot.Restore(ctx, cfg.Brokers, g.topics.snapshots, p, cfg.Logger, cfg.ClientOptions...)
	if err != nil {
		return nil, Recovery{}, err
	}
	sh := &shard[S]{partition: p, aggs: map[string]*entry[S]{}, dirty: map[string]struct{}{}, lastEventOffset: -1, lastCheckpoint: time.Now()}
	var dropped []string
	for id, rec := range snaps.Snapshots {
		state, err := cfg.States.Decode(Encoded{Type: rec.StateType, Fingerprint: rec.StateFingerprint, Data: rec.State})
		if err != nil {
			// A cache we cannot read: replay this aggregate from its events instead.
			dropped = append(dropped, id)
			continue
		}
		sh.aggs[id] = &entry[S]{state: state, version: rec.Version, eventOffset: rec.EventOffset, commands: rec.Commands, snapVersion: rec.Version}
	}
	for _, id := range dropped {
		snaps.Drop(id)
		delete(sh.aggs, id)
	}
	if len(dropped) > 0 {
		cfg.Logger.Warn("snapshots whose state cannot be decoded are ignored; the shard replays its events",
			"partition", p, "aggregates", len(dropped), "example", dropped[0])
		// Aggregates restored from usable snapshots keep them: events they include are
		// skipped by offset below.
	}

	from := snaps.EventsFrom()
	st, err := partition.ReadToEnd(ctx, cfg.Brokers, g.topics.events, p, from, func(r *kgo.Record) error {
		md, err := kastor.ParseHeaders(toKastorHeaders(r.Headers))
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
		if r.Offset <= e.eventOffset {
			return nil // included in the aggregate's snapshot
		}
		if md.Version != e.version+1 {
			return fmt.Errorf("gateway: %s %q: event at %s/%d@%d has version %d after version %d: the events topic is not contiguous",
				cfg.Aggregate.Type, id, r.Topic, r.Partition, r.Offset, md.Version, e.version)
		}
		ev, err := cfg.Events.Decode(Encoded{Type: md.Type, Fingerprint: md.Fingerprint, Data: r.Value})
		if err != nil {
			return &kastor.UndecodableError{What: "event", Type: md.Type, Fingerprint: md.Fingerprint, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
		}
		e.state = cfg.Aggregate.Evolve(e.state, ev)
		e.version = md.Version
		e.eventOffset = r.Offset
		if n := len(e.commands); n > 0 && e.commands[n-1].ID == md.CommandID && e.commands[n-1].To == md.Version-1 {
			e.commands[n-1].To = md.Version
		} else if md.CommandID != "" {
			e.remember(snapshot.Command{ID: md.CommandID, From: md.Version, To: md.Version}, cfg.DedupeWindow)
		}
		sh.dirty[id] = struct{}{}
		sh.sinceCheckpoint++
		return nil
	}, cfg.ClientOptions...)
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
	return sh, Recovery{Partition: p, SnapshotRecords: snaps.Read.Records, EventRecords: st.Records, Aggregates: len(sh.aggs), Duration: time.Since(start)}, nil
}
