package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	ks "github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/gateway"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/internal/testdomain/transfer"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/saga"
	"github.com/kastor-dev/kastor/saga/runner"
	"github.com/kastor-dev/kastor/schema"
	"github.com/kastor-dev/kastor/wire"
)

type transferProgress = saga.Progress[transfer.Data]

// TestSagaCommands runs the money transfer saga in the test process (the accounts' and
// the requests' gateways and the saga runner, as an application would) and drives `kastor
// saga`: a completed transfer listed and shown with its inputs, a transfer whose record is
// broken shown by stuck with its parked input, then the record replaced, the runner
// restarted and the input retried until the transfer completes; and the errors for an
// unknown saga type, a missing topic and an unreachable broker.
func TestSagaCommands(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		ns := namespace(t)
		brokers := strings.Join(c.Brokers(), ",")
		file := writeFile(t, fmt.Sprintf(`namespace: %s
defaults: {partitions: 3, replicationFactor: 1, minInsyncReplicas: 1}
aggregates: [{type: bank.account}, {type: bank.transfer-request}]
sagas: [{type: bank.transfer}]
schemas: {replicationFactor: 1}
`, ns))
		cli := func(args ...string) result {
			return kastor(t, append(args, "-f", file, "--brokers", brokers)...)
		}
		if r := cli("topics", "apply"); r.code != exitOK && r.code != exitDrift {
			t.Fatalf("topics apply: %d", r.code)
		}

		if r := kastor(t, "saga", "retry", "--help"); r.code != exitOK || !strings.Contains(r.stdout, "saga.Apply") || !strings.Contains(r.stdout, "kastor saga retry bank.transfer t-42") {
			t.Errorf("retry --help: %q", r.stdout)
		}
		// Errors first: nothing runs yet.
		if r := cli("saga", "list", "no.such"); r.code != exitError || !strings.Contains(r.stderr, `saga type "no.such" is not in`) || !strings.Contains(r.stderr, "its sagas: bank.transfer") {
			t.Errorf("unknown type: %d %q", r.code, r.stderr)
		}
		if r := kastor(t, "saga", "list", "no.such", "--namespace", ns, "--brokers", brokers); r.code != exitError || !strings.Contains(r.stderr, "do not exist") || !strings.Contains(r.stderr, "kastor topics apply") {
			t.Errorf("missing topics: %d %q", r.code, r.stderr)
		}
		if r := kastor(t, "saga", "list", "bank.transfer", "-f", file, "--brokers", "127.0.0.1:1", "--timeout", "2s"); r.code != exitError || !strings.Contains(r.stderr, "cannot reach Kafka at 127.0.0.1:1") {
			t.Errorf("unreachable broker: %d %q", r.code, r.stderr)
		}
		if r := cli("saga", "show", "bank.transfer"); r.code != exitUsage || !strings.Contains(r.stderr, "want the saga TYPE and an instance ID") {
			t.Errorf("usage: %d %q", r.code, r.stderr)
		}
		if r := cli("saga", "list", "bank.transfer", "--status", "odd"); r.code != exitUsage {
			t.Errorf("bad --status: %d %q", r.code, r.stderr)
		}

		app := newTransferApp(t, ctx, c, ns)
		tp := runner.TopicsOf(ns, transfer.SagaType)
		// A record of t-broken that does not decode, written before the runner restores.
		broken := &kgo.Record{Topic: tp.State, Partition: producer.PartitionFor([]byte("t-broken"), 3), Key: []byte("t-broken"), Value: []byte{0xff},
			Headers: wire.Headers(&ks.Metadata{AggregateID: "t-broken", Version: 1, Type: runner.InstanceType,
				Fingerprint: uint64(schema.MustParse(runner.InstanceSchema).Fingerprint())})}
		app.write(ctx, broken)
		stop := app.startRunner()
		app.send(ctx, app.acct, "alice", bank.Open{Owner: "alice"})
		app.send(ctx, app.acct, "alice", bank.Deposit{Amount: 100})
		app.send(ctx, app.acct, "bob", bank.Open{Owner: "bob"})
		app.request(ctx, "t-ok", "alice", "bob", 30)
		app.request(ctx, "t-broken", "alice", "bob", 5)

		var list sagaList
		until(t, ctx, "t-ok done and t-broken's input parked", func() bool {
			r := cli("saga", "list", "bank.transfer", "-o", "json")
			list = sagaList{}
			return r.code == exitOK && json.Unmarshal([]byte(r.stdout), &list) == nil &&
				list.Summary[statusDone] == 1 && list.Summary[statusBroken] == 1 && len(list.Instances) == 2 && list.Instances[0].Parked == 1
		})
		ok := list.Instances[1]
		if ok.ID != "t-ok" || ok.Version != 3 || ok.StateType != "bank.TransferProgress" || !strings.Contains(string(ok.State), `"alice"`) ||
			len(list.Partitions) != 3 || list.Topics.Inputs != tp.Inputs {
			t.Fatalf("list: %+v", list)
		}
		if r := cli("saga", "list", "bank.transfer"); r.code != exitOK || !strings.Contains(r.stdout, "0 active, 1 done, 0 stuck, 1 broken") ||
			!strings.Contains(r.stdout, "broken  t-broken") {
			t.Errorf("list text: %q", r.stdout)
		}

		r := cli("saga", "show", "bank.transfer", "t-ok", "-o", "json")
		var show sagaShow
		if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &show) != nil || show.Instance == nil || show.Instance.Status != statusDone || len(show.Inputs) != 3 {
			t.Fatalf("show t-ok: %d %s", r.code, r.stdout)
		}
		for _, in := range show.Inputs {
			if in.Applied != "applied" || in.ID == "" {
				t.Errorf("t-ok input %+v: want applied", in)
			}
		}
		if show.Inputs[0].Kind != runner.InputKindEvent || show.Inputs[1].Kind != runner.InputKindOutcome || !strings.Contains(show.Inputs[1].Detail, "OK") {
			t.Errorf("t-ok inputs: %+v", show.Inputs)
		}
		if r := cli("saga", "show", "bank.transfer", "t-broken"); r.code != exitOK || !strings.Contains(r.stdout, "broken") || !strings.Contains(r.stdout, "parked (broken-instance)") {
			t.Errorf("show t-broken: %q", r.stdout)
		}

		var stuck sagaStuck
		r = cli("saga", "stuck", "bank.transfer", "-o", "json")
		if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &stuck) != nil || len(stuck.Instances) != 1 || stuck.Instances[0].ID != "t-broken" ||
			len(stuck.Parked) != 1 || stuck.Parked[0].Reason != runner.ReasonBrokenInstance || stuck.Parked[0].Instance != "t-broken" {
			t.Fatalf("stuck: %d %s", r.code, r.stdout)
		}

		// The fix: the broken record replaced by a tombstone, the runner restarted. Then
		// the retry re-submits the parked input and the transfer completes.
		tomb := *broken
		tomb.Value, tomb.Headers = nil, nil
		app.write(ctx, &tomb)
		stop()
		app.startRunner()
		if r := cli("saga", "retry", "bank.transfer", "t-broken"); r.code != exitOK || !strings.Contains(r.stdout, "1 input(s) re-submitted") ||
			!strings.Contains(r.stdout, fmt.Sprintf("at inputs %d/", broken.Partition)) {
			t.Fatalf("retry: %d %q %q", r.code, r.stdout, r.stderr)
		}
		until(t, ctx, "t-broken done", func() bool {
			r := cli("saga", "list", "bank.transfer", "-o", "json")
			list = sagaList{}
			return r.code == exitOK && json.Unmarshal([]byte(r.stdout), &list) == nil && list.Summary[statusDone] == 2
		})
		if r := cli("saga", "stuck", "bank.transfer"); r.code != exitOK || !strings.Contains(r.stdout, "nothing stuck, broken or parked") {
			t.Errorf("stuck after the retry: %q", r.stdout)
		}
		if r := cli("saga", "retry", "bank.transfer", "t-broken", "-o", "json"); r.code != exitOK || strings.TrimSpace(r.stdout) != "[]" {
			t.Errorf("second retry: %q", r.stdout)
		}
		if r := cli("saga", "show", "bank.transfer", "t-broken", "-o", "json"); r.code != exitOK || !strings.Contains(r.stdout, `"applied": "retried"`) {
			t.Errorf("show t-broken after the retry: %s", r.stdout)
		}
	})
}

