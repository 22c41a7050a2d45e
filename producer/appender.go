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
// relies on automatic topic creation: a partition count is a sharding decision.
var ErrUnknownTopic = errors.New("producer: topic does not exist")

// ErrUnkeyed is returned (wrapped) for a record without a key: every kastor record is keyed
// by the aggregate (or caller) ID that selects its partition.
var ErrUnkeyed = errors.New("producer: record has no key")

// ErrFenced is returned (wrapped) when a newer producer with the same transactional ID
// took over: this appender can never commit again and must be closed.
var ErrFenced = errors.New("producer: fenced by a newer producer with the same transactional ID")

// Appender appends keyed records to kastor's topics. Every record goes to the partition
// that Kafka's default partitioner assigns its key (PartitionFor), computed here rather
// than left to the client, so a wrong partition count shows up as an error instead of as
// records in the wrong shard.
//
// An Appender is idempotent: acks=all and producer IDs with sequence numbers, so retries
// after a timeout or a leader change neither lose nor duplicate records and keep each
// partition's order. With Transactional it is also transactional (see Transact).
type Appender struct {
	cl     *kgo.Client
	adm    *kadm.Client
	txnID  string
	logger *slog.Logger

	mu         sync.Mutex
	partitions map[string]int32
	txnMu      sync.Mutex // one transaction at a time: Kafka allows one per producer
}

type config struct {
	txnID      string
	txnTimeout time.Duration
	linger     time.Duration
	logger     *slog.Logger
}

// Option configures New.
type Option func(*config)

// Transactional makes the appender transactional with the given transactional.id. Kafka
// keeps one producer epoch per ID: when a new producer initializes with the same ID, the
// broker aborts the old one's open transaction and rejects everything it sends afterwards
// (ErrFenced). Giving the writer of a shard a stable ID per shard is how a new owner
// fences a paused or partitioned old one.
func Transactional(id string) Option { return func(c *config) { c.txnID = id } }

// TransactionTimeout bounds how long a transaction may stay open before the broker aborts
// it (default 30s). A writer that dies mid-transaction holds back read_committed readers of
// its partitions for up to this long, so keep it short; it must not exceed the broker's
// transaction.max.timeout.ms.
func TransactionTimeout(d time.Duration) Option { return func(c *config) { c.txnTimeout = d } }

// Linger makes the producer wait up to d for more records before sending a batch
// (default 5ms): larger batches, fewer requests, a little more latency.
func Linger(d time.Duration) Option { return func(c *config) { c.linger = d } }

// Logger sends the client's warnings and errors to l (default: slog.Default()).
func Logger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// New returns an appender whose client is built from base's options (seed brokers, TLS,
// SASL, dialer, tuning) followed by kastor's own, which override them: acks=all, the
// manual partitioner (the appender places every record itself, see PartitionFor), the
// linger, the logger and, with Transactional, the transactional ID and timeout. base is
// only read, never used or closed; close the appender when done.
//
// Kafka's idempotent producer (producer IDs and sequence numbers) is franz-go's default
// and kastor relies on it: no duplicates and no reordering when a batch is retried. New
// refuses a base that disables it (franz-go has no option that enables it again), and a
// transactional base for an appender that is not Transactional.
func New(base *kgo.Client, opts ...Option) (*Appender, error) {
	if base == nil {
		return nil, errors.New("producer: nil base client")
	}
	cfg := config{txnTimeout: 30 * time.Second, linger: 5 * time.Millisecond, logger: slog.Default()}
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
	if cfg.txnID != "" {
		kopts = append(kopts, kgo.TransactionalID(cfg.txnID), kgo.TransactionTimeout(cfg.txnTimeout))
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	if err := checkGuarantees(cl, cfg.txnID); err != nil {
		cl.Close()
		return nil, err
	}
	return &Appender{cl: cl, adm: kadm.NewClient(cl), txnID: cfg.txnID, logger: cfg.logger, partitions: map[string]int32{}}, nil
}

// checkGuarantees refuses what cl inherited from the base client and kastor's own options
// do not override.
func checkGuarantees(cl *kgo.Client, txnID string) error {
	if v, _ := cl.OptValue(kgo.DisableIdempotentWrite).(bool); v {
		return errors.New("producer: the base client disables idempotent writes; kastor needs them (no duplicates, no reordering on retry)")
	}
	if txnID == "" {
		if vs := cl.OptValues(kgo.TransactionalID); len(vs) > 1 && vs[1] == true {
			return errors.New("producer: the base client is transactional; use producer.Transactional for a transactional appender")
		}
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
// order. On a transactional appender, call it inside Transact.
func (a *Appender) Append(ctx context.Context, recs ...*kgo.Record) error {
	if err := a.route(ctx, recs); err != nil {
		return err
	}
	return mapErr(a.cl.ProduceSync(ctx, recs...).FirstErr())
}

// Batch collects the records of one transaction.
type Batch struct {
	a   *Appender
	ctx context.Context

	mu   sync.Mutex
	errs []error
	wg   sync.WaitGroup
}

// Add starts producing records inside the transaction. Errors are collected and make the
// transaction abort.
func (b *Batch) Add(recs ...*kgo.Record) error {
	if err := b.a.route(b.ctx, recs); err != nil {
		return err
	}
	for _, r := range recs {
		b.wg.Add(1)
		b.a.cl.Produce(b.ctx, r, func(_ *kgo.Record, err error) {
			defer b.wg.Done()
			if err != nil {
				b.mu.Lock()
				b.errs = append(b.errs, err)
				b.mu.Unlock()
			}
		})
	}
	return nil
}

// Transact runs fn inside a Kafka transaction: the records fn adds become visible to
// read_committed readers all together when the transaction commits, or never. When fn
// returns an error, or any record fails, the transaction is aborted and the error
// returned. A transaction can span any topics and partitions.
func (a *Appender) Transact(ctx context.Context, fn func(*Batch) error) error {
	if a.txnID == "" {
		return errors.New("producer: Transact needs a transactional appender (producer.Transactional)")
	}
	a.txnMu.Lock()
	defer a.txnMu.Unlock()
	if err := a.cl.BeginTransaction(); err != nil {
		return mapErr(err)
	}
	b := &Batch{a: a, ctx: ctx}
	err := fn(b)
	b.wg.Wait()
	if err == nil {
		err = errors.Join(b.errs...)
	}
	if err != nil {
		if abortErr := a.abort(ctx); abortErr != nil {
			return errors.Join(mapErr(err), abortErr)
		}
		return mapErr(err)
	}
	if err := a.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		err = mapErr(err)
		if !errors.Is(err, ErrFenced) {
			// A failed commit leaves the transaction to abort; a fenced producer cannot.
			_ = a.abort(ctx)
		}
		return fmt.Errorf("producer: commit: %w", err)
	}
	return nil
}

func (a *Appender) abort(ctx context.Context) error {
	if err := a.cl.AbortBufferedRecords(ctx); err != nil {
		return mapErr(err)
	}
	if err := a.cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		return fmt.Errorf("producer: abort: %w", mapErr(err))
	}
	return nil
}

// mapErr turns Kafka's fencing errors into ErrFenced, keeping the original in the chain.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) {
		return fmt.Errorf("%w: %w", ErrFenced, err)
	}
	return err
}
