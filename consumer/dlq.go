package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/internal/partition"
	"github.com/kastor-dev/kastor/wire"
)

// The values of the kastor.dlq.reason header (wire.HeaderDLQReason).
const (
	// ReasonFailed: the sink failed on the event after every retry.
	ReasonFailed = "failed"
	// ReasonUndecodable: the record could not be decoded (missing or malformed headers,
	// unknown type or schema, bad Avro); it was parked without retries.
	ReasonUndecodable = "undecodable"
	// ReasonHeld: with ParkAggregate, an event of an aggregate that has a parked event;
	// it was not tried.
	ReasonHeld = "held"
	// ReasonResolved marks a record with no value that resolves an earlier dead letter
	// of the same projection version and origin (ResolutionMarker; written by
	// projection.Replay and projection.Purge).
	ReasonResolved = "resolved"
)

// DeadLetter is a record of a dead-letter topic, parsed.
type DeadLetter struct {
	Reason     string
	Err        string
	Attempts   int
	Projection string
	Version    int
	// Origin, Offset and Timestamp locate and date the original record.
	Origin    TopicPartition
	Offset    int64
	Timestamp time.Time
	// HeldBehind is the offset of the parked event a held record waits for, -1 if none.
	HeldBehind int64
	// Key, Value and Headers are the original record's (Headers without the kastor.dlq.*
	// ones). A resolution marker has the original key and no value.
	Key     []byte
	Value   []byte
	Headers []kgo.RecordHeader
	// Record is the dead-letter record itself (its partition and offset in the
	// dead-letter topic).
	Record *kgo.Record
}

// ParseDeadLetter reads a record of a dead-letter topic. It fails for records a reader
// did not write (missing or malformed kastor.dlq.* headers).
func ParseDeadLetter(r *kgo.Record) (DeadLetter, error) {
	w, others, err := wire.ParseDeadLetter(r.Headers)
	d := DeadLetter{Reason: w.Reason, Err: w.Err, Attempts: w.Attempts, Projection: w.Projection, Version: w.Version,
		Origin: TopicPartition{Topic: w.Topic, Partition: w.Partition}, Offset: w.Offset, Timestamp: w.Timestamp,
		HeldBehind: w.HeldBehind, Key: r.Key, Value: r.Value, Headers: others, Record: r}
	if err != nil {
		return d, fmt.Errorf("consumer: %s/%d@%d is not a dead letter: %w", r.Topic, r.Partition, r.Offset, err)
	}
	return d, nil
}

// origin identifies the original record of a dead letter.
type origin struct {
	TopicPartition
	Offset int64
}

func (d *DeadLetter) origin() origin { return origin{d.Origin, d.Offset} }

// AggregateID returns the aggregate the dead letter's event belongs to: its
// kastor.aggregate.id header, or its key (the aggregate ID of every kastor event) when
// the header is missing, so an undecodable letter still has one. A replay goes by it to
// keep each aggregate's letters in order.
func (d *DeadLetter) AggregateID() string { return aggregateOf(d.Headers, d.Key) }

func aggregateOf(hs []kgo.RecordHeader, key []byte) string {
	for _, h := range hs {
		if h.Key == kastor.HeaderAggregateID {
			return string(h.Value)
		}
	}
	return string(key)
}

// letter describes a record to park.
type letter struct {
	rec        *kgo.Record
	reason     string
	err        error
	attempts   int
	heldBehind int64
}

// dlqRecord builds the dead-letter record for l: the original key, value and headers,
// then the kastor.dlq.* headers.
func dlqRecord(topic, projection string, version int, l letter) *kgo.Record {
	r := l.rec
	d := wire.DeadLetter{Reason: l.reason, Attempts: l.attempts, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
		Timestamp: r.Timestamp, Projection: projection, Version: version, HeldBehind: -1}
	if l.err != nil {
		d.Err = l.err.Error()
	}
	if l.reason == ReasonHeld {
		d.HeldBehind = l.heldBehind
	}
	hs := make([]kgo.RecordHeader, 0, len(r.Headers)+10)
	hs = append(hs, r.Headers...)
	return &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: d.AppendHeaders(hs)}
}

// ResolutionMarker returns the record that, appended to dead-letter topic topic (the one
// d was read from), marks d resolved: a record with d's key, no value and the
// kastor.dlq.* headers of d's origin, projection and version, HeaderDLQReason
// ReasonResolved. Readers and ReadDeadLetters then leave d out, and with ParkAggregate
// its aggregate flows again once a reader reloads its dead letters. The letter itself
// stays in the topic: the topic is the durable record of what was parked (see decision
// 15). Write markers with acks=all, as a reader writes dead letters.
func ResolutionMarker(topic string, d DeadLetter) *kgo.Record {
	m := wire.DeadLetter{Reason: ReasonResolved, Attempts: -1, Topic: d.Origin.Topic, Partition: d.Origin.Partition, Offset: d.Offset,
		Projection: d.Projection, Version: d.Version, HeldBehind: -1}
	return &kgo.Record{Topic: topic, Key: d.Key, Headers: m.AppendHeaders(nil)}
}

// ReadDeadLetters reads a dead-letter topic of c (DLQTopic(c.Namespace(), projection),
// or any topic by full name) to its end as of the call and returns the dead letters of
// version version of projection that no resolution marker resolves, in dead-letter order
// per dead-letter partition (an aggregate's letters share a partition, since they are
// keyed by aggregate ID), partitions in ascending order, each original record once.
// Records that are not dead letters are skipped.
//
// The metadata is read through the shared client; each partition is read with
// read_committed isolation, up to its last stable offset, by a client of its own made
// with the shared client's options, so letters of transactions still open or aborted
// (a transactional reader's round) are not returned.
func ReadDeadLetters(ctx context.Context, c *cluster.Cluster, topic, projection string, version int) ([]DeadLetter, error) {
	if c == nil {
		return nil, errNilCluster
	}
	m, err := c.Admin().Metadata(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("consumer: metadata of %q: %w", topic, err)
	}
	td, ok := m.Topics[topic]
	if !ok || td.Err != nil {
		return nil, missingTopic(topic, "dead-letter")
	}
	var all []DeadLetter
	resolved := map[origin]bool{}
	for p := int32(0); p < int32(len(td.Partitions)); p++ {
		_, err := partition.ReadToEnd(ctx, c.Client(), topic, p, 0, func(r *kgo.Record) error {
			d, err := ParseDeadLetter(r)
			if err != nil || d.Projection != projection || d.Version != version {
				return nil
			}
			if d.Reason == ReasonResolved {
				resolved[d.origin()] = true
				return nil
			}
			all = append(all, d)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("consumer: reading the dead-letter topic: %w", err)
		}
	}
	var out []DeadLetter
	seen := map[origin]bool{}
	for _, d := range all {
		o := d.origin()
		if resolved[o] || seen[o] {
			continue
		}
		seen[o] = true
		out = append(out, d)
	}
	return out, nil
}

// errNilCluster is returned by the functions given a nil *cluster.Cluster.
var errNilCluster = errors.New("consumer: the cluster is nil")

func missingTopic(topic, what string) error {
	return fmt.Errorf("consumer: %s topic %q does not exist (kastor creates no topic implicitly: create it, for example with `kastor topics apply`)", what, topic)
}