// TestSagaStuckAndResume drives `kastor saga` over a transfer that gets stuck: its
// credit refused and its refund refused twice (the source account frozen, Retries 2).
// stuck shows the instance with its reason and its stuck letter; retry resumes it once
// the account is unfrozen; the transfer completes (refunded), and a second retry
// resumes nothing.
func TestSagaStuckAndResume(t *testing.T) {
	realKafka.ParallelBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		ns := namespace(t)
		brokers := strings.Join(c.Brokers(), ",")
		file := writeFile(t, fmt.Sprintf(`namespace: %s
defaults: {partitions: 3, replicationFactor: 1, minInsyncReplicas: 1}
aggregates: [{type: bank.account}, {type: bank.transfer-request}]
sagas: [{type: bank.transfer}]
schemas: {replicationFactor: 1}
`, ns))
		cli := func(args ...string) result {
			return kastor(t, append(args, "-f", file, "--brokers", brokers)...)
		}
		if r := cli("topics", "apply"); r.code != exitOK && r.code != exitDrift {
			t.Fatalf("topics apply: %d", r.code)
		}
		app := newTransferApp(t, ctx, c, ns)
		def, err := transfer.SagaRetrying(10*time.Second, time.Second, 2, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		app.def = def
		app.startRunner()
		app.send(ctx, app.acct, "alice", bank.Open{Owner: "alice"})
		app.send(ctx, app.acct, "alice", bank.Deposit{Amount: 30})
		app.freeze("alice", true)
		app.request(ctx, "t-stuck", "alice", "carol", 30) // carol has no account

		var stuck sagaStuck
		until(t, ctx, "t-stuck stuck", func() bool {
			r := cli("saga", "stuck", "bank.transfer", "-o", "json")
			stuck = sagaStuck{}
			return r.code == exitOK && json.Unmarshal([]byte(r.stdout), &stuck) == nil && len(stuck.Instances) == 1 && len(stuck.Parked) == 1
		})
		inst, letter := stuck.Instances[0], stuck.Parked[0]
		if inst.ID != "t-stuck" || inst.Status != statusStuck || !strings.Contains(inst.Reason, `compensation of step "debit" failed 2 times`) ||
			!strings.Contains(inst.Reason, "account frozen") || inst.Parked != 1 {
			t.Fatalf("stuck instance: %+v", inst)
		}
		if letter.Kind != runner.ParkedStuck || letter.Reason != runner.ReasonStuck || letter.Error != inst.Reason || letter.Instance != "t-stuck" ||
			letter.Version != inst.Version || letter.Resolved {
			t.Fatalf("stuck letter: %+v (instance %+v)", letter, inst)
		}
		if r := cli("saga", "stuck", "bank.transfer"); r.code != exitOK || !strings.Contains(r.stdout, "stuck   t-stuck") || !strings.Contains(r.stdout, "account frozen") {
			t.Errorf("stuck text: %q", r.stdout)
		}

		app.freeze("alice", false)
		r := cli("saga", "retry", "bank.transfer", "t-stuck", "-o", "json")
		var out []retryOut
		if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &out) != nil || len(out) != 1 || out[0].Kind != runner.ParkedStuck ||
			out[0].Resubmitted == "" || out[0].Version != inst.Version || out[0].Error != inst.Reason || !out[0].Resolved {
			t.Fatalf("retry: %d %s %s", r.code, r.stdout, r.stderr)
		}
		var list sagaList
		until(t, ctx, "t-stuck done", func() bool {
			r := cli("saga", "list", "bank.transfer", "-o", "json")
			list = sagaList{}
			return r.code == exitOK && json.Unmarshal([]byte(r.stdout), &list) == nil && list.Summary[statusDone] == 1
		})
		var st struct{ Failed bool } // encoding/json matches the field's name in any case
		if d := list.Instances[0]; d.Version != inst.Version+2 || d.Parked != 0 || json.Unmarshal(d.State, &st) != nil || !st.Failed {
			t.Errorf("t-stuck after the resume: %+v %s", d, d.State)
		}
		if r := cli("saga", "stuck", "bank.transfer"); r.code != exitOK || !strings.Contains(r.stdout, "nothing stuck, broken or parked") {
			t.Errorf("stuck after the resume: %q", r.stdout)
		}
		if r := cli("saga", "retry", "bank.transfer", "t-stuck"); r.code != exitOK || !strings.Contains(r.stdout, "nothing to resume") || !strings.Contains(r.stdout, `"t-stuck"`) ||
			!strings.Contains(r.stdout, "is done") {
			t.Errorf("second retry: %d %q %q", r.code, r.stdout, r.stderr)
		}
		r = cli("saga", "show", "bank.transfer", "t-stuck", "-o", "json")
		var show sagaShow
		if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &show) != nil || len(show.Parked) != 1 || !show.Parked[0].Resolved {
			t.Fatalf("show: %d %s", r.code, r.stdout)
		}
		resumes := 0
		for _, in := range show.Inputs {
			if in.Kind == runner.InputKindResume {
				resumes++
				if in.Applied != "applied" || !strings.Contains(in.Detail, fmt.Sprintf("resume of version %d", inst.Version)) {
					t.Errorf("resume input: %+v", in)
				}
			}
		}
		if resumes != 1 {
			t.Errorf("%d resume inputs, want 1: %+v", resumes, show.Inputs)
		}
	})
}

