package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kastor-dev/kastor/internal/dockerenv"
)

// Backend names what runs the server.
type Backend string

const (
	// Container is PostgreSQL in a Docker container started by the harness.
	Container Backend = "container"
	// External is a server named by POSTGRES_DSN; the harness starts and stops nothing.
	External Backend = "external"
)

// ErrNoDocker is returned by New when no Docker engine can be reached.
var ErrNoDocker = errors.New("pgtest: no Docker engine reachable")

// DB is a running PostgreSQL server for tests.
type DB struct {
	backend   Backend
	dsn       string
	admin     *pgxpool.Pool
	container *pgContainer

	mu        sync.Mutex
	closed    bool
	closeOnce sync.Once
	closeErr  error
}

// Start returns a running server for the test and stops it when the test ends. See the
// package documentation for how the backend is chosen and when the test is skipped.
func Start(t testing.TB, opts ...Option) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	db, err := New(ctx, opts...)
	db = Use(t, db, err)
	t.Cleanup(func() {
		if t.Failed() {
			for _, line := range db.logTail(context.Background(), 60) {
				t.Log(line)
			}
		}
		if err := db.Close(); err != nil {
			t.Errorf("pgtest: closing server: %v", err)
		}
	})
	return db
}

// Use hands a test the server that New returned, typically in TestMain for a server shared
// by a package's tests. When New failed for lack of Docker, the test is skipped with a
// message saying how to run it, or fails when CI or KASTOR_REQUIRE_DOCKER is set; other
// errors fail it.
func Use(t testing.TB, db *DB, err error) *DB {
	t.Helper()
	dockerenv.Require(t, err, ErrNoDocker, howToRun)
	return db
}

const howToRun = "integration tests need real PostgreSQL: run `make test` (it installs and starts Docker " +
	"and builds the PostgreSQL image when they are missing), or point POSTGRES_DSN at a running server"

// New starts a server (or connects to POSTGRES_DSN) without a testing.TB, for TestMain and
// programs. The caller must Close it. It returns an error wrapping ErrNoDocker when it would
// need Docker and none can be reached.
func New(ctx context.Context, opts ...Option) (*DB, error) {
	cfg := newConfig(opts)
	if dsn := strings.TrimSpace(os.Getenv("POSTGRES_DSN")); dsn != "" {
		if _, err := pgx.ParseConfig(dsn); err != nil {
			return nil, fmt.Errorf("pgtest: POSTGRES_DSN: %w", err)
		}
		return connect(ctx, External, dsn, nil, cfg.startTimeout)
	}
	pc, err := startContainer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	db, err := connect(ctx, Container, pc.dsn, pc, cfg.startTimeout)
	if err != nil {
		err = fmt.Errorf("%w\n%s", err, strings.Join(pc.logTail(context.Background(), 40), "\n"))
		pc.terminate(context.Background())
		return nil, err
	}
	return db, nil
}

// connect waits until a client can log in to dsn, then opens the pool that creates and drops
// databases. For a container it gives up early when the container stops.
func connect(ctx context.Context, backend Backend, dsn string, pc *pgContainer, timeout time.Duration) (*DB, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		last = ping(ctx, dsn)
		if last == nil {
			break
		}
		if pc != nil {
			if err := pc.exited(ctx); err != nil {
				return nil, fmt.Errorf("pgtest: %v (last connection error: %v)", err, last)
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pgtest: server not ready after %v: %v", timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	pcfg.MaxConns = 4
	admin, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	return &DB{backend: backend, dsn: dsn, admin: admin, container: pc}, nil
}

// ping logs in and runs a query: a published port can accept a connection before the server
// behind it does, and the server refuses logins while it starts up.
func ping(ctx context.Context, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}

// Backend tells what runs the server.
func (db *DB) Backend() Backend { return db.backend }

// DSN returns the connection string of the server's maintenance database (postgres) as a
// superuser, or POSTGRES_DSN as given. Tests should keep their tables in a database of their
// own: see NewDatabase.
func (db *DB) DSN() string { return db.dsn }

// Pool returns a connection pool on DSN, closed when the test ends. It fails the test on
// error.
func (db *DB) Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return Connect(t, db.dsn)
}

// Connect opens a connection pool on dsn, such as one NewDatabase returned, and closes it
// when the test ends. It fails the test on error.
func Connect(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, dsn)
	if err == nil {
		err = pool.Ping(ctx)
		if err != nil {
			pool.Close()
		}
	}
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// NewDatabase creates an empty database for the test, named after it, and returns its DSN.
// The database is dropped when the test ends, connections to it closed. It fails the test on
// error.
func (db *DB) NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := DatabaseName(t)
	dsn, err := db.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := db.DropDatabase(ctx, name); err != nil && !errors.Is(err, errClosed) {
			t.Errorf("%v", err)
		}
	})
	return dsn
}

var errClosed = errors.New("pgtest: server closed")

// CreateDatabase creates the database name (any string; it is quoted) and returns its DSN:
// DSN with the database replaced.
func (db *DB) CreateDatabase(ctx context.Context, name string) (string, error) {
	dsn, err := withDatabase(db.dsn, name)
	if err != nil {
		return "", err
	}
	if err := db.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: create database %q: %w", name, err)
	}
	return dsn, nil
}

// DropDatabase drops the database name if it exists, closing the connections to it
// (PostgreSQL 13 or later).
func (db *DB) DropDatabase(ctx context.Context, name string) error {
	if err := db.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgtest: drop database %q: %w", name, err)
	}
	return nil
}

func (db *DB) exec(ctx context.Context, sql string) error {
	db.mu.Lock()
	closed := db.closed
	db.mu.Unlock()
	if closed {
		return errClosed
	}
	_, err := db.admin.Exec(ctx, sql)
	return err
}

var unsafeNameChars = regexp.MustCompile(`[^a-z0-9_]+`)

// DatabaseName returns a database name unique to this test and this run, derived from the
// test's name: lower-case letters, digits and underscores, at most 59 bytes (PostgreSQL
// keeps 63).
func DatabaseName(t testing.TB) string {
	name := strings.Trim(unsafeNameChars.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	if len(name) > 50 {
		name = strings.TrimRight(name[:50], "_")
	}
	if name == "" {
		name = "test"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return name + "_" + hex.EncodeToString(b[:])
}

// withDatabase returns dsn, a URL or a keyword/value connection string, naming database
// name instead of its own.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("pgtest: DSN: %w", err)
		}
		u.Path, u.RawPath = "/"+name, ""
		if q := u.Query(); q.Has("dbname") {
			q.Del("dbname")
			u.RawQuery = q.Encode()
		}
		return u.String(), nil
	}
	// In a keyword/value string the last setting of a keyword wins.
	quoted := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(name)
	return strings.TrimSpace(dsn + " dbname='" + quoted + "'"), nil
}

// Close stops the container the harness started (if any) and closes its connections.
// Databases still open are not dropped first: with the container they go too, and on an
// external server each test's cleanup drops its own.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.mu.Lock()
		db.closed = true
		db.mu.Unlock()
		db.admin.Close()
		if db.container != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			db.closeErr = db.container.terminate(ctx)
		}
	})
	return db.closeErr
}

func (db *DB) logTail(ctx context.Context, lines int) []string {
	if db.container == nil {
		return nil
	}
	return db.container.logTail(ctx, lines)
}
