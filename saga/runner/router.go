package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/internal/brokerwait"
	"github.com/kastor-dev/kastor/internal/kgolog"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/wire"
)

// Reasons on parked records (wire.HeaderDLQReason).
const (
	// ReasonUndecodable: the record, its headers or its payload could not be decoded.
	ReasonUndecodable = "undecodable"
	// ReasonUnroutable: Correlate returned an error, or an instance ID that cannot be a
	// key (empty, or starting with NUL).
	ReasonUnroutable = "unroutable"
	// ReasonRejected: React returned an error, set a deadline in the past, or sent a
	// command that cannot be encoded or addressed; nothing changed.
	ReasonRejected = "rejected"
	// ReasonUnknownCommand: an outcome of a command the instance has no record of.
	ReasonUnknownCommand = "unknown-command"
	// ReasonBrokenInstance: an input of an instance whose record cannot be decoded.
	ReasonBrokenInstance = "broken-instance"
	// ReasonStuck: not a parked input but the instance itself, which became stuck (its
	// state's StuckReason went from "" to the reason, the letter's error): it waits for an
	// operator. Written in the transaction of the instance's version that made it stuck,
	// keyed by instance ID, with no value; Resume marks it resolved.
	ReasonStuck = "stuck"
)

// routeSession is one membership of the router group: it reads the sources' events
// topics and writes each event an instance is concerned with to the inputs topic, in a
// transaction with the consumed offsets (GroupTransactSession: a zombie's offsets are
// refused, and its transaction with them).
func (r *Runner[S, C, E]) routeSession(ctx context.Context) error {
	cfg := r.cfg
	logger := cfg.logger.With("loop", "router")
	opts := []kgo.Opt{
		kgo.TransactionalID(cfg.routerGroup + "-" + cfg.InstanceID),
		kgo.ClientID("kastor-saga-router-" + cfg.InstanceID),
		kgo.TransactionTimeout(cfg.TransactionTimeout),
		kgo.ConsumerGroup(cfg.routerGroup),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.HeartbeatInterval(cfg.HeartbeatInterval),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.RequestRetries(math.MaxInt32),
		kgo.ConsumeTopics(cfg.eventTopics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.WithLogger(kgolog.New(logger)),
	}
	opts = append(opts, brokerwait.ClientOptions()...)
	sess, err := kgo.NewGroupTransactSession(cluster.Options(r.cluster.Client(), opts...)...)
	if err != nil {
		return fmt.Errorf("saga router: %w", err)
	}
	defer sess.Close()
	r.mu.Lock()
	parts := r.partitions
	r.mu.Unlock()
	logger.Info("saga router started", "group", cfg.routerGroup, "sources", cfg.eventTopics)
	for {
		fetches := sess.PollRecords(ctx, cfg.MaxBatch)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				logger.Warn("fetch error; retrying", "topic", t, "partition", p, "err", err)
			}
		})
		recs := fetches.Records()
		if len(recs) == 0 {
			continue
		}
		if err := r.route(ctx, sess, recs, parts, logger); err != nil {
			return err
		}
	}
}

// route writes the inputs of one poll's events in one transaction.
func (r *Runner[S, C, E]) route(ctx context.Context, sess *kgo.GroupTransactSession, recs []*kgo.Record, parts int32, logger *slog.Logger) error {
	cfg := r.cfg
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.TransactionTimeout)
	defer cancel()
	if err := sess.Begin(); err != nil {
		return fmt.Errorf("saga router: begin transaction: %w", err)
	}
	var out []*kgo.Record
	counts := map[string]int{}
	for _, rec := range recs {
		in, reason, err := r.routeOne(rec, parts)
		switch {
		case err != nil:
			logger.Warn("event parked", "reason", reason, "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "err", err)
			out = append(out, r.parked(rec, reason, err))
			counts["parked"]++
		case in == nil:
			counts["skipped"]++
		default:
			out = append(out, in)
			counts["routed"]++
		}
	}
	abort := false
	if len(out) > 0 {
		if err := sess.ProduceSync(tctx, out...).FirstErr(); err != nil {
			logger.Warn("aborting a transaction: a record was not written", "err", err)
			abort = true
		}
	}
	committed, err := sess.End(tctx, kgo.TransactionEndTry(!abort))
	if err != nil {
		if errors.Is(err, kgo.ErrClientClosed) {
			return nil
		}
		r.metrics.txns.WithLabelValues("failed").Inc()
		return &rejoinError{fmt.Errorf("saga router: ending a transaction: %w", err)}
	}
	if !committed {
		r.metrics.txns.WithLabelValues("aborted").Inc()
		return nil // the session rewound to the committed offsets
	}
	r.metrics.txns.WithLabelValues("committed").Inc()
	for k, n := range counts {
		r.metrics.routed.WithLabelValues(k).Add(float64(n))
	}
	return nil
}

