package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidemark/tidemark/calendar"
)

// ErrUnknownTherapyUser is returned when a therapy user does not exist.
var ErrUnknownTherapyUser = errors.New("unknown therapy user")

// TherapyKey names one user-month of therapy statistics, with the month's
// bounds [Start, End) already computed in the business time zone.
type TherapyKey struct {
	UserID int64
	Year   int
	Month  int
	Start  time.Time
	End    time.Time
}

// NewTherapyKey returns the key for user's year-month in tz.
func NewTherapyKey(userID int64, year, month int, tz *time.Location) TherapyKey {
	start, end := calendar.MonthBounds(year, month, tz)
	return TherapyKey{UserID: userID, Year: year, Month: month, Start: start, End: end}
}

// therapyStatisticsColumns are therapy_statistics' columns, in the order
// TherapyStatistics scans them.
const therapyStatisticsColumns = `therapy_user_id, year, month, perform_count, completed_count,
	total_duration_seconds, active_days, first_performed_at, last_performed_at, aggregated_at`

// therapyUpsertOnConflict ends every write of therapy_statistics: a
// recomputation replaces the whole row.
const therapyUpsertOnConflict = `
	ON CONFLICT (therapy_user_id, year, month) DO UPDATE SET
	    perform_count          = EXCLUDED.perform_count,
	    completed_count        = EXCLUDED.completed_count,
	    total_duration_seconds = EXCLUDED.total_duration_seconds,
	    active_days            = EXCLUDED.active_days,
	    first_performed_at     = EXCLUDED.first_performed_at,
	    last_performed_at      = EXCLUDED.last_performed_at,
	    aggregated_at          = EXCLUDED.aggregated_at`

// TherapyStatistics is one row of therapy_statistics.
type TherapyStatistics struct {
	TherapyUserID        int64
	Year                 int
	Month                int
	PerformCount         int
	CompletedCount       int
	TotalDurationSeconds int64
	ActiveDays           int
	FirstPerformedAt     *time.Time
	LastPerformedAt      *time.Time
	AggregatedAt         time.Time
}

// TherapyTargets returns the ACTIVE users that need their statistics for
// year-month recomputed: those with perform rows in the month and no
// statistics yet, a perform row created after the last aggregation, or a
// different number of perform rows than the last aggregation counted. The
// count check catches a row whose transaction began before an aggregation and
// committed after it (its created_at is older than aggregated_at, yet the
// aggregation could not see it).
func (s *Store) TherapyTargets(ctx context.Context, year, month int, tz *time.Location) ([]int64, error) {
	start, end := calendar.MonthBounds(year, month, tz)
	// Count each user's month first (one pass over the month's rows), then
	// compare the per-user results with their statistics.
	return queryRows(ctx, s.pool, pgx.RowTo[int64], fmt.Sprintf("therapy targets %04d-%02d", year, month), `
		WITH m AS (
		    SELECT therapy_user_id, count(*) AS n, max(created_at) AS newest
		    FROM therapy_perform
		    WHERE performed_at >= $1 AND performed_at < $2
		    GROUP BY therapy_user_id)
		SELECT m.therapy_user_id
		FROM m
		JOIN therapy_user u ON u.id = m.therapy_user_id AND u.status = 'ACTIVE'
		LEFT JOIN therapy_statistics s
		       ON s.therapy_user_id = m.therapy_user_id AND s.year = $3 AND s.month = $4
		WHERE s.aggregated_at IS NULL OR m.newest > s.aggregated_at OR m.n <> s.perform_count
		ORDER BY m.therapy_user_id`, start, end, year, month)
}

