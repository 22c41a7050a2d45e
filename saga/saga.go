package saga

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kastor-dev/kastor"
)

// Definition defines a saga type by pure functions over its state S, the commands C it
// sends and the events E it reacts to.
type Definition[S, C, E any] struct {
	// Type names the saga type, such as "bank.transfer": lower-case letters, digits, '.',
	// '_' and '-'. It is part of the instance's command IDs and of its topics' names.
	Type string
	// Initial returns the state of an instance that has had no input yet.
	Initial func(id string) S
	// Correlate routes an event to the instance it concerns: the instance ID and true, or
	// false for an event the saga type does not handle. An event that should concern an
	// instance but carries no correlation key is bad input: return an error naming it.
	Correlate func(ev kastor.Envelope[E]) (id string, ok bool, err error)
	// React decides the transition for one input of an instance in state. It must be
	// deterministic and free of side effects: the runtime may run it again for an input
	// whose transaction did not commit. An error rejects the input: nothing changes and
	// the runtime parks it with the error.
	React func(state S, in Input[C, E]) (Transition[S, C], error)
}

var typePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// Validate reports a malformed type name or a missing function.
func (d *Definition[S, C, E]) Validate() error {
	var errs []error
	if !typePattern.MatchString(d.Type) {
		errs = append(errs, fmt.Errorf("saga: type %q: want lower-case letters, digits, '.', '_' or '-'", d.Type))
	}
	if d.Initial == nil {
		errs = append(errs, fmt.Errorf("saga: type %q: Initial is nil", d.Type))
	}
	if d.Correlate == nil {
		errs = append(errs, fmt.Errorf("saga: type %q: Correlate is nil", d.Type))
	}
	if d.React == nil {
		errs = append(errs, fmt.Errorf("saga: type %q: React is nil", d.Type))
	}
	return errors.Join(errs...)
}

// Input is one input of an instance: exactly one of Event, Outcome, Deadline and Resume
// is set.
type Input[C, E any] struct {
	// ID identifies the input, so that one delivered twice is applied once: EventInputID,
	// OutcomeInputID, DeadlineInputID and ResumeInputID make it for each kind.
	ID string
	// Instance is the ID of the instance the input is applied to (Apply sets it).
	Instance string
	// At is the runtime's time as it applies the input. React computes deadlines from it,
	// never from the wall clock, so that it stays deterministic.
	At       time.Time
	Event    *kastor.Envelope[E]
	Outcome  *Outcome[C]
	Deadline *Fired
	// Resume is an operator's request that a stuck instance go on (`kastor saga retry
	// TYPE ID`, runner.Resume). Orchestrate's React resends the compensation that kept
	// failing; a Definition of its own decides what going on means for its state, and
	// should ignore a Resume when its instance is not stuck (one may arrive after the
	// instance went on). Its ID is ResumeInputID of the version the operator saw stuck,
	// so two requests to resume the same stuck state resume it once.
	Resume *Resume
}

// Resume is an operator's request to resume a stuck instance.
type Resume struct {
	// Version is the instance's version the operator saw stuck.
	Version int64
	// Reason is the instance's stuck reason the operator saw (its state's
	// StuckReason), kept for the record; "" when unknown.
	Reason string
}

// Outcome is the outcome of a command an instance sent.
type Outcome[C any] struct {
	// Command is the command as the instance sent it, with its ID. The Kafka runtime
	// rebuilds it from the instance's record (Instance.Pending): its ID, Name,
	// AggregateType, AggregateID and Deadline are the sent ones, and its payload
	// (Send.Command) is the zero C, since the record does not keep payloads; a saga that
	// needs one keeps what it needs in its state.
	Command Command[C]
	// Err is nil when the gateway executed the command; otherwise why it did not: a
	// *kastor.RejectedError, *kastor.InvariantError, *kastor.VersionConflictError, or
	// kastor.ErrExpired when it was read after its deadline (not executed).
	Err error
	// From and To are the versions of the events the command wrote (From > To: none).
	From, To int64
}

// Fired is a deadline that came due.
type Fired struct {
	Name string
	At   time.Time
}

// Send is a command a transition sends to an aggregate.
type Send[C any] struct {
	// Name tells the instance's commands apart in their outcomes, such as "debit".
	Name          string
	AggregateType string
	AggregateID   string
	Command       C
	// Deadline, when set, is sent with the command: a gateway that reads it later does not
	// execute it and answers kastor.ErrExpired. A saga that times a step out sets it, so
	// that after it (plus the clocks' skew) the step is known not to run.
	Deadline time.Time
}

