package pgsink_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/consumer/pgsink"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
)

// A projection of account balances into PostgreSQL. It needs a database
// (DATABASE_URL) and brokers holding the bank's events, so it is compiled, not run.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()

	// The read model's table; the offsets table is created by pgsink.New.
	if err := pgsink.Migrate(ctx, pool, `CREATE TABLE IF NOT EXISTS account_balances (
		account_id text PRIMARY KEY, balance bigint NOT NULL, version bigint NOT NULL, open boolean NOT NULL)`); err != nil {
		fmt.Println(err)
		return
	}
	sink, err := pgsink.New(ctx, pool, pgsink.Config[kastor.Event]{
		Name: "balances", Version: 1,
		Apply: func(ctx context.Context, tx pgx.Tx, ev kastor.Envelope[kastor.Event]) error {
			var err error
			switch e := ev.Event.(type) {
			case bank.Opened:
				_, err = tx.Exec(ctx, `INSERT INTO account_balances VALUES ($1, 0, $2, true)`, ev.AggregateID, ev.Version)
			case bank.Deposited:
				_, err = tx.Exec(ctx, `UPDATE account_balances SET balance = balance + $2, version = $3 WHERE account_id = $1`,
					ev.AggregateID, e.Amount, ev.Version)
			case bank.Withdrawn:
				_, err = tx.Exec(ctx, `UPDATE account_balances SET balance = balance - $2, version = $3 WHERE account_id = $1`,
					ev.AggregateID, e.Amount, ev.Version)
			case bank.Closed:
				_, err = tx.Exec(ctx, `UPDATE account_balances SET open = false, version = $2 WHERE account_id = $1`,
					ev.AggregateID, ev.Version)
			}
			return err
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// The service's client and its kastor cluster: the topics of namespace "shop".
	cl, err := kgo.NewClient(kgo.SeedBrokers("localhost:9092"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cl.Close()
	c, err := cluster.New(cl, "shop")
	if err != nil {
		fmt.Println(err)
		return
	}
	codecs, _ := bank.NewCodecs(nil)
	reader, err := consumer.New(c, consumer.Config[kastor.Event]{
		Name: "balances", Version: 1, // the same identity as the sink's
		AggregateTypes: []string{bank.Type}, // shop.bank.account.events
		Events:         codecs.Events,
	}, sink)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Run until interrupted: each batch of events and its offsets commit in one
	// PostgreSQL transaction; a restart resumes from the offsets in the database.
	if err := reader.Run(ctx); err != nil {
		fmt.Println(err)
	}
}
