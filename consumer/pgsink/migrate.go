package pgsink

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultOffsetsTable is the table where sinks record their offsets unless
// Config.OffsetsTable names another.
const DefaultOffsetsTable = "kastor_projection_offsets"

// migrateLock is the key of the transaction-level advisory lock Migrate holds, so that
// instances starting together do not race on CREATE ... IF NOT EXISTS (which is not safe
// under concurrency in PostgreSQL: two sessions may both find the name free).
const migrateLock = int64(0x6b6173746f72) // "kastor"

// Migrate runs statements in one transaction, in order, while holding a database-wide
// advisory lock, so that several instances of a service can run the same idempotent DDL
// (CREATE TABLE IF NOT EXISTS, CREATE INDEX IF NOT EXISTS, ...) at startup. DDL is
// transactional in PostgreSQL: either every statement takes effect or none does.
// Statements that cannot run in a transaction (CREATE INDEX CONCURRENTLY, VACUUM) are
// refused by the server. Migrate is not a migration tool: it keeps no history, so each
// statement must be safe to run again.
func Migrate(ctx context.Context, pool *pgxpool.Pool, statements ...string) error {
	if pool == nil {
		return errors.New("pgsink: Migrate: the pool is nil")
	}
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("pgsink: migrate: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLock); err != nil {
		return fmt.Errorf("pgsink: migrate: advisory lock: %w", err)
	}
	for i, st := range statements {
		if _, err := tx.Exec(ctx, st); err != nil {
			return fmt.Errorf("pgsink: migrate: statement %d (%s): %w", i+1, abbreviate(st), err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgsink: migrate: commit: %w", err)
	}
	return nil
}

func abbreviate(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// OffsetsTableDDL is the statement that creates the offsets table named table (a name,
// optionally schema-qualified: "readmodels.kastor_projection_offsets") if it does not
// exist. New runs it when the table is missing; services that manage their schema with a
// migration tool can run it there instead.
//
// The table has one row per projection name, version, topic and partition, holding
// next_offset, the offset of the next record to read (every record before it has been
// applied, filtered or parked), and updated_at, when a batch last moved it. Rows of
// different versions are independent, so version v+1 rebuilds from the earliest offsets
// while v keeps its own. To drop a retired version's progress, delete its rows (and its
// read-model tables).
func OffsetsTableDDL(table string) (string, error) {
	id, err := tableIdentifier(table)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	projection  text        NOT NULL,
	version     integer     NOT NULL CHECK (version >= 1),
	topic       text        NOT NULL,
	partition   integer     NOT NULL CHECK (partition >= 0),
	next_offset bigint      NOT NULL,
	updated_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (projection, version, topic, partition)
)`, id.Sanitize()), nil
}

// tableIdentifier splits "schema.table" or "table" into a quoted identifier.
func tableIdentifier(table string) (pgx.Identifier, error) {
	if table == "" {
		table = DefaultOffsetsTable
	}
	parts := strings.Split(table, ".")
	if len(parts) > 2 {
		return nil, fmt.Errorf("pgsink: offsets table %q: want table or schema.table", table)
	}
	for _, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("pgsink: offsets table %q: empty name", table)
		}
	}
	return pgx.Identifier(parts), nil
}
