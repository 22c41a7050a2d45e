// Package transfer is the library's own test saga: a request to move money between two
// accounts of the test domain's bank (package bank), an aggregate of its own, and the
// saga that carries it out: debit the source, credit the target; if the credit is
// refused, or has no outcome within its deadline, refund the source. The saga runner's
// tests and the CLI's saga tests run it.
//
// It is the transfer example's domain (examples/transfer/transfer) kept apart from it, so
// that the example can change for its readers without changing the library's tests: the
// same aggregate and saga types ("bank.transfer-request", "bank.transfer"), steps ("debit",
// "credit"), Go types and Avro record names ("bank.TransferRequested",
// "bank.TransferProgress", ...).
package transfer

import (
	"errors"
	"fmt"
	"time"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/saga"
)

// RequestType is the aggregate type of transfer requests: topics <ns>.bank.transfer-request.*.
const RequestType = "bank.transfer-request"

// SagaType is the saga type: topics <ns>.saga.bank.transfer.*.
const SagaType = "bank.transfer"

// Request asks for a transfer of a positive Amount between two different accounts; its
// aggregate ID is the transfer's ID (Avro record bank.Request).
type Request struct {
	From, To string
	Amount   int64
}

// Requested is the event of an accepted request.
type Requested struct {
	From, To string
	Amount   int64
}

// EventType is the Avro record's full name, bank.TransferRequested.
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

// Progress is the saga's state: the orchestration's progress over Data.
type Progress = saga.Progress[Data]

// Definition is the saga's definition type.
type Definition = saga.Definition[Progress, bank.Command, kastor.Event]

// Saga returns the transfer saga: debit the source (bank.Withdraw), then credit the
// target (bank.Deposit); a refused or timed-out credit refunds the source (bank.Deposit).
// timeout bounds the wait for each step's outcome and skew is the margin for the clocks
// of the saga and the gateways (saga.Orchestration).
func Saga(timeout, skew time.Duration) (*Definition, error) {
	return SagaRetrying(timeout, skew, 0, 0)
}

// SagaRetrying is Saga whose refund is tried retries times, backoff apart, before the
// transfer is stuck (saga.Orchestration's Retries and Backoff; zero: their defaults, 5
// tries 1 s doubling).
func SagaRetrying(timeout, skew time.Duration, retries int, backoff time.Duration) (*Definition, error) {
	var wait func(int) time.Duration
	if backoff > 0 {
		wait = func(int) time.Duration { return backoff }
	}
	acct := func(id string, c bank.Command) saga.Send[bank.Command] {
		return saga.Send[bank.Command]{AggregateType: bank.Type, AggregateID: id, Command: c}
	}
	return saga.Orchestrate(saga.Orchestration[Data, bank.Command, kastor.Event]{
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
		Steps: []saga.Step[Data, bank.Command]{
			{Name: "debit", Timeout: timeout,
				Do:   func(d Data) saga.Send[bank.Command] { return acct(d.From, bank.Withdraw{Amount: d.Amount}) },
				Undo: func(d Data) saga.Send[bank.Command] { return acct(d.From, bank.Deposit{Amount: d.Amount}) }},
			{Name: "credit", Timeout: timeout,
				Do: func(d Data) saga.Send[bank.Command] { return acct(d.To, bank.Deposit{Amount: d.Amount}) }},
		},
		Skew:    skew,
		Retries: retries,
		Backoff: wait,
	})
}
