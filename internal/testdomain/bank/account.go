// Package bank is the library's own test domain: a bank account that opens, takes
// deposits, refuses withdrawals beyond its balance and closes when empty, with its Avro
// codecs. The library's tests run it on the gateway, read its events with consumers and
// drive it from the CLI.
//
// It is the bank example's account (examples/bank/account) kept apart from it, so that
// the example can change for its readers without changing the library's tests: the same
// aggregate type "bank.account", Go types, rules and Avro schemas, record names and
// fingerprints included ("bank.OpenAccount", "bank.MoneyDeposited", ...).
package bank

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

// Open opens an account for Owner (Avro record bank.OpenAccount).
type Open struct{ Owner string }

// Deposit adds a positive Amount to an open account (bank.Deposit).
type Deposit struct{ Amount int64 }

// Withdraw takes a positive Amount, at most the balance, from an open account
// (bank.Withdraw).
type Withdraw struct{ Amount int64 }

// Close closes an open account whose balance is zero (bank.CloseAccount).
type Close struct{}

func (Open) isCommand()     {}
func (Deposit) isCommand()  {}
func (Withdraw) isCommand() {}
func (Close) isCommand()    {}

// Opened is the event of Open.
type Opened struct{ Owner string }

// Deposited is the event of Deposit.
type Deposited struct{ Amount int64 }

// Withdrawn is the event of Withdraw.
type Withdrawn struct{ Amount int64 }

// Closed is the event of Close.
type Closed struct{}

// EventType is the Avro record's full name, bank.AccountOpened.
func (Opened) EventType() string { return "bank.AccountOpened" }

// EventType is the Avro record's full name, bank.MoneyDeposited.
func (Deposited) EventType() string { return "bank.MoneyDeposited" }

// EventType is the Avro record's full name, bank.MoneyWithdrawn.
func (Withdrawn) EventType() string { return "bank.MoneyWithdrawn" }

// EventType is the Avro record's full name, bank.AccountClosed.
func (Closed) EventType() string { return "bank.AccountClosed" }

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

// Refusing returns a copy of Aggregate whose Decide first asks refuse: a non-nil error
// refuses the command, as Decide's own refusals do. Tests use it to make an account
// refuse deposits for a while, such as a saga's compensation that keeps failing until
// an operator fixes the cause.
func Refusing(refuse func(s State, c Command) error) *kastor.Aggregate[State, Command, kastor.Event] {
	agg := *Aggregate
	agg.Decide = func(s State, c Command) ([]kastor.Event, error) {
		if err := refuse(s, c); err != nil {
			return nil, err
		}
		return decide(s, c)
	}
	return &agg
}
