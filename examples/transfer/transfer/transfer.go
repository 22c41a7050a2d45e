// Package transfer is the transfer example's domain: a request to move money between two
// bank accounts (an aggregate of its own), and the saga that carries it out over the
// accounts of the bank example (package account): debit the source, credit the target;
// if the credit is refused, or has no outcome within its deadline, refund the source. It
// is pure: no Kafka, no I/O; kastor runs it.
package transfer

import (
	"errors"
	"fmt"
	"time"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/examples/bank/account"
	"github.com/kastor-dev/kastor/saga"
)

// RequestType is the aggregate type of transfer requests: topics <ns>.bank.transfer-request.*.
const RequestType = "bank.transfer-request"

// SagaType is the saga type: topics <ns>.saga.bank.transfer.*.
const SagaType = "bank.transfer"

// Request asks for a transfer; its aggregate ID is the transfer's ID.
type Request struct {
	From, To string
	Amount   int64
}

// Requested is the event of an accepted request. EventType is the Avro record's full name.
type Requested struct {
	From, To string
	Amount   int64
}

func (Requested) EventType() string { return "bank.TransferRequested" }

// RequestState is a request's state: whether it was made.
type RequestState struct{ Requested bool }

// Aggregate is the transfer request aggregate type: a request is accepted once.
var Aggregate = &kastor.Aggregate[RequestState, Request, kastor.Event]{
	Type:    RequestType,
	Initial: func(string) RequestState { return RequestState{} },
	Decide: func(s RequestState, r Request) ([]kastor.Event, error) {
		switch {
		case s.Requested:
			return nil, errors.New("the transfer was requested already")
		case r.Amount <= 0:
			return nil, fmt.Errorf("amount %d: must be positive", r.Amount)
		case r.From == "" || r.To == "" || r.From == r.To:
			return nil, fmt.Errorf("from %q to %q: two different accounts are required", r.From, r.To)
		}
		return []kastor.Event{Requested(r)}, nil
	},
	Evolve: func(s RequestState, _ kastor.Event) RequestState { s.Requested = true; return s },
}

// Data is what the saga knows of a transfer.
type Data struct {
	From, To string
	Amount   int64
}

// Saga returns the transfer saga: debit the source (Withdraw), then credit the target
// (Deposit); a refused or timed-out credit refunds the source (Deposit). timeout bounds
// the wait for each step's outcome and skew is the margin for the clocks of the saga and
// the gateways (saga.Orchestration).
func Saga(timeout, skew time.Duration) (*saga.Definition[saga.Progress[Data], account.Command, kastor.Event], error) {
	acct := func(id string, c account.Command) saga.Send[account.Command] {
		return saga.Send[account.Command]{AggregateType: account.Type, AggregateID: id, Command: c}
	}
	return saga.Orchestrate(saga.Orchestration[Data, account.Command, kastor.Event]{
		Type: SagaType,
		// A transfer's instance ID is its request's ID.
		Correlate: func(ev kastor.Envelope[kastor.Event]) (string, bool, error) {
			if _, ok := ev.Event.(Requested); !ok {
				return "", false, nil
			}
			return ev.AggregateID, true, nil
		},
		Begin: func(_ string, ev kastor.Envelope[kastor.Event]) (Data, error) {
			r, ok := ev.Event.(Requested)
			if !ok {
				return Data{}, fmt.Errorf("not a transfer request: %T", ev.Event)
			}
			return Data(r), nil
		},
		Steps: []saga.Step[Data, account.Command]{
			{Name: "debit", Timeout: timeout,
				Do:   func(d Data) saga.Send[account.Command] { return acct(d.From, account.Withdraw{Amount: d.Amount}) },
				Undo: func(d Data) saga.Send[account.Command] { return acct(d.From, account.Deposit{Amount: d.Amount}) }},
			{Name: "credit", Timeout: timeout,
				Do: func(d Data) saga.Send[account.Command] { return acct(d.To, account.Deposit{Amount: d.Amount}) }},
		},
		Skew: skew,
	})
}
