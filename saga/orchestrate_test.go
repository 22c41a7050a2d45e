package saga_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/saga"
)

// A money transfer: debit the source, credit the target; a refused or timed-out credit
// refunds the source.
type transfer struct {
	From, To string
	Amount   int64
}

type move struct {
	Kind    string // "debit", "credit", "refund"
	Account string
	Amount  int64
}

type requested struct{ transfer }

func (requested) EventType() string { return "bank.TransferRequested" }

func transferSaga(t *testing.T, timeout time.Duration) *saga.Definition[saga.Progress[transfer], move, kastor.Event] {
	t.Helper()
	def, err := saga.Orchestrate(saga.Orchestration[transfer, move, kastor.Event]{
		Type: "bank.transfer",
		Correlate: func(ev kastor.Envelope[kastor.Event]) (string, bool, error) {
			return ev.AggregateID, true, nil
		},
		Begin: func(_ string, ev kastor.Envelope[kastor.Event]) (transfer, error) {
			r, ok := ev.Event.(requested)
			if !ok {
				return transfer{}, fmt.Errorf("not a transfer request: %T", ev.Event)
			}
			return r.transfer, nil
		},
		Steps: []saga.Step[transfer, move]{
			{Name: "debit", Timeout: timeout,
				Do:   func(d transfer) saga.Send[move] { return acct(d.From, move{"debit", d.From, d.Amount}) },
				Undo: func(d transfer) saga.Send[move] { return acct(d.From, move{"refund", d.From, d.Amount}) }},
			{Name: "credit", Timeout: timeout,
				Do: func(d transfer) saga.Send[move] { return acct(d.To, move{"credit", d.To, d.Amount}) }},
		},
		Retries: 3,
		Backoff: func(n int) time.Duration { return time.Duration(n) * time.Second },
		Skew:    2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return def
}

func acct(id string, m move) saga.Send[move] {
	return saga.Send[move]{AggregateType: "bank.account", AggregateID: id, Command: m}
}

// run drives one instance: it applies inputs and records every command sent.
type run struct {
	t    *testing.T
	def  *saga.Definition[saga.Progress[transfer], move, kastor.Event]
	inst saga.Instance[saga.Progress[transfer]]
	now  time.Time
	sent []saga.Command[move]
}

func (r *run) apply(in saga.Input[move, kastor.Event]) []saga.Command[move] {
	r.t.Helper()
	in.At = r.now
	next, cmds, _, err := saga.Apply(r.def, r.inst, in, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	r.inst = next
	r.sent = append(r.sent, cmds...)
	return cmds
}

func (r *run) start() []saga.Command[move] {
	ev := kastor.Envelope[kastor.Event]{Metadata: kastor.Metadata{AggregateType: "bank.transfer-request", AggregateID: "t-1", Version: 1},
		Event: requested{transfer{From: "alice", To: "bob", Amount: 30}}}
	return r.apply(saga.Input[move, kastor.Event]{ID: saga.EventInputID(ev), Event: &ev})
}

func (r *run) answer(c saga.Command[move], err error) []saga.Command[move] {
	out := saga.Outcome[move]{Command: c, Err: err}
	return r.apply(saga.Input[move, kastor.Event]{ID: saga.OutcomeInputID(c.ID), Outcome: &out})
}

// tick fires what is due at r.now.
func (r *run) tick() []saga.Command[move] {
	var cmds []saga.Command[move]
	for _, f := range saga.Due(r.inst, r.now) {
		cmds = append(cmds, r.apply(saga.Input[move, kastor.Event]{ID: saga.DeadlineInputID(f), Deadline: &f})...)
	}
	return cmds
}

func kinds(cmds []saga.Command[move]) string {
	var ks []string
	for _, c := range cmds {
		ks = append(ks, c.Command.Kind+" "+c.Command.Account)
	}
	return strings.Join(ks, ", ")
}

func rejected(msg string) error {
	return &kastor.RejectedError{AggregateType: "bank.account", Err: errors.New(msg)}
}

func TestTransferCompletes(t *testing.T) {
	r := &run{t: t, def: transferSaga(t, 0), inst: saga.New(transferSaga(t, 0), "t-1"), now: t0}
	debit := r.start()
	credit := r.answer(debit[0], nil)
	if kinds(debit) != "debit alice" || kinds(credit) != "credit bob" {
		t.Fatalf("sent %q then %q", kinds(debit), kinds(credit))
	}
	r.answer(credit[0], nil)
	if !r.inst.Done || r.inst.State.Failed || len(r.sent) != 2 {
		t.Fatalf("done %v failed %v, sent %q", r.inst.Done, r.inst.State.Failed, kinds(r.sent))
	}
}

func TestRejectedCreditRefundsTheSourceOnce(t *testing.T) {
	r := &run{t: t, def: transferSaga(t, 0), inst: saga.New(transferSaga(t, 0), "t-1"), now: t0}
	debit := r.start()
	credit := r.answer(debit[0], nil)
	refund := r.answer(credit[0], rejected("account closed"))
	if kinds(refund) != "refund alice" {
		t.Fatalf("after the refused credit: %q, want the refund", kinds(refund))
	}
	// The refusal redelivered: no second refund.
	if again := r.answer(credit[0], rejected("account closed")); len(again) != 0 {
		t.Fatalf("a redelivered refusal sent %q", kinds(again))
	}
	r.answer(refund[0], nil)
	if !r.inst.Done || !r.inst.State.Failed || !strings.Contains(r.inst.State.Reason, "account closed") {
		t.Fatalf("state %+v, done %v", r.inst.State, r.inst.Done)
	}
	if kinds(r.sent) != "debit alice, credit bob, refund alice" {
		t.Fatalf("sent %q", kinds(r.sent))
	}
}

func TestRejectedFirstStepHasNothingToUndo(t *testing.T) {
	r := &run{t: t, def: transferSaga(t, 0), inst: saga.New(transferSaga(t, 0), "t-1"), now: t0}
	debit := r.start()
	if cmds := r.answer(debit[0], rejected("insufficient funds")); len(cmds) != 0 || !r.inst.Done || !r.inst.State.Failed {
		t.Fatalf("after a refused debit: sent %q, done %v, state %+v", kinds(cmds), r.inst.Done, r.inst.State)
	}
}

func TestCreditWithoutOutcomeIsCompensatedAfterItsDeadline(t *testing.T) {
	def := transferSaga(t, 10*time.Second)
	r := &run{t: t, def: def, inst: saga.New(def, "t-1"), now: t0}
	debit := r.start()
	credit := r.answer(debit[0], nil)
	if !credit[0].Deadline.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("the credit carries deadline %v, want %v", credit[0].Deadline, t0.Add(10*time.Second))
	}
	r.now = t0.Add(11 * time.Second) // past the command's deadline, not past the skew
	if cmds := r.tick(); len(cmds) != 0 {
		t.Fatalf("compensated before the skew allowed: %q", kinds(cmds))
	}
	r.now = t0.Add(12 * time.Second)
	refund := r.tick()
	if kinds(refund) != "refund alice" {
		t.Fatalf("after the credit's timeout: %q", kinds(refund))
	}
	// The credit's late answer (a gateway read it after its deadline) changes nothing.
	if cmds := r.answer(credit[0], kastor.ErrExpired); len(cmds) != 0 {
		t.Fatalf("a late outcome sent %q", kinds(cmds))
	}
	r.answer(refund[0], nil)
	if !r.inst.Done || !r.inst.State.Failed {
		t.Fatalf("state %+v", r.inst.State)
	}
}

func TestFailingCompensationIsRetriedThenStuck(t *testing.T) {
	def := transferSaga(t, 0)
	r := &run{t: t, def: def, inst: saga.New(def, "t-1"), now: t0}
	debit := r.start()
	credit := r.answer(debit[0], nil)
	refund := r.answer(credit[0], rejected("account closed"))
	var ids []string
	for attempt := 1; attempt <= 3; attempt++ {
		ids = append(ids, refund[0].ID)
		if cmds := r.answer(refund[0], rejected("account frozen")); len(cmds) != 0 {
			t.Fatalf("attempt %d: resent at once, without backoff", attempt)
		}
		if attempt == 3 {
			break
		}
		r.now = r.now.Add(time.Duration(attempt) * time.Second)
		refund = r.tick()
		if kinds(refund) != "refund alice" {
			t.Fatalf("retry %d: %q", attempt, kinds(refund))
		}
	}
	if r.inst.Done || !strings.Contains(r.inst.State.Stuck, "failed 3 times") || len(r.inst.Deadlines) != 0 {
		t.Fatalf("after 3 refusals: done %v, state %+v, deadlines %v", r.inst.Done, r.inst.State, r.inst.Deadlines)
	}
	if ids[0] == ids[1] || ids[1] == ids[2] {
		t.Fatalf("retries reused a command ID (%v): the gateway would answer the first refusal", ids)
	}
}

func TestOrchestrationRefusesDuplicateStepNames(t *testing.T) {
	step := saga.Step[transfer, move]{Name: "debit", Do: func(transfer) saga.Send[move] { return saga.Send[move]{} }}
	_, err := saga.Orchestrate(saga.Orchestration[transfer, move, kastor.Event]{
		Type:      "bank.transfer",
		Correlate: func(kastor.Envelope[kastor.Event]) (string, bool, error) { return "", false, nil },
		Begin:     func(string, kastor.Envelope[kastor.Event]) (transfer, error) { return transfer{}, nil },
		Steps:     []saga.Step[transfer, move]{step, step},
	})
	if !errors.Is(err, saga.ErrDuplicateStep) || !strings.Contains(err.Error(), `"debit"`) {
		t.Fatalf("err %v", err)
	}
}

func TestLateOutcomeOfAnAbandonedAttemptIsIgnored(t *testing.T) {
	def := transferSaga(t, 10*time.Second)
	r := &run{t: t, def: def, inst: saga.New(def, "t-1"), now: t0}
	debit := r.start()
	credit := r.answer(debit[0], nil)
	first := r.answer(credit[0], rejected("account closed")) // refund, attempt 1
	r.now = r.now.Add(13 * time.Second)                      // attempt 1 times out
	if cmds := r.tick(); len(cmds) != 0 {
		t.Fatalf("a timed-out compensation was resent at once: %q", kinds(cmds))
	}
	r.now = r.now.Add(time.Second) // the backoff
	second := r.tick()
	if kinds(second) != "refund alice" || second[0].ID == first[0].ID {
		t.Fatalf("retry: %v after %v", second, first)
	}
	// Attempt 1's answer arrives late: it was not executed (expired). It must not count
	// against attempt 2, which is in flight.
	cmds := r.answer(first[0], kastor.ErrExpired)
	if next, _ := saga.Next(r.inst); len(cmds) != 0 || r.inst.State.Attempt != 2 || !next.At.Equal(second[0].Deadline.Add(2*time.Second)) {
		t.Fatalf("a late outcome of attempt 1: sent %q, state %+v, deadlines %v (want only attempt 2's timeout)", kinds(cmds), r.inst.State, r.inst.Deadlines)
	}
	r.answer(second[0], nil)
	if !r.inst.Done || !r.inst.State.Failed {
		t.Fatalf("state %+v", r.inst.State)
	}
}

func TestPendingCommandsAreKeptUntilTheirOutcome(t *testing.T) {
	def := transferSaga(t, 10*time.Second)
	r := &run{t: t, def: def, inst: saga.New(def, "t-1"), now: t0}
	debit := r.start()
	sent, ok := r.inst.PendingCommand(debit[0].ID)
	if !ok || sent.Name != "do:debit#1" || sent.AggregateType != "bank.account" || sent.AggregateID != "alice" || !sent.Deadline.Equal(debit[0].Deadline) {
		t.Fatalf("pending after the debit was sent: %+v, %v", r.inst.Pending, ok)
	}
	credit := r.answer(debit[0], nil)
	if _, ok := r.inst.PendingCommand(debit[0].ID); ok || len(r.inst.Pending) != 1 || r.inst.Pending[0].ID != credit[0].ID {
		t.Fatalf("pending after the debit's outcome: %+v", r.inst.Pending)
	}
	// The credit times out and is abandoned: it stays pending (its late outcome must still
	// be matched to it), and the refund joins it.
	r.now = t0.Add(13 * time.Second)
	refund := r.tick()
	if len(r.inst.Pending) != 2 || r.inst.Pending[1].ID != refund[0].ID {
		t.Fatalf("pending after the timeout: %+v", r.inst.Pending)
	}
	r.answer(credit[0], kastor.ErrExpired)
	r.answer(refund[0], nil)
	if !r.inst.Done || len(r.inst.Pending) != 0 {
		t.Fatalf("done %v, pending %+v", r.inst.Done, r.inst.Pending)
	}
}

func TestPendingIsBoundedByTheWindow(t *testing.T) {
	def := remDef()
	inst := saga.New(def, "o-1")
	for i := range 5 {
		ev := event("o-1", int64(2*i+1), "ordered")
		ev.At = t0.Add(time.Duration(2*i) * time.Hour)
		var err error
		if inst, _, _, err = saga.Apply(def, inst, ev, 3); err != nil {
			t.Fatal(err)
		}
		f := saga.Due(inst, t0.Add(time.Duration(2*i+1)*time.Hour))[0]
		in := fire(f)
		in.At = f.At
		if inst, _, _, err = saga.Apply(def, inst, in, 3); err != nil {
			t.Fatal(err)
		}
	}
	if len(inst.Pending) != 3 || inst.Pending[2].ID != saga.CommandID("shop.reminder", "o-1", 10, 0) {
		t.Fatalf("pending %+v, want the last 3 reminders", inst.Pending)
	}
}

// stuck drives r's transfer to a refused credit and a refund refused 3 times (Retries):
// the instance is stuck. It returns the refunds sent.
func (r *run) stuck() []saga.Command[move] {
	r.t.Helper()
	debit := r.start()
	credit := r.answer(debit[0], nil)
	refund := r.answer(credit[0], rejected("account closed"))
	refunds := refund
	for attempt := 1; ; attempt++ {
		r.answer(refund[0], rejected("account frozen"))
		if attempt == 3 {
			break
		}
		r.now = r.now.Add(time.Duration(attempt) * time.Second)
		refund = r.tick()
		refunds = append(refunds, refund...)
	}
	if r.inst.State.Stuck == "" {
		r.t.Fatalf("not stuck: %+v", r.inst.State)
	}
	return refunds
}

func (r *run) resume() []saga.Command[move] {
	v := r.inst.Version
	return r.apply(saga.Input[move, kastor.Event]{ID: saga.ResumeInputID(v), Resume: &saga.Resume{Version: v, Reason: r.inst.State.Stuck}})
}

func TestResumeSendsTheCompensationAgainOnce(t *testing.T) {
	def := transferSaga(t, 0)
	r := &run{t: t, def: def, inst: saga.New(def, "t-1"), now: t0}
	old := r.stuck()
	stuckAt := r.inst.Version
	r.now = r.now.Add(time.Hour) // the operator takes their time
	refund := r.resume()
	if kinds(refund) != "refund alice" || r.inst.State.Stuck != "" || r.inst.Version != stuckAt+1 {
		t.Fatalf("resume: sent %q, state %+v, version %d", kinds(refund), r.inst.State, r.inst.Version)
	}
	for _, o := range old {
		if o.ID == refund[0].ID || o.Name == refund[0].Name {
			t.Fatalf("the resumed refund %s (%s) reuses attempt %s (%s)", refund[0].ID, refund[0].Name, o.ID, o.Name)
		}
	}
	if refund[0].ID != saga.CommandID("bank.transfer", "t-1", stuckAt+1, 0) || refund[0].Name != "undo:debit#4" {
		t.Fatalf("resumed refund %s %s", refund[0].ID, refund[0].Name)
	}
	// The same request again (a double submit): the same input ID, ignored.
	next, cmds, applied, err := saga.Apply(def, r.inst, saga.Input[move, kastor.Event]{ID: saga.ResumeInputID(stuckAt), Resume: &saga.Resume{Version: stuckAt}, At: r.now}, 0)
	if err != nil || applied || len(cmds) != 0 || next.Version != r.inst.Version {
		t.Fatalf("a second resume of version %d: applied %v, sent %q, %v", stuckAt, applied, kinds(cmds), err)
	}
	// A resume of the later version, not stuck: applied, changes nothing.
	if cmds := r.resume(); len(cmds) != 0 || r.inst.State.Stuck != "" || r.inst.State.Attempt != 4 {
		t.Fatalf("a resume of an instance not stuck: sent %q, state %+v", kinds(cmds), r.inst.State)
	}
	// A late refusal of an attempt before the resume is not the resumed attempt's.
	if cmds := r.answer(old[2], rejected("account frozen")); len(cmds) != 0 || r.inst.State.Attempt != 4 || len(r.inst.Deadlines) != 0 {
		t.Fatalf("a late outcome of attempt 3: sent %q, state %+v, deadlines %v", kinds(cmds), r.inst.State, r.inst.Deadlines)
	}
	r.answer(refund[0], nil)
	if !r.inst.Done || !r.inst.State.Failed || kinds(r.sent) != "debit alice, credit bob, refund alice, refund alice, refund alice, refund alice" {
		t.Fatalf("done %v, state %+v, sent %q", r.inst.Done, r.inst.State, kinds(r.sent))
	}
}

func TestResumedCompensationGetsRetriesMoreTries(t *testing.T) {
	def := transferSaga(t, 0)
	r := &run{t: t, def: def, inst: saga.New(def, "t-1"), now: t0}
	r.stuck()
	refund := r.resume()
	for attempt := 4; attempt <= 6; attempt++ {
		if cmds := r.answer(refund[0], rejected("account frozen")); len(cmds) != 0 {
			t.Fatalf("attempt %d: resent at once", attempt)
		}
		if attempt == 6 {
			break
		}
		if r.inst.State.Stuck != "" {
			t.Fatalf("stuck again after attempt %d, before 3 more tries", attempt)
		}
		// The backoff starts over: 1 s, then 2 s.
		r.now = r.now.Add(time.Duration(attempt-3)*time.Second - time.Millisecond)
		if cmds := r.tick(); len(cmds) != 0 {
			t.Fatalf("retry %d before its backoff", attempt)
		}
		r.now = r.now.Add(time.Millisecond)
		if refund = r.tick(); kinds(refund) != "refund alice" {
			t.Fatalf("retry after attempt %d: %q", attempt, kinds(refund))
		}
	}
	if !strings.Contains(r.inst.State.Stuck, "failed 6 times") || r.inst.Done || len(r.inst.Deadlines) != 0 {
		t.Fatalf("after 3 more refusals: %+v, deadlines %v", r.inst.State, r.inst.Deadlines)
	}
	if cmds := r.resume(); kinds(cmds) != "refund alice" || cmds[0].Name != "undo:debit#7" {
		t.Fatalf("second resume: %v", cmds)
	}
}

func TestResumeOfNoInstanceIsAnError(t *testing.T) {
	def := transferSaga(t, 0)
	in := saga.Input[move, kastor.Event]{ID: saga.ResumeInputID(0), Resume: &saga.Resume{}}
	if _, _, _, err := saga.Apply(def, saga.New(def, "t-1"), in, 0); !errors.Is(err, saga.ErrNothingToResume) || !strings.Contains(err.Error(), `"t-1"`) {
		t.Fatalf("err %v", err)
	}
	in.Deadline = &saga.Fired{Name: "x", At: t0}
	if _, _, _, err := saga.Apply(def, saga.New(def, "t-1"), in, 0); !errors.Is(err, saga.ErrEmptyInput) {
		t.Fatalf("two kinds: %v", err)
	}
}
