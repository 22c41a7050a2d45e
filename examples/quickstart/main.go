// Command quickstart is the smallest whole kastor service: a cart aggregate behind a gateway, a
// Sender, and an in-memory projection queried once it has a command's events. It runs on an
// embedded broker (franz-go's kfake, not Apache Kafka) unless -brokers names a cluster.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/devbroker"
	"github.com/kastor-dev/kastor/examples/quickstart/cart"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/schema"
)

// The topic file: namespace quickstart; shop.cart's topics, the projection's dead letters.
const topicFile = `{namespace: quickstart, defaults: {partitions: 3, replicationFactor: 1, minInsyncReplicas: 1},
  aggregates: [{type: shop.cart}], projections: [{name: cart-items}], schemas: {replicationFactor: 1}}`

// The codecs: Avro schemas derived from the Go types, no hand-written JSON.
var codecs = schema.MustForAggregate(cart.Aggregate,
	schema.Commands(schema.Of[cart.AddItem](), schema.Of[cart.CheckOut]()),
	schema.Events(schema.Of[cart.ItemAdded](), schema.Of[cart.CheckedOut]()))

func main() {
	brokers := flag.String("brokers", "", "Kafka bootstrap brokers, host:port[,...] (default: an embedded broker)\nAfter this example: go run ./examples/bank demo")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, *brokers); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, brokers string) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	c, closeAll, err := devbroker.Connect(ctx, brokers, []byte(topicFile)) // a client; the topics
	if err != nil {
		return err
	}
	defer closeAll()
	if err := schema.PublishAggregate(ctx, c.Client(), codecs); err != nil { // so the CLI can decode
		return err
	}
	// The write side: a gateway (run several in production) and a Sender.
	if _, err := gateway.Start(ctx, c, gateway.ConfigFor(cart.Aggregate, codecs)); err != nil {
		return err
	}
	s, err := gateway.NewSender(ctx, c, gateway.SenderConfigFor(cart.Aggregate, codecs))
	if err != nil {
		return err
	}
	defer s.Close()
	// The read side: items per cart, in memory in every process, fed by the events topic.
	items := consumer.NewMemory(map[string]int64{}, func(m *map[string]int64, ev kastor.Envelope[kastor.Event]) error {
		if e, ok := ev.Event.(cart.ItemAdded); ok {
			(*m)[ev.AggregateID] += e.Quantity
		}
		return nil
	})
	if _, err := consumer.Start(ctx, c, consumer.LocalConfigFor("cart-items", codecs.Events, cart.Aggregate.Type), items); err != nil {
		return err
	}
	for _, cmd := range []cart.Command{cart.AddItem{SKU: "tea", Quantity: 2}, cart.AddItem{SKU: "cup", Quantity: 1}, cart.CheckOut{}, cart.CheckOut{}} {
		res, err := s.Send(ctx, kastor.NewCommand("cart-1", cmd))
		if err == nil {
			err = items.WaitForVersion(ctx, "cart-1", res.To) // read-your-writes
		}
		items.Read(func(m *map[string]int64) {
			fmt.Fprintf(out, "%T: version %d, err=%v; the projection has %d items in cart-1\n", cmd, res.To, err, (*m)["cart-1"])
		})
	}
	fmt.Fprintln(out, "Next: go run ./examples/bank demo (snapshots, several gateways, PostgreSQL)")
	return nil
}