// AggregateTherapy recomputes the statistics of every key from therapy_perform
// and upserts them, in one transaction. Each key's transaction-scoped advisory
// lock is taken first, in a statement of its own, so two aggregations of the
// same user-month never interleave and the aggregation's snapshot (taken by
// the next statement) sees everything committed before the lock was granted.
// Keys are locked in a fixed order, so concurrent batches cannot deadlock.
//
// With attempts, the transaction first checks that River still runs every
// one of them (tidemark_require_running) and writes nothing, returning
// ErrStale, if it does not: the fence of jobs' attempts whose worker froze
// and another attempt took over. The check runs on the server with the rest,
// so a worker frozen before the batch left it is checked when it is sent.
func (s *Store) AggregateTherapy(ctx context.Context, keys []TherapyKey, tz *time.Location, attempts ...Attempt) error {
	keys = uniqueKeys(keys)
	if len(keys) == 0 {
		return nil
	}
	n := len(keys)
	users, years, months := make([]int64, n), make([]int32, n), make([]int32, n)
	starts, ends := make([]time.Time, n), make([]time.Time, n)
	for i, k := range keys {
		users[i], years[i], months[i], starts[i], ends[i] = k.UserID, int32(k.Year), int32(k.Month), k.Start, k.End
	}
	// One round trip: Postgres runs every statement of a pipeline up to its
	// Sync as one implicit transaction, and in READ COMMITTED each statement
	// still takes its own snapshot, so the upsert's snapshot is taken after
	// the locks of the statement before it are granted.
	//
	// The commit is synchronous: River completes the job in a transaction of
	// its own once this returns, possibly on a server restarted after a crash,
	// so an aggregation acknowledged here must already be durable
	// (docs/design/commits.md).
	batch := &pgx.Batch{}
	if len(attempts) > 0 {
		ids, nums := splitAttempts(attempts)
		batch.Queue(`SELECT tidemark_require_running($1, $2)`, ids, nums)
	}
	batch.Queue(`
		SELECT count(pg_advisory_xact_lock(h))
		FROM (SELECT hashtextextended('therapy_stats:' || u || ':' || y || ':' || m, 0) AS h
		      FROM unnest($1::bigint[], $2::int[], $3::int[]) AS k(u, y, m)
		      ORDER BY 1) AS ordered`, users, years, months)
	batch.Queue(`
		INSERT INTO therapy_statistics AS t (`+therapyStatisticsColumns+`)
			SELECT k.u, k.y, k.m,
			       count(p.performed_at), -- not p.id: the covering index makes this index-only
			       count(p.performed_at) FILTER (WHERE p.completed),
			       coalesce(sum(p.duration_seconds), 0),
			       count(DISTINCT (p.performed_at AT TIME ZONE $6)::date),
			       min(p.performed_at),
			       max(p.performed_at),
			       now()
			FROM unnest($1::bigint[], $2::int[], $3::int[], $4::timestamptz[], $5::timestamptz[]) AS k(u, y, m, s, e)
			JOIN therapy_user u ON u.id = k.u
			LEFT JOIN therapy_perform p
			       ON p.therapy_user_id = k.u AND p.performed_at >= k.s AND p.performed_at < k.e
			GROUP BY k.u, k.y, k.m
			`+therapyUpsertOnConflict, users, years, months, starts, ends, tz.String())
	results := s.pool.SendBatch(ctx, batch)
	var err error
	if len(attempts) > 0 {
		_, err = results.Exec()
		if isStaleError(err) {
			err = ErrStale
		}
	}
	if err == nil {
		_, err = results.Exec()
	}
	var written pgconn.CommandTag
	if err == nil {
		written, err = results.Exec()
	}
	err = errors.Join(err, results.Close())
	if err == nil && written.RowsAffected() < int64(n) {
		// Some key's user does not exist; the others were written. The
		// combiner runs a failed batch's keys one by one, so the missing user's
		// job gets this error alone.
		err = ErrUnknownTherapyUser
	}
	if err != nil {
		if n == 1 {
			return fmt.Errorf("store: aggregate therapy user %d %04d-%02d: %w", keys[0].UserID, keys[0].Year, keys[0].Month, err)
		}
		return fmt.Errorf("store: aggregate therapy (%d user-months): %w", n, err)
	}
	return nil
}

// uniqueKeys drops repeated user-months: one INSERT … ON CONFLICT cannot touch
// a row twice.
func uniqueKeys(keys []TherapyKey) []TherapyKey {
	type id struct {
		u    int64
		y, m int
	}
	seen := make(map[id]bool, len(keys))
	out := make([]TherapyKey, 0, len(keys))
	for _, k := range keys {
		if !seen[id{k.UserID, k.Year, k.Month}] {
			seen[id{k.UserID, k.Year, k.Month}] = true
			out = append(out, k)
		}
	}
	return out
}

// GetTherapyStatistics returns one user-month's statistics, or ErrNotFound.
func (s *Store) GetTherapyStatistics(ctx context.Context, userID int64, year, month int) (TherapyStatistics, error) {
	var t TherapyStatistics
	rows, err := s.pool.Query(ctx, `
		SELECT `+therapyStatisticsColumns+`
		FROM therapy_statistics WHERE therapy_user_id = $1 AND year = $2 AND month = $3`, userID, year, month)
	if err == nil {
		t, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[TherapyStatistics])
	}
	if err != nil {
		return t, fmt.Errorf("store: therapy statistics user %d %04d-%02d: %w", userID, year, month, notFound(err))
	}
	return t, nil
}

// MissingTherapyUsers returns those of ids that are not in therapy_user.
func (s *Store) MissingTherapyUsers(ctx context.Context, ids []int64) ([]int64, error) {
	return queryRows(ctx, s.pool, pgx.RowTo[int64], "missing therapy users", `
		SELECT q.id FROM unnest($1::bigint[]) AS q(id)
		WHERE NOT EXISTS (SELECT 1 FROM therapy_user u WHERE u.id = q.id)
		ORDER BY q.id`, ids)
}

