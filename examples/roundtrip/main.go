// Command roundtrip is kastor's first demo: it starts the embedded broker, sets up the topic
// set of examples/kastor.yaml, appends keyed records with an idempotent producer to a
// scratch topic with the events topic's partition count, reads them back, showing that each
// account ID always lands in the partition (shard) Kafka's murmur2 default assigns it, and
// deletes the scratch topic. It never writes to the aggregate's own topics: plain JSON there
// would be a foreign record that gateways refuse to restore from.
//
// The embedded broker is franz-go's kfake, not Apache Kafka; point -brokers at a real
// cluster to run the same round trip there.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/devbroker"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/topics"
)

func main() {
	file := flag.String("f", "examples/kastor.yaml", "topic file")
	brokers := flag.String("brokers", "", "use this cluster (host:port,...) instead of the embedded broker")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), `roundtrip creates the topics of a topic file, appends keyed records to a scratch topic
with the events topic's partition count, reads them back to show that each key stays on
its partition (shard), and deletes the scratch topic.

Usage: roundtrip [-f kastor.yaml] [-brokers host:port]

Next: go run ./examples/bank demo (an aggregate, its gateway and a projection).

Flags:
`)
		flag.PrintDefaults()
	}
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *file, *brokers); err != nil {
		fmt.Fprintln(os.Stderr, "roundtrip:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, file, brokerList string) error {
	cfg, err := topics.Load(file)
	if err != nil {
		return err
	}
	var seeds []string
	if brokerList == "" {
		b, err := devbroker.Start()
		if err != nil {
			return err
		}
		defer b.Close()
		seeds = b.Addrs()
		fmt.Printf("embedded broker (kfake) on %s\n\n", strings.Join(seeds, ","))
	} else {
		seeds = strings.Split(brokerList, ",")
	}

	base, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	if err := topics.Reachable(ctx, base, 10*time.Second); err != nil {
		base.Close()
		return err
	}
	adm := kadm.NewClient(base)
	defer adm.Close()
	plan := topics.NewPlan(cfg)
	res, err := topics.Apply(ctx, adm, plan, topics.Options{})
	if err != nil {
		return err
	}
	fmt.Println("topics apply:")
	for _, t := range res.Topics {
		fmt.Printf("  %-30s %s\n", t.Name(), t.Action)
	}

	var events topics.TopicSpec
	for _, t := range plan.Topics {
		if t.Role == topics.RoleEvents {
			events = t
			break
		}
	}
	scratch := events.Name + ".roundtrip"
	if _, err := adm.CreateTopic(ctx, events.Partitions, -1, nil, scratch); err != nil {
		return fmt.Errorf("creating the scratch topic %s: %w", scratch, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := adm.DeleteTopic(dctx, scratch); err != nil {
			fmt.Fprintf(os.Stderr, "roundtrip: deleting the scratch topic %s: %v\n", scratch, err)
		}
	}()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(scratch),
		kgo.ConsumeTopics(scratch), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()

	accounts := []string{"acct-alice", "acct-bob", "acct-carol", "acct-dave"}
	const perAccount = 3
	for i := range perAccount {
		for _, id := range accounts {
			v := fmt.Sprintf(`{"account":%q,"deposit":%d}`, id, 10*(i+1))
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(id), Value: []byte(v)}).FirstErr(); err != nil {
				return fmt.Errorf("produce: %w", err)
			}
		}
	}
	fmt.Printf("\nappended %d records to %s (a scratch topic with the %d partitions of %s; idempotent producer, acks=all)\n\nread back:\n",
		perAccount*len(accounts), scratch, events.Partitions, events.Name)

	want := perAccount * len(accounts)
	mismatches := 0
	for got := 0; got < want; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		for _, r := range fs.Records() {
			shard := producer.PartitionFor(r.Key, events.Partitions)
			check := "ok"
			if shard != r.Partition {
				check = fmt.Sprintf("MISMATCH: murmur2 says %d", shard)
				mismatches++
			}
			fmt.Printf("  partition %2d offset %d  %-11s %s  [%s]\n", r.Partition, r.Offset, r.Key, r.Value, check)
			got++
		}
	}
	if mismatches > 0 {
		return fmt.Errorf("%d records are not in their murmur2 partition", mismatches)
	}
	fmt.Println("\nevery account stays in one partition: that partition is its shard, with one writer.")
	return nil
}
