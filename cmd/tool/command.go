package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	ks "github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/schema"
	"github.com/kastor-dev/kastor/topics"
)

const commandLong = `command sends a command to the gateways of an aggregate type and prints its
outcome, or asks for the outcome of a command sent before, without application code:
the command is encoded with its newest Avro schema in _kastor.schemas, the topic that
services publish their schemas to.

The command is Avro's JSON encoding of the command record, either with its type name as
the only key, {"bank.Deposit": {"amount": 100}}, or with --type bank.Deposit and the
record alone. In Avro's JSON encoding an optional field (a union with null) is written
{"string": "x"} or null; bytes are strings of \u00XX characters.

A command ID has one outcome: send again with --id to get the first execution's result
or refusal without executing anything twice. "outcome" asks without any risk of
executing the command.

Exit codes: 0 ok, 1 refused, not executed or no answer in --wait (the message says
which), 2 usage error.`

const commandExample = `  # With a gateway running (go run ./examples/bank gateway -brokers 127.0.0.1:9092):
  kastor command send bank.account acct-1 '{"bank.OpenAccount": {"owner": "Alice"}}' -f examples/kastor.yaml
  kastor command send bank.account acct-1 '{"amount": 100}' --type bank.Deposit --id dep-1
  kastor command outcome bank.account acct-1 dep-1 -o json`