// routeOne returns the input record of event rec, nil when no instance is concerned, or
// an error with the reason to park rec.
func (r *Runner[S, C, E]) routeOne(rec *kgo.Record, parts int32) (*kgo.Record, string, error) {
	md, err := wire.ParseHeaders(rec.Headers)
	if err != nil {
		return nil, ReasonUndecodable, err
	}
	ev, err := r.cfg.Events.Decode(kastor.Encoded{Type: md.Type, Fingerprint: md.Fingerprint, Data: rec.Value})
	if err != nil {
		return nil, ReasonUndecodable, err
	}
	env := kastor.Envelope[E]{Metadata: md, Event: ev, Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Timestamp: rec.Timestamp}
	id, ok, err := r.cfg.Saga.Correlate(env)
	if err != nil {
		return nil, ReasonUnroutable, fmt.Errorf("correlate: %w", err)
	}
	if !ok {
		return nil, "", nil
	}
	if err := checkInstanceID(id); err != nil {
		return nil, ReasonUnroutable, fmt.Errorf("correlate: %w", err)
	}
	value := rec.Value
	if value == nil {
		value = []byte{}
	}
	hs := make([]kgo.RecordHeader, 0, len(rec.Headers)+1)
	hs = append(append(hs, rec.Headers...), kgo.RecordHeader{Key: wire.HeaderSagaInput, Value: []byte(wire.SagaInputEvent)})
	return &kgo.Record{
		Topic: r.cfg.inputs, Partition: producer.PartitionFor([]byte(id), parts),
		Key: []byte(id), Value: value, Headers: hs,
	}, "", nil
}

// parked is rec as a record of the saga's dead-letter topic: its key, value and headers,
// then the kastor.dlq.* headers saying why and where it was read.
func (r *Runner[S, C, E]) parked(rec *kgo.Record, reason string, why error) *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, len(rec.Headers)+8)
	hs = append(hs, rec.Headers...)
	add := func(k, v string) { hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
	add(wire.HeaderDLQReason, reason)
	add(wire.HeaderDLQError, why.Error())
	add(wire.HeaderDLQTopic, rec.Topic)
	add(wire.HeaderDLQPartition, strconv.FormatInt(int64(rec.Partition), 10))
	add(wire.HeaderDLQOffset, strconv.FormatInt(rec.Offset, 10))
	if !rec.Timestamp.IsZero() {
		add(wire.HeaderDLQTimestamp, strconv.FormatInt(rec.Timestamp.UnixMilli(), 10))
	}
	add(wire.HeaderDLQSaga, r.cfg.Saga.Type)
	value := rec.Value
	if value == nil {
		value = []byte{}
	}
	return &kgo.Record{Topic: r.cfg.dlq, Partition: 0, Key: rec.Key, Value: value, Headers: hs, Timestamp: time.Time{}}
}

// stuckLetter is the dead-letter record of instance id of inputs (and state) partition p,
// made stuck by its version version for reason: key the instance ID, no value,
// kastor.dlq.reason = stuck, the reason as kastor.dlq.error, the state topic and
// partition as the origin (offset -1: the record is written in the same transaction) and
// the version in kastor.dlq.saga.version.
func (r *Runner[S, C, E]) stuckLetter(id string, p int32, version int64, reason string) *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, 7)
	add := func(k, v string) { hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
	add(wire.HeaderDLQReason, ReasonStuck)
	add(wire.HeaderDLQError, reason)
	add(wire.HeaderDLQTopic, r.cfg.state)
	add(wire.HeaderDLQPartition, strconv.FormatInt(int64(p), 10))
	add(wire.HeaderDLQOffset, "-1")
	add(wire.HeaderDLQSaga, r.cfg.Saga.Type)
	add(wire.HeaderDLQSagaVersion, strconv.FormatInt(version, 10))
	return &kgo.Record{Topic: r.cfg.dlq, Partition: 0, Key: []byte(id), Value: []byte{}, Headers: hs}
}
