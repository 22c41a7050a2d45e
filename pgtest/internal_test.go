package pgtest

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// fakeTB records how Use ends a test.
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (f *fakeTB) Helper()                       {}
func (f *fakeTB) Skipf(format string, a ...any) { f.skipped = true; f.msg = format; runtime.Goexit() }
func (f *fakeTB) Fatalf(string, ...any)         { f.failed = true; runtime.Goexit() }
func (f *fakeTB) Fatal(...any)                  { f.failed = true; runtime.Goexit() }
func (f *fakeTB) Cleanup(func())                {}
func (f *fakeTB) Name() string                  { return "fake" }

func runUse(err error) *fakeTB {
	f := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Use(f, nil, err)
	}()
	<-done
	return f
}

func TestUseSkipsOrFailsWithoutDocker(t *testing.T) {
	noDocker := errors.Join(ErrNoDocker, errors.New("dial unix /var/run/docker.sock: no such file"))

	t.Setenv("CI", "")
	t.Setenv("KASTOR_REQUIRE_DOCKER", "")
	if f := runUse(noDocker); !f.skipped || f.failed {
		t.Fatalf("without Docker and without CI: skipped=%v failed=%v, want a skip", f.skipped, f.failed)
	}
	t.Setenv("CI", "true")
	if f := runUse(noDocker); f.skipped || !f.failed {
		t.Fatalf("without Docker under CI: skipped=%v failed=%v, want a failure", f.skipped, f.failed)
	}
	t.Setenv("CI", "")
	t.Setenv("KASTOR_REQUIRE_DOCKER", "1")
	if f := runUse(noDocker); f.skipped || !f.failed {
		t.Fatalf("without Docker under KASTOR_REQUIRE_DOCKER: skipped=%v failed=%v, want a failure", f.skipped, f.failed)
	}
	t.Setenv("KASTOR_REQUIRE_DOCKER", "")
	if f := runUse(errors.New("pgtest: start PostgreSQL: boom")); f.skipped || !f.failed {
		t.Fatalf("another error: skipped=%v failed=%v, want a failure", f.skipped, f.failed)
	}
}

func TestDatabaseName(t *testing.T) {
	a, b := DatabaseName(t), DatabaseName(t)
	if a == b {
		t.Fatalf("two calls gave one name %q", a)
	}
	if !strings.HasPrefix(a, "testdatabasename_") {
		t.Fatalf("name %q is not derived from the test's", a)
	}
	t.Run("Sub Test/with-Odd.CHARS é "+strings.Repeat("x", 80), func(t *testing.T) {
		name := DatabaseName(t)
		if len(name) > 59 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			t.Fatalf("name %q: want at most 59 of [a-z0-9_]", name)
		}
		if !strings.HasPrefix(name, "testdatabasename_sub_test_with_odd_chars_") {
			t.Fatalf("name %q", name)
		}
	})
}

func TestWithDatabase(t *testing.T) {
	for _, c := range []struct{ dsn, want string }{
		{"postgres://u:p%40ss@127.0.0.1:5432/postgres?sslmode=disable", "postgres://u:p%40ss@127.0.0.1:5432/db_1?sslmode=disable"},
		{"postgresql://u@h/x?dbname=y&sslmode=require", "postgresql://u@h/db_1?sslmode=require"},
		{"postgres://h", "postgres://h/db_1"},
		{"host=h user=u dbname=x", "host=h user=u dbname=x dbname='db_1'"},
		{"", "dbname='db_1'"},
	} {
		got, err := withDatabase(c.dsn, "db_1")
		if err != nil {
			t.Fatalf("withDatabase(%q): %v", c.dsn, err)
		}
		if got != c.want {
			t.Errorf("withDatabase(%q) = %q, want %q", c.dsn, got, c.want)
		}
		if c.dsn == "" {
			continue
		}
		cfg, err := pgx.ParseConfig(got)
		if err != nil {
			t.Fatalf("pgx cannot parse %q: %v", got, err)
		}
		if cfg.Database != "db_1" {
			t.Errorf("pgx reads database %q from %q, want db_1", cfg.Database, got)
		}
	}
}