// Command is a command an instance sends, with the ID derived for it (CommandID).
type Command[C any] struct {
	ID string
	Send[C]
}

// Transition is what React decides for one input.
type Transition[S, C any] struct {
	// State is the instance's next state.
	State S
	// Send are the commands to send, in order.
	Send []Send[C]
	// Set sets deadlines by name: a name already pending moves to the new time.
	Set map[string]time.Time
	// Cancel cancels pending deadlines by name; unknown names are ignored.
	Cancel []string
	// Done ends the instance: later inputs are ignored and its deadlines dropped.
	Done bool
}

// Instance is the durable record of one saga instance: what the runtime stores, keyed by
// ID, in the saga type's compacted state topic.
type Instance[S any] struct {
	ID string
	// Version counts the transitions applied: 0 for an instance with no input yet.
	Version int64
	State   S
	// Deadlines are the pending deadlines by name.
	Deadlines map[string]time.Time
	// Seen are the IDs of the most recent inputs applied, oldest first.
	Seen []string
	// Pending are the commands the instance sent whose outcomes it has not applied yet,
	// oldest first (at most the window Apply is given): an outcome read from Kafka is
	// matched to its command by ID here. A done instance has none.
	Pending []Sent
	Done    bool
}

// Sent is a command an instance sent, as its record keeps it until the command's outcome
// is applied: the fields of its Send but the payload.
type Sent struct {
	ID            string
	Name          string
	AggregateType string
	AggregateID   string
	Deadline      time.Time
}

// PendingCommand returns the pending command with ID id, and false when the instance has
// none: its outcome was applied already, or it was never sent.
func (inst *Instance[S]) PendingCommand(id string) (Sent, bool) {
	for _, s := range inst.Pending {
		if s.ID == id {
			return s, true
		}
	}
	return Sent{}, false
}

// New returns the record of an instance that has had no input.
func New[S, C, E any](def *Definition[S, C, E], id string) Instance[S] {
	return Instance[S]{ID: id, State: def.Initial(id)}
}

// ErrEmptyInput: an input with none or several of Event, Outcome, Deadline and Resume
// set, or without an ID.
var ErrEmptyInput = errors.New("saga: an input needs an ID and exactly one of Event, Outcome, Deadline, Resume")

// ErrNothingToResume: a Resume for an instance that has had no input: there is no
// instance to resume. The runtime parks it.
var ErrNothingToResume = errors.New("saga: no instance to resume")

// ErrPastDeadline: a transition set a deadline with no time, or one before the time of the
// input that set it (Input.At), which would fire at once for a reason nobody meant.
var ErrPastDeadline = errors.New("saga: a deadline in the past")

// DefaultWindow is how many input IDs an instance remembers when Apply is given none.
const DefaultWindow = 256

