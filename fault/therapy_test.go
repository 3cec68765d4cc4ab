package fault_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPostgresCrashDuringTherapyRun crash-restarts Postgres while two worker
// processes work the daily therapy run's thousands of jobs; neither worker is
// restarted. Every target user-month must end with the statistics a direct
// SQL aggregation of its performs gives, each aggregated by one job.
func TestPostgresCrashDuringTherapyRun(t *testing.T) {
	t.Parallel()
	n := reps(t)
	for rep := range n {
		t.Run(fmt.Sprint(rep), func(t *testing.T) {
			o := outcome{Fault: "postgres crash", Batch: "therapy daily run", Rep: rep}
			defer func() { record(t, o) }()
			b := setup(t)
			const users = 20000
			b.enqueue(t, "demo-data", "--users", fmt.Sprint(users), "--performs", "30", "--month", "2026-11")
			workers := b.workers(t, 2)
			b.enqueue(t, "therapy-daily", "--date", "2026-12-01")

			at := int64(moment(rep, n) * users)
			until(t, 60*time.Second, "jobs completed before the crash", func() (bool, error) {
				return b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'therapy_stats' AND state = 'completed'`) >= at, nil
			})
			o.Note = fmt.Sprintf("%d of %d jobs", at, users)
			up := time.Now()
			o.Ready = b.crash(t, workers)
			b.waitIdle(t, 120*time.Second)
			o.Done = time.Since(up)

			// Every target's statistics equal a direct aggregation of its performs.
			o.Lost = b.count(t, `
				WITH m AS (
				    SELECT p.therapy_user_id AS u, count(*) AS n, count(*) FILTER (WHERE p.completed) AS c,
				           sum(p.duration_seconds) AS d,
				           count(DISTINCT (p.performed_at AT TIME ZONE 'Asia/Seoul')::date) AS days,
				           min(p.performed_at) AS f, max(p.performed_at) AS l
				    FROM therapy_perform p JOIN therapy_user tu ON tu.id = p.therapy_user_id AND tu.status = 'ACTIVE'
				    WHERE p.performed_at >= '2026-11-01 00:00+09' AND p.performed_at < '2026-12-01 00:00+09'
				    GROUP BY 1)
				SELECT count(*) FROM m
				LEFT JOIN therapy_statistics s ON s.therapy_user_id = m.u AND s.year = 2026 AND s.month = 11
				WHERE (s.perform_count, s.completed_count, s.total_duration_seconds, s.active_days, s.first_performed_at, s.last_performed_at)
				      IS DISTINCT FROM (m.n::int, m.c::int, m.d, m.days::int, m.f, m.l)`)
			o.Dups = b.count(t, `
				SELECT count(*) - count(DISTINCT args ->> 'therapy_user_id') FROM river_job
				WHERE kind = 'therapy_stats' AND state = 'completed'`)
			require.Zero(t, o.Lost, "user-months whose statistics differ from their performs")
			require.Zero(t, o.Dups, "user-months aggregated by more than one job")
			require.Equal(t, int64(users), b.count(t, `SELECT count(*) FROM therapy_statistics WHERE year = 2026 AND month = 11`))
			require.Equal(t, int64(users), b.count(t, `SELECT count(*) FROM therapy_batch_log WHERE status = 'SUCCESS'`))
			b.requireNoFailedJobs(t)
		})
	}
}
