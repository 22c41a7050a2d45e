package saga

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kastor-dev/kastor"
)

// Step is one step of an orchestrated saga: the command that does it and, optionally, the
// command that undoes it (its compensation), both built from the saga's data D.
type Step[D, C any] struct {
	// Name identifies the step; names are unique within an orchestration.
	Name string
	// Do builds the step's command. Its Send.Name and Deadline are set by the saga.
	Do func(D) Send[C]
	// Undo builds the compensation; nil when the step has nothing to undo.
	Undo func(D) Send[C]
	// Done, optional, records the step's accepted outcome in the data.
	Done func(D, Outcome[C]) D
	// Timeout bounds the wait for the outcome of the step's command, and of its
	// compensation (default: none). The command carries the deadline, so a gateway reads
	// it too late does not execute it; the saga gives up on it once Orchestration.Skew
	// more has passed, and only then compensates or retries.
	Timeout time.Duration
}

// Orchestration describes a saga as steps run in order; when one is refused (or times
// out) the compensations of the steps completed before it run in reverse order, each
// exactly once, each waiting for its outcome.
type Orchestration[D, C, E any] struct {
	// Type names the saga type (Definition.Type).
	Type string
	// Correlate routes events to instances (Definition.Correlate). The first event routed
	// to an instance starts it: Begin makes its data and the first step is sent. Later
	// events change nothing.
	Correlate func(ev kastor.Envelope[E]) (id string, ok bool, err error)
	Begin     func(id string, ev kastor.Envelope[E]) (D, error)
	Steps     []Step[D, C]
	// Retries is how many times a compensation is tried before the instance is marked
	// stuck (default 5), and again after each Resume. Backoff is the wait before try n+1
	// of a round of Retries tries (default 1 s doubling to 30 s).
	Retries int
	Backoff func(n int) time.Duration
	// Skew is how long after a step's deadline the saga waits for its outcome before it
	// gives up on it (default 25 s). A gateway that read the command just before its
	// deadline (by its own clock) writes the outcome in a transaction that can take up to
	// its transaction timeout (gateway.Config.TransactionTimeout, 20 s by default); the
	// runtime applies every outcome written before it fires the timeout, so Skew must
	// cover that timeout plus the error between the gateways' and the saga's clocks. The
	// default is the gateways' default timeout plus 5 s. Smaller values are safe only
	// with gateways whose transactions are known to end sooner: a step given up on too
	// early can commit after its compensation was decided (see
	// decision 38).
	Skew time.Duration
}

// Progress is the state of an orchestrated instance.
type Progress[D any] struct {
	Data    D
	Started bool
	// Step is the index of the step whose command (forward) or compensation
	// (Compensating) is in flight.
	Step         int
	Compensating bool
	// Attempt counts the sends of the command in flight, from 1. A Resume does not reset
	// it: each try's command name stays unique ("undo:STEP#ATTEMPT"), so that a late
	// outcome of an attempt given up on before the instance was stuck is never taken for
	// the resumed one's. The instance is stuck again after Retries more tries.
	Attempt int
	// Reason says why the saga compensates: the refusal or timeout of a step.
	Reason string
	// Failed is set when the saga completed by compensating.
	Failed bool
	// Stuck is set when a compensation kept failing: the instance waits for an operator,
	// who resumes it with a Resume input (`kastor saga retry TYPE ID`) once the cause is
	// fixed.
	Stuck string
}

// DefaultSkew is Orchestration.Skew's default: the gateways' default transaction timeout
// (20 s) plus 5 s for the clocks.
const DefaultSkew = 25 * time.Second

// Deadline names an orchestration sets.
const (
	deadlineTimeout = "timeout"
	deadlineRetry   = "retry"
)

// ErrDuplicateStep: two steps of an orchestration share a name.
var ErrDuplicateStep = errors.New("saga: duplicate step name")

// Orchestrate returns the Definition of o: its React runs the steps and compensations.
//
// A compensation refused (or timed out) Retries times makes the instance stuck
// (Progress.Stuck says why): it ignores events and outcomes until an operator resumes it
// (Input.Resume), which clears Stuck and sends the compensation again, as a new attempt
// with a new command ID, for Retries more tries. A Resume of an instance that is not
// stuck changes nothing.
func Orchestrate[D, C, E any](o Orchestration[D, C, E]) (*Definition[Progress[D], C, E], error) {
	var errs []error
	names := map[string]bool{}
	for i, s := range o.Steps {
		switch {
		case s.Name == "" || strings.ContainsAny(s.Name, ":#"):
			errs = append(errs, fmt.Errorf("saga: type %q: step %d: name %q: want a non-empty name without ':' or '#'", o.Type, i, s.Name))
		case names[s.Name]:
			errs = append(errs, fmt.Errorf("%w: type %q: step %q", ErrDuplicateStep, o.Type, s.Name))
		}
		names[s.Name] = true
		if s.Do == nil {
			errs = append(errs, fmt.Errorf("saga: type %q: step %q: Do is nil", o.Type, s.Name))
		}
	}
	if len(o.Steps) == 0 {
		errs = append(errs, fmt.Errorf("saga: type %q: an orchestration needs steps", o.Type))
	}
	if o.Begin == nil {
		errs = append(errs, fmt.Errorf("saga: type %q: Begin is nil", o.Type))
	}
	if o.Retries <= 0 {
		o.Retries = 5
	}
	if o.Backoff == nil {
		o.Backoff = func(n int) time.Duration { return min(time.Second<<max(n-1, 0), 30*time.Second) }
	}
	if o.Skew <= 0 {
		o.Skew = DefaultSkew
	}
	def := &Definition[Progress[D], C, E]{
		Type:      o.Type,
		Initial:   func(string) Progress[D] { return Progress[D]{} },
		Correlate: o.Correlate,
		React:     o.react,
	}
	if err := def.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return def, nil
}

