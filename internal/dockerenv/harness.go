package dockerenv

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"
)

// Require hands a test what a harness's New returned: when err says Docker is missing
// (matches noDocker), the test is skipped with howToRun, or fails when CI or
// KASTOR_REQUIRE_DOCKER is set, so CI never passes by skipping; other errors fail it.
func Require(t testing.TB, err, noDocker error, howToRun string) {
	t.Helper()
	if errors.Is(err, noDocker) {
		if Required() {
			t.Fatalf("%v, and CI or KASTOR_REQUIRE_DOCKER is set, so integration tests may not be skipped", err)
		}
		t.Skipf("%v: %s", err, howToRun)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// Required reports whether integration tests must not be skipped (CI or
// KASTOR_REQUIRE_DOCKER set).
func Required() bool {
	return os.Getenv("CI") != "" || os.Getenv("KASTOR_REQUIRE_DOCKER") != ""
}

// Shared is one resource (a cluster, a server) for all the tests of a package: started by
// the first Get, so a run of unit tests alone starts nothing, and closed by Close from
// TestMain.
type Shared[T interface{ Close() error }] struct {
	once    sync.Once
	v       T
	err     error
	started bool
}

// Get returns the resource, starting it with start on the first call (bounded by ten
// minutes), and the error start returned.
func (s *Shared[T]) Get(start func(context.Context) (T, error)) (T, error) {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		s.v, s.err = start(ctx)
		s.started = s.err == nil
	})
	return s.v, s.err
}

// Close closes the resource if it was started; a Get after Close starts nothing.
func (s *Shared[T]) Close() error {
	s.once.Do(func() {})
	if !s.started {
		return nil
	}
	return s.v.Close()
}
