package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/devbroker"
	"github.com/kastor-dev/kastor/examples/bank/balance"
	"github.com/kastor-dev/kastor/projection"
	"github.com/kastor-dev/kastor/topics"
)

// TestDemo runs `make demo` in process and checks what it prints.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out strings.Builder
	if err := demo(ctx, &out, "../kastor.yaml"); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"ok, versions 1..1", "event v1 bank.AccountOpened",
		"rejected: insufficient funds: balance 70, withdrawal 500",
		"rejected: cannot close with a balance of 70",
		"event v5 bank.AccountClosed",
		"state {Owner:Alice Balance:0 Open:false Closed:true}",
		"projection account-balances v1 (in memory): catching up",
		"acct-alice balance    0  version 5  open false",
		"acct-bob   balance  250  version 2  open true",
		"query after it: balance 175 (version 3)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("demo output lacks %q:\n%s", want, got)
		}
	}
}

// TestMemoryProjectionRegisters runs `bank projection` without -postgres on the embedded
// broker: the projection appears in the registry as serving v1, and prints what it holds
// when stopped.
func TestMemoryProjectionRegisters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := devbroker.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg, err := topics.Load("../kastor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	logger := slog.New(slog.DiscardHandler)
	c, err := cluster.New(cl, cfg.Namespace, cluster.Logger(logger))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topics.Apply(ctx, c.Admin(), topics.NewPlan(cfg), topics.Options{}); err != nil {
		t.Fatal(err)
	}
	pctx, stop := context.WithCancel(ctx)
	var out strings.Builder
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() { done <- runMemoryProjection(pctx, &out, c, logger, func() { close(started) }) }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("the projection stopped before serving: %v", err)
	case <-ctx.Done():
		t.Fatal("the projection never started serving")
	}
	if _, err := projection.WatchRegistry(ctx, c, func(g *projection.Registry) (bool, error) {
		st, ok := g.State(cfg.Namespace, balance.Name)
		return ok && st.Serving == 1, nil
	}); err != nil {
		t.Fatalf("the projection never showed as serving v1 in the registry: %v", err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := "account-balances v1: 0 accounts"; !strings.Contains(out.String(), want) {
		t.Errorf("output %q lacks %q", out.String(), want)
	}
}
