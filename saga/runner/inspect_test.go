package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/cluster"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/internal/testdomain/transfer"
	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/producer"
	"github.com/kastor-dev/kastor/saga"
	"github.com/kastor-dev/kastor/saga/runner"
	"github.com/kastor-dev/kastor/schema"
	"github.com/kastor-dev/kastor/topics"
	"github.com/kastor-dev/kastor/wire"
)

// TestInspectAndRetry runs transfers with the runner and reads its topics back with the
// inspection functions, as `kastor saga` does: a transfer done, one active (the accounts'
// gateway held after its debit: a deadline and the credit pending), one whose record is
// broken (its input parked); then the broken record is replaced, the runner restarted,
// and RetryParked re-submits the parked input, which the runner applies: the transfer
// completes, the letter is resolved, and a second retry finds nothing. The runner's
// per-partition metrics count the instances along the way.
func TestInspectAndRetry(t *testing.T) {
	kafka.Backends(t, func(t *testing.T, kc *kafkatest.Cluster) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		b := newBed(t, kc, 20*time.Second)
		ns := b.c.Namespace()
		tp := runner.TopicsOf(ns, transfer.SagaType)
		if tp.State != topics.SagaTopicName(ns, transfer.SagaType, topics.RoleSagaState) {
			t.Fatalf("topics %+v", tp)
		}
		if _, err := runner.ReadInstances(ctx, b.c, "no.such"); !errors.Is(err, runner.ErrNoSagaTopics) || !strings.Contains(err.Error(), "kastor topics apply") {
			t.Fatalf("unknown saga type: %v", err)
		}

		// A record of t-broken that does not decode, before the runner restores.
		write := b.writer()
		broken := &kgo.Record{Topic: tp.State, Partition: producer.PartitionFor([]byte("t-broken"), 3), Key: []byte("t-broken"), Value: []byte{0xff, 0xff},
			Headers: wire.Headers(&kastor.Metadata{AggregateID: "t-broken", Version: 1, Type: runner.InstanceType,
				Fingerprint: uint64(schema.MustParse(runner.InstanceSchema).Fingerprint())})}
		write(ctx, broken)

		reg := prometheus.NewRegistry()
		rn := b.runnerIn(cluster.Registerer(reg))
		stop, _ := b.start(rn)
		b.open(ctx, "alice", 100)
		b.open(ctx, "bob", 0)
		b.open(ctx, "dave", 50)
		b.request(ctx, "t-ok", "alice", "bob", 30)
		if _, err := rn.Await(ctx, "t-ok", finished); err != nil {
			t.Fatal(err)
		}
		b.stall.set("dave")
		b.request(ctx, "t-active", "dave", "bob", 10)
		if _, err := rn.Await(ctx, "t-active", func(i saga.Instance[progress]) bool {
			return len(i.Pending) == 1 && strings.HasPrefix(i.Pending[0].Name, "do:credit")
		}); err != nil {
			t.Fatal(err)
		}
		b.request(ctx, "t-broken", "alice", "bob", 5)

		var parked []runner.Parked
		until(t, ctx, "t-broken's input parked", func() bool {
			var err error
			parked, err = runner.ReadParked(ctx, b.c, transfer.SagaType)
			return err == nil && len(parked) == 1
		})
		p := parked[0]
		if p.Kind != runner.ParkedInput || p.Instance != "t-broken" || p.Reason != runner.ReasonBrokenInstance || p.Resolved || p.Origin != tp.Inputs {
			t.Fatalf("parked: %+v", p)
		}

		insts, err := runner.ReadInstances(ctx, b.c, transfer.SagaType)
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]runner.StoredInstance{}
		for _, si := range insts.Instances {
			byID[si.ID] = si
		}
		if len(byID) != 3 || !byID["t-ok"].Done || byID["t-ok"].Version != 3 || byID["t-broken"].Err == nil {
			t.Fatalf("instances: %+v", insts.Instances)
		}
		act := byID["t-active"]
		if act.Done || act.Err != nil || len(act.Pending) != 1 || act.Deadlines["timeout"].IsZero() || len(act.Seen) != 2 {
			t.Fatalf("t-active: %+v", act)
		}
		if len(insts.Partitions) != 3 {
			t.Fatalf("partitions: %+v", insts.Partitions)
		}
		for _, ps := range insts.Partitions {
			if ps.Unapplied != 0 || ps.Lag > 2 {
				t.Errorf("partition %+v: inputs not applied after every input was applied", ps)
			}
		}

		// The state decoded with the schema the runner published.
		schemas := schema.NewRegistry()
		if err := schema.Load(ctx, b.c.Client(), schemas); err != nil {
			t.Fatal(err)
		}
		st, err := runner.StateJSON(schemas, act.State)
		if err != nil || !strings.Contains(string(st), `"dave"`) || runner.StuckReason(st) != "" {
			t.Fatalf("state of t-active: %s, %v", st, err)
		}
		if got := runner.StuckReason(json.RawMessage(`{"data":{},"stuck":"compensation of step \"debit\" failed 5 times"}`)); !strings.Contains(got, "failed 5 times") {
			t.Fatalf("StuckReason: %q", got)
		}

		one, ps, ok, err := runner.ReadInstance(ctx, b.c, transfer.SagaType, "t-active")
		if err != nil || !ok || one.Version != act.Version || ps.Partition != act.Partition {
			t.Fatalf("ReadInstance: %+v %+v %v %v", one, ps, ok, err)
		}
		if _, _, ok, err := runner.ReadInstance(ctx, b.c, transfer.SagaType, "t-none"); ok || err != nil {
			t.Fatalf("ReadInstance of no instance: %v %v", ok, err)
		}
		// t-ok's inputs: the request's event, the debit's and the credit's outcomes.
		ok3 := byID["t-ok"]
		inputs, err := runner.ReadInputs(ctx, b.c, transfer.SagaType, "t-ok")
		if err != nil || len(inputs) != 3 || inputs[0].Kind != runner.InputKindEvent || inputs[1].Kind != runner.InputKindOutcome ||
			inputs[0].ID != ok3.Seen[0] || inputs[2].ID != ok3.Seen[2] || inputs[1].Outcome.CommandID == "" {
			t.Fatalf("inputs of t-ok: %+v, %v (seen %v)", inputs, err, ok3.Seen)
		}

		// Metrics: counted when scraped.
		counts := gaugeSums(t, reg)
		if counts["done"] != 1 || counts["active"] != 1 || counts["broken"] != 1 || counts["deadlines"] != 1 {
			t.Fatalf("metrics: %v", counts)
		}

		// The cause fixed: the broken record replaced by a tombstone, the runner restarted.
		tomb := *broken
		tomb.Value, tomb.Headers = nil, nil
		write(ctx, &tomb)
		b.stall.unblock()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		rn = b.runner()
		_, _ = b.start(rn)
		res, err := runner.RetryParked(ctx, b.c, transfer.SagaType, "t-broken")
		if err != nil || len(res) != 1 || res[0].Offset < 0 || res[0].Skipped != "" || res[0].Partition != p.OriginPartition {
			t.Fatalf("retry: %+v, %v", res, err)
		}
		// (Await stops at the broken record, still in the partition before its tombstone.)
		until(t, ctx, "t-broken done after the retry", func() bool {
			si, _, ok, err := runner.ReadInstance(ctx, b.c, transfer.SagaType, "t-broken")
			return err == nil && ok && si.Done && si.Version == 3
		})
		parked, err = runner.ReadParked(ctx, b.c, transfer.SagaType)
		if err != nil || len(parked) != 1 || !parked[0].Resolved {
			t.Fatalf("parked after the retry: %+v, %v", parked, err)
		}
		if res, err := runner.RetryParked(ctx, b.c, transfer.SagaType, "t-broken"); err != nil || len(res) != 0 {
			t.Fatalf("second retry: %+v, %v", res, err)
		}
	})
}

