package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidemark/tidemark/calendar"
)

// The batches of the batch page and `enqueue runs`, in the order shown.
const (
	BatchTherapy         = "therapy"          // therapy_daily and its therapy_stats jobs
	BatchSettlement      = "settlement"       // point_settlement runs and point_daily_settlement
	BatchCouponReconcile = "coupon_reconcile" // coupon_reconcile jobs created that day
	BatchOrders          = "orders"           // order_request rows and order_submit jobs created that day
	BatchExchange        = "exchange"         // coupon_exchange jobs created that day
)

// BatchKinds is every batch, in the order shown.
var BatchKinds = []string{BatchTherapy, BatchSettlement, BatchCouponReconcile, BatchOrders, BatchExchange}

// A run's state.
const (
	RunNone      = ""          // nothing ran for the date
	RunRunning   = "running"   // a job is queued, running or waiting to retry, or an order is not yet final
	RunFailed    = "failed"    // a job was discarded or cancelled, or an order FAILED
	RunCompleted = "completed" // every job completed
)

// MaxRunJobIDs bounds each list of job ids of a BatchRun.
const MaxRunJobIDs = 5

// BatchCount is one named count of a run.
type BatchCount struct {
	Name  string
	Value int64
}

// BatchRun is what one batch did for one business date.
type BatchRun struct {
	BusinessDate string
	Kind         string // one of BatchKinds
	State        string // RunNone, RunRunning, RunFailed or RunCompleted
	// Counts are the batch's own numbers, in the order shown:
	//   therapy: targets (the fan-out's), jobs, done, failed (the daily run's therapy_stats jobs);
	//   settlement: runs, read, written, skipped (the latest run), items (the settlement);
	//   coupon_reconcile: runs, coupons, mismatched (coupons whose latest run that day disagreed), repaired;
	//   orders: requests, applied, failed, open (PENDING or SENDING), jobs;
	//   exchange: runs, issued.
	Counts []BatchCount
	// Failures counts failed jobs (and, for orders, FAILED requests).
	Failures int64
	// StartedAt is when the run's first job (or order request) was created;
	// FinishedAt when its last one finished, zero while one is open.
	StartedAt, FinishedAt time.Time
	// JobIDs are the run's main jobs (the fan-out, the latest settlement
	// run, the latest reconciliations and exchanges), FailedJobIDs its
	// failed ones, newest first, at most MaxRunJobIDs each.
	JobIDs, FailedJobIDs []int64
	// LastError is the last error of the newest failed job.
	LastError string
}

// Count returns the count named name, and whether the run has one.
func (r BatchRun) Count(name string) (int64, bool) {
	for _, c := range r.Counts {
		if c.Name == name {
			return c.Value, true
		}
	}
	return 0, false
}

// Duration is FinishedAt - StartedAt, zero while the run is open.
func (r BatchRun) Duration() time.Duration {
	if r.StartedAt.IsZero() || r.FinishedAt.IsZero() {
		return 0
	}
	return r.FinishedAt.Sub(r.StartedAt)
}

