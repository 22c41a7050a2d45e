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

// A Sender runs commands from any process: here, one with a deadline, and a retry with the
// same command ID when the outcome is unknown.
func ExampleSender() {
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
	s, err := gateway.NewSender(ctx, c, gateway.SenderConfig[sndCmd]{
		AggregateType: "bank.account",
		Commands:      sndCodec{}, // usually the Avro codec of package schema
	})
	if err != nil {
		fmt.Println(err) // for example: a topic does not exist; run `kastor topics apply`
		return
	}
	defer s.Close()

	cmd := kastor.NewCommand("account-42", sndCmd{Events: 1})
	cmd.ID = "deposit-7f3a" // a stable ID makes retries safe
	for attempt := 0; attempt < 3; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := s.Send(actx, cmd)
		cancel()
		switch {
		case err == nil:
			fmt.Printf("events %d..%d (duplicate: %v)\n", res.From, res.To, res.Duplicate)
			return
		case errors.Is(err, kastor.ErrTimeout):
			continue // unknown outcome: the gateway deduplicates the retry by command ID
		case errors.Is(err, kastor.ErrRejected):
			fmt.Println("rejected:", err)
			return
		default:
			fmt.Println(err)
			return
		}
	}
}
