package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// The JSON keys of job args that store's SQL reads. The args are defined in
// package jobs; jobs/job_args_sql_test.go inserts those jobs and reads them
// back through this SQL and the audit views.
const (
	argRunDate    = "run_date"    // jobs.PointSettlementArgs.RunDate
	argRun        = "run"         // jobs.PointSettlementArgs.Run
	argCouponCode = "coupon_code" // jobs.CouponIssuePersistArgs.CouponCode
	argMemberID   = "member_id"   // jobs.CouponIssuePersistArgs.MemberID
)

// KindStateCount is how many jobs of one kind are in one state.
type KindStateCount struct {
	Kind  string
	State string
	Count int64
}

// JobCounts counts river_job rows by kind and state.
func (s *Store) JobCounts(ctx context.Context) ([]KindStateCount, error) {
	return queryRows(ctx, s.pool, pgx.RowToStructByPos[KindStateCount], "job counts", `
		SELECT kind, state::text, count(*) FROM river_job GROUP BY kind, state ORDER BY kind, state`)
}

// OutstandingJobs counts jobs that are available, running or pending, or
// retryable/scheduled to run within the next second: what `enqueue wait`
// waits for.
func (s *Store) OutstandingJobs(ctx context.Context) (int64, error) {
	var n int64
	// Two counts on River's (state, queue, priority, scheduled_at, id) index
	// rather than one OR, which would scan every retained (completed) job.
	err := s.pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM river_job
		        WHERE state IN ('available', 'running', 'pending'))
		     + (SELECT count(*) FROM river_job
		        WHERE state IN ('retryable', 'scheduled') AND scheduled_at < now() + interval '1 second')`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: outstanding jobs: %w", err)
	}
	return n, nil
}

// AnyOutstandingJobs reports whether OutstandingJobs would count any: the
// cheap question to poll, since counting is proportional to the backlog.
func (s *Store) AnyOutstandingJobs(ctx context.Context) (bool, error) {
	var found bool
	err := s.pool.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM river_job WHERE state IN ('available', 'running', 'pending'))
		    OR EXISTS (SELECT 1 FROM river_job
		               WHERE state IN ('retryable', 'scheduled') AND scheduled_at < now() + interval '1 second')`).Scan(&found)
	if err != nil {
		return false, fmt.Errorf("store: outstanding jobs: %w", err)
	}
	return found, nil
}
