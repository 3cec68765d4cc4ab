package jobs_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/testdb"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// Running jobs are reclaimed only when their client's liveness lock is free:
// a live client's job stays running however old it is; a dead client's job
// becomes available again (or discarded after its last attempt); other kinds
// are left to River's rescuer.
func TestReclaimOrphanedJobs(t *testing.T) {
	t.Parallel()
	pool, _ := testdb.Pool(t)
	st := store.New(pool)
	ctx := context.Background()
	client, err := jobs.NewClient(pool, jobs.ClientConfig{Retention: 24 * time.Hour, RescueAfter: 90 * time.Second},
		jobs.Deps{Store: st, TZ: time.UTC, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)

	live, err := st.HoldClientLiveness(ctx, "live_client")
	require.NoError(t, err)
	_, err = st.HoldClientLiveness(ctx, "live_client")
	require.ErrorIs(t, err, store.ErrClientIDInUse)

	// running sets a job as River's fetch would have, a minute ago.
	running := func(args jobs.OrderSubmitArgs, clientID string, attempt int) int64 {
		res, err := client.Insert(ctx, args, nil)
		require.NoError(t, err)
		_, err = pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempt = $2, attempted_at = now() - interval '1 minute',
			attempted_by = ARRAY['someone_before', $3] WHERE id = $1`, res.Job.ID, attempt, clientID)
		require.NoError(t, err)
		return res.Job.ID
	}
	liveJob := running(jobs.OrderSubmitArgs{OrderRequestID: 1}, "live_client", 1)
	deadJob := running(jobs.OrderSubmitArgs{OrderRequestID: 2}, "dead_client", 1)
	lastJob := running(jobs.OrderSubmitArgs{OrderRequestID: 3}, "dead_client", jobs.OrderSubmitMaxAttempts)
	res, err := client.Insert(ctx, jobs.OrderReconcileArgs{}, nil)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now() - interval '1 minute',
		attempted_by = ARRAY['dead_client'] WHERE id = $1`, res.Job.ID)
	require.NoError(t, err)

	ids, err := st.ReclaimOrphanedJobs(ctx, jobs.ReclaimableKinds, 5*time.Second)
	require.NoError(t, err)
	require.ElementsMatch(t, []int64{deadJob, lastJob}, ids)
	state := func(id int64) string {
		j, err := client.JobGet(ctx, id)
		require.NoError(t, err)
		return string(j.State)
	}
	require.Equal(t, "running", state(liveJob))
	require.Equal(t, "available", state(deadJob))
	require.Equal(t, "discarded", state(lastJob))
	require.Equal(t, "running", state(res.Job.ID), "not a reclaimable kind")
	j, err := client.JobGet(ctx, deadJob)
	require.NoError(t, err)
	require.Contains(t, j.Errors[len(j.Errors)-1].Error, "worker dead_client is gone")

	// Young jobs are left alone even when their client is gone.
	young := running(jobs.OrderSubmitArgs{OrderRequestID: 4}, "dead_client", 1)
	_, err = pool.Exec(ctx, `UPDATE river_job SET attempted_at = now() WHERE id = $1`, young)
	require.NoError(t, err)
	ids, err = st.ReclaimOrphanedJobs(ctx, jobs.ReclaimableKinds, 5*time.Second)
	require.NoError(t, err)
	require.Empty(t, ids)

	// The live client goes away: its job is reclaimed on the next pass once
	// Postgres has ended its session (the lock goes when the backend exits,
	// a moment after the client closes the connection).
	require.NoError(t, live.Close(ctx))
	require.Eventually(t, func() bool {
		var held bool
		require.NoError(t, pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND objsubid = 1)`).Scan(&held))
		return !held
	}, 10*time.Second, 5*time.Millisecond, "the closed session's lock is released")
	ids, err = st.ReclaimOrphanedJobs(ctx, jobs.ReclaimableKinds, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, []int64{liveJob}, ids)
}

// A liveness lock whose connection was cut is taken again by Keep.
func TestClientLivenessKeep(t *testing.T) {
	t.Parallel()
	pool, _ := testdb.Pool(t)
	st := store.New(pool)
	ctx := context.Background()
	live, err := st.HoldClientLiveness(ctx, "kept_client")
	require.NoError(t, err)
	defer live.Close(ctx)
	require.NoError(t, live.Keep(ctx), "a healthy lock is kept as it is")

	held := func() bool {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `
			SELECT count(*) FROM pg_locks l,
				LATERAL (SELECT hashtextextended('kept_client', 7250400) AS k) h
			WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
			  AND l.classid::bigint = (h.k >> 32) & 4294967295 AND l.objid::bigint = h.k & 4294967295`).Scan(&n))
		return n == 1
	}
	require.True(t, held())
	_, err = pool.Exec(ctx, `
		SELECT pg_terminate_backend(l.pid) FROM pg_locks l,
			LATERAL (SELECT hashtextextended('kept_client', 7250400) AS k) h
		WHERE l.locktype = 'advisory' AND l.objsubid = 1
		  AND l.classid::bigint = (h.k >> 32) & 4294967295 AND l.objid::bigint = h.k & 4294967295`)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return !held() }, 5*time.Second, 20*time.Millisecond)

	require.NoError(t, live.Keep(ctx))
	require.True(t, held(), "Keep took the lock again")
}
