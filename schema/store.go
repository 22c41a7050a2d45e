package schema

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/internal/brokerwait"
)

// Topic is the default schemas topic: compacted, one partition, shared by every kastor
// application of a cluster. Key: the fingerprint as 16 hexadecimal digits; value: the
// schema JSON as written (defaults and aliases included); header kastor.schema.type: the
// schema's full name. A key never changes value (it is a hash of the schema), so
// compaction only removes duplicates.
const Topic = "_kastor.schemas"

// Store reads and writes a schemas topic with a franz-go client.
//
// Reads are raw fetches of the topic's partitions up to their last stable offset
// (read_committed), so the client may be any client (a group consumer, a transactional
// producer): Load neither joins a group nor changes what the client consumes. Writes are
// plain produce calls, so Publish needs a client that is not transactional; franz-go's
// default producer is idempotent with acks=all.
//
// Load and Publish wait out brokers that are down or restarting, partitions electing a
// leader and the like until their context ends, logging what they wait for: a service
// starting during a rolling restart or a broker crash starts once the cluster serves the
// topic again. Bound ctx to give up sooner. Errors that time does not cure (a missing
// topic, an authorization failure, a bad record) are returned at once.
type Store struct {
	Client *kgo.Client
	// Topic is the schemas topic; empty means Topic ("_kastor.schemas").
	Topic string
	// Logger receives the waits for the cluster; nil means slog.Default().
	Logger *slog.Logger
}

// Load reads _kastor.schemas to its end and adds every schema to reg. See Store.Load.
func Load(ctx context.Context, cl *kgo.Client, reg *Registry) error {
	return Store{Client: cl}.Load(ctx, reg)
}

// Publish checks schemas against _kastor.schemas and writes the new ones. See
// Store.Publish.
func Publish(ctx context.Context, cl *kgo.Client, reg *Registry, schemas ...*Schema) error {
	return Store{Client: cl}.Publish(ctx, reg, schemas...)
}

func (s Store) topic() string {
	if s.Topic == "" {
		return Topic
	}
	return s.Topic
}

// Load reads the schemas topic to its end (read_committed) and adds every schema to reg,
// in topic order, waiting for the cluster as the Store says. A missing topic is a
// *NoTopicError. A record that is not a valid schema under its fingerprint does not stop
// the load: the others are added, and the returned error joins one
// *kastor.UndecodableError per bad record.
func (s Store) Load(ctx context.Context, reg *Registry) error {
	recs, err := s.readAll(ctx)
	if err != nil {
		return err
	}
	var bad []error
	for _, r := range recs {
		sc, err := schemaFromRecord(r)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		if sc != nil {
			reg.addPublished(sc)
		}
	}
	return errors.Join(bad...)
}

// schemaFromRecord parses one schemas-topic record; a tombstone gives nil.
func schemaFromRecord(r *kgo.Record) (*Schema, error) {
	if r.Value == nil {
		return nil, nil
	}
	typeName := ""
	for _, h := range r.Headers {
		if h.Key == HeaderSchemaType {
			typeName = string(h.Value)
		}
	}
	fail := func(fp Fingerprint, err error) error {
		return &kastor.UndecodableError{What: "schema", Type: typeName, Fingerprint: uint64(fp), Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Err: err}
	}
	fp, err := ParseFingerprint(string(r.Key))
	if err != nil {
		return nil, fail(0, fmt.Errorf("key: %w", err))
	}
	sc, err := Parse(string(r.Value))
	if err != nil {
		return nil, fail(fp, err)
	}
	if sc.Fingerprint() != fp {
		return nil, fail(fp, fmt.Errorf("the schema's fingerprint is %s, not its key", sc.Fingerprint()))
	}
	if typeName != "" && typeName != sc.Name() {
		return nil, fail(fp, fmt.Errorf("header %s is %q but the schema is %s", HeaderSchemaType, typeName, sc.Name()))
	}
	return sc, nil
}

