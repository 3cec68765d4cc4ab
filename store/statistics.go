package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Tables whose planner statistics tidemark refreshes itself after a bulk
// change (see AnalyzeIfStale).
const (
	TableRiverJob       = "river_job"
	TableTherapyPerform = "therapy_perform"
)

// analyzeStatements holds each refreshable table's ANALYZE: an identifier
// cannot be a parameter, and a fixed statement per table keeps the SQL
// visible instead of built from a string.
var analyzeStatements = map[string]string{
	TableRiverJob:       `ANALYZE river_job`,
	TableTherapyPerform: `ANALYZE therapy_perform`,
}

// staleStatistics says whether a table needs ANALYZE. First autovacuum's own
// rule (autovacuum_analyze_threshold 50 + autovacuum_analyze_scale_factor
// 0.1 of the rows the last ANALYZE counted; a table never analysed counts as
// empty), on pg_stat_user_tables' n_mod_since_analyze and pg_class.reltuples,
// read through the functions that view is built on, for the one table only.
// Backends report their changes at most once a second, so a bulk insert's
// latest rows are not counted yet; the same share of growth of the table's
// file over the pages the last ANALYZE or VACUUM saw (pg_class.relpages, 10
// pages at least) counts too, and is always current.
const staleStatistics = `
	SELECT pg_stat_get_mod_since_analyze(c.oid) > 50 + 0.1 * greatest(c.reltuples, 0)
	    OR pg_relation_size(c.oid) / current_setting('block_size')::int > 10 + 1.1 * c.relpages
	FROM pg_class c WHERE c.oid = to_regclass($1)`

// AnalyzeIfStale runs ANALYZE on table (TableRiverJob or TableTherapyPerform)
// when its statistics are stale (see staleStatistics), and reports whether it
// did. A bulk insert (a fan-out of many jobs, an import) changes a table
// faster than autovacuum looks at it, or on a server where it is off; until
// ANALYZE runs, the planner, and the plans every connection has cached,
// believe the table is as small as it was, and River's fetches and
// completions scan river_job instead of using its indexes.
//
// It is cheap to call after every batch: a fresh table costs one catalog
// read. ANALYZE writes statistics only (pg_statistic, pg_class), never the
// table's rows, and reads a bounded sample (300 × default_statistics_target
// rows), so its cost does not grow with the table. Concurrent callers are
// safe: one takes a transaction-scoped advisory lock and analyses, the others
// skip (false, nil); a call that would wait over a second for the table's
// lock (autovacuum or another ANALYZE is on it) skips too, and a later call
// tries again.
func (s *Store) AnalyzeIfStale(ctx context.Context, table string) (bool, error) {
	analyze, ok := analyzeStatements[table]
	if !ok {
		return false, fmt.Errorf("store: analyze %q: not a table tidemark analyses", table)
	}
	stale, err := s.statisticsStale(ctx, s.pool, table)
	if err != nil || !stale {
		return false, err
	}
	analysed := false
	err = s.InTx(ctx, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))`,
			analyzeLockKey(table)).Scan(&locked); err != nil || !locked {
			return err
		}
		// Another caller may have analysed between the first read and the
		// lock: read again, in this transaction's first look at the stats.
		if stale, err := s.statisticsStale(ctx, tx, table); err != nil || !stale {
			return err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '1s'`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, analyze); err != nil {
			return err
		}
		analysed = true
		return nil
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.LockNotAvailable {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: analyze %s: %w", table, err)
	}
	return analysed, nil
}

func (s *Store) statisticsStale(ctx context.Context, db DBTX, table string) (bool, error) {
	var stale bool
	if err := db.QueryRow(ctx, staleStatistics, table).Scan(&stale); err != nil {
		return false, fmt.Errorf("store: statistics of %s: %w", table, notFound(err))
	}
	return stale, nil
}

// analyzeLockKey names the advisory lock held while table is analysed.
func analyzeLockKey(table string) string { return "tidemark:analyze:" + table }
