// Package store holds all of tidemark's SQL: pgx/v5 queries and transactions,
// no ORM. Each method that writes opens its own transaction; methods ending in
// Tx take the caller's transaction so a River job can be inserted with the row
// that needs it (outbox).
package store

import (
	"context"
	"errors"
	"fmt"

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

// Store is tidemark's database.
type Store struct {
	Pool *pgxpool.Pool
}

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{Pool: pool} }

// Ping reports whether Postgres answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.Pool.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// InTx runs fn in a transaction, committing when fn returns nil.
func (s *Store) InTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.Pool.Begin(ctx)
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

// ErrCommitUnknown marks a failed COMMIT whose outcome is unknown: it was
// sent, but the connection failed before Postgres answered, so the
// transaction may have committed or not. Whoever keeps state across the
// commit must not act on either belief (see PointSettlementWorker).
var ErrCommitUnknown = errors.New("commit outcome unknown")

// commitErr wraps a failed COMMIT's error, marking it with ErrCommitUnknown
// unless Postgres answered (it rolled back) or the COMMIT never left.
func commitErr(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) || pgconn.SafeToRetry(err) {
		return fmt.Errorf("store: commit: %w", err)
	}
	return fmt.Errorf("store: commit: %w: %w", ErrCommitUnknown, err)
}

// notFound maps pgx.ErrNoRows to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return err
}