func (o *Orchestration[D, C, E]) react(p Progress[D], in Input[C, E]) (Transition[Progress[D], C], error) {
	t := Transition[Progress[D], C]{State: p}
	switch {
	case in.Event != nil:
		if p.Started || p.Stuck != "" {
			return t, nil
		}
		data, err := o.Begin(in.Instance, *in.Event)
		if err != nil {
			return t, err
		}
		t.State = Progress[D]{Data: data, Started: true}
		o.send(&t, in.At)
	case in.Outcome != nil:
		step, undo, attempt, ok := parseName(in.Outcome.Command.Name)
		if !ok || step != o.Steps[p.Step].Name || undo != p.Compensating || attempt != p.Attempt || p.Stuck != "" {
			return t, nil // an outcome of an attempt given up on: it did not run, or ran and is undone
		}
		t.Cancel = []string{deadlineTimeout}
		o.outcome(&t, *in.Outcome, in.At)
	case in.Resume != nil:
		if p.Stuck == "" {
			return t, nil // resumed already, or never stuck
		}
		t.State.Stuck = ""
		o.send(&t, in.At)
	case in.Deadline != nil:
		switch in.Deadline.Name {
		case deadlineTimeout:
			o.failed(&t, fmt.Sprintf("step %q: no outcome within %v", o.Steps[p.Step].Name, o.Steps[p.Step].Timeout), in.At)
		case deadlineRetry:
			o.send(&t, in.At)
		}
	}
	return t, nil
}

// outcome moves on after the in-flight command's outcome.
func (o *Orchestration[D, C, E]) outcome(t *Transition[Progress[D], C], out Outcome[C], at time.Time) {
	p := &t.State
	if out.Err != nil {
		o.failed(t, fmt.Sprintf("step %q: %v", o.Steps[p.Step].Name, out.Err), at)
		return
	}
	if !p.Compensating {
		if done := o.Steps[p.Step].Done; done != nil {
			p.Data = done(p.Data, out)
		}
		if p.Step+1 == len(o.Steps) {
			t.Done = true
			return
		}
		p.Step, p.Attempt = p.Step+1, 0
		o.send(t, at)
		return
	}
	o.compensateFrom(t, p.Step-1, at)
}

// failed handles a refusal or a timeout of the command in flight: a forward step starts
// the compensations of the steps before it; a compensation is retried after a backoff,
// and the instance is stuck after Retries tries.
func (o *Orchestration[D, C, E]) failed(t *Transition[Progress[D], C], reason string, at time.Time) {
	p := &t.State
	if !p.Compensating {
		p.Compensating, p.Reason = true, reason
		o.compensateFrom(t, p.Step-1, at)
		return
	}
	// Attempts count on across resumes (Progress.Attempt): each round has Retries tries.
	if n := (p.Attempt-1)%o.Retries + 1; n < o.Retries {
		t.Set = map[string]time.Time{deadlineRetry: at.Add(o.Backoff(n))}
		return
	}
	p.Stuck = fmt.Sprintf("compensation of step %q failed %d times; last: %s", o.Steps[p.Step].Name, p.Attempt, reason)
}

// compensateFrom sends the compensation of step i, or of the first step before it that
// has one; with none left the saga is done, failed.
func (o *Orchestration[D, C, E]) compensateFrom(t *Transition[Progress[D], C], i int, at time.Time) {
	p := &t.State
	for ; i >= 0 && o.Steps[i].Undo == nil; i-- {
	}
	if i < 0 {
		p.Failed, t.Done = true, true
		return
	}
	p.Step, p.Attempt = i, 0
	o.send(t, at)
}

// send sends the command in flight again (a new attempt), with its deadline and timeout.
func (o *Orchestration[D, C, E]) send(t *Transition[Progress[D], C], at time.Time) {
	p := &t.State
	s := o.Steps[p.Step]
	build := s.Do
	if p.Compensating {
		build = s.Undo
	}
	p.Attempt++
	cmd := build(p.Data)
	cmd.Name = commandName(s.Name, p.Compensating, p.Attempt)
	if s.Timeout > 0 {
		cmd.Deadline = at.Add(s.Timeout)
		if t.Set == nil {
			t.Set = map[string]time.Time{}
		}
		t.Set[deadlineTimeout] = cmd.Deadline.Add(o.Skew)
	}
	t.Send = append(t.Send, cmd)
}

// commandName is Send.Name of a step's command: "do:NAME#ATTEMPT" or "undo:NAME#ATTEMPT".
func commandName(step string, undo bool, attempt int) string {
	dir := "do:"
	if undo {
		dir = "undo:"
	}
	return dir + step + "#" + strconv.Itoa(attempt)
}

func parseName(name string) (step string, undo bool, attempt int, ok bool) {
	dir, rest, found := strings.Cut(name, ":")
	if !found || dir != "do" && dir != "undo" {
		return "", false, 0, false
	}
	step, n, found := strings.Cut(rest, "#")
	attempt, err := strconv.Atoi(n)
	return step, dir == "undo", attempt, found && err == nil
}
