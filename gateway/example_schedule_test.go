package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/gateway"
)

// A scheduled command: stored in the aggregate type's schedules topic by the gateway that
// owns the aggregate, fired by it at its time (also after restarts and rebalances), with
// the schedule ID as its command ID. Cancel and the fire have exactly one outcome.
func ExampleSender_Schedule() {
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers("localhost:9092"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cl.Close()
	c, err := cluster.New(cl, "shop")
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := gateway.NewSender(ctx, c, gateway.SenderConfig[sndCmd]{AggregateType: "bank.account", Commands: sndCodec{}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := kastor.NewCommand("account-42", sndCmd{Events: 1})
	cmd.ID = "monthly-fee-2026-12" // the schedule ID: scheduling it again is safe
	id, err := s.Schedule(sctx, cmd, time.Now().Add(24*time.Hour))
	switch {
	case errors.Is(err, kastor.ErrUnavailable):
		fmt.Println(err) // for example: no schedules topic; run `kastor topics apply`
		return
	case err != nil:
		fmt.Println(err)
		return
	}
	// Later, from any process: what happened to it, or cancel it.
	if _, err := s.Outcome(sctx, "account-42", id); errors.Is(err, gateway.ErrPending) {
		switch err := s.Cancel(sctx, "account-42", id); {
		case err == nil:
			fmt.Println("cancelled: it will never run")
		case errors.Is(err, gateway.ErrFired):
			fmt.Println("too late:", err) // *gateway.FiredError holds its outcome
		default:
			fmt.Println(err)
		}
	}
}
