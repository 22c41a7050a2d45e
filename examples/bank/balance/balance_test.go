package balance_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/examples/bank/account"
	"github.com/kastor-dev/kastor/examples/bank/avro"
	"github.com/kastor-dev/kastor/examples/bank/balance"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/pgtest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/topics"
	"github.com/kastor-dev/kastor/wire"
)

var postgres = pgtest.NewShared()

func TestMain(m *testing.M) {
	code := m.Run()
	if err := postgres.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

func TestEvolve(t *testing.T) {
	env := func(id string, v int64, e kastor.Event) kastor.Envelope[kastor.Event] {
		return kastor.Envelope[kastor.Event]{Metadata: kastor.Metadata{AggregateID: id, Version: v, Type: e.EventType()}, Event: e}
	}
	b, err := balance.Evolve(balance.Balance{}, false, env("a", 1, account.Opened{Owner: "A"}))
	if err != nil || b != (balance.Balance{AccountID: "a", Version: 1, Open: true}) {
		t.Fatalf("open: %+v %v", b, err)
	}
	for _, step := range []struct {
		v int64
		e kastor.Event
	}{{2, account.Deposited{Amount: 10}}, {3, account.Withdrawn{Amount: 4}}, {2, account.Deposited{Amount: 1}}} {
		if b, err = balance.Evolve(b, true, env("a", step.v, step.e)); err != nil {
			t.Fatal(err)
		}
	}
	if b.Balance != 7 || b.Version != 3 {
		t.Errorf("%+v, want balance 7 at version 3 (a replayed version 2 does not move it back)", b)
	}
	if _, err := balance.Evolve(b, true, env("a", 4, account.Opened{Owner: "A"})); err == nil {
		t.Error("an account opened twice")
	}
	if _, err := balance.Evolve(balance.Balance{}, false, env("x", 1, account.Deposited{Amount: 1})); err == nil {
		t.Error("a deposit to an account never opened")
	}
}

// The PostgreSQL and in-memory projections, each run by its reader over the same events
// (the embedded broker, real PostgreSQL), hold the same balances; an event neither can
// apply is parked by both.
func TestProjectionsAgree(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	pool := pgtest.Connect(t, postgres.Get(t).NewDatabase(t))
	c := kafkatest.StartEmbedded(t)
	const ns = "bank"
	const memName = balance.Name + "-memory"
	events := topics.TopicName(ns, account.Type, topics.RoleEvents)
	c.CreateTopic(t, events, 3, 1, nil)
	c.CreateTopic(t, consumer.DLQTopic(ns, balance.Name), 3, 1, nil)
	c.CreateTopic(t, consumer.DLQTopic(ns, memName), 3, 1, nil)

	codecs, err := avro.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	kc := c.Kastor(t, ns, cluster.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	app, err := producer.New(kc.Client())
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	versions := map[string]int64{}
	write := func(id string, e kastor.Event) {
		t.Helper()
		enc, err := codecs.Events.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		versions[id]++
		md := kastor.Metadata{AggregateType: account.Type, AggregateID: id, Version: versions[id], Type: enc.Type, Fingerprint: enc.Fingerprint}
		if err := app.Append(ctx, &kgo.Record{Topic: events, Key: []byte(id), Value: enc.Data, Headers: wire.Headers(&md)}); err != nil {
			t.Fatal(err)
		}
	}
	write("alice", account.Opened{Owner: "Alice"})
	write("bob", account.Opened{Owner: "Bob"})
	write("alice", account.Deposited{Amount: 100})
	write("carol", account.Opened{Owner: "Carol"})
	write("ghost", account.Deposited{Amount: 5}) // never opened: parked
	write("alice", account.Withdrawn{Amount: 30})
	write("bob", account.Deposited{Amount: 7})
	write("carol", account.Closed{})
	for i := range 50 {
		write(fmt.Sprintf("acct-%02d", i%10), func() kastor.Event {
			if i < 10 {
				return account.Opened{Owner: "someone"}
			}
			return account.Deposited{Amount: int64(i)}
		}())
	}

	t0 := time.Now()
	pg, err := balance.NewPostgres(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	mem := balance.NewMemory()
	cfg := func(name string) consumer.Config[kastor.Event] {
		return consumer.Config[kastor.Event]{Name: name, Version: balance.Version,
			AggregateTypes: []string{account.Type}, Events: codecs.Events,
			Retry: consumer.Retry{Attempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: 50 * time.Millisecond}}
	}
	run := func(name string, sink consumer.Sink[kastor.Event]) {
		rd, err := consumer.New(kc, cfg(name), sink)
		if err != nil {
			t.Fatal(err)
		}
		rctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- rd.Run(rctx) }()
		t.Cleanup(func() {
			stop()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	run(balance.Name, pg.Sink())
	run(memName, mem.Sink())

	for id, v := range versions {
		if id == "ghost" {
			continue
		}
		if err := pg.WaitForVersion(ctx, id, v); err != nil {
			t.Fatalf("postgres: %s version %d: %v", id, v, err)
		}
		if err := mem.WaitForVersion(ctx, id, v); err != nil {
			t.Fatalf("memory: %s version %d: %v", id, v, err)
		}
	}
	t.Logf("caught up in %v", time.Since(t0))
	if err := mem.WaitForVersion(ctx, "ghost", 1); !errors.Is(err, consumer.ErrParked) {
		t.Errorf("memory: the ghost's deposit: %v, want ErrParked", err)
	}
	ends, err := c.Admin().ListCommittedOffsets(ctx, events)
	if err != nil {
		t.Fatal(err)
	}
	want := map[consumer.TopicPartition]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		want[consumer.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o.Offset
	})
	if err := pg.Sink().WaitFor(ctx, want); err != nil {
		t.Fatal(err)
	}

	all, err := pg.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(all, mem.All()) {
		t.Errorf("the projections differ:\npostgres %+v\nmemory   %+v", all, mem.All())
	}
	alice, ok, err := pg.Get(ctx, "alice")
	if err != nil || !ok || alice != (balance.Balance{AccountID: "alice", Balance: 70, Version: 3, Open: true}) {
		t.Errorf("alice: %+v %v %v", alice, ok, err)
	}
	if carol, _ := mem.Get("carol"); carol.Open || carol.Version != 2 {
		t.Errorf("carol: %+v, want closed at version 2", carol)
	}
	if _, ok, _ := pg.Get(ctx, "ghost"); ok {
		t.Error("postgres has the ghost account")
	}
	if len(all) != 13 {
		t.Errorf("%d accounts, want 13", len(all))
	}
	for _, name := range []string{balance.Name, memName} {
		ds, err := consumer.ReadDeadLetters(ctx, kc, consumer.DLQTopic(ns, name), name, balance.Version)
		if err != nil || len(ds) != 1 || ds[0].Offset < 0 {
			t.Errorf("%s: dead letters %+v, %v; want the ghost's deposit", name, ds, err)
		}
	}
}
