// Package pgsink is a PostgreSQL sink for kastor's readers (package consumer): a
// projection's read-model rows and its offsets are written in one database transaction,
// so each event takes effect in the database exactly once.
//
// The projection's code is one function, Config.Apply, that writes an event's rows in
// the transaction it is given:
//
//	if err := pgsink.Migrate(ctx, pool, `CREATE TABLE IF NOT EXISTS account_balances (
//		account_id text PRIMARY KEY, balance bigint NOT NULL, version bigint NOT NULL)`); err != nil {
//		return err
//	}
//	sink, err := pgsink.New(ctx, pool, pgsink.Config[kastor.Event]{
//		Name: "balances", Version: 1, // as the reader's consumer.Config
//		Apply: func(ctx context.Context, tx pgx.Tx, ev kastor.Envelope[kastor.Event]) error {
//			switch e := ev.Event.(type) {
//			case account.Opened:
//				_, err := tx.Exec(ctx, `INSERT INTO account_balances VALUES ($1, 0, $2)`, ev.AggregateID, ev.Version)
//				return err
//			case account.Deposited:
//				_, err := tx.Exec(ctx, `UPDATE account_balances SET balance = balance + $2, version = $3
//					WHERE account_id = $1`, ev.AggregateID, e.Amount, ev.Version)
//				return err
//			}
//			return nil
//		},
//	})
//	...
//	reader, err := consumer.New(c, consumer.Config[kastor.Event]{Name: "balances", Version: 1, ...}, sink) // c: the service's *cluster.Cluster
//
// Apply's statements take a round trip each. When an event's statements need no result
// of earlier ones (upserts, increments), set Config.Queue instead: it queues them on a
// pgx.Batch, and the sink sends a whole batch's statements in one round trip, in the
// same transaction as the offsets.
//
// # Offsets
//
// Offsets live in the table Config.OffsetsTable (default kastor_projection_offsets,
// created by New when missing; see OffsetsTableDDL), one row per projection name,
// version, topic and partition, holding the next offset to read. The sink implements
// consumer.OffsetStore: a reader resumes each partition from that row, whatever its
// consumer group committed, so a read model restored from a backup resumes from where the
// backup stands. Versions keep separate rows, so a rebuild into new tables (version v+1
// reading from the earliest offsets) runs beside the version serving reads; WaitFor tells
// when it has caught up.
//
// # Transactions
//
// One transaction per batch (a run of consecutive records of one partition, at most 1000
// events): BEGIN; lock the partition's offsets row and read its offset; Apply each event
// at or after that offset; store Batch.Next; COMMIT. The row lock serializes the
// transactions of one partition, and events below the stored offset are dropped, not
// applied again, so a batch retried after a lost COMMIT acknowledgement, or applied by
// two readers that briefly own the partition, takes effect once (see decision 21).
// Partitions have separate rows and never wait for each other.
//
// The isolation level is read committed by default (Config.IsoLevel): upserts and
// increments keyed by aggregate ID are atomic per row, and the partition's row lock
// orders an aggregate's batches. Choose a stronger level when Apply reads rows that other
// partitions write and decides on what it read. Conflicts (serialization failures,
// deadlocks, lock timeouts) are retried (Config.ConflictRetries), never blamed on an
// event.
//
// # Failures
//
// The sink follows the contract of consumer.Sink:
//
//   - An error from Apply for Events[i] rolls the transaction back; the sink then applies
//     Events[:i] again in a new transaction that stores Events[i].Offset, and returns
//     *consumer.ApplyError{Index: i}. The reader retries Events[i] alone and parks it on
//     the dead-letter topic if it keeps failing; nothing of it reaches the database, and
//     the events before it are not applied twice (decision 21 says why not savepoints).
//     A panic in Apply is the event's error.
//   - A database that cannot be used (connection refused or broken, server shutting down
//     or starting, out of connections or disk, read-only after a failover, Timeout run
//     out; see Unreachable) makes Apply return an error matching
//     consumer.ErrUnavailable: the reader keeps the partition waiting and retries without
//     limit, so a database outage shows as lag and never parks an event. Failures of the
//     sink's own statements (the offsets table dropped, permissions revoked) are reported
//     the same way. Apply may return consumer.Unavailable(err) itself for another
//     dependency. After a database restart every idle connection of the pool is broken:
//     BEGIN and the offset reads try the next connection at once rather than fail.
//   - An Apply that ignores the error of a failed statement leaves the transaction
//     aborted (SQLSTATE 25P02): the sink narrows the failure down to that event, by the
//     shorter prefixes above, and blames it.
//   - A replay from the dead-letter topic (Batch.Replay, Next -1) is applied in a
//     transaction that does not touch the offsets.
package pgsink
