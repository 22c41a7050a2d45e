package gateway_test

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kastor-dev/kastor"
)

// The bank account of the tests. Commands and events are interfaces with concrete types;
// jsonCodec maps type names to them.

type account struct {
	Open    bool  `json:"open"`
	Balance int64 `json:"balance"`
}

type command interface{ commandType() string }

type (
	openAccount struct{}
	deposit     struct {
		Amount int64 `json:"amount"`
	}
	withdraw struct {
		Amount int64 `json:"amount"`
	}
	depositTwice struct {
		Amount int64 `json:"amount"`
	}
)

func (openAccount) commandType() string  { return "bank.OpenAccount" }
func (deposit) commandType() string      { return "bank.Deposit" }
func (withdraw) commandType() string     { return "bank.Withdraw" }
func (depositTwice) commandType() string { return "bank.DepositTwice" }

type (
	opened    struct{}
	deposited struct {
		Amount int64 `json:"amount"`
	}
	withdrawn struct {
		Amount int64 `json:"amount"`
	}
)

func (opened) EventType() string    { return "bank.AccountOpened" }
func (deposited) EventType() string { return "bank.MoneyDeposited" }
func (withdrawn) EventType() string { return "bank.MoneyWithdrawn" }

var errInsufficientFunds = errors.New("insufficient funds")

func bankAggregate() *kastor.Aggregate[account, command, kastor.Event] {
	return &kastor.Aggregate[account, command, kastor.Event]{
		Type:    "bank.account",
		Initial: func(string) account { return account{} },
		Decide: func(s account, c command) ([]kastor.Event, error) {
			switch c := c.(type) {
			case openAccount:
				if s.Open {
					return nil, errors.New("account already open")
				}
				return []kastor.Event{opened{}}, nil
			case deposit:
				if !s.Open {
					return nil, errors.New("account not open")
				}
				return []kastor.Event{deposited(c)}, nil
			case depositTwice:
				return []kastor.Event{deposited(c), deposited(c)}, nil
			case withdraw:
				if c.Amount > s.Balance {
					return nil, fmt.Errorf("%w: balance %d, asked %d", errInsufficientFunds, s.Balance, c.Amount)
				}
				return []kastor.Event{withdrawn(c)}, nil
			}
			return nil, fmt.Errorf("unknown command %T", c)
		},
		Evolve: func(s account, e kastor.Event) account {
			switch e := e.(type) {
			case opened:
				s.Open = true
			case deposited:
				s.Balance += e.Amount
			case withdrawn:
				s.Balance -= e.Amount
			}
			return s
		},
		Invariants: func(s account) error {
			if s.Balance > 1_000_000 {
				return errors.New("balance above the account limit")
			}
			return nil
		},
	}
}

var commandCodec = ifaceCodec[command](func(c command) string { return c.commandType() }, map[string]func([]byte) (command, error){
	"bank.OpenAccount":  unmarshal[openAccount, command],
	"bank.Deposit":      unmarshal[deposit, command],
	"bank.Withdraw":     unmarshal[withdraw, command],
	"bank.DepositTwice": unmarshal[depositTwice, command],
})

var eventCodec = ifaceCodec[kastor.Event](func(e kastor.Event) string { return e.EventType() }, map[string]func([]byte) (kastor.Event, error){
	"bank.AccountOpened":  unmarshal[opened, kastor.Event],
	"bank.MoneyDeposited": unmarshal[deposited, kastor.Event],
	"bank.MoneyWithdrawn": unmarshal[withdrawn, kastor.Event],
})

var stateCodec = ifaceCodec[account](func(account) string { return "bank.Account" }, map[string]func([]byte) (account, error){
	"bank.Account": unmarshal[account, account],
})

func unmarshal[T any, I any](b []byte) (I, error) {
	var t T
	err := json.Unmarshal(b, &t)
	return any(t).(I), err
}

type icodec[I any] struct {
	name  func(I) string
	types map[string]func([]byte) (I, error)
}

func ifaceCodec[I any](name func(I) string, types map[string]func([]byte) (I, error)) kastor.Codec[I] {
	return icodec[I]{name, types}
}

func (c icodec[I]) Encode(v I) (kastor.Encoded, error) {
	b, err := json.Marshal(v)
	return kastor.Encoded{Type: c.name(v), Fingerprint: 1, Data: b}, err
}

func (c icodec[I]) Decode(e kastor.Encoded) (I, error) {
	var zero I
	f, ok := c.types[e.Type]
	if !ok {
		return zero, fmt.Errorf("unknown type %q", e.Type)
	}
	return f(e.Data)
}
