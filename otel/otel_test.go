package otel_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/internal/testdomain/transfer"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/otel"
	"github.com/kastor-dev/kastor/saga"
	"github.com/kastor-dev/kastor/saga/runner"
	"github.com/kastor-dev/kastor/topics"
)

func newProvider() (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	return sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)), exp
}

// A record's traceparent is the span's remote parent; without one, the span in ctx is.
func TestTracerParents(t *testing.T) {
	tp, exp := newProvider()
	tr := otel.NewTracer(otel.WithTracerProvider(tp))

	parent := kastor.NewTrace()
	parent.State = "vendor=abc"
	sp := tr.Start(context.Background(), parent, kastor.SpanStart{Name: "process x", Kind: kastor.SpanConsumer,
		Attributes: []kastor.Attribute{{Key: "s", Value: "v"}, {Key: "n", Value: int64(3)}, {Key: "b", Value: true}}})
	tc := sp.TraceContext()
	if tc.TraceID != parent.TraceID || tc.SpanID == parent.SpanID || tc.State != parent.State || !tc.IsValid() {
		t.Fatalf("span context %+v, parent %+v", tc, parent)
	}
	sp.SetAttributes(kastor.Attribute{Key: "kastor.outcome", Value: "OK"})
	sp.End(errors.New("boom"))

	ctx, root := tp.Tracer("test").Start(context.Background(), "request")
	child := tr.Start(ctx, kastor.TraceContext{}, kastor.SpanStart{Name: "send x", Kind: kastor.SpanProducer})
	child.End(nil)
	root.End()
	if got := otel.FromContext(ctx); got.SpanID != root.SpanContext().SpanID() || got.TraceID != root.SpanContext().TraceID() {
		t.Fatalf("FromContext: %+v", got)
	}

	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	s0 := spans[0]
	attrs := map[string]string{}
	for _, a := range s0.Attributes {
		attrs[string(a.Key)] = a.Value.String()
	}
	switch {
	case s0.Name != "process x" || s0.SpanKind != trace.SpanKindConsumer:
		t.Errorf("span %q kind %v", s0.Name, s0.SpanKind)
	case s0.Parent.SpanID() != parent.SpanID || !s0.Parent.IsRemote() || s0.SpanContext.TraceID() != parent.TraceID:
		t.Errorf("span parent %v, want the remote %s", s0.Parent, parent)
	case fmt.Sprint(attrs) != "map[b:true kastor.outcome:OK n:3 s:v]":
		t.Errorf("attributes %v", attrs)
	case s0.Status.Code.String() != "Error" || s0.Status.Description != "boom":
		t.Errorf("status %+v", s0.Status)
	}
	if s1 := spans[1]; s1.Parent.SpanID() != root.SpanContext().SpanID() || s1.SpanKind != trace.SpanKindProducer {
		t.Errorf("span %q: parent %v kind %v, want the context's span", s1.Name, s1.Parent, s1.SpanKind)
	}
}

