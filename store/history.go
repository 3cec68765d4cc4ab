package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// argRerun is the JSON key of a rerun's number in the args of the kinds whose
// runs have an identity (jobs.TherapyDailyArgs.Rerun,
// jobs.CouponExchangeArgs.Rerun, jobs.TherapyStatsVerifyArgs.Rerun);
// tidemark_run_identity leaves it out.
const argRerun = "rerun"

// CompletedRun is a completed run of a kind whose runs have an identity.
type CompletedRun struct {
	JobID       int64
	FinalizedAt time.Time
}

// LastCompletedRun returns the latest completed run of kind whose identifying
// parameters are identity (the keys tidemark_run_identity keeps), wherever its
// job is now: still in river_job, or moved by River's cleaner, in which case
// completed_run holds it for good. The two are read in one statement, one
// snapshot, and the cleaner moves a job in one statement too, so a run is
// never missed while it moves. ErrNotFound if the identity never completed.
func (s *Store) LastCompletedRun(ctx context.Context, q DBTX, kind string, identity map[string]any) (CompletedRun, error) {
	id, err := json.Marshal(identity)
	if err != nil {
		return CompletedRun{}, fmt.Errorf("store: %s identity: %w", kind, err)
	}
	var r CompletedRun
	err = q.QueryRow(ctx, `
		SELECT job_id, finalized_at FROM (
			SELECT id AS job_id, finalized_at FROM river_job
			WHERE kind = $1 AND state = 'completed' AND args @> $2::jsonb
			UNION ALL
			SELECT job_id, finalized_at FROM completed_run WHERE kind = $1 AND identity = $2::jsonb
		) r ORDER BY finalized_at DESC LIMIT 1`, kind, string(id)).Scan(&r.JobID, &r.FinalizedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("store: last completed %s: %w", kind, err)
	}
	return r, nil
}

// NextRerun is the rerun number a new run of kind with identity gets: one
// more than any run of it on record, in river_job, the archive or
// completed_run (0 when it never ran). It is part of the job's unique args,
// so a rerun never collides with a run still in river_job.
func (s *Store) NextRerun(ctx context.Context, q DBTX, kind string, identity map[string]any) (int, error) {
	id, err := json.Marshal(identity)
	if err != nil {
		return 0, fmt.Errorf("store: %s identity: %w", kind, err)
	}
	var n int
	err = q.QueryRow(ctx, `
		SELECT coalesce(max(n) + 1, 0) FROM (
			SELECT coalesce((args ->> '`+argRerun+`')::int, 0) AS n FROM job_history WHERE kind = $1 AND args @> $2::jsonb
			UNION ALL
			SELECT coalesce((args ->> '`+argRerun+`')::int, 0) FROM completed_run WHERE kind = $1 AND identity = $2::jsonb
		) r`, kind, string(id)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: next %s rerun: %w", kind, err)
	}
	return n, nil
}

// LockRunTx takes a transaction-scoped advisory lock on one run identity, so
// that two callers deciding whether to start it serialise: the second sees
// the first's committed job.
func (s *Store) LockRunTx(ctx context.Context, tx pgx.Tx, kind string, identity map[string]any) error {
	id, err := json.Marshal(identity)
	if err != nil {
		return fmt.Errorf("store: %s identity: %w", kind, err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1 || ':' || $2::jsonb::text, 0))`, kind, string(id)); err != nil {
		return fmt.Errorf("store: lock %s run: %w", kind, err)
	}
	return nil
}

// CompletedDates returns, of the dates in [from, to] (YYYY-MM-DD), those on
// which kind has a completed run, keyed by date with the latest run's job:
// key is the args key holding the date (business_date, run_date).
func (s *Store) CompletedDates(ctx context.Context, kind, key, from, to string) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT DISTINCT ON (d) d, job_id FROM (
			SELECT args ->> $2 AS d, id AS job_id, finalized_at FROM river_job
			WHERE kind = $1 AND state = 'completed' AND args ->> $2 BETWEEN $3 AND $4
			UNION ALL
			SELECT identity ->> $2, job_id, finalized_at FROM completed_run
			WHERE kind = $1 AND identity ->> $2 BETWEEN $3 AND $4
		) r ORDER BY d, finalized_at DESC`, kind, key, from, to)
	if err != nil {
		return nil, fmt.Errorf("store: completed %s %s..%s: %w", kind, from, to, err)
	}
	out := map[string]int64{}
	var (
		d  string
		id int64
	)
	_, err = pgx.ForEachRow(rows, []any{&d, &id}, func() error { out[d] = id; return nil })
	if err != nil {
		return nil, fmt.Errorf("store: completed %s %s..%s: %w", kind, from, to, err)
	}
	return out, nil
}
