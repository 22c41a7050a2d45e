// Package brokerwait waits out the broker outages that a Kafka cluster goes through while
// it runs: a broker restarting or killed, a partition electing a leader, a coordinator
// moving. Start-up and restore paths retry those until their context ends, logging what
// they wait for, and fail at once on everything else (a missing topic, an authorization
// failure, malformed data, an invalid configuration).
//
// Do retries a function, Transient tells what is worth retrying, Waiter logs the waits of
// an operation that retries by itself, and ClientOptions and RefusedRetryable tune the
// clients kastor owns so that they ride out a broker's loss (see decision 30 in
// docs/decisions.md).
package brokerwait

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Transient reports whether err is a condition of the cluster that passes with time, so
// the request that failed is worth sending again: a broker that refuses or drops
// connections, a request or connection that timed out, a retriable Kafka error code
// (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, NOT_COORDINATOR,
// COORDINATOR_LOAD_IN_PROGRESS, REQUEST_TIMED_OUT, ...), or an error marked with Retry.
//
// These are not transient: context errors, kgo.ErrClientClosed, UNKNOWN_TOPIC_OR_PARTITION
// and UNKNOWN_TOPIC_ID (a topic that does not exist stays missing; a caller that knows the
// topic exists, from metadata, marks them with Retry), CORRUPT_MESSAGE, authorization and
// other non-retriable error codes, a host name that does not resolve, and an immediate EOF
// that franz-go reports as *kgo.ErrFirstReadEOF (TLS or SASL misconfigured, unless the
// client retries EOFs). An error that joins several (errors.Join, kadm.ShardErrors) is
// transient when all of them are.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrClientClosed) {
		return false
	}
	return transient(err)
}

func transient(err error) bool {
	switch e := err.(type) {
	case *retryError:
		return true
	case *kerr.Error:
		// Kafka marks unknown topics retriable since metadata can lag a creation; only the
		// caller can tell that lag from a topic that is not there.
		return e.Retriable && e != kerr.UnknownTopicOrPartition && e != kerr.UnknownTopicID && e != kerr.CorruptMessage
	case *kgo.ErrFirstReadEOF:
		return kgo.IsRetryableBrokerErr(e)
	case *net.DNSError:
		return !e.IsNotFound
	case syscall.Errno:
		switch e {
		case syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
			syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN:
			return true
		}
		return e.Timeout()
	case interface{ Unwrap() []error }:
		errs := e.Unwrap()
		for _, err := range errs {
			if err != nil && !transient(err) {
				return false
			}
		}
		return len(errs) > 0
	}
	switch err {
	case io.EOF, io.ErrUnexpectedEOF, net.ErrClosed, kgo.ErrRecordTimeout, kgo.ErrRecordRetries:
		return true
	}
	if t, ok := err.(interface{ Timeout() bool }); ok && t.Timeout() {
		return true
	}
	if inner := errors.Unwrap(err); inner != nil {
		return transient(inner)
	}
	// franz-go's "unknown broker" is unexported: a request pinned to a broker that has
	// just left the client's metadata (killed, or fenced), which the next metadata names
	// a successor for.
	return kgo.IsRetryableBrokerErr(err) || err.Error() == "unknown broker"
}

// Retry marks err as transient (see Transient), for conditions the caller knows to pass,
// such as metadata that lists a partition without a leader. errors.Is and errors.As see
// through the mark; a nil err gives nil.
func Retry(err error) error {
	if err == nil {
		return nil
	}
	return &retryError{err}
}

// AfterContact returns err marked transient (see Retry) when it holds a
// *kgo.ErrFirstReadEOF, for a caller whose client has reached the cluster before with the
// same settings: TLS or SASL misconfigured would have failed that contact too, so an EOF
// on a new connection's first read is a broker going away, or a proxy in front of one
// that is still starting. Other errors, and nil, are returned as they are.
func AfterContact(err error) error {
	if _, ok := errors.AsType[*kgo.ErrFirstReadEOF](err); ok {
		return Retry(err)
	}
	return err
}

type retryError struct{ err error }

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// The waits of Do: the first retry comes quickly (a leader election takes a moment), later
// ones every couple of seconds, and the log says so every few seconds at most. Variables
// so tests can shorten them.
var (
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 2 * time.Second
	logEvery     = 5 * time.Second
)

