package jobs_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/testkit"
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

	res, err := jobs.EnqueueTherapyStats(ctx, client, pool, users, 2026, 11, "2026-12-01", jobs.TriggerBackfill, nil)
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
