package main

import (
	"context"
	"fmt"
	"runtime/pprof"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/consumer/pgsink"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/pgtest"
)

// postgresProjection runs a reader with the PostgreSQL sink over the preloaded events:
// each event upserts its account's balance row, and each batch commits with the reader's
// offsets. Events per second until every event is applied, checked against the table.
func postgresProjection(ctx context.Context, c *kafkatest.Cluster, db *pgtest.DB, ts topicSet, p params, ends map[consumer.TopicPartition]int64, round int) (float64, error) {
	dsn, err := db.CreateDatabase(ctx, fmt.Sprintf("%s_%d", ts.ns, round))
	if err != nil {
		return 0, err
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	if err := pgsink.Migrate(ctx, pool, `CREATE TABLE balances (account_id text PRIMARY KEY, balance bigint NOT NULL, version bigint NOT NULL)`); err != nil {
		return 0, err
	}
	const name = "bench-pg"
	sink, err := pgsink.New(ctx, pool, pgsink.Config[deposited]{Name: name, Version: 1,
		// Queued: a batch's upserts go in one round trip (pgx.Batch), in the transaction
		// that records the offsets.
		Queue: func(b *pgx.Batch, ev kastor.Envelope[deposited]) error {
			b.Queue(`INSERT INTO balances VALUES ($1, $2, $3)
				ON CONFLICT (account_id) DO UPDATE SET balance = balances.balance + $2, version = $3`,
				ev.AggregateID, ev.Event.Amount, ev.Version)
			return nil
		}})
	if err != nil {
		return 0, err
	}
	collect()
	start := time.Now()
	r, err := consumer.New(ts.kc, consumer.Config[deposited]{
		Name: name, Version: 1, AggregateTypes: []string{accountAggregate.Type},
		Events: avroEvents, Group: fmt.Sprintf("%s-pg-%d", ts.ns, round),
	}, sink)
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	pprof.Do(rctx, pprof.Labels("run", "postgres"), func(rctx context.Context) {
		go func() { errc <- r.Run(rctx) }()
	})
	for deadline := time.Now().Add(10 * time.Minute); ; {
		done := true
		for tp, end := range ends {
			stored, err := sink.StoredOffsets(ctx, tp.Topic)
			if err != nil {
				return 0, err
			}
			if stored[tp.Partition] < end {
				done = false
				break
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("postgres projection: not caught up after 10 minutes")
		}
		select {
		case err := <-errc:
			return 0, fmt.Errorf("postgres projection stopped: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	took := time.Since(start)
	cancel()
	if err := <-errc; err != nil {
		return 0, err
	}
	var sum int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(balance), 0) FROM balances`).Scan(&sum); err != nil {
		return 0, err
	}
	if sum != int64(p.events) {
		return 0, fmt.Errorf("postgres projection: balances sum to %d, want %d", sum, p.events)
	}
	return float64(p.events) / took.Seconds(), nil
}
