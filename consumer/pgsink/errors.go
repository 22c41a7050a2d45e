package pgsink

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kastor-dev/kastor/consumer"
)

// Unreachable reports whether err says the database cannot be used right now, rather
// than that an event or a statement is wrong: the connection failed or broke, the server
// is shutting down, starting up or out of resources, it is a read-only standby (a
// failover in progress), a deadline ran out or the context was cancelled, or err already
// matches consumer.ErrUnavailable. The sink wraps such errors with consumer.Unavailable,
// so the reader waits for the database instead of parking events.
//
// The SQLSTATE classes and codes counted are 08 (connection exception), 53 (insufficient
// resources), 57P01-57P05 (shutdown, cannot connect now, idle session timeout), 58 (system
// error: I/O), 25006 (read-only transaction) and 3D000 / 28xxx (the database or the login
// is gone: a configuration the operator must fix, during which nothing may be parked).
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, consumer.ErrUnavailable) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return unreachableCode(pe.Code)
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	if errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	// A closed pool (puddle.ErrClosedPool, not re-exported by pgxpool).
	return strings.Contains(err.Error(), "closed pool")
}

func unreachableCode(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"), strings.HasPrefix(code, "53"), strings.HasPrefix(code, "58"),
		strings.HasPrefix(code, "28"):
		return true
	}
	switch code {
	case "57P01", "57P02", "57P03", "57P04", "57P05", "25006", "3D000":
		return true
	}
	return false
}

// conflict reports whether err is a transient failure of concurrent transactions
// (serialization failure, deadlock, lock timeout): the transaction is retried whole.
func conflict(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01", "55P03":
			return true
		}
	}
	return false
}
