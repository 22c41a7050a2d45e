package pgtest_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kastor-dev/kastor/pgtest"
)

// New serves programs and TestMain functions, which have no testing.TB. (The example is
// compiled, not run: it needs Docker or POSTGRES_DSN.)
func ExampleNew() {
	ctx := context.Background()
	db, err := pgtest.New(ctx)
	if errors.Is(err, pgtest.ErrNoDocker) {
		log.Fatal("start Docker or set POSTGRES_DSN")
	}
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	dsn, err := db.CreateDatabase(ctx, "orders")
	if err != nil {
		log.Fatal(err)
	}
	defer db.DropDatabase(ctx, "orders")
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	var one int
	if err := pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		log.Fatal(err)
	}
	fmt.Println(one)
}
