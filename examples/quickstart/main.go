// Command quickstart is the smallest whole kastor service: the cart aggregate (package
// cart) behind a gateway, a Sender that sends it commands, and an in-memory projection
// that answers a query once it has the command's events. The Avro schemas are derived
// from the Go types. It runs on an embedded broker (franz-go's kfake, not Apache Kafka)
// unless -brokers names a cluster.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/devbroker"
	"github.com/kastor-dev/kastor/examples/quickstart/cart"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/schema"
	"github.com/kastor-dev/kastor/topics"
)

// The topics: shop.cart's four, the projection's dead letters, _kastor.schemas.
const topicFile = `{namespace: quickstart, defaults: {partitions: 3, replicationFactor: 1, minInsyncReplicas: 1},
  aggregates: [{type: shop.cart}], projections: [{name: cart-items}], schemas: {replicationFactor: 1}}`

func main() {
	brokers := flag.String("brokers", "", "Kafka bootstrap brokers, host:port[,...] (default: an embedded broker)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "quickstart runs a cart aggregate, a command and a projection query.\nNext: go run ./examples/bank demo.\n\nFlags:")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(context.Background(), os.Stdout, *brokers); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, brokers string) error {
	seeds := strings.Split(brokers, ",")
	if brokers == "" {
		b, err := devbroker.Start()
		if err != nil {
			return err
		}
		defer b.Close()
		seeds = b.Addrs()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	defer cl.Close()
	c, err := cluster.New(cl, "quickstart", cluster.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return err
	}
	if _, err := topics.ApplyYAML(ctx, c.Admin(), []byte(topicFile), topics.Options{}); err != nil {
		return err
	}

	// Avro schemas derived from the Go types and published, so any reader can decode.
	codecs, err := schema.ForAggregate(cart.Aggregate,
		schema.Commands(schema.Of[cart.AddItem](), schema.Of[cart.CheckOut]()),
		schema.Events(schema.Of[cart.ItemAdded](), schema.Of[cart.CheckedOut]()))
	if err != nil {
		return err
	}
	if err := schema.PublishAggregate(ctx, cl, codecs); err != nil {
		return err
	}

	// The write side: a gateway (run several in production) and a Sender.
	g, err := gateway.New(c, gateway.ConfigFor(cart.Aggregate, codecs))
	if err != nil {
		return err
	}
	gctx, stop := context.WithCancel(ctx)
	defer stop()
	go g.Run(gctx)
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
	rc := consumer.ConfigFor("cart-items", codecs.Events, cart.Aggregate.Type)
	rc.AllPartitions = true
	r, err := consumer.New(c, rc, items)
	if err != nil {
		return err
	}
	go r.Run(gctx)

	for _, cmd := range []cart.Command{cart.AddItem{SKU: "tea", Quantity: 2}, cart.AddItem{SKU: "cup", Quantity: 1}, cart.CheckOut{}, cart.CheckOut{}} {
		res, err := s.Send(ctx, kastor.NewCommand("cart-1", cmd))
		if err != nil {
			fmt.Fprintf(out, "%T: %v\n", cmd, err)
			continue
		}
		if err := items.WaitForVersion(ctx, "cart-1", res.To); err != nil { // read-your-writes
			return err
		}
		items.Read(func(m *map[string]int64) {
			fmt.Fprintf(out, "%T: ok, version %d; the projection has %d items in cart-1\n", cmd, res.To, (*m)["cart-1"])
		})
	}
	return nil
}
