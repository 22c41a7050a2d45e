package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kastor-dev/kastor"
)

// The bank account every runner implements the same way: a deposit command yields one
// MoneyDeposited event and a reply.

type account struct {
	Balance int64 `json:"balance"`
}

type deposit struct {
	Amount int64 `json:"amount"`
}

type deposited struct {
	Amount int64 `json:"amount"`
}

func (deposited) EventType() string { return "bank.MoneyDeposited" }

var accountAggregate = &kastor.Aggregate[account, deposit, deposited]{
	Type:    "bank.account",
	Initial: func(string) account { return account{} },
	Decide: func(s account, c deposit) ([]deposited, error) {
		if c.Amount <= 0 {
			return nil, errors.New("amount must be positive")
		}
		return []deposited{deposited(c)}, nil
	},
	Evolve: func(s account, e deposited) account { s.Balance += e.Amount; return s },
}

// jsonCodec is the codec of the benchmark's payloads.
type jsonCodec[T any] struct{ typ string }

func (c jsonCodec[T]) Encode(v T) (kastor.Encoded, error) {
	b, err := json.Marshal(v)
	return kastor.Encoded{Type: c.typ, Fingerprint: 1, Data: b}, err
}

func (c jsonCodec[T]) Decode(e kastor.Encoded) (T, error) {
	var v T
	if e.Type != c.typ {
		return v, fmt.Errorf("unknown type %q", e.Type)
	}
	err := json.Unmarshal(e.Data, &v)
	return v, err
}
