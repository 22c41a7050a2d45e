// Command bank runs the bank example: an account aggregate whose commands go through
// kastor's gateway, with Avro events in Kafka.
//
//	go run ./examples/bank demo                          # everything in one process, on the embedded broker
//	go run ./examples/bank gateway -brokers host:9092    # a gateway process (run several)
//	go run ./examples/bank projection -brokers host:9092 # the balances projection, in memory
//	go run ./examples/bank projection -brokers host:9092 -postgres postgres://...
//	                                                     # the balances projection into PostgreSQL
//
// The demo starts the embedded broker (franz-go's kfake, not Apache Kafka), creates the
// topics of examples/kastor.yaml, publishes the Avro schemas, runs a gateway and sends a
// few commands, printing each command, its result, the events it wrote and the state;
// then it starts the account-balances projection, which catches up from the earliest
// offsets, and queries it (read-your-writes: a query waits for the version a command
// wrote).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/consumer"
	"github.com/kastor-dev/kastor/devbroker"
	"github.com/kastor-dev/kastor/examples/bank/account"
	"github.com/kastor-dev/kastor/examples/bank/avro"
	"github.com/kastor-dev/kastor/examples/bank/balance"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/projection"
	"github.com/kastor-dev/kastor/schema"
	"github.com/kastor-dev/kastor/topics"
)

const usage = `bank runs the bank example: an account aggregate on kastor.

Usage:
  bank demo [-f kastor.yaml]
      everything in one process, on the embedded broker (not Apache Kafka)
  bank gateway [-brokers host:port] [-instance NAME] [-session-timeout 6s] [-f kastor.yaml]
      a gateway process; run several: they share the account's shards
  bank projection [-brokers host:port] [-postgres DSN] [-f kastor.yaml]
      the account-balances projection: in memory, registered in the projection registry
      (kastor projection status|rebuild account-balances), or into PostgreSQL with -postgres

Run 'bank COMMAND -help' for a command's flags. On a real cluster, create the topics
first (kastor topics apply -f examples/kastor.yaml); or start 'kastor dev -f
examples/kastor.yaml', which has them. Then send commands to the gateways from the shell:

  kastor command send bank.account acct-1 '{"bank.OpenAccount": {"owner": "Alice"}}' -f examples/kastor.yaml
  kastor aggregate events bank.account acct-1 -f examples/kastor.yaml

Logs go to stderr with millisecond timestamps; each gateway's lines carry its instance ID.
`

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "-help" || os.Args[1] == "--help" || os.Args[1] == "help" {
		out := os.Stderr
		if len(os.Args) >= 2 {
			out = os.Stdout // asked for
		}
		fmt.Fprint(out, usage)
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet("bank "+cmd, flag.ContinueOnError)
	file := fs.String("f", "examples/kastor.yaml", "topic file: the namespace, and the brokers when -brokers and $KAFKA_BROKERS are empty")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	var brokers, dsn, instance *string
	var session *time.Duration
	switch cmd {
	case "demo":
	case "gateway", "projection":
		brokers = fs.String("brokers", os.Getenv("KAFKA_BROKERS"), "bootstrap brokers, host:port[,host:port] (default $KAFKA_BROKERS, else the topic file's)")
		if cmd == "gateway" {
			instance = fs.String("instance", "", "instance ID: its client, transactional and group instance IDs (default: host, pid and a random "+
				"suffix); restarted under the same name after a crash, a gateway takes its shards back at once. Never run two with one name")
			session = fs.Duration("session-timeout", 0, "group session timeout: how soon a crashed gateway's shards move (default: the library's, 6s)")
		} else {
			dsn = fs.String("postgres", os.Getenv("POSTGRES_DSN"), "PostgreSQL connection string (default $POSTGRES_DSN; none: in memory)")
		}
	default:
		fmt.Fprint(os.Stderr, usage)
		fmt.Fprintf(os.Stderr, "bank: unknown command %q\n", cmd)
		os.Exit(2)
	}
	if err := fs.Parse(os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bank %s: unexpected argument %q\n", cmd, fs.Arg(0))
		os.Exit(2)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "bank: -log-level %q: want debug, info, warn or error\n", *level)
		os.Exit(2)
	}
	// slog's text handler writes RFC 3339 times with milliseconds.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := func() error {
		if cmd == "demo" {
			return demo(ctx, os.Stdout, *file)
		}
		c, closeClient, err := connect(*file, *brokers, logger)
		if err != nil {
			return err
		}
		defer closeClient()
		if cmd == "gateway" {
			return runGateway(ctx, c, gatewayOptions{instance: *instance, sessionTimeout: *session})
		}
		if *dsn == "" {
			return runMemoryProjection(ctx, os.Stdout, c, logger, nil)
		}
		return runPostgresProjection(ctx, c, *dsn)
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bank:", err)
		os.Exit(1)
	}
}

