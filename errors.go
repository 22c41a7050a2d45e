package kastor

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every typed error below matches one of them with errors.Is, so callers can
// branch on the kind of failure without knowing the concrete type; errors.As gives the details.
var (
	// ErrRejected: the aggregate's Decide refused the command. Nothing was written.
	ErrRejected = errors.New("kastor: command rejected")
	// ErrVersionConflict: the command expected another aggregate version. Nothing was written.
	ErrVersionConflict = errors.New("kastor: version conflict")
	// ErrInvariant: the state after the command's events broke an invariant. Nothing was written.
	ErrInvariant = errors.New("kastor: invariant violated")
	// ErrTimeout: no result arrived before the deadline. The command may still be applied;
	// re-sending it with the same command ID returns its result without applying it twice,
	// and asking for its outcome (gateway.Sender.Outcome) tells without any risk.
	ErrTimeout = errors.New("kastor: timed out waiting for the result")
	// ErrExpired: a gateway read the command after its deadline and did not execute it. It
	// is not an outcome: the command ID is still free, and sending it again may execute it.
	ErrExpired = errors.New("kastor: command expired before it was executed")
	// ErrNoOutcome: the gateway knows no outcome for the command ID: no command with that
	// ID was executed before the question, or it left the dedupe window.
	ErrNoOutcome = errors.New("kastor: no outcome for the command")
	// ErrUnavailable: the gateway that owns the aggregate's shard cannot serve it (its
	// stored records cannot be restored) and did not execute the command.
	ErrUnavailable = errors.New("kastor: shard unavailable")
	// ErrNotOwner: this instance does not own the aggregate's shard (partition) any more.
	ErrNotOwner = errors.New("kastor: not the owner of the shard")
	// ErrShuttingDown: the component is stopping and takes no new work.
	ErrShuttingDown = errors.New("kastor: shutting down")
	// ErrUndecodable: a record's payload could not be decoded (unknown type or schema,
	// malformed Avro). For commands, nothing was written.
	ErrUndecodable = errors.New("kastor: undecodable payload")
)

// RejectedError is a domain rejection: Decide returned Err for the command.
type RejectedError struct {
	AggregateType string
	AggregateID   string
	CommandID     string
	// Err is the domain's error, unchanged; its message is the reason the caller sees.
	Err error
}

// Error names the aggregate, the command and the domain reason.
func (e *RejectedError) Error() string {
	if e.CommandID == "" {
		return fmt.Sprintf("kastor: %s %q rejected the command: %v", e.AggregateType, e.AggregateID, e.Err)
	}
	return fmt.Sprintf("kastor: %s %q rejected command %s: %v", e.AggregateType, e.AggregateID, e.CommandID, e.Err)
}

// Is matches ErrRejected.
func (e *RejectedError) Is(target error) bool { return target == ErrRejected }

// Unwrap returns the domain error, so errors.Is(err, myDomainErr) works through it.
func (e *RejectedError) Unwrap() error { return e.Err }

// VersionConflictError: the command carried an expected version the aggregate is not at.
type VersionConflictError struct {
	AggregateType string
	AggregateID   string
	Expected      int64
	Actual        int64
}

// Error gives both versions.
func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("kastor: %s %q is at version %d, the command expected %d", e.AggregateType, e.AggregateID, e.Actual, e.Expected)
}

// Is matches ErrVersionConflict.
func (e *VersionConflictError) Is(target error) bool { return target == ErrVersionConflict }

// InvariantError: the aggregate's invariant check failed on the state the command's events
// would have produced. The events were not written.
type InvariantError struct {
	AggregateType string
	AggregateID   string
	Err           error
}

// Error names the aggregate and the failed invariant.
func (e *InvariantError) Error() string {
	return fmt.Sprintf("kastor: %s %q: invariant violated: %v", e.AggregateType, e.AggregateID, e.Err)
}

// Is matches ErrInvariant.
func (e *InvariantError) Is(target error) bool { return target == ErrInvariant }

// Unwrap returns the invariant check's error.
func (e *InvariantError) Unwrap() error { return e.Err }

// TimeoutError: the caller stopped waiting. CommandID identifies the command for a retry.
type TimeoutError struct {
	CommandID string
	Err       error // the context's error
}