// TestTransferIsOneTrace runs a transfer on the embedded broker with every component's
// spans recorded by OpenTelemetry (in memory), the request sent in a span of the
// caller's: every span of the transfer is in the caller's trace, and each has its cause's
// span as parent: request sent (the caller's span) -> request handled -> saga's
// transition (the routed event) -> debit sent -> debit handled -> transition (its reply)
// -> credit -> ... .
func TestTransferIsOneTrace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tp, exp := newProvider()
	kc := kafkatest.StartEmbedded(t)
	c := kc.Kastor(t, "oteltest", cluster.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		cluster.Tracer(otel.NewTracer(otel.WithTracerProvider(tp))))
	file := `{namespace: oteltest, defaults: {partitions: 2, replicationFactor: 1, minInsyncReplicas: 1},
	  aggregates: [{type: bank.account}, {type: bank.transfer-request}], sagas: [{type: bank.transfer}],
	  schemas: {replicationFactor: 1}}`
	if _, err := topics.ApplyYAML(ctx, c.Admin(), []byte(file), topics.Options{}); err != nil {
		t.Fatal(err)
	}
	accounts, err := bank.NewCodecs(nil)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := transfer.NewCodecs(nil)
	if err != nil {
		t.Fatal(err)
	}
	def, err := transfer.Saga(10*time.Second, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	run, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	ga, err := gateway.New(c, gateway.Config[bank.State, bank.Command, kastor.Event]{
		Aggregate: bank.Aggregate, Commands: accounts.Commands, Events: accounts.Events, States: accounts.States})
	if err != nil {
		t.Fatal(err)
	}
	gr, err := gateway.New(c, gateway.ConfigFor(transfer.Aggregate, tc.Requests))
	if err != nil {
		t.Fatal(err)
	}
	rn, err := runner.New(c, runner.ConfigFor(def, tc.Progress, tc.Requests.Events,
		map[string]kastor.Codec[bank.Command]{bank.Type: accounts.Commands}, transfer.RequestType))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []func(context.Context) error{ga.Run, gr.Run, rn.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r(run); err != nil {
				t.Errorf("run: %v", err)
			}
		}()
	}
	acct, err := gateway.NewSender(ctx, c, gateway.SenderConfig[bank.Command]{AggregateType: bank.Type, Commands: accounts.Commands})
	if err != nil {
		t.Fatal(err)
	}
	defer acct.Close()
	reqs, err := gateway.NewSender(ctx, c, gateway.SenderConfigFor(transfer.Aggregate, tc.Requests))
	if err != nil {
		t.Fatal(err)
	}
	defer reqs.Close()
	for _, cmd := range []kastor.Command[bank.Command]{kastor.NewCommand[bank.Command]("alice", bank.Open{Owner: "alice"}),
		kastor.NewCommand[bank.Command]("alice", bank.Deposit{Amount: 100}), kastor.NewCommand[bank.Command]("bob", bank.Open{Owner: "bob"})} {
		if _, err := acct.Send(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}

	// A command's span ends with its transaction, which can be after its caller saw the
	// reply: wait for the three set-up commands' spans before forgetting them.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		n := 0
		for _, s := range exp.GetSpans() {
			if s.Name == "process oteltest.bank.account.commands" {
				n++
			}
		}
		if n >= 3 {
			break
		}
	}
	exp.Reset()
	sctx, caller := tp.Tracer("test").Start(ctx, "transfer request")
	if _, err := reqs.Send(sctx, kastor.NewCommand("t-1", transfer.Request{From: "alice", To: "bob", Amount: 30})); err != nil {
		t.Fatal(err)
	}
	caller.End()
	done, err := rn.Await(ctx, "t-1", func(i saga.Instance[saga.Progress[transfer.Data]]) bool { return i.Done })
	if err != nil || done.State.Failed {
		t.Fatalf("t-1: %+v, %v", done, err)
	}
	// The last transition's span ends with its transaction, after Await saw its record.
	deadline := time.Now().Add(10 * time.Second)
	for len(exp.GetSpans()) < 8 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}

	spans := exp.GetSpans()
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
	}
	// Walk each span up to the caller's: every one reaches it, through spans of the
	// trace, in the order of the transfer's causes.
	want := map[string]int{
		"send oteltest.bank.transfer-request.commands": 1, "process oteltest.bank.transfer-request.commands": 1,
		"process oteltest.saga.bank.transfer.inputs": 3, // the routed event, the debit's and the credit's replies
		"process oteltest.bank.account.commands":     2, // debit, credit
		"transfer request":                           1,
	}
	got := map[string]int{}
	for _, s := range spans {
		got[s.Name]++
		if s.SpanContext.TraceID() != caller.SpanContext().TraceID() {
			t.Errorf("span %q: trace %s, want the caller's %s", s.Name, s.SpanContext.TraceID(), caller.SpanContext().TraceID())
		}
		var chain []string
		for cur := s; ; {
			chain = append(chain, cur.Name)
			if cur.SpanContext.SpanID() == caller.SpanContext().SpanID() {
				break
			}
			p, ok := byID[cur.Parent.SpanID()]
			if !ok {
				t.Errorf("span %q: parent %s not recorded (chain %q)", s.Name, cur.Parent.SpanID(), chain)
				break
			}
			cur = p
		}
		t.Logf("%q", chain)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("spans by name %v, want %v", got, want)
	}
	// The causal order: the saga's last transition descends from the request through
	// every hop.
	var longest int
	for _, s := range spans {
		n := 0
		for cur, ok := s, true; ok && cur.SpanContext.SpanID() != caller.SpanContext().SpanID(); cur, ok = byID[cur.Parent.SpanID()] {
			n++
		}
		longest = max(longest, n)
	}
	// send, handle request, transition (event), handle debit, transition (reply),
	// handle credit, transition (reply): 7 hops below the caller.
	if longest != 7 {
		t.Errorf("longest chain below the caller: %d spans, want 7", longest)
	}
}
