package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	ks "github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/schema"
)

// TestCommandSend sends commands to a running gateway from the command line, with no
// application code: Avro's JSON encoding, encoded with the schemas the gateway published.
func TestCommandSend(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		ns := namespace(t)
		file := writeFile(t, oneNodeYAML(ns))
		brokers := strings.Join(c.Brokers(), ",")
		if r := kastor(t, "topics", "apply", "-f", file, "--brokers", brokers); r.code != exitOK && r.code != exitDrift {
			t.Fatalf("topics apply: %d", r.code)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		codecs, err := bank.NewCodecs(nil)
		if err != nil {
			t.Fatal(err)
		}
		kc := c.Kastor(t, ns, cluster.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err := schema.Publish(ctx, kc.Client(), codecs.Registry, bank.Schemas()...); err != nil {
			t.Fatal(err)
		}
		g, err := gateway.New(kc, gateway.Config[bank.State, bank.Command, ks.Event]{
			Aggregate: bank.Aggregate, Commands: codecs.Commands, Events: codecs.Events, States: codecs.States,
		})
		if err != nil {
			t.Fatal(err)
		}
		gctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- g.Run(gctx) }()
		defer func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("gateway: %v", err)
			}
		}()

		send := func(args ...string) result {
			return kastor(t, append([]string{"command", "send", "bank.account", "acct-ada"}, append(args, "-f", file, "--brokers", brokers, "--wait", "1m")...)...)
		}
		jsonOut := func(r result) commandOutput {
			t.Helper()
			var out commandOutput
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
				t.Fatalf("-o json: %v in %q", err, r.stdout)
			}
			return out
		}
		if r := send(`{"bank.OpenAccount": {"owner": "Ada"}}`); r.code != exitOK || !strings.HasPrefix(r.stdout, "ok: versions 1..1 (command ID ") {
			t.Fatalf("open: %d %q %q", r.code, r.stdout, r.stderr)
		}
		r := send(`{"amount": 30}`, "--type", "bank.Deposit", "--id", "dep-1", "-o", "json")
		if out := jsonOut(r); r.code != exitOK || out != (commandOutput{CommandID: "dep-1", AggregateID: "acct-ada", Type: "bank.Deposit", Status: "ok", From: 2, To: 2}) {
			t.Fatalf("deposit: %d %+v", r.code, out)
		}
		r = send(`{"amount": 30}`, "--type", "bank.Deposit", "--id", "dep-1", "-o", "json")
		if out := jsonOut(r); r.code != exitOK || out.Status != "duplicate" || out.To != 2 {
			t.Fatalf("the same command ID again: %d %+v", r.code, out)
		}
		r = send(`{"bank.Withdraw": {"amount": 100}}`, "-o", "json")
		if out := jsonOut(r); r.code != exitError || out.Status != "rejected" || !strings.Contains(out.Error, "insufficient funds") ||
			!strings.Contains(r.stderr, "insufficient funds") {
			t.Fatalf("an overdraft: %d %+v %q", r.code, out, r.stderr)
		}
		r = kastor(t, "command", "outcome", "bank.account", "acct-ada", "dep-1", "-f", file, "--brokers", brokers, "-o", "json")
		if out := jsonOut(r); r.code != exitOK || out.Status != "duplicate" || out.From != 2 || out.To != 2 {
			t.Fatalf("outcome: %d %+v", r.code, out)
		}
		r = kastor(t, "command", "outcome", "bank.account", "acct-ada", "never-sent", "-f", file, "--brokers", brokers)
		if r.code != exitError || !strings.Contains(r.stderr, "no outcome") {
			t.Fatalf("outcome of a command never sent: %d %q", r.code, r.stderr)
		}

		// Bad input: a usage error that names the problem; nothing is sent.
		for _, bad := range []struct{ args []string }{
			{[]string{`{"amount": 1}`}},
			{[]string{`{"bank.NoSuch": {}}`}},
			{[]string{`{"amount": "x"}`, "--type", "bank.Deposit"}},
			{[]string{`not json`}},
		} {
			if r := send(bad.args...); r.code != exitUsage {
				t.Errorf("%v: exit %d, want %d", bad.args, r.code, exitUsage)
			}
		}
		if r := send(`{"bank.NoSuch": {}}`); !strings.Contains(r.stderr, `no schema of type "bank.NoSuch"`) || !strings.Contains(r.stderr, "bank.Deposit") {
			t.Errorf("unknown type: %q", r.stderr)
		}
		// The published schemas, as the command above used them.
		r = kastor(t, "schema", "show", "bank.Deposit", "--brokers", brokers, "-o", "json")
		var shown []schemaOut
		if err := json.Unmarshal([]byte(r.stdout), &shown); r.code != exitOK || err != nil || len(shown) != 1 ||
			shown[0].Version != 1 || !strings.Contains(string(shown[0].Schema), `"amount"`) {
			t.Fatalf("schema show: %d %v %+v", r.code, err, shown)
		}
		if r = kastor(t, "schema", "list", "--brokers", brokers); r.code != exitOK || !strings.Contains(r.stdout, "bank.MoneyWithdrawn") {
			t.Fatalf("schema list: %d %q", r.code, r.stdout)
		}
		if r = kastor(t, "schema", "show", "bank.NoSuch", "--brokers", brokers); r.code != exitError || !strings.Contains(r.stderr, "no schema of type") {
			t.Fatalf("schema show of an unknown type: %d %q", r.code, r.stderr)
		}
		r = kastor(t, "aggregate", "events", "bank.account", "acct-ada", "-f", file, "--brokers", brokers, "-o", "json")
		var evs []storedEvent
		if err := json.Unmarshal([]byte(r.stdout), &evs); err != nil || len(evs) != 2 || evs[1].CommandID != "dep-1" {
			t.Fatalf("events after the commands: %v %+v", err, evs)
		}
	})
}
