package runner_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/gateway"
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

// probe is the state of the small sagas these tests define on the transfer saga's topics.
type probe struct{ Result string }

type probeRunner = runner.Runner[probe, bank.Command, kastor.Event]

// probeSaga is a saga of type bank.transfer (so that it runs on the bed's topics) started
// by a transfer request: react decides everything else.
func probeSaga(t *testing.T, react func(probe, saga.Input[bank.Command, kastor.Event]) (saga.Transition[probe, bank.Command], error)) *saga.Definition[probe, bank.Command, kastor.Event] {
	t.Helper()
	def := &saga.Definition[probe, bank.Command, kastor.Event]{
		Type:    transfer.SagaType,
		Initial: func(string) probe { return probe{} },
		Correlate: func(ev kastor.Envelope[kastor.Event]) (string, bool, error) {
			_, ok := ev.Event.(transfer.Requested)
			return ev.AggregateID, ok, nil
		},
		React: react,
	}
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}
	return def
}

func (b *bed) probeRunner(def *saga.Definition[probe, bank.Command, kastor.Event]) *probeRunner {
	b.t.Helper()
	ps, err := schema.Derive[probe](schema.Name("test.Probe"))
	if err != nil {
		b.t.Fatal(err)
	}
	states, err := schema.NewCodec[probe](nil, ps, schema.Describe("state"))
	if err != nil {
		b.t.Fatal(err)
	}
	rn, err := runner.New(b.c, runner.ConfigFor(def, schema.ValueCodec(states), b.requests.Events,
		map[string]kastor.Codec[bank.Command]{bank.Type: b.accounts.Commands}, transfer.RequestType))
	if err != nil {
		b.t.Fatal(err)
	}
	return rn
}

func (b *bed) startProbe(rn *probeRunner) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rn.Run(ctx) }()
	stopped := false
	var err error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			err = <-done
		}
		return err
	}
	b.t.Cleanup(func() { _ = stop() })
	return stop
}

// samePartition returns n transfer IDs with prefix that map to one inputs partition.
func samePartition(prefix string, n int, partitions int32) []string {
	var ids []string
	want := int32(-1)
	for i := 0; len(ids) < n; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		p := producer.PartitionFor([]byte(id), partitions)
		if want < 0 {
			want = p
		}
		if p == want {
			ids = append(ids, id)
		}
	}
	return ids
}

// TestRefusedDeadlineFiresOnce: a deadline whose React fails is parked, and the same
// transaction writes the instance's next version without it, so that it does not fire
// again in this runner nor in the next one, which restores the instance. The second
// runner fires a later deadline of another instance of the same partition: had the
// refused one still been pending, it would have fired (and been parked) before it.
func TestRefusedDeadlineFiresOnce(t *testing.T) {
	kafka.Backends(t, func(t *testing.T, kc *kafkatest.Cluster) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		b := newBed(t, kc, time.Second)
		def := probeSaga(t, func(s probe, in saga.Input[bank.Command, kastor.Event]) (saga.Transition[probe, bank.Command], error) {
			tr := saga.Transition[probe, bank.Command]{State: s}
			switch {
			case in.Event != nil:
				name := in.Event.Event.(transfer.Requested).From // "bad" or "good"
				tr.Set = map[string]time.Time{name: in.At.Add(200 * time.Millisecond)}
			case in.Deadline != nil && in.Deadline.Name == "bad":
				return tr, errors.New("this deadline is refused")
			case in.Deadline != nil:
				tr.State.Result, tr.Done = "fired "+in.Deadline.Name, true
			}
			return tr, nil
		})
		ids := samePartition("refused", 2, 3)
		bad, good := ids[0], ids[1]

		first := b.probeRunner(def)
		stop := b.startProbe(first)
		b.request(ctx, bad, "bad", "x", 1)
		inst, err := first.Await(ctx, bad, func(i saga.Instance[probe]) bool { return i.Version >= 2 })
		if err != nil {
			t.Fatalf("the refused deadline left no trace in the record: %v", err)
		}
		if inst.Version != 2 || len(inst.Deadlines) != 0 || inst.Done || !strings.HasPrefix(inst.Seen[len(inst.Seen)-1], "deadline/bad/") {
			t.Fatalf("after the refused deadline: %+v", inst)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}

		second := b.probeRunner(def)
		_ = b.startProbe(second)
		b.request(ctx, good, "good", "x", 1)
		if done, err := second.Await(ctx, good, func(i saga.Instance[probe]) bool { return i.Done }); err != nil || done.State.Result != "fired good" {
			t.Fatalf("the other instance: %+v, %v", done, err)
		}

		ns := b.c.Namespace()
		dlq := readAll(ctx, t, b.c, topics.SagaTopicName(ns, transfer.SagaType, topics.RoleSagaDLQ))
		if len(dlq) != 1 || string(dlq[0].Key) != bad {
			for _, r := range dlq {
				d, _, _ := wire.ParseDeadLetter(r.Headers)
				t.Logf("parked: key %q, %+v", r.Key, d)
			}
			t.Fatalf("%d parked records, want one, of %s", len(dlq), bad)
		}
		d, _, _ := wire.ParseDeadLetter(dlq[0].Headers) // its projection headers are missing: a saga's
		if d.Reason != runner.ReasonRejected || !strings.Contains(d.Err, "this deadline is refused") || !strings.Contains(d.Err, "version 2") {
			t.Fatalf("parked: %+v", d)
		}
		var versions []int64
		for _, r := range readAll(ctx, t, b.c, topics.SagaTopicName(ns, transfer.SagaType, topics.RoleSagaState)) {
			if inst, ok, err := runner.DecodeStateRecord(r); err == nil && ok && inst.ID == bad {
				versions = append(versions, inst.Version)
			}
		}
		if fmt.Sprint(versions) != "[1 2]" {
			t.Fatalf("versions of %s: %v, want [1 2]", bad, versions)
		}
	})
}