// Do calls fn until it returns nil or an error that is not transient (see Transient), or
// until ctx ends, and returns that error. Between attempts it backs off from 100 ms to 2 s:
// a leader election takes a moment, and a longer wait is logged rather than hurried.
// An attempt that fails with a deadline of its own (fn bounded it) while ctx lives is
// retried as well. So is a *kgo.ErrFirstReadEOF, which a broker starting behind a proxy
// causes as well as a TLS or SASL misconfiguration: 3 times in a row, or without limit
// once the wait has seen another transient error.
//
// The first transient error is logged at Warn as "waiting for <what>; retrying", then at
// most one line every few seconds; once an attempt succeeds after a logged wait, an Info
// line says how long it took. A nil log means slog.Default(). When ctx ends during the
// wait, the returned error wraps ctx.Err() and the last transient error.
func Do(ctx context.Context, log *slog.Logger, what string, fn func(context.Context) error) error {
	w := NewWaiter(log, what)
	backoff := firstBackoff
	var eofs firstEOFs
	for {
		err := fn(ctx)
		if err == nil {
			w.Resumed()
			return nil
		}
		if ctx.Err() != nil {
			return w.gaveUp(ctx, err)
		}
		if !eofs.retry(err) && !Transient(err) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		w.Failed(err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return w.gaveUp(ctx, err)
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// firstEOFs decides which EOFs on a connection's first request, *kgo.ErrFirstReadEOF, are
// worth another attempt. They come from TLS or SASL misconfigured, which fails the same
// way from the first attempt on, and from a broker starting behind a proxy that accepts
// connections before the broker does (Docker's published ports, a Kubernetes service):
// once the wait has seen another transient error (a connection refused, typically), they
// are retried without limit, before that up to maxFirstEOFs times in a row.
type firstEOFs struct {
	run       int  // consecutive EOFs
	transient bool // a transient error other than an EOF was seen
}

func (f *firstEOFs) retry(err error) bool {
	var e *kgo.ErrFirstReadEOF
	if !errors.As(err, &e) {
		f.run = 0
		f.transient = f.transient || Transient(err)
		return false
	}
	f.run++
	return f.transient || f.run <= maxFirstEOFs
}

const maxFirstEOFs = 3

// A Waiter logs the waits of an operation that retries by itself, a consumer polling a
// partition whose leader is down, say, as Do logs its own: Failed for every failed
// attempt, Resumed when one succeeds. It is not safe for concurrent use.
type Waiter struct {
	log    *slog.Logger
	what   string
	first  time.Time // the first failure of the current wait; zero when not waiting
	logged time.Time // the last line logged in the current wait
	tries  int
	last   error
}

// NewWaiter returns a Waiter for an operation that waits for what ("_kastor.schemas to
// be readable"). A nil log means slog.Default().
func NewWaiter(log *slog.Logger, what string) *Waiter {
	if log == nil {
		log = slog.Default()
	}
	return &Waiter{log: log, what: what}
}

// Failed records a failed attempt. The first failure of a wait is logged at Warn, later
// ones at most every few seconds.
func (w *Waiter) Failed(err error) {
	now := time.Now()
	if w.first.IsZero() {
		w.first = now
	}
	w.tries++
	w.last = err
	if w.logged.IsZero() || now.Sub(w.logged) >= logEvery {
		w.logged = now
		w.log.Warn("waiting for "+w.what+"; retrying", "err", err, "attempts", w.tries, "waited", now.Sub(w.first).Round(time.Millisecond))
	}
}

// Resumed ends the current wait, if any: an Info line says how long it took.
func (w *Waiter) Resumed() {
	if w.first.IsZero() {
		return
	}
	w.log.Info("done waiting for "+w.what, "attempts", w.tries+1, "waited", time.Since(w.first).Round(time.Millisecond))
	w.first, w.logged, w.tries, w.last = time.Time{}, time.Time{}, 0, nil
}

// gaveUp is the error of a wait cut short by ctx, err being the last attempt's: a
// definitive error as it is, else the last transient error wrapped with ctx's error.
func (w *Waiter) gaveUp(ctx context.Context, err error) error {
	cause := ctx.Err()
	if !Transient(err) && !errors.Is(err, cause) {
		return err
	}
	last := err
	if !Transient(err) && w.last != nil {
		last = w.last // err only says that ctx ended
	}
	if errors.Is(last, cause) {
		return last
	}
	return fmt.Errorf("gave up waiting for %s: %w; last error: %w", w.what, cause, last)
}
