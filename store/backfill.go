package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// argMonth is the JSON key of a month's verification in
// jobs.TherapyStatsVerifyArgs (YYYY-MM); the hourly check has none.
const argMonth = "month"

// SettledDates returns, of the dates in [from, to] (YYYY-MM-DD), those with a
// settlement, keyed by date with the job of the run that settled it last: the
// row jobs.EnqueueSettlementTx refuses a second run on, which outlives the
// run's job.
func (s *Store) SettledDates(ctx context.Context, from, to string) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT run_date::text, job_id FROM point_daily_settlement
		WHERE run_date BETWEEN $1::date AND $2::date`, from, to)
	if err != nil {
		return nil, fmt.Errorf("store: settled dates %s..%s: %w", from, to, err)
	}
	return collectDateJobs(rows, fmt.Sprintf("settled dates %s..%s", from, to))
}

// CompletedVerifications returns, of the months in [from, to] (YYYY-MM),
// those with a completed verification of their own (therapy_stats_verify with
// that month, not a dry run), keyed by month with the latest one's job. They
// are read from job_history, wherever the job is now: in river_job, or in the
// archive once River's cleaner moved it, for AUDIT_RETENTION. A check's
// verdict is kept as long as the audit, not for good as a run's identity is:
// a month checked longer ago than that is due for a check again.
func (s *Store) CompletedVerifications(ctx context.Context, from, to string) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT DISTINCT ON (args ->> '`+argMonth+`') args ->> '`+argMonth+`', id FROM job_history
		WHERE kind = 'therapy_stats_verify' AND state = 'completed'
		  AND args ->> '`+argMonth+`' BETWEEN $1 AND $2
		  AND NOT coalesce((args ->> 'dry_run')::boolean, false)
		ORDER BY args ->> '`+argMonth+`', finalized_at DESC`, from, to)
	if err != nil {
		return nil, fmt.Errorf("store: completed verifications %s..%s: %w", from, to, err)
	}
	return collectDateJobs(rows, fmt.Sprintf("completed verifications %s..%s", from, to))
}

// LastCompletedVerification returns the latest completed verification of
// month (see CompletedVerifications), or ErrNotFound.
func (s *Store) LastCompletedVerification(ctx context.Context, q DBTX, month string) (CompletedRun, error) {
	var r CompletedRun
	err := q.QueryRow(ctx, `
		SELECT id, finalized_at FROM job_history
		WHERE kind = 'therapy_stats_verify' AND state = 'completed' AND args ->> '`+argMonth+`' = $1
		  AND NOT coalesce((args ->> 'dry_run')::boolean, false)
		ORDER BY finalized_at DESC LIMIT 1`, month).Scan(&r.JobID, &r.FinalizedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("store: last verification of %s: %w", month, err)
	}
	return r, nil
}

// collectDateJobs reads rows of (date or month, job id) into a map.
func collectDateJobs(rows pgx.Rows, what string) (map[string]int64, error) {
	out := map[string]int64{}
	var (
		d  string
		id int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&d, &id}, func() error { out[d] = id; return nil }); err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	return out, nil
}