// TestTimeoutWaitsForAnOpenOutcome: a gateway that read a command before its deadline
// can write its outcome in a transaction that ends after the saga's timeout for it came
// due. The runner must apply that outcome, not fire the timeout: a timeout fired while
// the outcome's transaction is open would compensate a step that then commits. The
// accounts' gateway is held, and the test writes the outcome itself in a transaction it
// keeps open until past the timeout, with the outcome the first record of the partition
// that the runner has not applied (so the partition's last stable offset is the runner's
// position: a runner that waits only for that fires the timeout).
func TestTimeoutWaitsForAnOpenOutcome(t *testing.T) {
	kafka.Backends(t, func(t *testing.T, kc *kafkatest.Cluster) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		b := newBed(t, kc, time.Second)
		const wait = 3 * time.Second
		def := probeSaga(t, func(s probe, in saga.Input[bank.Command, kastor.Event]) (saga.Transition[probe, bank.Command], error) {
			tr := saga.Transition[probe, bank.Command]{State: s}
			switch {
			case in.Event != nil:
				tr.Send = []saga.Send[bank.Command]{{Name: "probe", AggregateType: bank.Type, AggregateID: "held",
					Command: bank.Deposit{Amount: 1}, Deadline: in.At.Add(wait)}}
				tr.Set = map[string]time.Time{"timeout": in.At.Add(wait + 500*time.Millisecond)}
			case in.Outcome != nil:
				tr.State.Result, tr.Done = "outcome", true
			case in.Deadline != nil:
				tr.State.Result, tr.Done = "timeout", true
			}
			return tr, nil
		})
		rn := b.probeRunner(def)
		_ = b.startProbe(rn)
		// Hold the accounts' gateway: it answers nothing more until released.
		b.open(ctx, "holder", 10)
		b.stall.set("holder")
		if _, err := b.acct.Send(ctx, kastor.NewCommand[bank.Command]("holder", bank.Withdraw{Amount: 1})); err != nil {
			t.Fatal(err)
		}
		defer b.stall.unblock()

		const id = "open-outcome"
		b.request(ctx, id, "a", "b", 1)
		inst, err := rn.Await(ctx, id, func(i saga.Instance[probe]) bool { return i.Version >= 1 })
		if err != nil || len(inst.Pending) != 1 {
			t.Fatalf("%+v, %v", inst, err)
		}
		timeout := inst.Deadlines["timeout"]

		// The outcome, as the gateway writes it, in a transaction left open past the
		// timeout.
		inputs := topics.SagaTopicName(b.c.Namespace(), transfer.SagaType, topics.RoleSagaInputs)
		gw, err := b.c.NewClient(kgo.TransactionalID("test-held-gateway-"+b.c.Namespace()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		if err != nil {
			t.Fatal(err)
		}
		defer gw.Close()
		if err := gw.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		reply := gateway.Reply{CommandID: inst.Pending[0].ID, AggregateID: "held", Status: gateway.StatusOK, From: 1, To: 1}
		v, err := reply.Encode()
		if err != nil {
			t.Fatal(err)
		}
		rec := &kgo.Record{Topic: inputs, Partition: producer.PartitionFor([]byte(id), 3), Key: []byte(id), Value: v}
		if err := gw.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(timeout) {
			t.Skip("the outcome was written after the timeout came due: this machine is too slow for the test")
		}
		// The timeout comes due while the transaction is open. This waits on the clock,
		// not for an event: nothing is written until the transaction ends.
		time.Sleep(time.Until(timeout) + 2*time.Second)
		if err := gw.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
		done, err := rn.Await(ctx, id, func(i saga.Instance[probe]) bool { return i.Done })
		if err != nil || done.State.Result != "outcome" {
			t.Fatalf("the instance ended by %q (%v): the timeout fired while the outcome's transaction was open", done.State.Result, err)
		}
	})
}
