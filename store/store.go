// Package store holds all of tidemark's SQL: pgx/v5 queries and transactions,
// no ORM. Each method that writes opens its own transaction; methods ending in
// Tx take the caller's transaction so a River job can be inserted with the row
// that needs it (outbox).
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned when the row asked for does not exist.
var ErrNotFound = errors.New("not found")

// DBTX is what both a pool and a transaction provide.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// queryRows runs sql on q and collects every row with rowTo. An error of
// either names what was read.
func queryRows[T any](ctx context.Context, q DBTX, rowTo pgx.RowToFunc[T], what, sql string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, rowTo)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	return out, nil
}

// Store is tidemark's database.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Ping reports whether Postgres answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.pool.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// InTx runs fn in a transaction, committing when fn returns nil.
func (s *Store) InTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return s.InTxWith(ctx, pgx.TxOptions{}, fn)
}

// InTxWith is InTx with the transaction's options, e.g. an isolation level
// under which a row changed since the transaction's snapshot cannot be
// updated unnoticed.
func (s *Store) InTxWith(ctx context.Context, opts pgx.TxOptions, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return commitErr(err)
	}
	return nil
}

// ErrCommitUnknown marks a failed COMMIT whose outcome is unknown: it may
// have been sent, and the connection failed before Postgres answered, so the
// transaction may have committed or not. Whoever keeps state across the
// commit must not act on either belief (see PointSettlementWorker).
var ErrCommitUnknown = errors.New("commit outcome unknown")

// commitErr wraps a failed COMMIT's error, marking it with ErrCommitUnknown
// unless Postgres answered (it rolled back), the COMMIT never left, or the
// transaction had already ended.
//
// pgconn.ErrConnClosed ("conn closed") is unknown although pgx calls it safe
// to retry: pgx returns it both when the connection was closed before the
// COMMIT was sent and when the COMMIT was sent and reading its answer
// failed (the failed read closes the connection and is not returned; the
// next read finds the connection closed), and the error does not say which.
//
// An error answer about the connection rather than the transaction is
// unknown too: PgBouncer answers a COMMIT whose server connection died with
// an error of its own (08P01, "server conn crashed?"), whatever the server
// did with it, and a backend ended by a shutdown or a crash (57P01, 57P02)
// may say so after its commit record was written.
func commitErr(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgerrcode.IsConnectionException(pgErr.Code) ||
		pgErr.Code == pgerrcode.AdminShutdown || pgErr.Code == pgerrcode.CrashShutdown) {
		return fmt.Errorf("store: commit: %w: %w", ErrCommitUnknown, err)
	}
	if errors.As(err, &pgErr) || errors.Is(err, pgx.ErrTxCommitRollback) || errors.Is(err, pgx.ErrTxClosed) ||
		(pgconn.SafeToRetry(err) && !errors.Is(err, pgconn.ErrConnClosed)) {
		return fmt.Errorf("store: commit: %w", err)
	}
	return fmt.Errorf("store: commit: %w: %w", ErrCommitUnknown, err)
}

// IsUnavailable reports whether err means Postgres could not be reached or
// went away (refused or dropped connection, a server shutting down or
// starting, a timeout), as opposed to an answer about the data: the caller
// may try again later, and nothing it asked for is known to have happened.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// The server is shutting down, crashed or is not accepting
		// connections yet.
		return pgerrcode.IsConnectionException(pgErr.Code) || pgErr.Code == pgerrcode.AdminShutdown ||
			pgErr.Code == pgerrcode.CrashShutdown || pgErr.Code == pgerrcode.CannotConnectNow
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connErr) || errors.As(err, &netErr) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, ErrCommitUnknown) ||
		errors.Is(err, context.DeadlineExceeded)
}

// notFound maps pgx.ErrNoRows to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// jsonText is a JSON value as a query parameter for a `$n::jsonb`: text,
// which Postgres parses in any pgx exec mode (a []byte would be sent as
// bytea where no statement description tells pgx the type), or NULL.
func jsonText(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}