// Error says the command may still be applied and how to retry.
func (e *TimeoutError) Error() string {
	return fmt.Sprintf("kastor: no result for command %s: %v (the command may still be applied; re-send it with the same command ID to get its result)", e.CommandID, e.Err)
}

// Is matches ErrTimeout.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// Unwrap returns the context error.
func (e *TimeoutError) Unwrap() error { return e.Err }

// ExpiredError: a gateway read the command after the deadline it carried and did not
// execute it; nothing was written, and nothing about the command ID is remembered.
type ExpiredError struct {
	CommandID string
	// Reason is the gateway's account, such as how long after its deadline it was read.
	Reason string
}

// Error says the command was not executed.
func (e *ExpiredError) Error() string {
	msg := fmt.Sprintf("kastor: command %s was not executed: a gateway read it after its deadline", e.CommandID)
	if e.Reason != "" {
		msg += " (" + e.Reason + ")"
	}
	return msg + "; sending it again with the same command ID may execute it"
}

// Is matches ErrExpired.
func (e *ExpiredError) Is(target error) bool { return target == ErrExpired }

// NoOutcomeError: asked for the outcome of a command ID, the gateway that owns the
// aggregate knows none. Every attempt with that ID written before the question was read
// was either never executed (it expired, or could not be decoded) or has left the
// aggregate's dedupe window.
type NoOutcomeError struct {
	AggregateType string
	AggregateID   string
	CommandID     string
}

// Error names the command and the aggregate.
func (e *NoOutcomeError) Error() string {
	return fmt.Sprintf("kastor: %s %q has no outcome for command %s: not executed before the question, or older than the dedupe window",
		e.AggregateType, e.AggregateID, e.CommandID)
}

// Is matches ErrNoOutcome.
func (e *NoOutcomeError) Is(target error) bool { return target == ErrNoOutcome }

// UnavailableError: the gateway owning the aggregate's shard could not restore it (a
// stored record it cannot read) and refuses its commands without executing them until
// the cause is fixed and the shard restored again. Nothing is remembered of the command.
type UnavailableError struct {
	AggregateType string
	AggregateID   string
	CommandID     string
	// Reason is the gateway's account of the failed restore: topic, partition, offset, why.
	Reason string
}

// Error names the command and why its shard is unavailable.
func (e *UnavailableError) Error() string {
	return fmt.Sprintf("kastor: %s %q: command %s not executed: its shard is unavailable: %s", e.AggregateType, e.AggregateID, e.CommandID, e.Reason)
}

// Is matches ErrUnavailable.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// NotOwnerError: the shard (partition) was revoked or lost while the work was under way.
type NotOwnerError struct {
	Topic     string
	Partition int32
}

// Error names the partition that was lost.
func (e *NotOwnerError) Error() string {
	return fmt.Sprintf("kastor: this instance no longer owns %s partition %d", e.Topic, e.Partition)
}

// Is matches ErrNotOwner.
func (e *NotOwnerError) Is(target error) bool { return target == ErrNotOwner }

// UndecodableError describes a payload that could not be decoded, and where it came from.
type UndecodableError struct {
	// What is being decoded: "event", "command", "state", "snapshot", "schema".
	What string
	// Type is the type name from the record's headers, if any.
	Type string
	// Fingerprint is the writer schema's CRC-64-AVRO fingerprint, 0 if unknown.
	Fingerprint uint64
	// Topic, Partition and Offset locate the record; Offset is -1 when not from Kafka.
	Topic     string
	Partition int32
	Offset    int64
	Err       error
}

// Error says what could not be decoded, with its type, schema and position.
func (e *UndecodableError) Error() string {
	msg := "kastor: cannot decode " + e.What
	if e.Type != "" {
		msg += " " + e.Type
	}
	if e.Fingerprint != 0 {
		msg += fmt.Sprintf(" (writer schema %016x)", e.Fingerprint)
	}
	if e.Topic != "" {
		msg += fmt.Sprintf(" at %s/%d@%d", e.Topic, e.Partition, e.Offset)
	}
	return msg + ": " + e.Err.Error()
}

// Is matches ErrUndecodable.
func (e *UndecodableError) Is(target error) bool { return target == ErrUndecodable }

// Unwrap returns the decoder's error.
func (e *UndecodableError) Unwrap() error { return e.Err }
