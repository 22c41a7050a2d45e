package gateway_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/kafkatest"
)

// TestNoOutcomeCommitsPastItsDeadline: a command executed in a transaction that cannot end
// before the command's deadline (held open here, as a broker failover holds one) is not
// committed: the transaction aborts, and the command read again is refused as expired, so
// a caller that gave up at the deadline (a saga's timeout) is never contradicted by a
// late event. The next attempt with the same ID executes once (decision 38).
func TestNoOutcomeCommitsPastItsDeadline(t *testing.T) {
	realKafka.Backends(t, func(t *testing.T, c *kafkatest.Cluster) {
		r := newRig(t, c, 1)
		s := r.sender()
		ctx := sndCtx(t, 2*time.Minute)
		const acct, x = "acct-late", "deposit-late"
		g, _ := r.start(r.config())
		if _, err := s.Send(ctx, cmdWithID[command](acct, "open", openAccount{})); err != nil {
			t.Fatal(err)
		}
		g.HoldBeforeEnd(1500 * time.Millisecond)
		short, cancel := context.WithTimeout(ctx, time.Second)
		_, err := s.Send(short, cmdWithID[command](acct, x, deposit{5}))
		cancel()
		if !errors.Is(err, kastor.ErrTimeout) && !errors.Is(err, kastor.ErrExpired) {
			t.Fatalf("attempt past its deadline: %v, want a timeout or expiry", err)
		}
		if _, err := s.Outcome(ctx, acct, x); !errors.Is(err, kastor.ErrNoOutcome) {
			t.Fatalf("outcome of the late attempt: %v, want none", err)
		}
		if evs := r.eventsOf()[acct]; len(evs) != 1 {
			t.Fatalf("events after the late attempt: %+v, want only the opening", evs)
		}
		g.HoldBeforeEnd(0)
		res, err := s.Send(ctx, cmdWithID[command](acct, x, deposit{5}))
		if err != nil || res.From != 2 || res.To != 2 || res.Duplicate {
			t.Fatalf("next attempt: %+v, %v; want it executed at version 2", res, err)
		}
		if evs := r.eventsOf()[acct]; len(evs) != 2 || evs[1].CommandID != x {
			t.Fatalf("events: %+v", evs)
		}
	})
}
