package kastor_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kastor-dev/kastor"
)

// A tiny bank account, the running example of the docs.

type account struct {
	Open    bool
	Balance int64
}

type (
	openAccount struct{}
	deposit     struct{ Amount int64 }
	withdraw    struct{ Amount int64 }
)

type (
	opened    struct{}
	deposited struct{ Amount int64 }
	withdrawn struct{ Amount int64 }
)

func (opened) EventType() string    { return "bank.AccountOpened" }
func (deposited) EventType() string { return "bank.MoneyDeposited" }
func (withdrawn) EventType() string { return "bank.MoneyWithdrawn" }

var errInsufficientFunds = errors.New("insufficient funds")

var accounts = kastor.Aggregate[account, any, kastor.Event]{
	Type:    "bank.account",
	Initial: func(string) account { return account{} },
	Decide: func(s account, cmd any) ([]kastor.Event, error) {
		switch c := cmd.(type) {
		case openAccount:
			if s.Open {
				return nil, errors.New("already open")
			}
			return []kastor.Event{opened{}}, nil
		case deposit:
			return []kastor.Event{deposited(c)}, nil
		case withdraw:
			if c.Amount > s.Balance {
				return nil, fmt.Errorf("%w: balance %d, asked %d", errInsufficientFunds, s.Balance, c.Amount)
			}
			return []kastor.Event{withdrawn(c)}, nil
		}
		return nil, fmt.Errorf("unknown command %T", cmd)
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

func TestExecuteAccepts(t *testing.T) {
	state := accounts.Fold(accounts.Initial("a1"), opened{}, deposited{100})
	out, err := accounts.Execute(state, 2, kastor.NewCommand[any]("a1", withdraw{30}))
	if err != nil {
		t.Fatal(err)
	}
	if out.Version != 3 || out.State.Balance != 70 || len(out.Events) != 1 {
		t.Fatalf("outcome %+v, want version 3, balance 70, one event", out)
	}
	if state.Balance != 100 {
		t.Fatalf("the input state changed to %+v", state)
	}
}

func TestExecuteRejections(t *testing.T) {
	state := accounts.Fold(accounts.Initial("a1"), opened{}, deposited{100})

	_, err := accounts.Execute(state, 2, kastor.NewCommand[any]("a1", withdraw{500}))
	var rej *kastor.RejectedError
	if !errors.As(err, &rej) || !errors.Is(err, kastor.ErrRejected) || !errors.Is(err, errInsufficientFunds) {
		t.Fatalf("withdraw too much: %v, want a RejectedError wrapping errInsufficientFunds", err)
	}
	if !strings.Contains(err.Error(), "insufficient funds: balance 100, asked 500") {
		t.Fatalf("message %q does not carry the domain reason", err)
	}

	cmd := kastor.NewCommand[any]("a1", deposit{1})
	cmd.ExpectedVersion = 1
	_, err = accounts.Execute(state, 2, cmd)
	var vc *kastor.VersionConflictError
	if !errors.As(err, &vc) || vc.Expected != 1 || vc.Actual != 2 || !errors.Is(err, kastor.ErrVersionConflict) {
		t.Fatalf("stale expected version: %v", err)
	}

	_, err = accounts.Execute(state, 2, kastor.NewCommand[any]("a1", deposit{2_000_000}))
	if !errors.Is(err, kastor.ErrInvariant) || !strings.Contains(err.Error(), "account limit") {
		t.Fatalf("invariant: %v", err)
	}
	if errors.Is(err, kastor.ErrRejected) {
		t.Fatal("an invariant violation must not match ErrRejected")
	}
}

func TestValidate(t *testing.T) {
	if err := accounts.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := kastor.Aggregate[int, int, int]{Type: "Bank Account"}
	err := bad.Validate()
	for _, want := range []string{`"Bank Account"`, "Initial is nil", "Decide is nil", "Evolve is nil"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
}

func TestErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		err      error
		sentinel error
		want     string
	}{
		{&kastor.TimeoutError{CommandID: "c1", Err: errors.New("context deadline exceeded")}, kastor.ErrTimeout, "re-send it with the same command ID"},
		{&kastor.ExpiredError{CommandID: "c1", Reason: "read 2s after its deadline"}, kastor.ErrExpired, "command c1 was not executed: a gateway read it after its deadline (read 2s after its deadline)"},
		{&kastor.NoOutcomeError{AggregateType: "bank.account", AggregateID: "a1", CommandID: "c1"}, kastor.ErrNoOutcome, `bank.account "a1" has no outcome for command c1`},
		{&kastor.NotOwnerError{Topic: "t", Partition: 3}, kastor.ErrNotOwner, "no longer owns t partition 3"},
		{&kastor.UndecodableError{What: "event", Type: "bank.X", Fingerprint: 0xabc, Topic: "t", Partition: 1, Offset: 9, Err: errors.New("short buffer")},
			kastor.ErrUndecodable, "cannot decode event bank.X (writer schema 0000000000000abc) at t/1@9: short buffer"},
	} {
		if !errors.Is(tc.err, tc.sentinel) {
			t.Errorf("%T does not match its sentinel", tc.err)
		}
		if !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%T message %q, want it to contain %q", tc.err, tc.err, tc.want)
		}
	}
}

func ExampleAggregate_Execute() {
	state := accounts.Fold(accounts.Initial("acct-1"), opened{}, deposited{50})
	_, err := accounts.Execute(state, 2, kastor.NewCommand[any]("acct-1", withdraw{80}))
	fmt.Println(err)
	out, _ := accounts.Execute(state, 2, kastor.NewCommand[any]("acct-1", deposit{25}))
	fmt.Println(out.Version, out.State.Balance)
	// Output:
	// kastor: bank.account "acct-1" rejected the command: insufficient funds: balance 50, asked 80
	// 3 75
}
