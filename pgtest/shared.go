package pgtest

import (
	"context"
	"testing"

	"github.com/kastor-dev/kastor/internal/dockerenv"
)

// Shared is one server for all the tests of a package that ask for it: started on the first
// Get, so a run of unit tests alone starts nothing, and closed by TestMain (see the package
// documentation). Tests keep apart by creating their own databases with NewDatabase.
type Shared struct {
	opts []Option
	s    dockerenv.Shared[*DB]
}

// NewShared prepares a shared server started with opts on first use.
func NewShared(opts ...Option) *Shared { return &Shared{opts: opts} }

// Get returns the shared server, starting it on the first call. Like Start, it skips the
// test when no Docker engine is reachable, or fails it under CI or KASTOR_REQUIRE_DOCKER.
func (s *Shared) Get(t testing.TB) *DB {
	t.Helper()
	db, err := s.s.Get(func(ctx context.Context) (*DB, error) { return New(ctx, s.opts...) })
	return Use(t, db, err)
}

// Close stops the server if it was started. Call it from TestMain after m.Run.
func (s *Shared) Close() error { return s.s.Close() }