// connect makes the process's one Kafka client and its kastor cluster handle, in the
// namespace of the topic file. brokers, when empty, come from the file.
func connect(file, brokers string, logger *slog.Logger) (*cluster.Cluster, func(), error) {
	cfg, err := topics.Load(file)
	if err != nil {
		return nil, nil, err
	}
	seeds := cfg.Brokers
	if brokers != "" {
		seeds = strings.Split(brokers, ",")
	}
	if len(seeds) == 0 {
		return nil, nil, fmt.Errorf("no brokers: give -brokers, set KAFKA_BROKERS, or list them in %s", file)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return nil, nil, err
	}
	c, err := cluster.New(cl, cfg.Namespace, cluster.Logger(logger))
	if err != nil {
		cl.Close()
		return nil, nil, err
	}
	return c, cl.Close, nil
}

// setup publishes the schemas (refusing incompatible ones) and returns the codecs. A
// broker that is down delays it (logged), never fails it.
func setup(ctx context.Context, c *cluster.Cluster) (*avro.Codecs, error) {
	codecs, err := avro.New(nil)
	if err != nil {
		return nil, err
	}
	if err := (schema.Store{Client: c.Client(), Logger: c.Logger()}).Publish(ctx, codecs.Registry, codecs.Schemas...); err != nil {
		return nil, err
	}
	return codecs, nil
}

// gatewayOptions are the gateway command's settings.
type gatewayOptions struct {
	listeners      []gateway.Listener[kastor.Event]
	instance       string        // "": the library's default
	sessionTimeout time.Duration // 0: the library's default
}

// runGateway runs one gateway for the account aggregate until ctx ends.
func runGateway(ctx context.Context, c *cluster.Cluster, o gatewayOptions) error {
	codecs, err := setup(ctx, c)
	if err != nil {
		return err
	}
	g, err := gateway.New(c, gateway.Config[account.State, account.Command, kastor.Event]{
		Aggregate: account.Aggregate,
		Commands:  codecs.Commands, Events: codecs.Events, States: codecs.States,
		// The instance ID is the static group member's name: restarted under it after a
		// crash, a gateway takes its shards back at once.
		Listeners: o.listeners, InstanceID: o.instance, SessionTimeout: o.sessionTimeout,
	})
	if err != nil {
		return err
	}
	return g.Run(ctx)
}

func demo(ctx context.Context, out io.Writer, file string) error {
	topicFile, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	// The file's topics on an embedded broker (no brokers given).
	c, closeAll, err := devbroker.Connect(ctx, "", topicFile, cluster.Logger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return err
	}
	defer closeAll()
	fmt.Fprintf(out, "embedded broker (kfake, not Apache Kafka) on %s\n", strings.Join(c.Brokers(), ","))
	fmt.Fprintf(out, "topics of %s created; schemas published to %s\n\n", file, schema.Topic)

	tap, events := gateway.Tap[kastor.Event](64)
	gctx, stopGateway := context.WithCancel(ctx)
	defer stopGateway()
	errc := make(chan error, 1)
	go func() {
		errc <- runGateway(gctx, c, gatewayOptions{listeners: []gateway.Listener[kastor.Event]{tap}})
	}()

	codecs, err := avro.New(nil)
	if err != nil {
		return err
	}
	sender, err := gateway.NewSender(ctx, c, gateway.SenderConfig[account.Command]{AggregateType: account.Type, Commands: codecs.Commands})
	if err != nil {
		return err
	}
	defer sender.Close()

	state := account.Aggregate.Initial("acct-alice")
	steps := []account.Command{
		account.Open{Owner: "Alice"},
		account.Deposit{Amount: 100},
		account.Withdraw{Amount: 30},
		account.Withdraw{Amount: 500},
		account.Close{},
		account.Withdraw{Amount: 70},
		account.Close{},
	}
	for _, c := range steps {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		res, err := sender.Send(sctx, kastor.NewCommand[account.Command]("acct-alice", c))
		cancel()
		fmt.Fprintf(out, "%-28s ", fmt.Sprintf("%T%+v", c, c))
		switch {
		case errors.Is(err, kastor.ErrRejected):
			fmt.Fprintf(out, "rejected: %v\n", errors.Unwrap(err))
			continue
		case err != nil:
			return err
		}
		fmt.Fprintf(out, "ok, versions %d..%d\n", res.From, res.To)
		for v := res.From; v <= res.To; v++ {
			select {
			case e := <-events:
				state = account.Aggregate.Evolve(state, e.Event)
				fmt.Fprintf(out, "    event v%d %-20s %+v  (partition %d, offset %d)\n", e.Version, e.Type, e.Event, e.Partition, e.Offset)
			case <-time.After(10 * time.Second):
				return errors.New("the tap did not deliver the committed events")
			}
		}
		fmt.Fprintf(out, "    state %+v\n", state)
	}
	if err := demoProjection(ctx, out, c, codecs, sender); err != nil {
		return err
	}
	stopGateway()
	if err := <-errc; err != nil {
		return err
	}
	fmt.Fprint(out, `
Next, on a broker that outlives the process:
  kastor dev -f examples/kastor.yaml                 # a dev broker with the topics (go run ./cmd/tool)
  go run ./examples/bank gateway                     # a gateway; run several
  kastor command send bank.account acct-1 '{"bank.OpenAccount": {"owner": "Alice"}}' -f examples/kastor.yaml
  kastor aggregate events bank.account acct-1 -f examples/kastor.yaml
`)
	return nil
}