// Publish makes the schemas topic hold schemas, refusing any that would break readers.
//
// It loads the topic and checks each schema not yet in it against every schema of its
// type found there and before it in this call (Registry.CheckCompatible, with reg's
// upcasters). If any check fails, nothing is written and the error names the type and the
// field of every problem. A schema whose fingerprint is already published is not written
// again, but is still checked when it differs from the published one in what the
// fingerprint ignores (a decimal's scale, say). New schemas are acknowledged before
// Publish returns. The check guards a deployment but does not lock the topic: two services
// publishing new schemas of one type at once are each checked against what they loaded.
//
// If reg is not nil it receives every schema of the topic and the new ones, published
// history first: the registry a service decodes with. The same errors as Load apply to
// the topic's records, but a bad record fails Publish, since a registry with a hole could
// let an incompatible schema through.
func (s Store) Publish(ctx context.Context, reg *Registry, schemas ...*Schema) error {
	have := NewRegistry()
	if reg != nil {
		reg.copyUpcasters(have)
	}
	if err := s.Load(ctx, have); err != nil {
		return err
	}
	var problems []error
	var fresh []*Schema
	for _, sc := range schemas {
		if prev, ok := have.Schema(sc.Fingerprint()); ok {
			if !identical(prev.root, sc.root, map[[2]*node]bool{}) {
				if err := CheckBackward(prev, sc); err != nil {
					problems = append(problems, err)
				}
			}
			continue
		}
		if err := have.CheckCompatible(sc); err != nil {
			problems = append(problems, err)
			continue
		}
		have.Add(sc)
		fresh = append(fresh, sc)
	}
	if len(problems) > 0 {
		return fmt.Errorf("schema: nothing published to %s: %w", s.topic(), errors.Join(problems...))
	}
	if len(fresh) > 0 {
		what := fmt.Sprintf("%s to acknowledge %d new schemas", s.topic(), len(fresh))
		err := brokerwait.Do(ctx, s.Logger, what, func(ctx context.Context) error {
			// franz-go waits for a partition without a leader silently: bounding each
			// attempt puts the wait in the log. A schema written twice is harmless (same
			// key and value in a compacted topic).
			actx, cancel := context.WithTimeout(ctx, produceAttempt)
			defer cancel()
			return s.Client.ProduceSync(actx, s.records(fresh)...).FirstErr()
		})
		if err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				return &NoTopicError{Topic: s.topic()}
			}
			return fmt.Errorf("schema: publishing to %s: %w", s.topic(), err)
		}
	}
	if reg != nil {
		// Schemas() lists each type oldest first, which is the order History needs.
		for _, sc := range have.Schemas() {
			reg.addPublished(sc)
		}
	}
	return nil
}

// produceAttempt bounds one attempt of Publish to write its schemas; a healthy cluster
// acknowledges in milliseconds, a leader election takes seconds.
const produceAttempt = 10 * time.Second

// records are the schemas-topic records of schemas, made afresh for each produce attempt
// (franz-go owns a record until its promise is called).
func (s Store) records(schemas []*Schema) []*kgo.Record {
	recs := make([]*kgo.Record, len(schemas))
	for i, sc := range schemas {
		recs[i] = &kgo.Record{
			Topic:   s.topic(),
			Key:     []byte(sc.Fingerprint().String()),
			Value:   []byte(sc.JSON()),
			Headers: []kgo.RecordHeader{{Key: HeaderSchemaType, Value: []byte(sc.Name())}},
		}
	}
	return recs
}

// partitionInfo is what a fetch of one partition needs.
type partitionInfo struct {
	partition int32
	leader    int32
	epoch     int32
}

// readAll fetches every record of the topic up to the last stable offsets at the start.
// A transient failure anywhere starts the read over from the metadata, which names the
// leader that replaced one that died or moved; the topic is small.
func (s Store) readAll(ctx context.Context) ([]*kgo.Record, error) {
	var out []*kgo.Record
	err := brokerwait.Do(ctx, s.Logger, s.topic()+" to be readable", func(ctx context.Context) error {
		var err error
		out, err = s.readOnce(ctx)
		return err
	})
	return out, err
}

func (s Store) readOnce(ctx context.Context) ([]*kgo.Record, error) {
	topicID, parts, err := s.metadata(ctx)
	if err != nil {
		return nil, err
	}
	var out []*kgo.Record
	for _, p := range parts {
		start, err := s.listOffset(ctx, p.partition, -2)
		if err != nil {
			return nil, err
		}
		end, err := s.listOffset(ctx, p.partition, -1)
		if err != nil {
			return nil, err
		}
		recs, err := s.fetchRange(ctx, topicID, p, start, end)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	return out, nil
}

// lagging marks as transient an error saying that a broker does not know the topic, once
// the metadata listed it: brokers learn of a topic at slightly different moments, and the
// next attempt's metadata tells whether it is really gone.
func lagging(err error) error {
	if errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID) {
		return brokerwait.Retry(err)
	}
	return err
}

