package pgtest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kastor-dev/kastor/kafkatest"
	"github.com/kastor-dev/kastor/pgtest"
)

// shared is one server for the tests of this package that need no server of their own.
var shared = pgtest.NewShared()

func TestMain(m *testing.M) { kafkatest.Main(m, shared) }

func exec(t *testing.T, dsn, sql string, args ...any) {
	t.Helper()
	if _, err := pgtest.Connect(t, dsn).Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func TestDatabasesAreIsolated(t *testing.T) {
	db := shared.Get(t)
	ctx := context.Background()
	a, b := db.NewDatabase(t), db.NewDatabase(t)
	if a == b {
		t.Fatalf("two databases with one DSN %q", a)
	}

	exec(t, a, "CREATE TABLE events (id bigint PRIMARY KEY, body text NOT NULL)")
	exec(t, a, "INSERT INTO events VALUES ($1, $2)", 1, "opened")

	poolA, poolB := pgtest.Connect(t, a), pgtest.Connect(t, b)
	var nameA, nameB, body string
	if err := poolA.QueryRow(ctx, "SELECT current_database(), body FROM events WHERE id = 1").Scan(&nameA, &body); err != nil {
		t.Fatal(err)
	}
	if body != "opened" {
		t.Fatalf("read back %q, want %q", body, "opened")
	}
	var table *string
	if err := poolB.QueryRow(ctx, "SELECT current_database(), to_regclass('events')::text").Scan(&nameB, &table); err != nil {
		t.Fatal(err)
	}
	if table != nil {
		t.Fatalf("database %s sees table %s of database %s", nameB, *table, nameA)
	}
	if nameA == nameB || !strings.HasPrefix(nameA, "testdatabasesareisolated_") {
		t.Fatalf("databases %q and %q: want two, named after the test", nameA, nameB)
	}
}

func TestNewDatabaseIsDroppedWhenTheTestEnds(t *testing.T) {
	db := shared.Get(t)
	var name string
	t.Run("sub", func(t *testing.T) {
		dsn := db.NewDatabase(t)
		pool := pgtest.Connect(t, dsn) // left open: the drop must close it
		if err := pool.QueryRow(context.Background(), "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	var n int
	err := db.Pool(t).QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database %s still exists after its test ended", name)
	}
}

func TestParallelTestsGetTheirOwnDatabase(t *testing.T) {
	db := shared.Get(t)
	for i := range 4 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			dsn := db.NewDatabase(t)
			exec(t, dsn, "CREATE TABLE t (n int)")
			exec(t, dsn, "INSERT INTO t VALUES ($1)", i)
			rows, _ := pgtest.Connect(t, dsn).Query(context.Background(), "SELECT n FROM t")
			got, err := pgx.CollectRows(rows, pgx.RowTo[int32])
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != int32(i) {
				t.Fatalf("read %v, want [%d]", got, i)
			}
		})
	}
}

func TestStartSettingsAndClose(t *testing.T) {
	if os.Getenv("POSTGRES_DSN") != "" {
		t.Skip("POSTGRES_DSN is set: the harness starts no server to stop")
	}
	db := pgtest.Start(t, pgtest.Setting("max_connections", "42"))
	if db.Backend() != pgtest.Container {
		t.Fatalf("backend %q, want %q", db.Backend(), pgtest.Container)
	}
	var maxConns string
	if err := db.Pool(t).QueryRow(context.Background(), "SHOW max_connections").Scan(&maxConns); err != nil {
		t.Fatal(err)
	}
	if maxConns != "42" {
		t.Fatalf("max_connections = %s, want 42 (Setting)", maxConns)
	}

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, db.DSN())
	if err == nil {
		conn.Close(ctx)
		t.Fatal("connected to the server after Close")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("after Close: %v, want connection refused", err)
	}
	if _, err := db.CreateDatabase(ctx, "late"); err == nil {
		t.Fatal("CreateDatabase after Close succeeded")
	}
}
