package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/order"
)

// The reads behind /metrics. Each is one statement, run at most once per
// scrape cache period, and costs what the live part of a table costs, not
// what the retained history does.

// JSON keys of job args read below (the args are defined in package jobs).
const (
	argBusinessDate = "business_date" // jobs.TherapyDailyArgs, jobs.TherapyStatsArgs
	argTrigger      = "trigger"       // jobs.TherapyStatsArgs.Trigger, absent on the daily run's jobs
	argDryRun       = "dry_run"       // the reconciliation args
)

// QueueJobs is how many jobs of one kind wait or run in one queue in one
// state, and for available ones how long the oldest has been due.
type QueueJobs struct {
	Queue, Kind, State string
	Count              int64
	// OldestAvailable is how long ago the oldest available job became due
	// (its scheduled_at); zero for other states.
	OldestAvailable time.Duration
}

// LiveJobs counts the jobs that are available, running, retryable or
// scheduled, by queue, kind and state. It reads River's fetching index
// (state, queue, priority, scheduled_at, id) from its live states only, so
// its cost follows the jobs not yet finished, however many finished ones
// are kept for audit.
func (s *Store) LiveJobs(ctx context.Context) ([]QueueJobs, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT queue, kind, state::text, count(*),
		       coalesce(greatest(extract(epoch FROM now() - min(scheduled_at) FILTER (WHERE state = 'available')), 0), 0)::float8
		FROM river_job
		WHERE state IN ('available', 'running', 'retryable', 'scheduled')
		GROUP BY queue, kind, state
		ORDER BY queue, kind, state`)
	if err != nil {
		return nil, fmt.Errorf("store: live jobs: %w", err)
	}
	var (
		out []QueueJobs
		q   QueueJobs
		age float64
	)
	_, err = pgx.ForEachRow(rows, []any{&q.Queue, &q.Kind, &q.State, &q.Count, &age}, func() error {
		q.OldestAvailable = time.Duration(age * float64(time.Second))
		out = append(out, q)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: live jobs: %w", err)
	}
	return out, nil
}

// OrderGauges is order_request at one instant.
type OrderGauges struct {
	ByStatus map[string]int64
	// OldestSending is how long ago the longest-unchanged SENDING row last
	// changed (its last attempt claimed it or recorded an error); zero when
	// none is SENDING.
	OldestSending time.Duration
}

// OrderGauges counts order_request rows by status in one pass.
func (s *Store) OrderGauges(ctx context.Context) (OrderGauges, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT status, count(*), greatest(extract(epoch FROM now() - min(updated_at)), 0)::float8
		FROM order_request GROUP BY status`)
	if err != nil {
		return OrderGauges{}, fmt.Errorf("store: order gauges: %w", err)
	}
	g := OrderGauges{ByStatus: map[string]int64{}}
	var (
		status string
		n      int64
		age    float64
	)
	_, err = pgx.ForEachRow(rows, []any{&status, &n, &age}, func() error {
		g.ByStatus[status] = n
		if status == order.Sending {
			g.OldestSending = time.Duration(age * float64(time.Second))
		}
		return nil
	})
	if err != nil {
		return OrderGauges{}, fmt.Errorf("store: order gauges: %w", err)
	}
	return g, nil
}

// MaxReportedCoupons bounds how many ACTIVE coupons ActiveCouponIssues
// returns (the first by id), so one label per coupon stays a bounded set.
const MaxReportedCoupons = 100

// CouponIssues is an ACTIVE coupon's size and its coupon_issue rows.
type CouponIssues struct {
	Code          string
	TotalQuantity int64
	Issues        int64
}

// ActiveCouponIssues counts the coupon_issue rows of each ACTIVE coupon (an
// index-only count on the (coupon_id, member_id) key), by id.
func (s *Store) ActiveCouponIssues(ctx context.Context) ([]CouponIssues, error) {
	return queryRows(ctx, s.pool, pgx.RowToStructByPos[CouponIssues], "active coupon issues", `
		SELECT c.code, c.total_quantity, (SELECT count(*) FROM coupon_issue i WHERE i.coupon_id = c.id)
		FROM coupon c WHERE c.status = 'ACTIVE' ORDER BY c.id LIMIT $1`, MaxReportedCoupons)
}

// TherapyRun is the daily therapy run of one business date: its fan-out
// and the therapy_stats jobs it inserted.
type TherapyRun struct {
	// Found is false when no therapy_daily job exists for the date.
	Found bool
	// Targets is what the fan-out selected (0 until it finished).
	Targets int64
	// Jobs, Completed and Failed (discarded or cancelled) count the run's
	// therapy_stats jobs, in river_job or the archive.
	Jobs, Completed, Failed int64
}

