// Package balance is the bank example's read side: a projection of account balances
// from the account events (examples/bank/account), in two forms that hold the same
// model:
//
//   - Postgres keeps it in the PostgreSQL table account_balances, written through the
//     sink of package consumer/pgsink: each batch of events and the reader's offsets
//     commit in one transaction, so each event counts once across crashes and restarts.
//   - Memory keeps it in the process (consumer.Memory), for tests and for services
//     whose instances each hold every account (consumer.Config.AllPartitions).
//
// Both are sinks for a consumer.Reader over the bank.account events topic:
//
//	proj, err := balance.NewPostgres(ctx, pool)
//	reader, err := consumer.New(c, consumer.Config[kastor.Event]{ // c: a *cluster.Cluster
//		Name: balance.Name, Version: balance.Version,
//		AggregateTypes: []string{account.Type}, Events: codecs.Events,
//	}, proj.Sink())
package balance

import (
	"fmt"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/examples/bank/account"
)

// Name and Version identify the projection: its consumer group, dead-letter topic and
// offsets rows. A reader and the Postgres sink must use the same ones.
const (
	Name    = "account-balances"
	Version = 1
)

// Balance is an account as the projection sees it.
type Balance struct {
	AccountID string
	Balance   int64
	// Version is the highest version of the account applied.
	Version int64
	// Open is false before the account is opened and after it is closed.
	Open bool
}

// Evolve applies an event to an account's balance. It fails for an event that cannot
// follow what the projection holds (a deposit to an account never opened, an account
// opened twice): the reader then parks the event on the dead-letter topic.
//
// Version only grows: an event replayed from the dead-letter topic after later events
// of its account does not move it back.
func Evolve(b Balance, exists bool, ev kastor.Envelope[kastor.Event]) (Balance, error) {
	if _, opened := ev.Event.(account.Opened); opened {
		if exists {
			return b, fmt.Errorf("account %s is already open", ev.AggregateID)
		}
		return Balance{AccountID: ev.AggregateID, Version: ev.Version, Open: true}, nil
	}
	if !exists {
		return b, fmt.Errorf("account %s was never opened (%s at version %d)", ev.AggregateID, ev.Type, ev.Version)
	}
	switch e := ev.Event.(type) {
	case account.Deposited:
		b.Balance += e.Amount
	case account.Withdrawn:
		b.Balance -= e.Amount
	case account.Closed:
		b.Open = false
	default:
		return b, fmt.Errorf("unknown event %T", ev.Event)
	}
	b.Version = max(b.Version, ev.Version)
	return b, nil
}