// metadata returns the topic's ID and its partitions with their leaders. A topic the
// cluster does not have is a *NoTopicError; a partition without a live leader (one being
// elected, or whose broker just died) is a transient error.
func (s Store) metadata(ctx context.Context) ([16]byte, []partitionInfo, error) {
	topic := s.topic()
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, t)
	req.AllowAutoTopicCreation = false
	resp, err := req.RequestWith(ctx, s.Client)
	if err != nil {
		return [16]byte{}, nil, fmt.Errorf("schema: metadata for %s: %w", topic, err)
	}
	if len(resp.Topics) != 1 {
		return [16]byte{}, nil, brokerwait.Retry(fmt.Errorf("schema: metadata for %s: %d topics in the answer", topic, len(resp.Topics)))
	}
	rt := resp.Topics[0]
	if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return [16]byte{}, nil, &NoTopicError{Topic: topic}
		}
		return [16]byte{}, nil, fmt.Errorf("schema: metadata for %s: %w", topic, err)
	}
	live := map[int32]bool{}
	for _, b := range resp.Brokers {
		live[b.NodeID] = true
	}
	var parts []partitionInfo
	for _, p := range rt.Partitions {
		// REPLICA_NOT_AVAILABLE says a follower is down: the leader still serves.
		err := kerr.ErrorForCode(p.ErrorCode)
		switch {
		case err != nil && !errors.Is(err, kerr.ReplicaNotAvailable):
			return [16]byte{}, nil, fmt.Errorf("schema: metadata for %s partition %d: %w", topic, p.Partition, err)
		case p.Leader < 0 || !live[p.Leader]:
			return [16]byte{}, nil, brokerwait.Retry(fmt.Errorf("schema: %s partition %d has no live leader (leader %d)", topic, p.Partition, p.Leader))
		}
		parts = append(parts, partitionInfo{partition: p.Partition, leader: p.Leader, epoch: p.LeaderEpoch})
	}
	if len(parts) == 0 {
		return [16]byte{}, nil, brokerwait.Retry(fmt.Errorf("schema: metadata for %s lists no partitions", topic))
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].partition < parts[j].partition })
	return rt.TopicID, parts, nil
}

// listOffset returns the earliest offset (ts -2) or the last stable offset (ts -1, under
// read_committed) of a partition.
func (s Store) listOffset(ctx context.Context, partition int32, ts int64) (int64, error) {
	topic := s.topic()
	req := kmsg.NewPtrListOffsetsRequest()
	req.IsolationLevel = 1
	t := kmsg.NewListOffsetsRequestTopic()
	t.Topic = topic
	p := kmsg.NewListOffsetsRequestTopicPartition()
	p.Partition, p.Timestamp = partition, ts
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, s.Client)
	if err != nil {
		return 0, fmt.Errorf("schema: listing offsets of %s: %w", topic, err)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.Partition != partition {
				continue
			}
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return 0, lagging(fmt.Errorf("schema: listing offsets of %s partition %d: %w", topic, partition, err))
			}
			return rp.Offset, nil
		}
	}
	return 0, brokerwait.Retry(fmt.Errorf("schema: no offsets for %s partition %d in the answer", topic, partition))
}

// fetchRange reads [start, end) of one partition with read_committed fetches to its
// leader; kgo.ProcessFetchPartition decompresses batches, drops aborted transactions and
// control records, and says where the next fetch starts.
func (s Store) fetchRange(ctx context.Context, topicID [16]byte, p partitionInfo, start, end int64) ([]*kgo.Record, error) {
	topic := s.topic()
	var out []*kgo.Record
	off := start
	decompressor := kgo.DefaultDecompressor()
	for off < end {
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis = 500
		req.MinBytes = 1
		req.MaxBytes = 64 << 20
		req.IsolationLevel = 1
		t := kmsg.NewFetchRequestTopic()
		t.Topic, t.TopicID = topic, topicID
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = p.partition, off, 8<<20
		fp.CurrentLeaderEpoch = p.epoch
		t.Partitions = append(t.Partitions, fp)
		req.Topics = append(req.Topics, t)
		resp, err := req.RequestWith(ctx, s.Client.Broker(int(p.leader)))
		if err != nil {
			return nil, fmt.Errorf("schema: fetching %s partition %d from broker %d: %w", topic, p.partition, p.leader, err)
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return nil, fmt.Errorf("schema: fetching %s: %w", topic, err)
		}
		progressed := false
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				rp := &resp.Topics[i].Partitions[j]
				if rp.Partition != p.partition {
					continue
				}
				res, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
					Offset:         off,
					IsolationLevel: kgo.ReadCommitted(),
					Topic:          topic,
					Partition:      p.partition,
				}, rp, decompressor, nil)
				if res.Err != nil {
					// A leader that moved (NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH) is
					// transient: readAll starts over from the metadata.
					err := fmt.Errorf("schema: fetching %s partition %d at offset %d: %w", topic, p.partition, off, res.Err)
					if errors.Is(res.Err, kerr.OffsetOutOfRange) {
						// The log start moved since it was listed.
						err = brokerwait.Retry(err)
					}
					return nil, lagging(err)
				}
				out = append(out, res.Records...)
				if next > off {
					off, progressed = next, true
				}
			}
		}
		if !progressed {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("schema: fetching %s partition %d at offset %d of %d: %w", topic, p.partition, off, end, err)
			}
		}
	}
	return out, nil
}