// Apply applies one input to inst with def.React and returns the next record and the
// commands to send, with their IDs. It returns inst unchanged and no command, with
// applied false, when the input changes nothing: an input ID among inst.Seen, a deadline
// not pending with that time (cancelled, moved, or fired already), or an instance that is
// done. window bounds inst.Seen (DefaultWindow when not positive). A React error, a
// transition that sets a deadline in the past (ErrPastDeadline), or a Resume of an
// instance with no input yet (ErrNothingToResume) is returned with inst unchanged.
func Apply[S, C, E any](def *Definition[S, C, E], inst Instance[S], in Input[C, E], window int) (next Instance[S], cmds []Command[C], applied bool, err error) {
	if in.ID == "" || count(in.Event != nil, in.Outcome != nil, in.Deadline != nil, in.Resume != nil) != 1 {
		return inst, nil, false, ErrEmptyInput
	}
	if inst.Done || slices.Contains(inst.Seen, in.ID) {
		return inst, nil, false, nil
	}
	if in.Resume != nil && inst.Version == 0 {
		return inst, nil, false, fmt.Errorf("%w: saga %s, instance %q has had no input", ErrNothingToResume, def.Type, inst.ID)
	}
	if f := in.Deadline; f != nil {
		if at, ok := inst.Deadlines[f.Name]; !ok || !at.Equal(f.At) {
			return inst, nil, false, nil
		}
	}
	in.Instance = inst.ID
	t, err := def.React(inst.State, in)
	if err != nil {
		return inst, nil, false, err
	}
	for name, at := range t.Set {
		if at.IsZero() || !in.At.IsZero() && at.Before(in.At) {
			return inst, nil, false, fmt.Errorf("%w: saga %s, instance %q: deadline %q at %v is before the input's time %v",
				ErrPastDeadline, def.Type, inst.ID, name, at, in.At)
		}
	}
	next = Instance[S]{ID: inst.ID, Version: inst.Version + 1, State: t.State, Done: t.Done}
	if !t.Done {
		next.Deadlines = make(map[string]time.Time, len(inst.Deadlines)+len(t.Set))
		for name, at := range inst.Deadlines {
			next.Deadlines[name] = at
		}
		if f := in.Deadline; f != nil {
			delete(next.Deadlines, f.Name) // it fired
		}
		for _, name := range t.Cancel {
			delete(next.Deadlines, name)
		}
		for name, at := range t.Set {
			next.Deadlines[name] = at
		}
	}
	if window <= 0 {
		window = DefaultWindow
	}
	next.Seen = append(append(make([]string, 0, min(len(inst.Seen)+1, window)), tail(inst.Seen, window-1)...), in.ID)
	for i, s := range t.Send {
		cmds = append(cmds, Command[C]{ID: CommandID(def.Type, inst.ID, next.Version, i), Send: s})
	}
	if !t.Done {
		pending := make([]Sent, 0, len(inst.Pending)+len(cmds))
		for _, s := range inst.Pending {
			if in.Outcome == nil || s.ID != in.Outcome.Command.ID {
				pending = append(pending, s)
			}
		}
		for _, c := range cmds {
			pending = append(pending, Sent{ID: c.ID, Name: c.Name, AggregateType: c.AggregateType, AggregateID: c.AggregateID, Deadline: c.Deadline})
		}
		if len(pending) > window {
			pending = pending[len(pending)-window:]
		}
		if len(pending) > 0 {
			next.Pending = pending
		}
	}
	return next, cmds, true, nil
}

// Due returns the deadlines of inst whose time is not after now, earliest first, as the
// inputs that fire them. A done instance has none.
func Due[S any](inst Instance[S], now time.Time) []Fired {
	if inst.Done {
		return nil
	}
	var out []Fired
	for name, at := range inst.Deadlines {
		if !at.After(now) {
			out = append(out, Fired{Name: name, At: at})
		}
	}
	slices.SortFunc(out, func(a, b Fired) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// Next returns the earliest pending deadline of inst, and false when it has none.
func Next[S any](inst Instance[S]) (Fired, bool) {
	var f Fired
	found := false
	for name, at := range inst.Deadlines {
		if !found || at.Before(f.At) || at.Equal(f.At) && name < f.Name {
			f, found = Fired{Name: name, At: at}, true
		}
	}
	return f, found && !inst.Done
}

// CommandID is the ID of command index i of the transition that made version version of
// instance id of saga type typ. Deterministic, so that a transition run again after a
// crash sends the same IDs and the gateway executes each command once.
func CommandID(typ, id string, version int64, i int) string {
	return typ + "/" + id + "/" + strconv.FormatInt(version, 10) + "/" + strconv.Itoa(i)
}

// EventInputID is the input ID of an event: its aggregate, version and type, which
// identify it whatever topic or offset it is read from.
func EventInputID[E any](ev kastor.Envelope[E]) string {
	return "event/" + ev.AggregateType + "/" + ev.AggregateID + "/" + strconv.FormatInt(ev.Version, 10)
}

// OutcomeInputID is the input ID of the outcome of the command commandID.
func OutcomeInputID(commandID string) string { return "outcome/" + commandID }

// DeadlineInputID is the input ID of deadline name firing at at.
func DeadlineInputID(f Fired) string {
	return "deadline/" + f.Name + "/" + strconv.FormatInt(f.At.UnixNano(), 10)
}

// ResumeInputID is the input ID of an operator's request to resume an instance seen
// stuck at version version: requests made for the same stuck version are one input.
func ResumeInputID(version int64) string { return "resume/" + strconv.FormatInt(version, 10) }

func count(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

func tail(s []string, n int) []string {
	if n <= 0 {
		return nil
	}
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
