package transfer_test

import (
	"testing"
	"time"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/internal/testdomain/bank"
	"github.com/kastor-dev/kastor/internal/testdomain/transfer"
	"github.com/kastor-dev/kastor/saga"
)

// sent is a command as the tests of the saga runner read it back: which account, what.
type sent struct {
	Account string
	Command bank.Command
}

// drive applies the request of 30 from alice to bob, then, for the command in flight,
// the input next returns (one with no ID: the command's deadline fires), until the
// instance is done; it returns the commands sent and the instance.
func drive(t *testing.T, next func(step int, cmd saga.Command[bank.Command]) saga.Input[bank.Command, kastor.Event]) ([]sent, saga.Instance[transfer.Progress]) {
	t.Helper()
	def, err := transfer.Saga(time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	ev := kastor.Envelope[kastor.Event]{Event: transfer.Requested{From: "alice", To: "bob", Amount: 30}}
	ev.AggregateType, ev.AggregateID, ev.Version = transfer.RequestType, "t-1", 1
	in := saga.Input[bank.Command, kastor.Event]{ID: saga.EventInputID(ev), Event: &ev}
	inst := saga.New(def, "t-1")
	var out []sent
	for step := 0; step < 10; step++ {
		in.At = now
		var cmds []saga.Command[bank.Command]
		inst, cmds, _, err = saga.Apply(def, inst, in, 0)
		if err != nil {
			t.Fatal(err)
		}
		if inst.Done {
			return out, inst
		}
		if len(cmds) != 1 || cmds[0].AggregateType != bank.Type {
			t.Fatalf("step %d: commands %+v", step, cmds)
		}
		out = append(out, sent{cmds[0].AggregateID, cmds[0].Command})
		now = now.Add(100 * time.Millisecond)
		if in = next(step, cmds[0]); in.ID == "" {
			f, ok := saga.Next(inst)
			if !ok {
				t.Fatalf("step %d: no deadline pending", step)
			}
			now, in = f.At, saga.Input[bank.Command, kastor.Event]{ID: saga.DeadlineInputID(f), Deadline: &f}
		}
	}
	t.Fatal("the saga did not finish")
	return nil, inst
}

func outcome(cmd saga.Command[bank.Command], err error) saga.Input[bank.Command, kastor.Event] {
	return saga.Input[bank.Command, kastor.Event]{ID: saga.OutcomeInputID(cmd.ID), Outcome: &saga.Outcome[bank.Command]{Command: cmd, Err: err}}
}

// TestSaga pins the behaviour the runner's tests rely on: debit the source, credit the
// target; a refused credit, or one with no outcome by its deadline, refunds the source.
func TestSaga(t *testing.T) {
	debit, credit, refund := sent{"alice", bank.Withdraw{Amount: 30}}, sent{"bob", bank.Deposit{Amount: 30}}, sent{"alice", bank.Deposit{Amount: 30}}
	refused := &kastor.RejectedError{Err: bank.ErrNotOpen}
	for _, tc := range []struct {
		name   string
		next   func(int, saga.Command[bank.Command]) saga.Input[bank.Command, kastor.Event]
		want   []sent
		failed bool
	}{
		{"completes", func(_ int, c saga.Command[bank.Command]) saga.Input[bank.Command, kastor.Event] {
			return outcome(c, nil)
		}, []sent{debit, credit}, false},
		{"credit refused", func(step int, c saga.Command[bank.Command]) saga.Input[bank.Command, kastor.Event] {
			if step == 1 {
				return outcome(c, refused)
			}
			return outcome(c, nil)
		}, []sent{debit, credit, refund}, true},
		{"credit timed out", func(step int, c saga.Command[bank.Command]) saga.Input[bank.Command, kastor.Event] {
			if step == 1 {
				return saga.Input[bank.Command, kastor.Event]{} // the deadline
			}
			return outcome(c, nil)
		}, []sent{debit, credit, refund}, true},
		{"debit refused", func(_ int, c saga.Command[bank.Command]) saga.Input[bank.Command, kastor.Event] {
			return outcome(c, refused)
		}, []sent{debit}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, inst := drive(t, tc.next)
			if len(got) != len(tc.want) {
				t.Fatalf("sent %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("command %d: %+v, want %+v", i, got[i], tc.want[i])
				}
			}
			if inst.State.Failed != tc.failed || inst.State.Stuck != "" {
				t.Errorf("state %+v, want failed %v", inst.State, tc.failed)
			}
		})
	}
}

func TestRequest(t *testing.T) {
	ok := transfer.Request{From: "a", To: "b", Amount: 1}
	if evs, err := transfer.Aggregate.Decide(transfer.RequestState{}, ok); err != nil || len(evs) != 1 || evs[0] != transfer.Requested(ok) {
		t.Fatalf("Decide: %v, %v", evs, err)
	}
	for _, r := range []transfer.Request{{From: "a", To: "a", Amount: 1}, {From: "a", To: "b"}, {To: "b", Amount: 1}} {
		if _, err := transfer.Aggregate.Decide(transfer.RequestState{}, r); err == nil {
			t.Errorf("%+v accepted", r)
		}
	}
	if _, err := transfer.Aggregate.Decide(transfer.RequestState{Requested: true}, ok); err == nil {
		t.Error("a second request accepted")
	}
}

// The transfer example's record names and fingerprints: the tests and the CLI's saga
// commands read topics written with these.
var fingerprints = map[string]string{
	"bank.Request":           "dc2173aeb0ea4d4b",
	"bank.RequestState":      "763ae99a680152db",
	"bank.TransferRequested": "d99abd21ccc607c4",
	"bank.TransferProgress":  "a3bcf12b176b1b8c",
}

func TestCodecs(t *testing.T) {
	c, err := transfer.NewCodecs(nil)
	if err != nil {
		t.Fatal(err)
	}
	ss := c.Registry.Schemas()
	if len(ss) != len(fingerprints) {
		t.Errorf("%d schemas, want %d", len(ss), len(fingerprints))
	}
	for _, s := range ss {
		if fp := s.Fingerprint().String(); fp != fingerprints[s.Name()] {
			t.Errorf("%s: fingerprint %s, want %s", s.Name(), fp, fingerprints[s.Name()])
		}
	}
	req := transfer.Request{From: "a", To: "b", Amount: 7}
	if enc, err := c.Requests.Commands.Encode(req); err != nil {
		t.Fatal(err)
	} else if got, err := c.Requests.Commands.Decode(enc); err != nil || got != req {
		t.Errorf("request: %v, %v", got, err)
	}
	ev := kastor.Event(transfer.Requested(req))
	if enc, err := c.Requests.Events.Encode(ev); err != nil || enc.Type != "bank.TransferRequested" {
		t.Fatalf("event: %+v, %v", enc, err)
	} else if got, err := c.Requests.Events.Decode(enc); err != nil || got != ev {
		t.Errorf("event: %v, %v", got, err)
	}
	p := transfer.Progress{Data: transfer.Data(req), Started: true, Step: 1, Attempt: 1}
	if enc, err := c.Progress.Encode(p); err != nil || enc.Type != "bank.TransferProgress" {
		t.Fatalf("progress: %+v, %v", enc, err)
	} else if got, err := c.Progress.Decode(enc); err != nil || got != p {
		t.Errorf("progress: %+v, %v", got, err)
	}
}