// ActiveTherapyUsers returns the ids of every ACTIVE therapy user.
func (s *Store) ActiveTherapyUsers(ctx context.Context) ([]int64, error) {
	return queryRows(ctx, s.pool, pgx.RowTo[int64], "active therapy users", `SELECT id FROM therapy_user WHERE status = 'ACTIVE' ORDER BY id`)
}

// TherapyDemo describes generated demo or benchmark data.
type TherapyDemo struct {
	FirstUserID     int64
	Users           int
	PerformsPerUser int
	Year, Month     int
	// Days limits performed_at to the month's first Days days (0: whole month).
	Days int
}

// GenerateTherapyData inserts d.Users ACTIVE users (ids from d.FirstUserID)
// with d.PerformsPerUser perform rows each, spread deterministically over the
// month in tz. Existing users are left as they are (ON CONFLICT DO NOTHING);
// it returns how many users and performs it inserted.
func (s *Store) GenerateTherapyData(ctx context.Context, d TherapyDemo, tz *time.Location) (users, performs int64, err error) {
	start, end := calendar.MonthBounds(d.Year, d.Month, tz)
	if d.Days > 0 && start.AddDate(0, 0, d.Days).Before(end) {
		end = start.AddDate(0, 0, d.Days)
	}
	spanSeconds := int64(end.Sub(start) / time.Second)
	err = s.InTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			INSERT INTO therapy_user (id, status)
			SELECT g, 'ACTIVE' FROM generate_series($1::bigint, $1::bigint + $2 - 1) AS g
			ON CONFLICT (id) DO NOTHING`, d.FirstUserID, d.Users)
		if err != nil {
			return fmt.Errorf("users: %w", err)
		}
		users = tag.RowsAffected()
		tag, err = tx.Exec(ctx, `
			INSERT INTO therapy_perform (therapy_user_id, performed_at, duration_seconds, completed)
			SELECT u, $3::timestamptz + make_interval(secs => ((u * 7919 + i * 104729) % $4)),
			       300 + ((u + i) % 20) * 60, (u + i) % 4 <> 0
			FROM generate_series($1::bigint, $1::bigint + $2 - 1) AS u,
			     generate_series(1, $5::int) AS i
			WHERE NOT EXISTS (SELECT 1 FROM therapy_perform p WHERE p.therapy_user_id = u)`,
			d.FirstUserID, d.Users, start, spanSeconds, d.PerformsPerUser)
		if err != nil {
			return fmt.Errorf("performs: %w", err)
		}
		performs = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("store: generate therapy data: %w", err)
	}
	return users, performs, nil
}

// TherapyMonthSummary sums a month's therapy_statistics and its jobs' audit
// statuses (therapy_batch_log), for reports.
type TherapyMonthSummary struct {
	Users, Performs, Completed, ActiveDays int64
	DurationSeconds                        int64
	LogStatus                              map[string]int64
}

// SummarizeTherapyMonth returns the summary of year-month.
func (s *Store) SummarizeTherapyMonth(ctx context.Context, year, month int) (TherapyMonthSummary, error) {
	sum := TherapyMonthSummary{LogStatus: map[string]int64{}}
	err := s.pool.QueryRow(ctx, `
		SELECT count(*), coalesce(sum(perform_count), 0), coalesce(sum(completed_count), 0),
		       coalesce(sum(active_days), 0), coalesce(sum(total_duration_seconds), 0)
		FROM therapy_statistics WHERE year = $1 AND month = $2`, year, month).
		Scan(&sum.Users, &sum.Performs, &sum.Completed, &sum.ActiveDays, &sum.DurationSeconds)
	if err != nil {
		return sum, fmt.Errorf("store: summarize therapy %04d-%02d: %w", year, month, err)
	}
	rows, err := s.pool.Query(ctx, `
		SELECT status, count(*) FROM therapy_batch_log WHERE year = $1 AND month = $2 GROUP BY status`, year, month)
	if err != nil {
		return sum, fmt.Errorf("store: summarize therapy %04d-%02d: %w", year, month, err)
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return sum, err
		}
		sum.LogStatus[st] = n
	}
	return sum, rows.Err()
}

// TopTherapyStatistics returns the n rows of year-month with the most
// performs, for reports.
func (s *Store) TopTherapyStatistics(ctx context.Context, year, month, n int) ([]TherapyStatistics, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+therapyStatisticsColumns+`
		FROM therapy_statistics WHERE year = $1 AND month = $2
		ORDER BY perform_count DESC, therapy_user_id LIMIT $3`, year, month, n)
	if err != nil {
		return nil, fmt.Errorf("store: top therapy statistics: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[TherapyStatistics])
}
