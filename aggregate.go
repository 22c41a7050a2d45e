package kastor

import (
	"errors"
	"fmt"
	"regexp"
)

// Aggregate defines an aggregate type by pure functions over its state S, commands C and
// events E. It holds no state itself: the gateway keeps one state per aggregate ID, and
// any process can rebuild it by folding the aggregate's events.
//
// Decide and Evolve must be deterministic and free of side effects: Decide runs before
// anything is written and may run again for a retried command; Evolve replays stored
// events during recovery, years after they were written, so it must never fail for an
// event that was once accepted. Put validation in Decide, not in Evolve.
type Aggregate[S, C, E any] struct {
	// Type names the aggregate type, such as "bank.account". It is part of topic names
	// (<ns>.<type>.events), so it is lower case: letters, digits, '.', '_' and '-'.
	Type string
	// Initial returns the state of an aggregate that has no events yet.
	Initial func(id string) S
	// Decide validates cmd against state and returns the events that record its effect,
	// or an error that rejects it (the caller receives it inside a *RejectedError).
	// Returning no events and no error accepts the command with no effect.
	Decide func(state S, cmd C) ([]E, error)
	// Evolve applies one event to the state and returns the new state. When S is a
	// pointer or holds maps or slices, Evolve must not mutate state shared with the
	// caller: the gateway keeps the old state until the transaction commits.
	Evolve func(state S, event E) S
	// Invariants, optional, checks the state after the command's events were applied.
	// An error rejects the command with an *InvariantError; nothing is written.
	Invariants func(state S) error
}

var aggregateTypePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// Validate reports a missing function or a malformed type name.
func (a *Aggregate[S, C, E]) Validate() error {
	var errs []error
	if !aggregateTypePattern.MatchString(a.Type) {
		errs = append(errs, fmt.Errorf("kastor: aggregate type %q: want lower-case letters, digits, '.', '_' or '-'", a.Type))
	}
	if a.Initial == nil {
		errs = append(errs, fmt.Errorf("kastor: aggregate type %q: Initial is nil", a.Type))
	}
	if a.Decide == nil {
		errs = append(errs, fmt.Errorf("kastor: aggregate type %q: Decide is nil", a.Type))
	}
	if a.Evolve == nil {
		errs = append(errs, fmt.Errorf("kastor: aggregate type %q: Evolve is nil", a.Type))
	}
	return errors.Join(errs...)
}

// Fold applies events to state in order: how state is rebuilt from the log.
func (a *Aggregate[S, C, E]) Fold(state S, events ...E) S {
	for _, e := range events {
		state = a.Evolve(state, e)
	}
	return state
}

// Outcome is the effect of an accepted command: its events, the state after them and the
// aggregate's version after them (the version of the last event).
type Outcome[S, E any] struct {
	Events  []E
	State   S
	Version int64
}

// Execute runs the pure part of handling a command for an aggregate currently at version
// with state: the expected-version check, Decide, Evolve for each event and the invariant
// check, in that order. It returns a *VersionConflictError, *RejectedError or
// *InvariantError when the command must not be written; the state passed in is never
// needed again after an accepted command, and is kept unchanged after a rejected one.
func (a *Aggregate[S, C, E]) Execute(state S, version int64, cmd Command[C]) (Outcome[S, E], error) {
	if cmd.ExpectedVersion != AnyVersion && cmd.ExpectedVersion != version {
		return Outcome[S, E]{}, &VersionConflictError{
			AggregateType: a.Type, AggregateID: cmd.AggregateID,
			Expected: cmd.ExpectedVersion, Actual: version,
		}
	}
	events, err := a.Decide(state, cmd.Payload)
	if err != nil {
		return Outcome[S, E]{}, &RejectedError{AggregateType: a.Type, AggregateID: cmd.AggregateID, CommandID: cmd.ID, Err: err}
	}
	next := a.Fold(state, events...)
	if a.Invariants != nil {
		if err := a.Invariants(next); err != nil {
			return Outcome[S, E]{}, &InvariantError{AggregateType: a.Type, AggregateID: cmd.AggregateID, Err: err}
		}
	}
	return Outcome[S, E]{Events: events, State: next, Version: version + int64(len(events))}, nil
}
