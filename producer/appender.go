package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/internal/brokerwait"
	"github.com/kastor-dev/kastor/internal/kgolog"
)

// ErrUnknownTopic is returned (wrapped) when a record's topic does not exist. kastor never
// relies on automatic topic creation: a partition count is a sharding decision (see
// decision 5).
var ErrUnknownTopic = errors.New("producer: topic does not exist")

// ErrUnkeyed is returned (wrapped) for a record without a key: every kastor record is keyed
// by the aggregate (or caller) ID that selects its partition.
var ErrUnkeyed = errors.New("producer: record has no key")

// Appender appends keyed records to kastor's topics. Every record goes to the partition
// that Kafka's default partitioner assigns its key (PartitionFor), computed here rather
// than left to the client, so that a partition count kastor does not expect shows up as an
// error instead of as records in the wrong shard (see decision 7).
//
// An Appender is idempotent: acks=all and producer IDs with sequence numbers, so retries
// after a timeout or a leader change neither lose nor duplicate records and keep each
// partition's order. It is not transactional: kastor's transactions are the gateway's and
// the readers', over franz-go's group-transactional sessions.
type Appender struct {
	cl     *kgo.Client
	adm    *kadm.Client
	logger *slog.Logger

	mu         sync.Mutex
	partitions map[string]int32
}

type config struct {
	linger time.Duration
	logger *slog.Logger
}

// Option configures New.
type Option func(*config)

// Linger sets how long the producer waits for more records before sending a batch,
// overriding the default 5ms: larger batches and fewer requests, for a little latency.
//
// This corresponds to the Java producer's linger.ms setting.
func Linger(d time.Duration) Option { return func(c *config) { c.linger = d } }

// Logger sends the client's warnings and errors to l, overriding the default
// slog.Default(). franz-go's Info lines (one per connection, say) are not passed on.
func Logger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// New returns an appender whose client is built from base's options (seed brokers, TLS,
// SASL, dialer, tuning) followed by kastor's own, which override them: acks=all, the
// manual partitioner (the appender places every record itself, see PartitionFor), the
// linger, the logger, and retries 100 ms to 1 s apart with metadata refreshed at most
// 1 s apart, so that a moved leader is found within a second (see decisions 29 and 30).
// base is only read, never used or closed; close the appender when done.
//
// Kafka's idempotent producer (producer IDs and sequence numbers) is franz-go's default
// and kastor relies on it: no duplicates and no reordering when a batch is retried. New
// refuses a base that disables it (franz-go has no option that enables it again), and a
// transactional base: its records would wait for a transaction the appender never ends.
func New(base *kgo.Client, opts ...Option) (*Appender, error) {
	if base == nil {
		return nil, errors.New("producer: nil base client")
	}
	cfg := config{linger: 5 * time.Millisecond, logger: slog.Default()}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	kopts := cluster.Options(base,
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(cfg.linger),
		kgo.WithLogger(kgolog.New(cfg.logger.With("component", "kastor.producer"))),
	)
	kopts = append(kopts, brokerwait.ClientOptions()...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	if err := checkGuarantees(cl); err != nil {
		cl.Close()
		return nil, err
	}
	return &Appender{cl: cl, adm: kadm.NewClient(cl), logger: cfg.logger, partitions: map[string]int32{}}, nil
}

// checkGuarantees refuses what cl inherited from the base client and kastor's own options
// do not override.
func checkGuarantees(cl *kgo.Client) error {
	if v, _ := cl.OptValue(kgo.DisableIdempotentWrite).(bool); v {
		return errors.New("producer: the base client disables idempotent writes; kastor needs them (no duplicates, no reordering on retry)")
	}
	if vs := cl.OptValues(kgo.TransactionalID); len(vs) > 1 && vs[1] == true {
		return errors.New("producer: the base client is transactional; an appender is not (it never begins or ends a transaction)")
	}
	return nil
}

// Client returns the underlying franz-go client, for the operations an Appender does not
// wrap. Producing through it bypasses the partition check.
func (a *Appender) Client() *kgo.Client { return a.cl }

// Close flushes nothing and closes the client: append synchronously before closing.
func (a *Appender) Close() { a.cl.Close() }

// partitionCount returns topic's partition count, from a cache filled from metadata.
func (a *Appender) partitionCount(ctx context.Context, topic string) (int32, error) {
	a.mu.Lock()
	n, ok := a.partitions[topic]
	a.mu.Unlock()
	if ok {
		return n, nil
	}
	m, err := a.adm.Metadata(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("producer: metadata of %q: %w", topic, err)
	}
	td, ok := m.Topics[topic]
	if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
		return 0, fmt.Errorf("%w: %q (create it with `kastor topics apply`)", ErrUnknownTopic, topic)
	}
	if td.Err != nil {
		return 0, fmt.Errorf("producer: topic %q: %w", topic, td.Err)
	}
	n = int32(len(td.Partitions))
	a.mu.Lock()
	a.partitions[topic] = n
	a.mu.Unlock()
	return n, nil
}

// route sets each record's partition from its key.
func (a *Appender) route(ctx context.Context, recs []*kgo.Record) error {
	for _, r := range recs {
		if r.Key == nil {
			return fmt.Errorf("%w (topic %q)", ErrUnkeyed, r.Topic)
		}
		n, err := a.partitionCount(ctx, r.Topic)
		if err != nil {
			return err
		}
		r.Partition = PartitionFor(r.Key, n)
	}
	return nil
}

// Append writes records and waits until every one is acknowledged by all in-sync
// replicas, or returns the errors of those that were not. Records of one key keep their
// order.
func (a *Appender) Append(ctx context.Context, recs ...*kgo.Record) error {
	if err := a.route(ctx, recs); err != nil {
		return err
	}
	return a.cl.ProduceSync(ctx, recs...).FirstErr()
}
