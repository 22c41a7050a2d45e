package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/topics"
)

// defaultBrokers is used when neither --brokers, KAFKA_BROKERS nor the topic file names
// a cluster: where `kastor dev` listens by default.
const defaultBrokers = "127.0.0.1:9092"

// app holds the global flags shared by the commands.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string

	brokers string
	timeout time.Duration
	output  string
}

// usageError marks a bad command line (exit code 2).
type usageError struct {
	err error
	cmd *cobra.Command
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...), cmd: cmd}
}

const rootLong = `kastor runs event-sourced services on Apache Kafka, with Kafka as the only
infrastructure: the event store, the command router, the snapshot store and the bus.
This tool runs a development broker, creates the topics an application needs, sends
commands to running gateways and reads aggregates' events, operates projections
(status, rebuild without downtime, reset) and their dead letters, and inspects sagas
(instances, inputs, parked inputs and their retry).

Topic layout, for namespace <ns>, each aggregate type <agg>, saga type <s> and
projection <p> of kastor.yaml:

  <ns>.<agg>.commands    commands, key aggregate ID        delete, short retention
  <ns>.<agg>.events      events: the source of truth       delete, kept forever, never compacted
  <ns>.<agg>.snapshots   latest state per aggregate        compact
  <ns>.<agg>.replies     command results, key caller ID    delete, short retention
  <ns>.saga.<s>.inputs   a saga's inputs, key instance ID  delete, short retention
  <ns>.saga.<s>.state    latest record per saga instance   compact
  <ns>.saga.<s>.dlq      a saga's parked inputs            delete, kept forever, 1 partition
  <ns>.proj.<p>.dlq      a projection's dead letters       delete, kept forever, 1 partition
  _kastor.schemas        Avro writer schemas (shared)      compact, 1 partition
  _kastor.projections    projection registry (shared)      compact, 1 partition

All four topics of an aggregate type have the same partition count, and so do a saga
type's inputs and state: a partition is a shard with a single writer. kastor creates
topics but never changes existing ones; a different partition count or cleanup policy
is reported as drift (exit code 3).

Exit codes: 0 ok, 1 error, 2 usage error, 3 drift remains.`

const rootExample = `  # One-command development setup: a broker on 127.0.0.1:9092 with the example topics
  kastor dev -f examples/kastor.yaml

  # In another shell: see what would be created, create it, check it
  export KAFKA_BROKERS=127.0.0.1:9092
  kastor topics apply -f examples/kastor.yaml --dry-run
  kastor topics apply -f examples/kastor.yaml
  kastor topics describe -f examples/kastor.yaml -o json

  # With a gateway running (go run ./examples/bank gateway): a command, then the events
  kastor command send bank.account acct-1 '{"bank.OpenAccount": {"owner": "Alice"}}' -f examples/kastor.yaml
  kastor aggregate events bank.account acct-1 -f examples/kastor.yaml`

// newRootCmd builds the command tree writing to stdout and stderr.
func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr, getenv: os.Getenv}
	root := &cobra.Command{
		Use:           "kastor",
		Short:         "Development broker, topics, commands and projections of kastor applications on Kafka",
		Long:          rootLong,
		Example:       rootExample,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          subcommandArgs,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			switch a.output {
			case "text", "json":
			default:
				return usagef(cmd, "invalid --output %q: want text or json", a.output)
			}
			if a.timeout <= 0 {
				return usagef(cmd, "invalid --timeout %s: want a positive duration such as 10s", a.timeout)
			}
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{err: err, cmd: cmd}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&a.brokers, "brokers", "",
		"comma-separated bootstrap brokers (default: $KAFKA_BROKERS, else the topic file's brokers, else "+defaultBrokers+")")
	pf.DurationVar(&a.timeout, "timeout", topics.DefaultTimeout, "bound on each request to the cluster, so an unreachable broker fails fast")
	pf.StringVarP(&a.output, "output", "o", "text", "output format: text or json")

	root.AddCommand(newDevCmd(a), newTopicsCmd(a), newAggregateCmd(a))
	root.AddCommand(newProjectionCmd(a), newDLQCmd(a), newSagaCmd(a), newCommandCmd(a), newSchemaCmd(a))
	return root
}

// subcommandArgs rejects arguments of a command that only groups subcommands, so a typo
// is a usage error rather than a help page and exit code 0.
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return &usageError{err: errors.New(msg), cmd: cmd}
}

// noArgs is cobra.NoArgs as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef(cmd, "unexpected argument %q (%s takes flags only)", args[0], cmd.CommandPath())
	}
	return nil
}

// dial returns a client of brokers set up for a command a person waits on, once a broker
// has answered: dials, requests and their retries are bounded by --timeout, so a wrong
// address fails in seconds with the dial error (a *topics.UnreachableError) instead of
// being retried in the background for minutes, as a service's client would. The caller
// closes it.
func (a *app) dial(ctx context.Context, brokers []string) (*kgo.Client, error) {
	if len(brokers) == 0 {
		return nil, errors.New("no broker address given")
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ClientID("kastor"),
		kgo.DialTimeout(a.timeout),
		kgo.RetryTimeout(a.timeout),
		kgo.RequestRetries(5),
		kgo.RequestTimeoutOverhead(a.timeout),
		// Topics are created and then looked up right away; the default 5s minimum
		// between metadata refreshes would make that look-up wait.
		kgo.MetadataMinAge(100*time.Millisecond),
	)
	if err != nil {
		return nil, fmt.Errorf("kafka client for %v: %w", brokers, err)
	}
	if err := topics.Reachable(ctx, cl, a.timeout); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}

// logger is the library's logger in the tool: warnings (a broker it waits for) on stderr.
func (a *app) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// admin is dial's client wrapped for admin requests, bounded by --timeout. Closing it
// closes the client.
func (a *app) admin(ctx context.Context, brokers []string) (*kadm.Client, error) {
	cl, err := a.dial(ctx, brokers)
	if err != nil {
		return nil, err
	}
	return a.adminOf(cl), nil
}

func (a *app) adminOf(cl *kgo.Client) *kadm.Client {
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32(min(a.timeout, time.Hour).Milliseconds()))
	return adm
}

// resolveBrokers applies the precedence --brokers, KAFKA_BROKERS, file, default.
func (a *app) resolveBrokers(cfg *topics.Config) []string {
	if b := splitList(a.brokers); len(b) > 0 {
		return b
	}
	if b := splitList(a.getenv("KAFKA_BROKERS")); len(b) > 0 {
		return b
	}
	if cfg != nil && len(cfg.Brokers) > 0 {
		return cfg.Brokers
	}
	return []string{defaultBrokers}
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// loadConfig reads the topic file, with a hint when the default file is absent.
func loadConfig(file string) (*topics.Config, error) {
	cfg, err := topics.Load(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("topic file %s not found: name one with -f (see examples/kastor.yaml)", file)
	}
	return cfg, err
}