// transferApp is the transfer example's application in the test process.
type transferApp struct {
	t        *testing.T
	c        *cluster.Cluster
	accounts *bank.Codecs
	requests ks.Codecs[transfer.RequestState, transfer.Request, ks.Event]
	states   ks.Codec[transferProgress]
	def      *saga.Definition[transferProgress, bank.Command, ks.Event]
	acct     *gateway.Sender[bank.Command]
	reqs     *gateway.Sender[transfer.Request]
	cl       *kgo.Client
	// frozen are the accounts whose deposits the accounts' gateway refuses.
	mu     sync.Mutex
	frozen map[string]bool
}

func (a *transferApp) freeze(account string, on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.frozen[account] = on
}

func newTransferApp(t *testing.T, ctx context.Context, kc *kafkatest.Cluster, ns string) *transferApp {
	t.Helper()
	c := kc.Kastor(t, ns, cluster.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	accounts, err := bank.NewCodecs(nil)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := transfer.NewCodecs(nil)
	if err != nil {
		t.Fatal(err)
	}
	requests := tc.Requests
	def, err := transfer.Saga(10*time.Second, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	a := &transferApp{t: t, c: c, accounts: accounts, requests: requests, states: tc.Progress, def: def, frozen: map[string]bool{}}
	refuse := func(s bank.State, c bank.Command) error {
		a.mu.Lock()
		defer a.mu.Unlock()
		if _, deposit := c.(bank.Deposit); deposit && a.frozen[s.Owner] {
			return errors.New("account frozen")
		}
		return nil
	}
	ga, err := gateway.New(c, gateway.Config[bank.State, bank.Command, ks.Event]{
		Aggregate: bank.Refusing(refuse), Commands: accounts.Commands, Events: accounts.Events, States: accounts.States})
	if err != nil {
		t.Fatal(err)
	}
	gr, err := gateway.New(c, gateway.ConfigFor(transfer.Aggregate, requests))
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range []func(context.Context) error{ga.Run, gr.Run} {
		a.run(run)
	}
	if a.acct, err = gateway.NewSender(ctx, c, gateway.SenderConfig[bank.Command]{AggregateType: bank.Type, Commands: accounts.Commands}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.acct.Close)
	if a.reqs, err = gateway.NewSender(ctx, c, gateway.SenderConfigFor(transfer.Aggregate, requests)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.reqs.Close)
	if a.cl, err = c.NewClient(kgo.RecordPartitioner(kgo.ManualPartitioner())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.cl.Close)
	return a
}

// run runs fn until the test ends (or the returned stop), failing the test on its error.
func (a *transferApp) run(fn func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				a.t.Errorf("run: %v", err)
			}
		})
	}
	a.t.Cleanup(stop)
	return stop
}

func (a *transferApp) startRunner() (stop func()) {
	a.t.Helper()
	rn, err := runner.New(a.c, runner.ConfigFor(a.def, a.states, a.requests.Events,
		map[string]ks.Codec[bank.Command]{bank.Type: a.accounts.Commands}, transfer.RequestType))
	if err != nil {
		a.t.Fatal(err)
	}
	return a.run(rn.Run)
}

func (a *transferApp) send(ctx context.Context, s *gateway.Sender[bank.Command], id string, cmd bank.Command) {
	a.t.Helper()
	if _, err := s.Send(ctx, ks.NewCommand(id, cmd)); err != nil {
		a.t.Fatal(err)
	}
}

func (a *transferApp) request(ctx context.Context, id, from, to string, amount int64) {
	a.t.Helper()
	if _, err := a.reqs.Send(ctx, ks.NewCommand(id, transfer.Request{From: from, To: to, Amount: amount})); err != nil {
		a.t.Fatal(err)
	}
}

func (a *transferApp) write(ctx context.Context, recs ...*kgo.Record) {
	a.t.Helper()
	if err := a.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		a.t.Fatal(err)
	}
}
