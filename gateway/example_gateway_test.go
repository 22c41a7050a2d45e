package gateway_test

import (
	"context"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/gateway"
)

// A gateway process: one client for the service, a cluster naming the topics, and the
// aggregate type's gateway, run until the process is told to stop. Run it in as many
// processes as needed: they share the shards.
func ExampleNew() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cl, err := kgo.NewClient(kgo.SeedBrokers("localhost:9092")) // and TLS, SASL: given once
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cl.Close()
	c, err := cluster.New(cl, "shop") // topics shop.bank.account.commands, .events, ...
	if err != nil {
		fmt.Println(err)
		return
	}
	g, err := gateway.New(c, gateway.Config[account, command, kastor.Event]{
		Aggregate: bankAggregate(),
		// usually the Avro codecs of package schema
		Commands: commandCodec, Events: eventCodec, States: stateCodec,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := g.Run(ctx); err != nil {
		fmt.Println(err) // for example: a topic does not exist; run `kastor topics apply`
	}
}
