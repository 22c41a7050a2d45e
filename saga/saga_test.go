package saga_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kastor-dev/kastor"
	"github.com/kastor-dev/kastor/saga"
)

// A reminder saga: an event "ordered" sets a deadline "remind" an hour later; an event
// "paid" cancels it; the deadline sends a command.
type remState struct{ Ordered, Paid, Reminded int }

type remEvent struct{ Kind string }

func (remEvent) EventType() string { return "shop.Rem" }

func remDef() *saga.Definition[remState, string, remEvent] {
	return &saga.Definition[remState, string, remEvent]{
		Type:    "shop.reminder",
		Initial: func(string) remState { return remState{} },
		Correlate: func(ev kastor.Envelope[remEvent]) (string, bool, error) {
			return ev.AggregateID, true, nil
		},
		React: func(s remState, in saga.Input[string, remEvent]) (saga.Transition[remState, string], error) {
			t := saga.Transition[remState, string]{State: s}
			switch {
			case in.Event != nil && in.Event.Event.Kind == "ordered":
				t.State.Ordered++
				t.Set = map[string]time.Time{"remind": in.At.Add(time.Hour)}
			case in.Event != nil && in.Event.Event.Kind == "paid":
				t.State.Paid++
				t.Cancel = []string{"remind"}
			case in.Event != nil:
				return t, errors.New("unknown event kind " + in.Event.Event.Kind)
			case in.Deadline != nil:
				t.State.Reminded++
				t.Send = []saga.Send[string]{{Name: "remind", AggregateType: "shop.order", AggregateID: in.Instance, Command: "remind"}}
			}
			return t, nil
		},
	}
}

func event(id string, version int64, kind string) saga.Input[string, remEvent] {
	ev := kastor.Envelope[remEvent]{Metadata: kastor.Metadata{AggregateType: "shop.order", AggregateID: id, Version: version}, Event: remEvent{kind}}
	return saga.Input[string, remEvent]{ID: saga.EventInputID(ev), Event: &ev}
}

func fire(f saga.Fired) saga.Input[string, remEvent] {
	return saga.Input[string, remEvent]{ID: saga.DeadlineInputID(f), Deadline: &f}
}

func apply(t *testing.T, def *saga.Definition[remState, string, remEvent], inst saga.Instance[remState], in saga.Input[string, remEvent], at time.Time) (saga.Instance[remState], []saga.Command[string], bool) {
	t.Helper()
	in.At = at
	next, cmds, applied, err := saga.Apply(def, inst, in, 0)
	if err != nil {
		t.Fatal(err)
	}
	return next, cmds, applied
}

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func TestAnInputDeliveredTwiceChangesStateOnce(t *testing.T) {
	def := remDef()
	inst := saga.New(def, "o-1")
	inst, _, _ = apply(t, def, inst, event("o-1", 1, "ordered"), t0)
	again, cmds, applied := apply(t, def, inst, event("o-1", 1, "ordered"), t0)
	if applied || len(cmds) > 0 || again.Version != 1 || again.State.Ordered != 1 {
		t.Fatalf("the same event twice: applied %v, version %d, state %+v", applied, again.Version, again.State)
	}
}

func TestDeadlineFiresOnceNeverEarlyAndSurvivesARestart(t *testing.T) {
	def := remDef()
	inst, _, _ := apply(t, def, saga.New(def, "o-1"), event("o-1", 1, "ordered"), t0)
	if due := saga.Due(inst, t0.Add(59*time.Minute)); len(due) != 0 {
		t.Fatalf("due before its time: %v", due)
	}
	// The record is all there is: a process restarted two hours later finds it due.
	due := saga.Due(inst, t0.Add(2*time.Hour))
	if len(due) != 1 || due[0].Name != "remind" || !due[0].At.Equal(t0.Add(time.Hour)) {
		t.Fatalf("due after a restart: %v", due)
	}
	inst, cmds, _ := apply(t, def, inst, fire(due[0]), t0.Add(2*time.Hour))
	if len(cmds) != 1 || inst.State.Reminded != 1 || len(inst.Deadlines) != 0 {
		t.Fatalf("fired: %d commands, state %+v, pending %v", len(cmds), inst.State, inst.Deadlines)
	}
	// Fired again (a redelivered input, or a second timer): nothing.
	if _, cmds, applied := apply(t, def, inst, fire(due[0]), t0.Add(3*time.Hour)); applied || len(cmds) != 0 {
		t.Fatalf("a deadline fired twice: applied %v, %d commands", applied, len(cmds))
	}
	if len(saga.Due(inst, t0.Add(10*time.Hour))) != 0 {
		t.Fatal("a fired deadline is still due")
	}
}

