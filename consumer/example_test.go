package consumer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/devbroker"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/topics"
	"github.com/kastor-dev/kastor/wire"
)

// An in-memory projection of account balances, on the embedded broker: the reader folds
// the events into a map, and a query waits for the version a command produced
// (read-your-writes) before reading.
func ExampleMemory() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	broker, err := devbroker.Start()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer broker.Close()

	// One client for the service, and the cluster every kastor component takes: the
	// topics of namespace "shop".
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker.Addrs()...))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cl.Close()
	c, err := cluster.New(cl, "shop", cluster.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		fmt.Println(err)
		return
	}

	// The events topic and the projection's dead-letter topic (`kastor topics apply`
	// creates them in a real deployment).
	events := topics.TopicName(c.Namespace(), bank.Type, topics.RoleEvents)
	if _, err := c.Admin().CreateTopics(ctx, 2, 1, nil, events, consumer.DLQTopic(c.Namespace(), "balances")); err != nil {
		fmt.Println(err)
		return
	}

	// Some events, with the headers the gateway writes (normally: the gateway does this).
	codecs, _ := bank.NewCodecs(nil)
	write := func(id string, version int64, e kastor.Event) {
		enc, _ := codecs.Events.Encode(e)
		md := kastor.Metadata{AggregateType: bank.Type, AggregateID: id, Version: version, Type: enc.Type, Fingerprint: enc.Fingerprint}
		_ = cl.ProduceSync(ctx, &kgo.Record{Topic: events, Key: []byte(id), Value: enc.Data, Headers: wire.Headers(&md)}).FirstErr()
	}
	write("alice", 1, bank.Opened{Owner: "Alice"})
	write("bob", 1, bank.Opened{Owner: "Bob"})
	write("alice", 2, bank.Deposited{Amount: 100})
	write("alice", 3, bank.Withdrawn{Amount: 30})

	// The projection: a map of balances.
	balances := consumer.NewMemory(map[string]int64{}, func(m *map[string]int64, ev kastor.Envelope[kastor.Event]) error {
		switch e := ev.Event.(type) {
		case bank.Opened:
			(*m)[ev.AggregateID] = 0
		case bank.Deposited:
			(*m)[ev.AggregateID] += e.Amount
		case bank.Withdrawn:
			(*m)[ev.AggregateID] -= e.Amount
		}
		return nil
	})
	reader, err := consumer.New(c, consumer.Config[kastor.Event]{
		Name: "balances", Version: 1,
		AggregateTypes: []string{bank.Type}, // shop.bank.account.events
		Events:         codecs.Events,
		AllPartitions:  true, // every instance holds every account
	}, balances)
	if err != nil {
		fmt.Println(err)
		return
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- reader.Run(runCtx) }()

	// A command's result says alice is at version 3: wait for it, then query.
	if err := balances.WaitForVersion(ctx, "alice", 3); err != nil {
		fmt.Println(err)
		return
	}
	balances.Read(func(m *map[string]int64) {
		fmt.Println("alice:", (*m)["alice"])
		fmt.Println("bob:", (*m)["bob"])
	})
	stop()
	fmt.Println("stopped:", <-done)
	// Output:
	// alice: 70
	// bob: 0
	// stopped: <nil>
}
