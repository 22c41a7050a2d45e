package topics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// ErrDrift is matched (with errors.Is) by the error Apply and Diff return when a topic of
// the plan exists on the cluster with settings other than the plan's. kastor never alters
// an existing topic, so drift stays until someone resolves it by hand; the error exists so
// that scripts and CI can tell "the cluster does not match the file" from a failure.
var ErrDrift = errors.New("topics: existing topics differ from the plan")

// ErrUnreachable is matched (with errors.Is) by an *UnreachableError.
var ErrUnreachable = errors.New("topics: cannot reach Kafka")

// ConfigError is a problem with a topic file: unreadable YAML, an unknown key, or a value
// that fails validation. Several problems are returned together with errors.Join, so use
// errors.As to get the first one. Unknown keys are errors rather than warnings because a
// misspelt override (say "partition: 24") would otherwise silently create topics with the
// default partition count, and a partition count cannot be changed afterwards.
type ConfigError struct {
	File  string // the file name, if known
	Line  int    // 1-based line of the offending key or value, or 0 when unknown
	Field string // the path of the field, such as "aggregates[0].partitions", if known
	Msg   string // what is wrong
}

// Error formats the problem as file:line: field: message, leaving out what is unknown.
func (e *ConfigError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// UnreachableError reports that no broker answered within the timeout. It is returned
// instead of letting the Kafka client retry: franz-go, like the Java client, retries
// requests to unreachable brokers for a long time, which is right for a service and wrong
// for a command a person is waiting on.
type UnreachableError struct {
	Brokers []string      // the bootstrap addresses that were tried
	Timeout time.Duration // the bound that applied to the attempt
	Err     error         // the last connection error
}

// Error names the brokers, the connection error and the timeout, which is what a person
// needs to tell a wrong address from a slow network.
func (e *UnreachableError) Error() string {
	where := "the cluster"
	if len(e.Brokers) > 0 {
		where = strings.Join(e.Brokers, ",")
	}
	msg := "no answer"
	if e.Err != nil && e.Err.Error() != context.DeadlineExceeded.Error() {
		// franz-go's prefix adds nothing to the dial error it wraps.
		msg = strings.TrimPrefix(e.Err.Error(), "unable to dial: ")
	}
	return fmt.Sprintf("cannot reach Kafka at %s: %s (timeout %s)", where, msg, e.Timeout)
}

// Unwrap returns the underlying connection error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnreachable) true.
func (e *UnreachableError) Is(target error) bool { return target == ErrUnreachable }

// DriftError lists the topics that exist with settings other than the plan's. It matches
// ErrDrift.
type DriftError struct {
	Topics []string
}

// Error lists the drifted topics.
func (e *DriftError) Error() string {
	return fmt.Sprintf("%d topic(s) differ from the plan and were left unchanged: %s",
		len(e.Topics), strings.Join(e.Topics, ", "))
}

// Is makes errors.Is(err, ErrDrift) true.
func (e *DriftError) Is(target error) bool { return target == ErrDrift }

// isConnectionErr tells whether err means the cluster could not be talked to at all (as
// opposed to a broker answering with an error code).
func isConnectionErr(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr)
}

// clusterErr wraps err from a cluster call: connection failures become an
// *UnreachableError, anything else gets the operation's name.
func clusterErr(ctx context.Context, op string, opts Options, err error) error {
	if ctx.Err() == context.Canceled {
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	if isConnectionErr(err) {
		return &UnreachableError{Brokers: opts.Brokers, Timeout: opts.timeout(), Err: err}
	}
	return fmt.Errorf("%s: %w", op, err)
}
