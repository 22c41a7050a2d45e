// Command transfer moves money between the bank example's accounts with a saga: a
// transfer request (an aggregate of its own) starts an instance of the bank.transfer saga,
// which debits the source, credits the target, and refunds the source when the credit is
// refused or has no outcome within its deadline. Everything runs in this process: the
// accounts' and the requests' gateways, the saga's router and runner, and Senders. It runs
// on an embedded broker (franz-go's kfake, not Apache Kafka) unless -brokers names a
// cluster.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/devbroker"
	"github.com/kastor-dev/kastor/examples/bank/account"
	"github.com/kastor-dev/kastor/examples/bank/avro"
	"github.com/kastor-dev/kastor/examples/transfer/transfer"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/saga"
	"github.com/kastor-dev/kastor/saga/runner"
	"github.com/kastor-dev/kastor/schema"
	"github.com/kastor-dev/kastor/topics"
	"github.com/kastor-dev/kastor/wire"
)

// The topics: two aggregate types' four each, the saga's three, _kastor.schemas.
const topicFile = `{namespace: transfer, defaults: {partitions: 3, replicationFactor: 1, minInsyncReplicas: 1},
  aggregates: [{type: bank.account}, {type: bank.transfer-request}], sagas: [{type: bank.transfer}],
  schemas: {replicationFactor: 1}}`

func main() {
	brokers := flag.String("brokers", "", "Kafka bootstrap brokers, host:port[,...] (default: an embedded broker)")
	timeout := flag.Duration("timeout", 3*time.Second, "how long each step of a transfer waits for its command's outcome")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), `transfer runs three money transfers between bank accounts with a saga:
one that completes, one whose credit is refused (the source is refunded),
and one whose credit gets no outcome within its deadline (refunded too).
Next: read saga/runner's package documentation, then docs/wire-format.md
("Saga records") for what it wrote; go run ./examples/bank demo shows the accounts alone.

Flags:`)
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(context.Background(), os.Stdout, *brokers, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "transfer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, brokers string, timeout time.Duration) error {
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
	c, err := cluster.New(cl, "transfer", cluster.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return err
	}
	if _, err := topics.ApplyYAML(ctx, c.Admin(), []byte(topicFile), topics.Options{}); err != nil {
		return err
	}

	// Codecs: the bank example's accounts, the requests' derived from their Go types, and
	// the saga's state.
	accounts, err := avro.New(nil)
	if err != nil {
		return err
	}
	requests, err := schema.ForAggregate(transfer.Aggregate,
		schema.Commands(schema.Of[transfer.Request]()), schema.Events(schema.Of[transfer.Requested]()))
	if err != nil {
		return err
	}
	progress, err := schema.Derive[saga.Progress[transfer.Data]](schema.Name("bank.TransferProgress"))
	if err != nil {
		return err
	}
	states, err := schema.NewCodec[saga.Progress[transfer.Data]](nil, progress, schema.Describe("state"))
	if err != nil {
		return err
	}

	gctx, stop := context.WithCancel(ctx)
	defer stop()
	// The accounts' gateway. For the third transfer it stalls after the debit (as a
	// gateway behind a network partition would), so the credit gets no outcome in time.
	stall := &stall{release: make(chan struct{})}
	acctCfg := gateway.Config[account.State, account.Command, kastor.Event]{
		Aggregate: account.Aggregate, Commands: accounts.Commands, Events: accounts.Events, States: accounts.States,
		Listeners: []gateway.Listener[kastor.Event]{stall.listen},
	}
	ga, err := gateway.New(c, acctCfg)
	if err != nil {
		return err
	}
	gr, err := gateway.New(c, gateway.ConfigFor(transfer.Aggregate, requests))
	if err != nil {
		return err
	}
	// The saga: its router reads the requests' events, its runner sends the accounts'
	// commands.
	def, err := transfer.Saga(timeout, time.Second)
	if err != nil {
		return err
	}
	rn, err := runner.New(c, runner.ConfigFor(def, schema.ValueCodec(states), requests.Events,
		map[string]kastor.Codec[account.Command]{account.Type: accounts.Commands}, transfer.RequestType))
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, r := range []func(context.Context) error{ga.Run, gr.Run, rn.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- r(gctx) }()
	}
	defer wg.Wait()
	defer stop()

	sa, err := gateway.NewSender(ctx, c, gateway.SenderConfig[account.Command]{AggregateType: account.Type, Commands: accounts.Commands})
	if err != nil {
		return err
	}
	defer sa.Close()
	sr, err := gateway.NewSender(ctx, c, gateway.SenderConfigFor(transfer.Aggregate, requests))
	if err != nil {
		return err
	}
	defer sr.Close()

	// Account IDs are new in every run, so that the example runs again on a cluster.
	run := newRunID()
	id := func(name string) string { return name + "-" + run }
	for _, a := range []struct {
		name    string
		deposit int64
	}{{"alice", 100}, {"bob", 0}, {"dave", 50}} { // carol has no account
		if _, err := sa.Send(ctx, kastor.NewCommand[account.Command](id(a.name), account.Open{Owner: a.name})); err != nil {
			return err
		}
		if a.deposit > 0 {
			if _, err := sa.Send(ctx, kastor.NewCommand[account.Command](id(a.name), account.Deposit{Amount: a.deposit})); err != nil {
				return err
			}
		}
	}
	fmt.Fprintln(out, "accounts: alice 100, bob 0, dave 50; carol has none")

	done := func(i saga.Instance[saga.Progress[transfer.Data]]) bool { return i.Done || i.State.Stuck != "" }
	transferOf := func(tid, from, to string, amount int64, before func() error) error {
		if _, err := sr.Send(ctx, kastor.NewCommand(id(tid), transfer.Request{From: id(from), To: id(to), Amount: amount})); err != nil {
			return err
		}
		if before != nil {
			if err := before(); err != nil {
				return err
			}
		}
		inst, err := rn.Await(ctx, id(tid), done)
		if err != nil {
			return err
		}
		p := inst.State
		switch {
		case p.Stuck != "":
			fmt.Fprintf(out, "%s: %s -> %s %d: stuck: %s\n", tid, from, to, amount, p.Stuck)
		case p.Failed:
			fmt.Fprintf(out, "%s: %s -> %s %d: refunded (%s), saga version %d\n", tid, from, to, amount, p.Reason, inst.Version)
		default:
			fmt.Fprintf(out, "%s: %s -> %s %d: completed, saga version %d\n", tid, from, to, amount, inst.Version)
		}
		return nil
	}
	if err := transferOf("t1", "alice", "bob", 30, nil); err != nil {
		return err
	}
	if err := transferOf("t2", "alice", "carol", 20, nil); err != nil {
		return err
	}
	stall.set(id("dave"))
	if err := transferOf("t3", "dave", "bob", 10, func() error {
		// The saga gives up on the credit without any input: its deadline fires. Then the
		// gateway resumes; it reads the credit after the credit's deadline and does not
		// execute it (EXPIRED), and it executes the refund.
		_, err := rn.Await(ctx, id("t3"), func(i saga.Instance[saga.Progress[transfer.Data]]) bool { return i.State.Compensating })
		stall.unblock()
		return err
	}); err != nil {
		return err
	}

	balances, err := readBalances(ctx, c)
	if err != nil {
		return err
	}
	var parts []string
	total := int64(0)
	for _, name := range []string{"alice", "bob", "dave"} {
		b := balances[id(name)]
		total += b
		parts = append(parts, fmt.Sprintf("%s %d", name, b))
	}
	fmt.Fprintf(out, "balances: %s (total %d)\n", strings.Join(parts, ", "), total)
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// stall holds the accounts' gateway after the first debit of one account until released.
type stall struct {
	mu      sync.Mutex
	account string
	once    sync.Once
	release chan struct{}
}

