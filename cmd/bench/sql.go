package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tidemark/tidemark/calendar"
)

// The SQL only the benchmarks run: their data, their resets and the
// set-based yardsticks the batches are compared with.

// aggregateTherapyMonthSetBased recomputes every user-month of year-month
// that has perform rows in one INSERT … SELECT … GROUP BY: the fastest the
// database can do the daily run's work, with no per-user retries, isolation
// or audit.
func aggregateTherapyMonthSetBased(ctx context.Context, pool *pgxpool.Pool, year, month int, tz *time.Location) (int64, error) {
	start, end := calendar.MonthBounds(year, month, tz)
	tag, err := pool.Exec(ctx, `
		INSERT INTO therapy_statistics AS t (therapy_user_id, year, month, perform_count, completed_count,
			total_duration_seconds, active_days, first_performed_at, last_performed_at, aggregated_at)
		SELECT p.therapy_user_id, $3, $4, count(*), count(*) FILTER (WHERE p.completed),
		       sum(p.duration_seconds), count(DISTINCT (p.performed_at AT TIME ZONE $5)::date),
		       min(p.performed_at), max(p.performed_at), now()
		FROM therapy_perform p
		WHERE p.performed_at >= $1 AND p.performed_at < $2
		GROUP BY p.therapy_user_id
		ON CONFLICT (therapy_user_id, year, month) DO UPDATE SET
		    (perform_count, completed_count, total_duration_seconds, active_days,
		     first_performed_at, last_performed_at, aggregated_at) =
		    (EXCLUDED.perform_count, EXCLUDED.completed_count, EXCLUDED.total_duration_seconds, EXCLUDED.active_days,
		     EXCLUDED.first_performed_at, EXCLUDED.last_performed_at, EXCLUDED.aggregated_at)`, start, end, year, month, tz.String())
	if err != nil {
		return 0, fmt.Errorf("set-based therapy aggregation %04d-%02d: %w", year, month, err)
	}
	return tag.RowsAffected(), nil
}

// generateLedger fills an empty point_ledger with total rows over 10,000
// members, every tenth of them (ids spread over the whole table) due for
// runDate and the rest settled long ago; each member's first row is an EARN
// so no row is skipped.
func generateLedger(ctx context.Context, pool *pgxpool.Pool, total int, runDate string) error {
	_, err := pool.Exec(ctx, `
		INSERT INTO point_ledger (member_id, kind, amount, occurred_at, process_on, processed_on)
		SELECT g % 10000, CASE WHEN g < 10000 THEN 'EARN' ELSE (ARRAY['EARN', 'USE', 'EXPIRE'])[g % 3 + 1] END,
		       g % 997 + 1, $2::date - 400 + make_interval(secs => g * 30),
		       CASE WHEN g % 10 = 9 THEN $2::date ELSE $2::date - 400 + (g * 30 / 86400) + 1 END,
		       CASE WHEN g % 10 = 9 THEN NULL ELSE $2::date - 400 + (g * 30 / 86400) + 1 END
		FROM generate_series(0, $1 - 1) AS g`, total, runDate)
	if err != nil {
		return fmt.Errorf("generate ledger: %w", err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE point_ledger`); err != nil {
		return fmt.Errorf("generate ledger: vacuum: %w", err)
	}
	return nil
}

// resetSettlementRun undoes runDate's collection: its rows become due again
// and its daily_batch, skip and settlement rows go.
func resetSettlementRun(ctx context.Context, pool *pgxpool.Pool, runDate string) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, q := range []string{
			`UPDATE point_ledger SET processed_on = NULL WHERE processed_on = $1::date`,
			`DELETE FROM daily_batch WHERE run_date = $1::date`,
			`DELETE FROM settlement_skip WHERE run_date = $1::date`,
			`DELETE FROM point_daily_settlement WHERE run_date = $1::date`,
		} {
			if _, err := tx.Exec(ctx, q, runDate); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reset settlement %s: %w", runDate, err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE point_ledger, daily_batch`); err != nil {
		return fmt.Errorf("reset settlement %s: vacuum: %w", runDate, err)
	}
	return nil
}

// collectSetBased is the settlement's step 1 as one set-based INSERT …
// SELECT + UPDATE in one transaction. It returns the rows collected.
func collectSetBased(ctx context.Context, pool *pgxpool.Pool, runDate string) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			INSERT INTO daily_batch (run_date, ledger_id, member_id, kind, amount, processed_at, job_id)
			SELECT $1::date, id, member_id, kind, amount, now(), 0 FROM point_ledger
			WHERE process_on <= $1::date AND (processed_on IS NULL OR processed_on < process_on) AND ready`, runDate)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		_, err = tx.Exec(ctx, `
			UPDATE point_ledger SET processed_on = $1::date
			WHERE process_on <= $1::date AND (processed_on IS NULL OR processed_on < process_on) AND ready`, runDate)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("set-based collect %s: %w", runDate, err)
	}
	return n, nil
}

// unsettledOrders counts PENDING and SENDING order requests.
func unsettledOrders(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT count(*) FROM order_request WHERE status IN ('PENDING', 'SENDING')`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("unsettled order count: %w", err)
	}
	return n, nil
}
