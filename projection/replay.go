package projection

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/wire"
)

// ReplayResult tells what a Replay did.
type ReplayResult struct {
	// Resolved counts the dead letters applied to the sink (or now left out by the
	// projection's filter) and marked resolved.
	Resolved int
	// Failed are the dead letters that failed again; they stay in the dead-letter topic.
	Failed []ReplayFailure
	// Kept counts the dead letters not tried because an earlier dead letter of the same
	// aggregate failed: applying them would break the aggregate's order.
	Kept int
}

// ReplayFailure is a dead letter that failed again.
type ReplayFailure struct {
	Letter consumer.DeadLetter
	Err    error
}

// Replay re-applies the unresolved dead letters of cfg's projection version through
// sink, then marks each applied one resolved by appending a resolution marker
// (consumer.ResolutionMarker) to the dead-letter topic, consumer.DLQTopic(c.Namespace(),
// cfg.Name). It reads the dead-letter topic to its end as of the call
// (consumer.ReadDeadLetters) and writes the markers with a producer of its own made with
// c.NewClient, waiting for every in-sync replica (acks=all). It logs to c.Logger() with
// the attributes component=kastor.projection, projection and version; cfg is validated
// as consumer.New validates it.
//
// An aggregate's letters are replayed in the order they were parked (with
// consumer.ParkAggregate, the parked event first, then the events held behind it). When a
// letter fails again, the aggregate's later letters are kept (ReplayResult.Kept) and the
// replay goes on with other aggregates. A letter parked twice is applied once. Events
// reach the sink in batches of one with consumer.Batch.Replay set and Next -1: a sink must
// not move its offsets for them, and under consumer.ParkEvent they are older than events
// of their aggregate the sink has applied since.
//
// Replay returns an error, and stops, when the dead-letter topic cannot be read or
// written or the sink reports consumer.ErrUnavailable; what was resolved before stays
// resolved. A letter is marked resolved after the sink applied it, so a Replay that stops
// between the two leaves that letter to be applied again by the next replay
// (at-least-once for it; see decision 25). A running reader with ParkAggregate keeps
// holding the aggregate's new events until it reloads its dead letters
// (consumer.Reader.ReloadDeadLetters; a Projection calls it when the registry records a
// replay or a purge).
func Replay[E any](ctx context.Context, c *cluster.Cluster, cfg consumer.Config[E], sink consumer.Sink[E]) (ReplayResult, error) {
	return replay(ctx, c, cfg, sink, nil)
}

// replay is Replay, asking hold before each letter whether it may go on: a Projection
// executes a replay request only while its claim holds (see replayRun.hold).
func replay[E any](ctx context.Context, kc *cluster.Cluster, cfg consumer.Config[E], sink consumer.Sink[E], hold func() error) (ReplayResult, error) {
	var res ReplayResult
	if err := cfg.Validate(kc); err != nil {
		return res, err
	}
	if sink == nil {
		return res, errors.New("projection: the sink is nil")
	}
	log := kc.Logger().With("component", "kastor.projection", "projection", cfg.Name, "version", cfg.Version)
	dlq := consumer.DLQTopic(kc.Namespace(), cfg.Name)
	letters, err := consumer.ReadDeadLetters(ctx, kc, dlq, cfg.Name, cfg.Version)
	if err != nil {
		return res, err
	}
	if len(letters) == 0 {
		return res, nil
	}
	cl, err := kc.NewClient(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	if err != nil {
		return res, fmt.Errorf("projection: %w", err)
	}
	defer cl.Close()
	blocked := map[string]bool{}
	for _, d := range letters {
		agg := d.AggregateID()
		if agg != "" && blocked[agg] {
			res.Kept++
			continue
		}
		if hold != nil {
			if err := hold(); err != nil {
				return res, err
			}
		}
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("projection: replay stopped: %w", err)
		}
		err := replayOne(ctx, &cfg, sink, d)
		if errors.Is(err, consumer.ErrUnavailable) || ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			// Stopped, not failed: the letter stays unresolved for the next replay.
			return res, fmt.Errorf("projection: replay stopped: %w", err)
		}
		if err != nil {
			res.Failed = append(res.Failed, ReplayFailure{Letter: d, Err: err})
			if agg != "" {
				blocked[agg] = true
			}
			log.Warn("dead letter failed again; kept", "topic", d.Origin.Topic, "partition", d.Origin.Partition,
				"offset", d.Offset, "aggregate", agg, "err", err)
			continue
		}
		if err := cl.ProduceSync(ctx, consumer.ResolutionMarker(dlq, d)).FirstErr(); err != nil {
			return res, fmt.Errorf("projection: the event at %s/%d@%d was re-applied but could not be marked resolved (a next replay applies it again): %w",
				d.Origin.Topic, d.Origin.Partition, d.Offset, err)
		}
		res.Resolved++
	}
	log.Info("dead letters replayed", "resolved", res.Resolved, "failed", len(res.Failed), "kept", res.Kept)
	return res, nil
}

// replayOne decodes a dead letter and applies it alone; nil also when the filter now
// leaves it out.
func replayOne[E any](ctx context.Context, c *consumer.Config[E], sink consumer.Sink[E], d consumer.DeadLetter) (err error) {
	md, err := wire.ParseHeaders(d.Headers)
	if err == nil && (md.AggregateID == "" || md.Type == "" || md.Version == 0) {
		err = errors.New("kastor headers are missing")
	}
	undecodable := func(err error) error {
		return &kastor.UndecodableError{What: "event", Type: md.Type, Fingerprint: md.Fingerprint,
			Topic: d.Origin.Topic, Partition: d.Origin.Partition, Offset: d.Offset, Err: err}
	}
	if err != nil {
		return undecodable(err)
	}
	if !c.Filter.Match(&md) {
		return nil
	}
	env := kastor.Envelope[E]{Metadata: md, Timestamp: d.Timestamp, Topic: d.Origin.Topic, Partition: d.Origin.Partition, Offset: d.Offset}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("projection: panic: %v\n%s", p, debug.Stack())
		}
	}()
	env.Event, err = c.Events.Decode(kastor.Encoded{Type: md.Type, Fingerprint: md.Fingerprint, Data: d.Value})
	if err != nil {
		return undecodable(err)
	}
	return sink.Apply(ctx, consumer.Batch[E]{Topic: d.Origin.Topic, Partition: d.Origin.Partition, Events: []kastor.Envelope[E]{env}, Next: -1, Replay: true})
}