func newCommandCmd(a *app) *cobra.Command {
	var flags projFlags
	cmd := &cobra.Command{
		Use:     "command",
		Short:   "Send a command to an aggregate's gateways, or ask for a command's outcome",
		Long:    commandLong,
		Example: commandExample,
		Args:    subcommandArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	flags.register(cmd)
	var typ, id string
	var wait time.Duration
	var expected int64
	send := &cobra.Command{
		Use:   "send AGGREGATE_TYPE AGGREGATE_ID JSON",
		Short: "Send a command (Avro JSON) and wait for its outcome",
		Long:  commandLong,
		Example: `  kastor command send bank.account acct-1 '{"bank.OpenAccount": {"owner": "Alice"}}'
  kastor command send bank.account acct-1 '{"amount": 100}' --type bank.Deposit --id dep-1`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 3 {
				return usagef(cmd, "want AGGREGATE_TYPE, AGGREGATE_ID and JSON, got %d argument(s)", len(args))
			}
			if wait <= 0 {
				return usagef(cmd, "invalid --wait %s: want a positive duration such as 10s", wait)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, reg, done, err := a.sender(ctx, &flags, args[0])
			if err != nil {
				return err
			}
			defer done()
			enc, err := encodeCommand(reg, typ, args[2])
			if err != nil {
				return &usageError{err: err, cmd: cmd}
			}
			c := ks.Command[ks.Encoded]{AggregateID: args[1], ID: id, ExpectedVersion: ks.AnyVersion, Payload: enc}
			if cmd.Flags().Changed("expected-version") {
				c.ExpectedVersion = expected
			}
			sctx, cancel := context.WithTimeout(ctx, wait)
			defer cancel()
			res, err := s.Send(sctx, c)
			return a.printOutcome(enc.Type, res, err)
		},
	}
	send.Flags().StringVar(&typ, "type", "", "the command's Avro type name, when JSON is the record alone")
	send.Flags().StringVar(&id, "id", "", "the command ID (default: a new one, printed)")
	send.Flags().Int64Var(&expected, "expected-version", 0, "refuse the command unless the aggregate is at this version (0: new)")
	send.Flags().DurationVar(&wait, "wait", 10*time.Second, "how long to wait for the outcome")

	outcome := &cobra.Command{
		Use:   "outcome AGGREGATE_TYPE AGGREGATE_ID COMMAND_ID",
		Short: "Ask for a command's outcome without any risk of executing it",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 3 {
				return usagef(cmd, "want AGGREGATE_TYPE, AGGREGATE_ID and COMMAND_ID, got %d argument(s)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, _, done, err := a.sender(ctx, &flags, args[0])
			if err != nil {
				return err
			}
			defer done()
			sctx, cancel := context.WithTimeout(ctx, wait)
			defer cancel()
			res, err := s.Outcome(sctx, args[1], args[2])
			return a.printOutcome("", res, err)
		},
	}
	outcome.Flags().DurationVar(&wait, "wait", 10*time.Second, "how long to wait for the answer")
	cmd.AddCommand(send, outcome)
	return cmd
}

// sender connects a Sender of aggregate type aggType and loads the published schemas.
func (a *app) sender(ctx context.Context, f *projFlags, aggType string) (*gateway.Sender[ks.Encoded], *schema.Registry, func(), error) {
	t, err := a.connectTarget(ctx, f)
	if err != nil {
		return nil, nil, nil, err
	}
	cl := t.c.Client()
	for _, role := range []topics.Role{topics.RoleCommands, topics.RoleReplies} {
		name := topics.TopicName(t.ns, aggType, role)
		mctx, cancel := context.WithTimeout(ctx, a.timeout)
		md, err := t.adm.Metadata(mctx, name)
		cancel()
		if err != nil {
			cl.Close()
			return nil, nil, nil, fmt.Errorf("metadata: %w", err)
		}
		if td, ok := md.Topics[name]; !ok || td.Err != nil {
			cl.Close()
			return nil, nil, nil, fmt.Errorf("topic %s does not exist (is the namespace %q and the type %q right? `kastor topics describe` lists the topics)", name, t.ns, aggType)
		}
	}
	reg := schema.NewRegistry()
	lctx, cancel := context.WithTimeout(ctx, a.timeout)
	err = schema.Load(lctx, cl, reg)
	cancel()
	if err != nil {
		cl.Close()
		return nil, nil, nil, err
	}
	s, err := gateway.NewSender(ctx, t.c, gateway.SenderConfig[ks.Encoded]{AggregateType: aggType, Commands: encodedCodec{}})
	if err != nil {
		cl.Close()
		return nil, nil, nil, err
	}
	return s, reg, func() { s.Close(); cl.Close() }, nil
}

// encodedCodec passes commands that are already encoded.
type encodedCodec struct{}

func (encodedCodec) Encode(e ks.Encoded) (ks.Encoded, error) { return e, nil }
func (encodedCodec) Decode(e ks.Encoded) (ks.Encoded, error) { return e, nil }

// encodeCommand encodes text, Avro's JSON encoding of a command, with the newest schema
// of its type: typ, or the only key of text when typ is empty.
func encodeCommand(reg *schema.Registry, typ, text string) (ks.Encoded, error) {
	body := []byte(text)
	if typ == "" {
		var wrapped map[string]json.RawMessage
		if err := json.Unmarshal(body, &wrapped); err != nil || len(wrapped) != 1 {
			return ks.Encoded{}, fmt.Errorf(`JSON %s: want {"<command type>": {...}} with one key, or --type and the record alone`, abbreviate(text))
		}
		for k, v := range wrapped {
			typ, body = k, v
		}
	}
	s, ok := reg.Latest(typ)
	if !ok {
		return ks.Encoded{}, fmt.Errorf("no schema of type %q in %s (published types: %s)", typ, schema.Topic, strings.Join(recordNames(reg), ", "))
	}
	native, rest, err := s.Codec().NativeFromTextual(body)
	if err != nil {
		return ks.Encoded{}, fmt.Errorf("JSON %s is not a %s (Avro JSON encoding of %s): %w", abbreviate(string(body)), typ, s.JSON(), err)
	}
	if strings.TrimSpace(string(rest)) != "" {
		return ks.Encoded{}, fmt.Errorf("JSON %s: unexpected text after the record: %s", abbreviate(string(body)), abbreviate(string(rest)))
	}
	data, err := s.Codec().BinaryFromNative(nil, native)
	if err != nil {
		return ks.Encoded{}, fmt.Errorf("encoding %s: %w", typ, err)
	}
	return ks.Encoded{Type: typ, Fingerprint: uint64(s.Fingerprint()), Data: data}, nil
}

func recordNames(reg *schema.Registry) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range reg.Schemas() {
		if s.Kind() == schema.Record && !seen[s.Name()] {
			seen[s.Name()] = true
			out = append(out, s.Name())
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return []string{"none: has a gateway of this type started?"}
	}
	return out
}

func abbreviate(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// commandOutput is a command's outcome, as printed with -o json.
type commandOutput struct {
	CommandID   string `json:"commandId"`
	AggregateID string `json:"aggregateId"`
	Type        string `json:"type,omitempty"`
	// Status is ok, duplicate (the outcome of an earlier execution), or the refusal:
	// rejected, conflict, invariant, expired, unavailable, no_outcome, timeout, error.
	Status string `json:"status"`
	From   int64  `json:"from,omitempty"`
	To     int64  `json:"to,omitempty"`
	Error  string `json:"error,omitempty"`
}

// printOutcome prints a command's outcome; a refusal is returned as the error (stderr,
// exit 1), after the JSON with -o json.
func (a *app) printOutcome(typ string, res gateway.Result, err error) error {
	out := commandOutput{CommandID: res.CommandID, AggregateID: res.AggregateID, Type: typ, Status: "ok", From: res.From, To: res.To}
	if res.Duplicate {
		out.Status = "duplicate"
	}
	if err != nil {
		out.Status, out.Error, out.From, out.To = statusOf(err), err.Error(), 0, 0
	}
	if a.output == "json" {
		if werr := writeJSON(a.stdout, out); werr != nil {
			return werr
		}
		return err
	}
	if err != nil {
		return err
	}
	what := "ok"
	if res.Duplicate {
		what = "ok (an earlier execution's outcome; nothing new was written)"
	}
	if res.From > res.To {
		fmt.Fprintf(a.stdout, "%s: no event written (command ID %s)\n", what, res.CommandID)
	} else {
		fmt.Fprintf(a.stdout, "%s: versions %d..%d (command ID %s)\n", what, res.From, res.To, res.CommandID)
	}
	return nil
}

func statusOf(err error) string {
	for _, s := range []struct {
		target error
		status string
	}{
		{ks.ErrRejected, "rejected"}, {ks.ErrVersionConflict, "conflict"}, {ks.ErrInvariant, "invariant"},
		{ks.ErrExpired, "expired"}, {ks.ErrUnavailable, "unavailable"}, {ks.ErrNoOutcome, "no_outcome"}, {ks.ErrTimeout, "timeout"},
	} {
		if errors.Is(err, s.target) {
			return s.status
		}
	}
	return "error"
}