// writer returns a function that writes records to their partitions, plainly.
func (b *bed) writer() func(context.Context, ...*kgo.Record) {
	cl, err := b.c.NewClient(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(cl.Close)
	return func(ctx context.Context, recs ...*kgo.Record) {
		b.t.Helper()
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			b.t.Fatal(err)
		}
	}
}

// runnerIn is runner over the bed's client with opts (a metrics registerer, say).
func (b *bed) runnerIn(opts ...cluster.Option) *runner.Runner[progress, bank.Command, kastor.Event] {
	b.t.Helper()
	c, err := cluster.New(b.c.Client(), b.c.Namespace(), append([]cluster.Option{cluster.Logger(b.logger)}, opts...)...)
	if err != nil {
		b.t.Fatal(err)
	}
	rn, err := runner.New(c, runner.ConfigFor(b.def, b.states, b.requests.Events,
		map[string]kastor.Codec[bank.Command]{bank.Type: b.accounts.Commands}, transfer.RequestType))
	if err != nil {
		b.t.Fatal(err)
	}
	return rn
}

// gaugeSums sums the per-partition gauges: instances by status, and "deadlines".
func gaugeSums(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "kastor_saga_partition_instances":
				out[label(m, "status")] += m.GetGauge().GetValue()
			case "kastor_saga_deadlines_pending":
				out["deadlines"] += m.GetGauge().GetValue()
			case "kastor_saga_inputs_lag":
				out["lag"] += m.GetGauge().GetValue()
				out["lagged partitions"]++
			}
		}
	}
	return out
}

func until(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: never happened", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