// DurationText is Duration as the batch page and `enqueue runs` show it: to
// the millisecond under a second, else to the second; "" while the run is
// open.
func (r BatchRun) DurationText() string {
	switch d := r.Duration(); {
	case d <= 0:
		return ""
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// Output keys of the jobs' recorded reports read below (river.RecordOutput).
const (
	outTargets    = "targets"     // jobs.TherapyDailyOutput.Targets
	outRolledBack = "rolled_back" // jobs.CouponReport.RolledBack
	outAddedBack  = "added_back"  // jobs.CouponReport.AddedBack
	outAgrees     = "agrees"      // jobs.CouponReport.Agrees
	outIssued     = "issued"      // jobs.CouponExchangeOutput.Issued
)

// batchRunsSQL reads every batch of every date in [$1, $2] ($5, each date)
// in one statement; $3 is BATCH_TZ, $4 BatchKinds. It reads job_history, so a
// date looks the same before and after River's cleaner moves its jobs to the
// archive. Each part is bounded by the dates through an index of river_job
// and its twin on job_archive: the therapy jobs by the GIN indexes on args
// (one containment lookup per date), the settlement runs by the
// point_settlement date indexes, the jobs without a date in their args by
// river_job_batch_created_idx and job_archive_kind_created_idx, the order
// requests by order_request_created_idx. The per-kind literals keep each
// branch provably inside its partial index.
const batchRunsSQL = `
WITH days AS (
	SELECT unnest($5::text[]) AS business_date
), bounds AS (
	SELECT $1::text::date::timestamp AT TIME ZONE $3 AS lo, ($2::text::date + 1)::timestamp AT TIME ZONE $3 AS hi
),
-- therapy: the latest fan-out of the date and the therapy_stats jobs of its daily run.
therapy AS (
	SELECT d.business_date,
	       (f.id IS NOT NULL)::int + s.jobs AS jobs,
	       coalesce((f.state NOT IN ('completed', 'discarded', 'cancelled'))::int, 0) + s.live AS live,
	       coalesce((f.state IN ('discarded', 'cancelled'))::int, 0) + s.failed AS failed,
	       coalesce((f.state IN ('discarded', 'cancelled'))::int, 0) + s.failed AS bad,
	       ARRAY['targets', 'jobs', 'done', 'failed'] AS count_names,
	       ARRAY[coalesce((f.metadata -> 'output' ->> '` + outTargets + `')::bigint, 0), s.jobs, s.done, s.failed] AS count_values,
	       least(f.created_at, s.started) AS started, greatest(f.finalized_at, s.finished) AS finished,
	       coalesce(array_remove(ARRAY[f.id], NULL), '{}') AS job_ids, s.failed_ids,
	       coalesce(CASE WHEN f.state IN ('discarded', 'cancelled') THEN f.errors[array_length(f.errors, 1)] ->> 'error' END, s.last_error) AS last_error
	FROM days d
	LEFT JOIN LATERAL (
		SELECT id, state::text AS state, created_at, finalized_at, metadata, errors FROM job_history
		WHERE kind = 'therapy_daily' AND args @> jsonb_build_object('` + argBusinessDate + `', d.business_date)
		ORDER BY id DESC LIMIT 1) f ON true
	CROSS JOIN LATERAL (
		SELECT count(*) AS jobs,
		       count(*) FILTER (WHERE state = 'completed') AS done,
		       count(*) FILTER (WHERE state IN ('discarded', 'cancelled')) AS failed,
		       count(*) FILTER (WHERE state NOT IN ('completed', 'discarded', 'cancelled')) AS live,
		       min(created_at) AS started, max(finalized_at) AS finished,
		       (array_agg(id ORDER BY id DESC) FILTER (WHERE state IN ('discarded', 'cancelled')))[1:` + maxRunJobIDsSQL + `] AS failed_ids,
		       (array_agg(errors[array_length(errors, 1)] ->> 'error' ORDER BY id DESC) FILTER (WHERE state IN ('discarded', 'cancelled')))[1] AS last_error
		FROM job_history
		WHERE kind = 'therapy_stats' AND args @> jsonb_build_object('` + argBusinessDate + `', d.business_date)
		  AND NOT args ? '` + argTrigger + `') s
),
-- settlement: every run of the date; the counts are the latest run's (batch_job_execution) and the settlement's.
settlement_runs AS (
	SELECT args ->> '` + argRunDate + `' AS business_date,
	       count(*) AS jobs,
	       count(*) FILTER (WHERE state NOT IN ('completed', 'discarded', 'cancelled')) AS live,
	       count(*) FILTER (WHERE state IN ('discarded', 'cancelled')) AS failed,
	       min(created_at) AS started, max(finalized_at) AS finished,
	       (array_agg(id ORDER BY id DESC))[1] AS latest_id,
	       ((array_agg(state ORDER BY id DESC))[1] IN ('discarded', 'cancelled'))::int AS latest_failed,
	       (array_agg(id ORDER BY id DESC) FILTER (WHERE state IN ('discarded', 'cancelled')))[1:` + maxRunJobIDsSQL + `] AS failed_ids,
	       (array_agg(errors[array_length(errors, 1)] ->> 'error' ORDER BY id DESC) FILTER (WHERE state IN ('discarded', 'cancelled')))[1] AS last_error
	FROM job_history
	WHERE kind = 'point_settlement' AND args ->> '` + argRunDate + `' BETWEEN $1::text AND $2::text
	GROUP BY 1
), settlement AS (
	SELECT r.business_date, r.jobs, r.live, r.failed, r.latest_failed AS bad,
	       ARRAY['runs', 'read', 'written', 'skipped', 'items'] AS count_names,
	       ARRAY[r.jobs, coalesce(e.read_count, 0), coalesce(e.write_count, 0), coalesce(e.skip_count, 0), coalesce(p.item_count, 0)] AS count_values,
	       r.started, r.finished, ARRAY[r.latest_id] AS job_ids, r.failed_ids, r.last_error
	FROM settlement_runs r
	JOIN batch_job_execution e ON e.job_execution_id = r.latest_id
	LEFT JOIN point_daily_settlement p ON p.run_date = r.business_date::date
),
-- coupon reconciliation: the runs created that day; mismatched counts the
-- coupons whose latest completed, not dry, run that day disagreed.
coupon_runs AS (
	SELECT to_char(j.created_at AT TIME ZONE $3, 'YYYY-MM-DD') AS business_date, j.id, j.state::text AS state,
	       j.created_at, j.finalized_at, j.errors, j.args ->> '` + argCouponCode + `' AS code,
	       j.state = 'completed' AND NOT coalesce((j.args ->> '` + argDryRun + `')::boolean, false) AS counted,
	       j.metadata -> 'output' AS output
	FROM job_history j, bounds b
	WHERE j.kind = 'coupon_reconcile' AND j.created_at >= b.lo AND j.created_at < b.hi
), coupon_latest AS (
	SELECT DISTINCT ON (business_date, code) business_date, code, id, coalesce((output ->> '` + outAgrees + `')::boolean, true) AS agrees
	FROM coupon_runs WHERE counted ORDER BY business_date, code, finalized_at DESC
), coupon AS (
	SELECT r.business_date, count(*) AS jobs,
	       count(*) FILTER (WHERE state NOT IN ('completed', 'discarded', 'cancelled')) AS live,
	       count(*) FILTER (WHERE state IN ('discarded', 'cancelled')) AS failed,
	       count(*) FILTER (WHERE state IN ('discarded', 'cancelled')) AS bad,
	       ARRAY['runs', 'coupons', 'mismatched', 'repaired'] AS count_names,
	       ARRAY[count(*), count(DISTINCT code),
	             (SELECT count(*) FROM coupon_latest l WHERE l.business_date = r.business_date AND NOT l.agrees),
	             coalesce(sum((output ->> '` + outRolledBack + `')::bigint + (output ->> '` + outAddedBack + `')::bigint) FILTER (WHERE counted), 0)::bigint] AS count_values,
	       min(created_at) AS started, max(finalized_at) AS finished,
	       coalesce((SELECT (array_agg(l.id ORDER BY l.id DESC))[1:` + maxRunJobIDsSQL + `] FROM coupon_latest l WHERE l.business_date = r.business_date), '{}') AS job_ids,
	       (array_agg(id ORDER BY id DESC) FILTER (WHERE state IN ('discarded', 'cancelled')))[1:` + maxRunJobIDsSQL + `] AS failed_ids,
	       (array_agg(errors[array_length(errors, 1)] ->> 'error' ORDER BY id DESC) FILTER (WHERE state IN ('discarded', 'cancelled')))[1] AS last_error
	FROM coupon_runs r GROUP BY r.business_date
),
-- orders: the requests that arrived that day, by status, and the order_submit jobs created that day.
order_rows AS (
	SELECT to_char(o.created_at AT TIME ZONE $3, 'YYYY-MM-DD') AS business_date,
	       count(*) AS requests,
	       count(*) FILTER (WHERE o.status = 'APPLIED') AS applied,
	       count(*) FILTER (WHERE o.status = 'FAILED') AS failed,
	       count(*) FILTER (WHERE o.status IN ('PENDING', 'SENDING')) AS open,
	       min(o.created_at) AS started, max(o.updated_at) AS finished
	FROM order_request o, bounds b
	WHERE o.created_at >= b.lo AND o.created_at < b.hi
	GROUP BY 1
), order_jobs AS (
	SELECT to_char(j.created_at AT TIME ZONE $3, 'YYYY-MM-DD') AS business_date,
	       count(*) AS jobs,
	       count(*) FILTER (WHERE j.state NOT IN ('completed', 'discarded', 'cancelled')) AS live,
	       count(*) FILTER (WHERE j.state IN ('discarded', 'cancelled')) AS failed,
	       min(j.created_at) AS started, max(j.finalized_at) AS finished,
	       (array_agg(j.id ORDER BY j.id DESC) FILTER (WHERE j.state IN ('discarded', 'cancelled')))[1:` + maxRunJobIDsSQL + `] AS failed_ids
	FROM job_history j, bounds b
	WHERE j.kind = 'order_submit' AND j.created_at >= b.lo AND j.created_at < b.hi
	GROUP BY 1
), orders AS (
	SELECT coalesce(r.business_date, j.business_date) AS business_date,
	       coalesce(r.requests, 0) + coalesce(j.jobs, 0) AS jobs,
	       coalesce(r.open, 0) + coalesce(j.live, 0) AS live,
	       coalesce(r.failed, 0) + coalesce(j.failed, 0) AS failed,
	       coalesce(r.failed, 0) + coalesce(j.failed, 0) AS bad,
	       ARRAY['requests', 'applied', 'failed', 'open', 'jobs'] AS count_names,
	       ARRAY[coalesce(r.requests, 0), coalesce(r.applied, 0), coalesce(r.failed, 0), coalesce(r.open, 0), coalesce(j.jobs, 0)] AS count_values,
	       least(r.started, j.started) AS started, greatest(r.finished, j.finished) AS finished,
	       '{}'::bigint[] AS job_ids, j.failed_ids, NULL::text AS last_error
	FROM order_rows r FULL JOIN order_jobs j ON j.business_date = r.business_date
),
-- exchange: the coupon_exchange jobs created that day.
exchange AS (
	SELECT to_char(j.created_at AT TIME ZONE $3, 'YYYY-MM-DD') AS business_date,
	       count(*) AS jobs,
	       count(*) FILTER (WHERE j.state NOT IN ('completed', 'discarded', 'cancelled')) AS live,
	       count(*) FILTER (WHERE j.state IN ('discarded', 'cancelled')) AS failed,
	       count(*) FILTER (WHERE j.state IN ('discarded', 'cancelled')) AS bad,
	       ARRAY['runs', 'issued'] AS count_names,
	       ARRAY[count(*), coalesce(sum((j.metadata -> 'output' ->> '` + outIssued + `')::bigint), 0)::bigint] AS count_values,
	       min(j.created_at) AS started, max(j.finalized_at) AS finished,
	       (array_agg(j.id ORDER BY j.id DESC))[1:` + maxRunJobIDsSQL + `] AS job_ids,
	       (array_agg(j.id ORDER BY j.id DESC) FILTER (WHERE j.state IN ('discarded', 'cancelled')))[1:` + maxRunJobIDsSQL + `] AS failed_ids,
	       (array_agg(j.errors[array_length(j.errors, 1)] ->> 'error' ORDER BY j.id DESC) FILTER (WHERE j.state IN ('discarded', 'cancelled')))[1] AS last_error
	FROM job_history j, bounds b
	WHERE j.kind = 'coupon_exchange' AND j.created_at >= b.lo AND j.created_at < b.hi
	GROUP BY 1
), runs AS (
	SELECT 'therapy' AS kind, * FROM therapy
	UNION ALL SELECT 'settlement', * FROM settlement
	UNION ALL SELECT 'coupon_reconcile', * FROM coupon
	UNION ALL SELECT 'orders', * FROM orders
	UNION ALL SELECT 'exchange', * FROM exchange
)
SELECT d.business_date, k.kind,
       CASE WHEN coalesce(r.jobs, 0) = 0 THEN '' WHEN r.live > 0 THEN 'running' WHEN r.bad > 0 THEN 'failed' ELSE 'completed' END,
       coalesce(r.count_names, '{}'), coalesce(r.count_values, '{}'), coalesce(r.failed, 0),
       r.started, CASE WHEN r.live = 0 THEN r.finished END,
       coalesce(r.job_ids, '{}'), coalesce(r.failed_ids, '{}'), coalesce(r.last_error, '')
FROM days d
CROSS JOIN unnest($4::text[]) WITH ORDINALITY AS k(kind, ord)
LEFT JOIN runs r ON r.business_date = d.business_date AND r.kind = k.kind
ORDER BY d.business_date DESC, k.ord`

// maxRunJobIDsSQL is MaxRunJobIDs as an SQL literal (array slice bounds).
const maxRunJobIDsSQL = "5"

// BatchRuns returns one BatchRun per business date in [from, to] (newest
// first) and batch (in BatchKinds order), with RunNone for a batch that did
// not run that day. Batches without a date of their own (reconciliation,
// orders, exchange) count what was created on that date in tz.
func (s *Store) BatchRuns(ctx context.Context, from, to string, tz *time.Location) ([]BatchRun, error) {
	f, err := calendar.ParseDate(from)
	if err != nil {
		return nil, fmt.Errorf("store: batch runs: from: %w", err)
	}
	t, err := calendar.ParseDate(to)
	if err != nil {
		return nil, fmt.Errorf("store: batch runs: to: %w", err)
	}
	if t.Before(f) {
		return nil, fmt.Errorf("store: batch runs: %s is before %s", to, from)
	}
	// The dates come as an array rather than generate_series, whose
	// estimate (1000 rows) would make the planner expect a costly query; and
	// JIT is off, since compiling the statement costs more than running it.
	var days []string
	for d := f; !d.After(t); d = d.AddDate(0, 0, 1) {
		days = append(days, d.Format(time.DateOnly))
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("store: batch runs: begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only; nothing to keep
	if _, err := tx.Exec(ctx, `SET LOCAL jit = off`); err != nil {
		return nil, fmt.Errorf("store: batch runs: %w", err)
	}
	rows, err := tx.Query(ctx, batchRunsSQL, from, to, tz.String(), BatchKinds, days)
	if err != nil {
		return nil, fmt.Errorf("store: batch runs %s..%s: %w", from, to, err)
	}
	var (
		out              []BatchRun
		r                BatchRun
		names            []string
		values           []int64
		started, finishd *time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&r.BusinessDate, &r.Kind, &r.State, &names, &values, &r.Failures,
		&started, &finishd, &r.JobIDs, &r.FailedJobIDs, &r.LastError}, func() error {
		run := r
		run.Counts = make([]BatchCount, len(names))
		for i, n := range names {
			run.Counts[i] = BatchCount{Name: n, Value: values[i]}
		}
		run.StartedAt, run.FinishedAt = time.Time{}, time.Time{}
		if started != nil {
			run.StartedAt = *started
		}
		if finishd != nil {
			run.FinishedAt = *finishd
		}
		run.JobIDs, run.FailedJobIDs = append([]int64(nil), r.JobIDs...), append([]int64(nil), r.FailedJobIDs...)
		out = append(out, run)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: batch runs %s..%s: %w", from, to, err)
	}
	return out, nil
}