func TestCancelledDeadlineNeverFiresAndACancelRacingTheFireHasOneOutcome(t *testing.T) {
	def := remDef()
	inst, _, _ := apply(t, def, saga.New(def, "o-1"), event("o-1", 1, "ordered"), t0)
	due := saga.Due(inst, t0.Add(2*time.Hour)) // the timer saw it due...
	// ...but the cancel was applied first: the fire changes nothing.
	paid, _, _ := apply(t, def, inst, event("o-1", 2, "paid"), t0.Add(2*time.Hour))
	if _, cmds, applied := apply(t, def, paid, fire(due[0]), t0.Add(2*time.Hour)); applied || len(cmds) != 0 {
		t.Fatalf("a cancelled deadline fired: applied %v, %d commands", applied, len(cmds))
	}
	// The other order: the fire first, then the cancel, which finds nothing to cancel.
	fired, cmds, _ := apply(t, def, inst, fire(due[0]), t0.Add(2*time.Hour))
	after, _, _ := apply(t, def, fired, event("o-1", 2, "paid"), t0.Add(2*time.Hour))
	if len(cmds) != 1 || after.State.Reminded != 1 || len(after.Deadlines) != 0 {
		t.Fatalf("fire then cancel: %d commands, state %+v", len(cmds), after.State)
	}
}

func TestAClockSteppingBackLosesNoDeadline(t *testing.T) {
	def := remDef()
	inst, _, _ := apply(t, def, saga.New(def, "o-1"), event("o-1", 1, "ordered"), t0)
	// The clock steps back a day: the deadline is not due, and not lost.
	if due := saga.Due(inst, t0.Add(-24*time.Hour)); len(due) != 0 {
		t.Fatalf("due with the clock a day back: %v", due)
	}
	if next, ok := saga.Next(inst); !ok || !next.At.Equal(t0.Add(time.Hour)) {
		t.Fatalf("next deadline %v %v", next, ok)
	}
	if due := saga.Due(inst, t0.Add(time.Hour)); len(due) != 1 {
		t.Fatalf("due once the clock caught up: %v", due)
	}
}

func TestCommandIDsAreDerivedFromTheTransition(t *testing.T) {
	def := remDef()
	inst, _, _ := apply(t, def, saga.New(def, "o-1"), event("o-1", 1, "ordered"), t0)
	f := saga.Due(inst, t0.Add(time.Hour))[0]
	_, a, _ := apply(t, def, inst, fire(f), t0.Add(time.Hour))
	_, b, _ := apply(t, def, inst, fire(f), t0.Add(time.Hour)) // the same transition run again after a crash
	want := saga.CommandID("shop.reminder", "o-1", 2, 0)
	if len(a) != 1 || a[0].ID != want || !slices.Equal([]string{a[0].ID}, []string{b[0].ID}) {
		t.Fatalf("command IDs %v and %v, want %s both times", a, b, want)
	}
}

func TestReactErrorChangesNothingAndBadInputIsRefused(t *testing.T) {
	def := remDef()
	inst := saga.New(def, "o-1")
	in := event("o-1", 1, "bogus")
	in.At = t0
	next, cmds, applied, err := saga.Apply(def, inst, in, 0)
	if err == nil || applied || len(cmds) != 0 || next.Version != 0 {
		t.Fatalf("React error: err %v, applied %v, version %d", err, applied, next.Version)
	}
	if _, _, _, err := saga.Apply(def, inst, saga.Input[string, remEvent]{ID: "x"}, 0); !errors.Is(err, saga.ErrEmptyInput) {
		t.Fatalf("an input with nothing in it: %v", err)
	}
	bad := &saga.Definition[remState, string, remEvent]{Type: "Shop Reminder"}
	if err := bad.Validate(); err == nil {
		t.Fatal("a malformed definition validated")
	}
}

func TestSeenWindowIsBounded(t *testing.T) {
	def := remDef()
	inst := saga.New(def, "o-1")
	for v := int64(1); v <= 10; v++ {
		in := event("o-1", v, "paid")
		in.At = t0
		var err error
		if inst, _, _, err = saga.Apply(def, inst, in, 4); err != nil {
			t.Fatal(err)
		}
	}
	if len(inst.Seen) != 4 || inst.Seen[3] != saga.EventInputID(*event("o-1", 10, "paid").Event) {
		t.Fatalf("seen %v, want the last 4 inputs", inst.Seen)
	}
}

func TestADeadlineInThePastIsRefused(t *testing.T) {
	def := remDef()
	react := def.React
	def.React = func(s remState, in saga.Input[string, remEvent]) (saga.Transition[remState, string], error) {
		tr, err := react(s, in)
		tr.Set = map[string]time.Time{"late": in.At.Add(-time.Minute)}
		return tr, err
	}
	in := event("o-1", 1, "ordered")
	in.At = t0
	inst := saga.New(def, "o-1")
	next, cmds, applied, err := saga.Apply(def, inst, in, 0)
	if !errors.Is(err, saga.ErrPastDeadline) || !strings.Contains(err.Error(), `"late"`) || applied || len(cmds) != 0 || next.Version != 0 {
		t.Fatalf("a deadline a minute before the input: err %v, applied %v, version %d", err, applied, next.Version)
	}
}