// readerConfig is the account-balances projection's reader.
func readerConfig(codecs *avro.Codecs) consumer.Config[kastor.Event] {
	cfg := consumer.ConfigFor(balance.Name, codecs.Events, account.Type)
	cfg.Version = balance.Version
	return cfg
}

// demoProjection starts the balances projection after the commands, so it catches up
// from the earliest offsets, then shows a query that waits for a command's version.
func demoProjection(ctx context.Context, out io.Writer, c *cluster.Cluster, codecs *avro.Codecs, sender *gateway.Sender[account.Command]) error {
	for _, c := range []account.Command{account.Open{Owner: "Bob"}, account.Deposit{Amount: 250}} {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := sender.Send(sctx, kastor.NewCommand[account.Command]("acct-bob", c))
		cancel()
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "\nprojection %s v%d (in memory): catching up from the earliest offsets\n", balance.Name, balance.Version)
	mem := balance.NewMemory()
	cfg := readerConfig(codecs)
	cfg.AllPartitions = true // this process holds every account
	reader, err := consumer.New(c, cfg, mem.Sink())
	if err != nil {
		return err
	}
	rctx, stopReader := context.WithCancel(ctx)
	defer stopReader()
	rerr := make(chan error, 1)
	go func() { rerr <- reader.Run(rctx) }()

	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := mem.WaitForVersion(wctx, "acct-bob", 2); err != nil {
		return fmt.Errorf("the projection did not catch up: %w", err)
	}
	if err := mem.WaitForVersion(wctx, "acct-alice", 5); err != nil {
		return fmt.Errorf("the projection did not catch up: %w", err)
	}
	fmt.Fprintf(out, "caught up in %v:\n", time.Since(start).Round(time.Millisecond))
	for _, b := range mem.All() {
		fmt.Fprintf(out, "    %-10s balance %4d  version %d  open %v\n", b.AccountID, b.Balance, b.Version, b.Open)
	}

	// Read-your-writes: the query waits until the projection has the command's version.
	res, err := sender.Send(wctx, kastor.NewCommand[account.Command]("acct-bob", account.Withdraw{Amount: 75}))
	if err != nil {
		return err
	}
	if err := mem.WaitForVersion(wctx, "acct-bob", res.To); err != nil {
		return err
	}
	b, _ := mem.Get("acct-bob")
	fmt.Fprintf(out, "account.Withdraw{Amount:75} to acct-bob: ok, version %d; query after it: balance %d (version %d)\n", res.To, b.Balance, b.Version)
	stopReader()
	return <-rerr
}

// runMemoryProjection runs the balances projection in memory until ctx ends, registered
// in the projection registry: `kastor projection status account-balances` shows it and
// `kastor projection rebuild account-balances` rebuilds it beside the serving version.
// It prints the balances when it stops; started, when set, is called once the serving
// version's reader runs.
func runMemoryProjection(ctx context.Context, out io.Writer, c *cluster.Cluster, logger *slog.Logger, started func()) error {
	codecs, err := avro.New(nil)
	if err != nil {
		return err
	}
	rc := readerConfig(codecs)
	rc.Version = 0          // the projection runs each version
	rc.AllPartitions = true // this process holds every account
	var mu sync.Mutex
	sinks := map[int]*balance.Memory{}
	p, err := projection.New(c, projection.Config[kastor.Event]{
		Reader: rc, Version: balance.Version,
		NewSink: func(version int) (consumer.Sink[kastor.Event], error) {
			m := balance.NewMemory()
			mu.Lock()
			sinks[version] = m
			mu.Unlock()
			return m.Sink(), nil
		},
		OnSwitch: func(from, to int) {
			logger.Info("account-balances: serving a version", "version", to, "previous", from)
			if from == 0 && started != nil {
				started()
			}
		},
	})
	if err != nil {
		return err
	}
	err = p.Run(ctx)
	version, _ := p.Serving()
	mu.Lock()
	m := sinks[version]
	mu.Unlock()
	if m != nil {
		all := m.All()
		fmt.Fprintf(out, "%s v%d: %d accounts\n", balance.Name, version, len(all))
		for _, b := range all {
			fmt.Fprintf(out, "  %-16s balance %d (version %d)\n", b.AccountID, b.Balance, b.Version)
		}
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// runPostgresProjection runs the balances projection into PostgreSQL until ctx ends: the
// table account_balances and the reader's offsets commit in one transaction per batch.
func runPostgresProjection(ctx context.Context, c *cluster.Cluster, dsn string) error {
	codecs, err := avro.New(nil)
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	proj, err := balance.NewPostgres(ctx, pool)
	if err != nil {
		return err
	}
	reader, err := consumer.New(c, readerConfig(codecs), proj.Sink())
	if err != nil {
		return err
	}
	return reader.Run(ctx)
}
