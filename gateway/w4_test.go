package gateway_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/wire"
)

// sender returns a Sender of the rig's aggregate type, closed when the test ends.
func (r *rig) sender() *gateway.Sender[command] {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := gateway.NewSender(ctx, r.kc, gateway.SenderConfig[command]{
		AggregateType: "bank.account", Commands: commandCodec,
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(s.Close)
	return s
}

func cmdWithID[C any](aggID, id string, payload C) kastor.Command[C] {
	return kastor.Command[C]{AggregateID: aggID, ID: id, ExpectedVersion: kastor.AnyVersion, Payload: payload}
}

// wantRefused checks err is the refusal "insufficient funds" of command id.
func wantRefused(t *testing.T, what string, err error, id string) {
	t.Helper()
	var re *kastor.RejectedError
	if !errors.As(err, &re) || re.CommandID != id || !strings.Contains(err.Error(), errInsufficientFunds.Error()) {
		t.Fatalf("%s: got %v, want the refusal of %s (insufficient funds)", what, err, id)
	}
}

// TestW4RefusalIsTheOutcome is issue 14's reproduction. A caller gives up on Withdraw X
// while no gateway runs; the account is then opened and funded; the caller sends X again
// and a gateway starts. The gateway executes the first attempt (refused: no funds yet), and
// the second attempt must get that refusal, not execute X again: before attempt IDs and
// remembered refusals, the second attempt was handed the first's reply and X was applied at
// version 3, so the caller was told "refused" while the log held the withdrawal.
func TestW4RefusalIsTheOutcome(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 3)
		s := r.sender()
		const acct, x = "acct-w4", "withdraw-x"

		// Attempt 1: the caller stops waiting by cancelling, so the command carries no
		// deadline and a gateway will execute it whenever it reads it.
		ctx1, cancel1 := context.WithCancel(context.Background())
		time.AfterFunc(time.Second, cancel1)
		if _, err := s.Send(ctx1, cmdWithID[command](acct, x, withdraw{50})); !errors.Is(err, kastor.ErrTimeout) {
			t.Fatalf("first attempt with no gateway: %v, want a timeout", err)
		}
		ctx := sndCtx(t, 2*time.Minute)
		for _, c := range []kastor.Command[command]{cmdWithID[command](acct, "open", openAccount{}), cmdWithID[command](acct, "dep", deposit{100})} {
			if _, err := s.Submit(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		second := make(chan error, 1)
		go func() {
			_, err := s.Send(ctx, cmdWithID[command](acct, x, withdraw{50}))
			second <- err
		}()
		// A refusal-only aggregate: its refusal is remembered at version 0.
		_, stop := r.start(r.config())
		wantRefused(t, "second attempt", <-second, x)
		if _, err := s.Send(ctx, cmdWithID[command]("acct-empty", "y", withdraw{1})); err == nil {
			t.Fatal("withdrawing from an empty account was accepted")
		}

		checkOutcomes := func(when string) {
			t.Helper()
			_, err := s.Outcome(ctx, acct, x)
			wantRefused(t, when+": outcome of X", err, x)
			res, err := s.Outcome(ctx, acct, "dep")
			if err != nil || !res.Duplicate || res.From != 2 || res.To != 2 {
				t.Fatalf("%s: outcome of the deposit: %+v, %v; want versions 2..2", when, res, err)
			}
			var no *kastor.NoOutcomeError
			if _, err := s.Outcome(ctx, acct, "never-sent"); !errors.As(err, &no) || !errors.Is(err, kastor.ErrNoOutcome) || no.CommandID != "never-sent" {
				t.Fatalf("%s: outcome of a command never sent: %v, want a NoOutcomeError", when, err)
			}
			_, err = s.Send(ctx, cmdWithID[command](acct, x, withdraw{50}))
			wantRefused(t, when+": X sent a third time", err, x)
			_, err = s.Send(ctx, cmdWithID[command]("acct-empty", "y", withdraw{1}))
			wantRefused(t, when+": y sent again", err, "y")
		}
		checkOutcomes("same gateway")

		// A new gateway restores the refusals from the snapshots written with them.
		stop()
		r.start(r.config())
		checkOutcomes("after a restart")

		evs := r.eventsOf()
		if got := evs[acct]; len(got) != 2 || got[0].Type != "bank.AccountOpened" || got[1].Type != "bank.MoneyDeposited" {
			t.Fatalf("events of %s: %+v, want opened and deposited only: the refused X must not be applied", acct, got)
		}
		if n := len(evs["acct-empty"]); n != 0 {
			t.Fatalf("acct-empty has %d events, want none", n)
		}
		// The second attempt with a balance of 100 now runs as a new command.
		res, err := s.Send(ctx, cmdWithID[command](acct, "withdraw-x2", withdraw{50}))
		if err != nil || res.From != 3 || res.Duplicate {
			t.Fatalf("a new withdrawal: %+v, %v", res, err)
		}
	})
}

// An attempt that expired before a gateway read it is not an outcome: the command ID stays
// free, the next attempt executes, and it gets its own reply, not the expiry.
func TestW4ExpiredAttemptIsNotAnOutcome(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 2)
		s := r.sender()
		const acct, x = "acct-exp", "deposit-x"
		short, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := s.Send(short, cmdWithID[command](acct, x, deposit{5})); !errors.Is(err, kastor.ErrTimeout) {
			t.Fatalf("first attempt with no gateway: %v, want a timeout", err)
		}
		ctx := sndCtx(t, 2*time.Minute)
		if _, err := s.Submit(ctx, cmdWithID[command](acct, "open", openAccount{})); err != nil {
			t.Fatal(err)
		}
		r.start(r.config())
		res, err := s.Send(ctx, cmdWithID[command](acct, x, deposit{5}))
		if err != nil || res.From != 2 || res.To != 2 || res.Duplicate {
			t.Fatalf("second attempt: %+v, %v; want it executed at version 2", res, err)
		}
		if evs := r.eventsOf()[acct]; len(evs) != 2 || evs[1].CommandID != x {
			t.Fatalf("events: %+v", evs)
		}
		// A gateway's EXPIRED verdict is an ExpiredError, distinct from a timeout.
		rep := gateway.Reply{CommandID: x, Status: gateway.StatusExpired, Message: "read 2s after its deadline; not executed"}
		if err := rep.Err("bank.account"); !errors.Is(err, kastor.ErrExpired) || errors.Is(err, kastor.ErrTimeout) {
			t.Fatalf("EXPIRED reply: %v", err)
		}
	})
}

// A malformed header does not hide the headers after it: the UNDECODABLE reply still
// reaches its caller, naming the command and the attempt.
func TestMalformedHeaderStillAnswered(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 1)
		r.start(r.config())
		rec := &kgo.Record{Topic: r.commands, Key: []byte("acct-h"), Value: []byte("{}"), Headers: []kgo.RecordHeader{
			{Key: wire.HeaderDeadline, Value: []byte("soon")},
			{Key: wire.HeaderExpectedVersion, Value: []byte("-7")},
			{Key: kastor.HeaderCommandID, Value: []byte("bad-headers")},
			{Key: kastor.HeaderType, Value: []byte("bank.OpenAccount")},
			{Key: wire.HeaderAttemptID, Value: []byte("attempt-1")},
			{Key: wire.HeaderReplyTo, Value: []byte(callerID)},
		}}
		r.produce(rec)
		rep := r.reply("bad-headers")
		if rep.Status != gateway.StatusUndecodable || !strings.Contains(rep.Message, wire.HeaderDeadline) || !strings.Contains(rep.Message, wire.HeaderExpectedVersion) {
			t.Fatalf("reply %+v, want UNDECODABLE naming both bad headers", rep)
		}
	})
}
