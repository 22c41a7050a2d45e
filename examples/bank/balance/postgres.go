package balance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/consumer/pgsink"
	"github.com/kastor-dev/kastor/examples/bank/account"
)

// Schema creates the read model's table if it does not exist.
const Schema = `CREATE TABLE IF NOT EXISTS account_balances (
	account_id text    PRIMARY KEY,
	balance    bigint  NOT NULL,
	version    bigint  NOT NULL,
	open       boolean NOT NULL
)`

// Postgres is the projection into the PostgreSQL table account_balances (Schema).
type Postgres struct {
	pool *pgxpool.Pool
	sink *pgsink.Sink[kastor.Event]
}

// NewPostgres creates the table when missing and returns the projection, writing
// through pool. Run a reader named Name, version Version, with Sink as its sink.
func NewPostgres(ctx context.Context, pool *pgxpool.Pool) (*Postgres, error) {
	if err := pgsink.Migrate(ctx, pool, Schema); err != nil {
		return nil, err
	}
	sink, err := pgsink.New(ctx, pool, pgsink.Config[kastor.Event]{Name: Name, Version: Version, Apply: apply})
	if err != nil {
		return nil, err
	}
	return &Postgres{pool: pool, sink: sink}, nil
}

// Sink is the projection's sink, for consumer.New (and projection.Replay).
func (p *Postgres) Sink() *pgsink.Sink[kastor.Event] { return p.sink }

// apply writes one event, as Evolve would fold it, in the sink's transaction.
func apply(ctx context.Context, tx pgx.Tx, ev kastor.Envelope[kastor.Event]) error {
	const update = `UPDATE account_balances SET balance = balance + $2, version = GREATEST(version, $3), open = open AND $4
		WHERE account_id = $1`
	var delta int64
	stillOpen := true
	switch e := ev.Event.(type) {
	case account.Opened:
		tag, err := tx.Exec(ctx, `INSERT INTO account_balances VALUES ($1, 0, $2, true) ON CONFLICT DO NOTHING`, ev.AggregateID, ev.Version)
		if err == nil && tag.RowsAffected() == 0 {
			err = fmt.Errorf("account %s is already open", ev.AggregateID)
		}
		return err
	case account.Deposited:
		delta = e.Amount
	case account.Withdrawn:
		delta = -e.Amount
	case account.Closed:
		stillOpen = false
	default:
		return fmt.Errorf("unknown event %T", ev.Event)
	}
	tag, err := tx.Exec(ctx, update, ev.AggregateID, delta, ev.Version, stillOpen)
	if err == nil && tag.RowsAffected() == 0 {
		err = fmt.Errorf("account %s was never opened (%s at version %d)", ev.AggregateID, ev.Type, ev.Version)
	}
	return err
}

// Get returns an account's balance; false when the projection has no such account.
func (p *Postgres) Get(ctx context.Context, accountID string) (Balance, bool, error) {
	b := Balance{AccountID: accountID}
	err := p.pool.QueryRow(ctx, `SELECT balance, version, open FROM account_balances WHERE account_id = $1`, accountID).
		Scan(&b.Balance, &b.Version, &b.Open)
	if errors.Is(err, pgx.ErrNoRows) {
		return Balance{}, false, nil
	}
	if err != nil {
		return Balance{}, false, fmt.Errorf("balance: %w", err)
	}
	return b, true, nil
}

// All returns every account, by ID.
func (p *Postgres) All(ctx context.Context) ([]Balance, error) {
	rows, _ := p.pool.Query(ctx, `SELECT account_id, balance, version, open FROM account_balances ORDER BY account_id`)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Balance, error) {
		var b Balance
		err := row.Scan(&b.AccountID, &b.Balance, &b.Version, &b.Open)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("balance: %w", err)
	}
	return out, nil
}

// WaitForVersion waits until the projection holds version (or a later one) of the
// account, or ctx ends: read-your-writes after a command whose reply gave the version.
// It polls the table. An event parked on the dead-letter topic never arrives: bound ctx.
func (p *Postgres) WaitForVersion(ctx context.Context, accountID string, version int64) error {
	d := 5 * time.Millisecond
	for {
		b, ok, err := p.Get(ctx, accountID)
		if err == nil && ok && b.Version >= version {
			return nil
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		d = min(2*d, 200*time.Millisecond)
	}
}
