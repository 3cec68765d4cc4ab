package jobs_test

import (
	"context"
	"testing"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// A fan-out leaves river_job analysed: the planner counts the jobs it
// inserted, although nothing else (autovacuum is off on the test server) has
// looked at the table.
func TestEnqueueTherapyStatsBringsRiverJobStatisticsUpToDate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testkit.Pool(t)
	client, err := jobs.NewClient(pool, jobs.ClientConfig{}, jobs.Deps{Store: store.New(pool), TZ: testkit.TZ(), Logger: testkit.Logger(t)})
	require.NoError(t, err)
	users := make([]int64, 5000)
	for i := range users {
		users[i] = int64(i + 1)
	}

	res, err := jobs.EnqueueTherapyStats(ctx, client, store.New(pool), users, 2026, 11, "2026-12-01", jobs.TriggerBackfill, nil)
	require.NoError(t, err)
	require.NoError(t, res.StatisticsErr)
	require.Equal(t, 5000, res.Inserted)

	var analyses int64
	var reltuples float64
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT s.analyze_count, c.reltuples FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
		WHERE s.relname = 'river_job'`).Scan(&analyses, &reltuples))
	require.Equal(t, float64(5000), reltuples, "the last ANALYZE saw every job")
	require.LessOrEqual(t, analyses, int64(3), "batches 1, 2 and the last: the checks double, they are not one a batch")
	require.GreaterOrEqual(t, analyses, int64(1))
}

// The daily run on sessions loaded in bulk and never analysed: it analyses
// therapy_perform before it selects its targets, and river_job as it fans out.
func TestTherapyDailyBringsItsTablesStatisticsUpToDate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testkit.Pool(t)
	st := store.New(pool)
	_, _, err := st.GenerateTherapyData(ctx, store.TherapyDemo{FirstUserID: 1, Users: 3000, PerformsPerUser: 5, Year: 2026, Month: 11}, testkit.TZ())
	require.NoError(t, err)

	w, tx := testkit.NewWorker(t, pool, jobs.NewTherapyDailyWorker(jobs.Deps{Store: st, TZ: testkit.TZ(), Logger: testkit.Logger(t)}))
	res, err := w.Work(ctx, t, tx, jobs.TherapyDailyArgs{BusinessDate: "2026-12-01"}, nil)
	require.NoError(t, err)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)

	for table, want := range map[string]float64{"therapy_perform": 15000, "river_job": 3000} {
		var reltuples float64
		require.NoError(t, pool.QueryRow(ctx, `SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)`, table).Scan(&reltuples))
		require.Equal(t, want, reltuples, table)
	}
}