func (s *stall) set(account string) {
	s.mu.Lock()
	s.account = account
	s.mu.Unlock()
}

func (s *stall) unblock() { s.once.Do(func() { close(s.release) }) }

func (s *stall) listen(ctx context.Context, events []kastor.Envelope[kastor.Event]) {
	s.mu.Lock()
	acct := s.account
	s.mu.Unlock()
	if acct == "" || !slices.ContainsFunc(events, func(e kastor.Envelope[kastor.Event]) bool {
		_, debit := e.Event.(account.Withdrawn)
		return debit && e.AggregateID == acct
	}) {
		return
	}
	select {
	case <-s.release:
	case <-ctx.Done():
	}
}

// readBalances reads the accounts' events topic to its end, read_committed, and sums
// each account's deposits and withdrawals.
func readBalances(ctx context.Context, c *cluster.Cluster) (map[string]int64, error) {
	codecs, err := avro.New(nil)
	if err != nil {
		return nil, err
	}
	topic := topics.TopicName(c.Namespace(), account.Type, topics.RoleEvents)
	ends, err := c.Admin().ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	balances := map[string]int64{}
	if len(want) == 0 {
		return balances, nil
	}
	// With the transaction markers, so that a partition whose last record is a marker is
	// seen to end.
	cl, err := c.NewClient(kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var derr error
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
			if r.Attrs.IsControl() {
				return
			}
			md, err := wire.ParseHeaders(r.Headers)
			if err != nil {
				derr = errors.Join(derr, err)
				return
			}
			ev, err := codecs.Events.Decode(kastor.Encoded{Type: md.Type, Fingerprint: md.Fingerprint, Data: r.Value})
			if err != nil {
				derr = errors.Join(derr, err)
				return
			}
			switch e := ev.(type) {
			case account.Deposited:
				balances[string(r.Key)] += e.Amount
			case account.Withdrawn:
				balances[string(r.Key)] -= e.Amount
			}
		})
		if derr != nil {
			return nil, derr
		}
	}
	return balances, nil
}

func newRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
