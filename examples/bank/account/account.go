// Package account is the bank example's domain: an account that opens, takes deposits,
// refuses withdrawals beyond its balance, and closes when empty. It is pure: no Kafka, no
// I/O; kastor runs it.
package account

import (
	"errors"
	"fmt"

	"github.com/kastor-dev/kastor"
)

// Type is the aggregate type name: topics are <ns>.bank.account.*.
const Type = "bank.account"

// State is an account's state.
type State struct {
	Owner   string
	Balance int64
	Open    bool
	Closed  bool
}

// Command is implemented by the account's commands.
type Command interface{ isCommand() }

// The commands.
type (
	Open     struct{ Owner string }
	Deposit  struct{ Amount int64 }
	Withdraw struct{ Amount int64 }
	Close    struct{}
)

func (Open) isCommand()     {}
func (Deposit) isCommand()  {}
func (Withdraw) isCommand() {}
func (Close) isCommand()    {}

// The events. EventType is the Avro schema's full name.
type (
	Opened    struct{ Owner string }
	Deposited struct{ Amount int64 }
	Withdrawn struct{ Amount int64 }
	Closed    struct{}
)

func (Opened) EventType() string    { return "bank.AccountOpened" }
func (Deposited) EventType() string { return "bank.MoneyDeposited" }
func (Withdrawn) EventType() string { return "bank.MoneyWithdrawn" }
func (Closed) EventType() string    { return "bank.AccountClosed" }

// Domain errors, returned by Decide; callers receive them inside *kastor.RejectedError.
var (
	ErrInsufficientFunds = errors.New("insufficient funds")
	ErrNotOpen           = errors.New("account is not open")
)

// Aggregate is the account aggregate type.
var Aggregate = &kastor.Aggregate[State, Command, kastor.Event]{
	Type:    Type,
	Initial: func(string) State { return State{} },
	Decide:  decide,
	Evolve:  evolve,
	Invariants: func(s State) error {
		if s.Balance < 0 {
			return fmt.Errorf("negative balance %d", s.Balance)
		}
		return nil
	},
}

func decide(s State, c Command) ([]kastor.Event, error) {
	switch c := c.(type) {
	case Open:
		if s.Open || s.Closed {
			return nil, errors.New("account already exists")
		}
		if c.Owner == "" {
			return nil, errors.New("owner is required")
		}
		return []kastor.Event{Opened(c)}, nil
	case Deposit:
		if !s.Open {
			return nil, ErrNotOpen
		}
		if c.Amount <= 0 {
			return nil, fmt.Errorf("deposit of %d: amount must be positive", c.Amount)
		}
		return []kastor.Event{Deposited(c)}, nil
	case Withdraw:
		if !s.Open {
			return nil, ErrNotOpen
		}
		if c.Amount <= 0 {
			return nil, fmt.Errorf("withdrawal of %d: amount must be positive", c.Amount)
		}
		if c.Amount > s.Balance {
			return nil, fmt.Errorf("%w: balance %d, withdrawal %d", ErrInsufficientFunds, s.Balance, c.Amount)
		}
		return []kastor.Event{Withdrawn(c)}, nil
	case Close:
		if !s.Open {
			return nil, ErrNotOpen
		}
		if s.Balance != 0 {
			return nil, fmt.Errorf("cannot close with a balance of %d", s.Balance)
		}
		return []kastor.Event{Closed{}}, nil
	}
	return nil, fmt.Errorf("unknown command %T", c)
}

func evolve(s State, e kastor.Event) State {
	switch e := e.(type) {
	case Opened:
		s.Owner, s.Open = e.Owner, true
	case Deposited:
		s.Balance += e.Amount
	case Withdrawn:
		s.Balance -= e.Amount
	case Closed:
		s.Open, s.Closed = false, true
	}
	return s
}