// TherapyRunOf reads the daily run of businessDate. The args containment
// tests use River's GIN index on args, so it reads that date's jobs only.
func (s *Store) TherapyRunOf(ctx context.Context, businessDate string) (TherapyRun, error) {
	var (
		r       TherapyRun
		targets *int64
		found   bool
	)
	date, _ := json.Marshal(map[string]string{argBusinessDate: businessDate})
	err := s.pool.QueryRow(ctx, `
		WITH fan_out AS (
			SELECT (metadata -> 'output' ->> 'targets')::bigint AS targets FROM job_history
			WHERE kind = 'therapy_daily' AND args @> $1::jsonb ORDER BY id DESC LIMIT 1)
		SELECT EXISTS (SELECT 1 FROM fan_out), (SELECT targets FROM fan_out),
		       count(*), count(*) FILTER (WHERE state = 'completed'),
		       count(*) FILTER (WHERE state IN ('discarded', 'cancelled'))
		FROM job_history
		WHERE kind = 'therapy_stats' AND args @> $1::jsonb AND NOT args ? $2`, string(date), argTrigger).
		Scan(&found, &targets, &r.Jobs, &r.Completed, &r.Failed)
	if err != nil {
		return r, fmt.Errorf("store: therapy run %s: %w", businessDate, err)
	}
	r.Found = found
	if targets != nil {
		r.Targets = *targets
	}
	return r, nil
}

// ReconcileOutput is the recorded output of the latest completed, not dry,
// run of one reconciliation check (and coupon, for coupon_reconcile).
type ReconcileOutput struct {
	Kind       string
	CouponCode string // "" but for coupon_reconcile
	Finalized  time.Time
	Output     []byte // metadata.output, as river.RecordOutput stored it
	JobID      int64
}

// LatestReconcileOutputs returns the latest completed run of
// therapy_stats_verify and order_reconcile, and of coupon_reconcile for each
// ACTIVE coupon, each found by river_job_reconcile_latest_idx and its twin on
// the archive, so the report outlives the job in river_job.
func (s *Store) LatestReconcileOutputs(ctx context.Context) ([]ReconcileOutput, error) {
	// Literal kinds, so the planner can prove each branch is inside the
	// partial index.
	return queryRows(ctx, s.pool, pgx.RowToStructByPos[ReconcileOutput], "latest reconcile outputs", `
		(SELECT 'therapy_stats_verify', '', finalized_at, coalesce(metadata -> 'output', 'null'::jsonb), id FROM job_history
		 WHERE state = 'completed' AND kind = 'therapy_stats_verify' AND (args ->> 'coupon_code') IS NULL
		   AND NOT coalesce((args ->> $1)::boolean, false)
		 ORDER BY finalized_at DESC LIMIT 1)
		UNION ALL
		(SELECT 'order_reconcile', '', finalized_at, coalesce(metadata -> 'output', 'null'::jsonb), id FROM job_history
		 WHERE state = 'completed' AND kind = 'order_reconcile' AND (args ->> 'coupon_code') IS NULL
		   AND NOT coalesce((args ->> $1)::boolean, false)
		 ORDER BY finalized_at DESC LIMIT 1)
		UNION ALL
		SELECT 'coupon_reconcile', c.code, r.finalized_at, r.output, r.id
		FROM (SELECT code FROM coupon WHERE status = 'ACTIVE' ORDER BY id LIMIT $2) c
		CROSS JOIN LATERAL (
			SELECT finalized_at, coalesce(metadata -> 'output', 'null'::jsonb) AS output, id FROM job_history
			WHERE state = 'completed' AND kind = 'coupon_reconcile' AND (args ->> 'coupon_code') = c.code
			  AND NOT coalesce((args ->> $1)::boolean, false)
			ORDER BY finalized_at DESC LIMIT 1) r`, argDryRun, MaxReportedCoupons)
}

// AddEnqueueInserts adds n jobs of each kind to what the enqueue CLI has
// inserted.
func (s *Store) AddEnqueueInserts(ctx context.Context, n map[string]int64) error {
	kinds := make([]string, 0, len(n))
	counts := make([]int64, 0, len(n))
	for k, c := range n {
		kinds, counts = append(kinds, k), append(counts, c)
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO enqueue_job_inserts (kind, inserted)
		SELECT * FROM unnest($1::text[], $2::bigint[])
		ON CONFLICT (kind) DO UPDATE SET inserted = enqueue_job_inserts.inserted + EXCLUDED.inserted, updated_at = now()`,
		kinds, counts)
	if err != nil {
		return fmt.Errorf("store: add enqueue inserts: %w", err)
	}
	return nil
}

// EnqueueInserts is how many jobs of each kind the enqueue CLI has inserted.
func (s *Store) EnqueueInserts(ctx context.Context) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT kind, inserted FROM enqueue_job_inserts`)
	if err != nil {
		return nil, fmt.Errorf("store: enqueue inserts: %w", err)
	}
	out := map[string]int64{}
	var kind string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&kind, &n}, func() error { out[kind] = n; return nil })
	if err != nil {
		return nil, fmt.Errorf("store: enqueue inserts: %w", err)
	}
	return out, nil
}
