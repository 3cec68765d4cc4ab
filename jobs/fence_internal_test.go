package jobs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/store"
)

func attemptCtx(jobID int64, attempt int) (context.Context, *attemptState) {
	s := &attemptState{Attempt: store.Attempt{JobID: jobID, Attempt: attempt}, leased: true}
	return context.WithValue(context.Background(), attemptKey{}, s), s
}

// A write fenced for an attempt commits while the attempt owns its job, and
// is refused, rolled back whole, once a later attempt claimed it.
func TestFencedWriteOfAStaleAttemptIsRefused(t *testing.T) {
	t.Parallel()
	pool, _ := testkit.Pool(t)
	st := store.New(pool)
	ctx1, s1 := attemptCtx(42, 1)
	owned, err := st.ClaimLeases(context.Background(), []store.Attempt{s1.Attempt})
	require.NoError(t, err)
	require.True(t, owned[42])
	write := func(ctx context.Context, v string) error {
		return fenced(ctx, st, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO therapy_user (id, status) VALUES ($1, 'ACTIVE')`, len(v))
			return err
		})
	}
	require.NoError(t, write(ctx1, "a"))

	ctx2, s2 := attemptCtx(42, 2)
	owned, err = st.ClaimLeases(context.Background(), []store.Attempt{s2.Attempt})
	require.NoError(t, err)
	require.True(t, owned[42], "the later attempt takes the job over")
	err = write(ctx1, "bb")
	require.ErrorIs(t, err, store.ErrStale)
	require.True(t, isStale(ctx1))
	require.NoError(t, write(ctx2, "ccc"))
	require.Equal(t, []int64{1, 3}, ids(t, st, `SELECT id FROM therapy_user ORDER BY id`), "the stale attempt wrote nothing")

	// An earlier attempt cannot claim the job back.
	owned, err = st.ClaimLeases(context.Background(), []store.Attempt{s1.Attempt})
	require.NoError(t, err)
	require.False(t, owned[42])
	held, err := st.HeldLeases(context.Background(), []store.Attempt{s1.Attempt, s2.Attempt})
	require.NoError(t, err)
	require.Equal(t, map[int64]bool{42: true}, held)
}

// A later attempt's claim waits for a fenced transaction of the earlier one
// still open: what the earlier attempt commits, it commits before the job
// changes hands.
func TestClaimWaitsForTheEarlierAttemptsTransaction(t *testing.T) {
	t.Parallel()
	pool, _ := testkit.Pool(t)
	st := store.New(pool)
	ctx := context.Background()
	ctx1, s1 := attemptCtx(7, 1)
	_, err := st.ClaimLeases(ctx, []store.Attempt{s1.Attempt})
	require.NoError(t, err)

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	require.NoError(t, fenceTx(ctx1, st, tx))
	_, err = tx.Exec(ctx, `INSERT INTO therapy_user (id, status) VALUES (70, 'ACTIVE')`)
	require.NoError(t, err)
	var pid int
	require.NoError(t, tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid))

	claimed := make(chan error, 1)
	go func() {
		owned, err := st.ClaimLeases(ctx, []store.Attempt{{JobID: 7, Attempt: 2}})
		if err == nil && !owned[7] {
			err = errors.New("not claimed")
		}
		claimed <- err
	}()
	testkit.WaitFor(t, 10*time.Second, "the later claim waits on the earlier transaction", func() (bool, error) {
		var waiting bool
		err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE $1 = ANY(pg_blocking_pids(pid)))`, pid).Scan(&waiting)
		return waiting, err
	})
	select {
	case err := <-claimed:
		t.Fatalf("the claim did not wait: %v", err)
	default:
	}
	require.NoError(t, tx.Commit(ctx))
	require.NoError(t, <-claimed)
	require.Equal(t, []int64{70}, ids(t, st, `SELECT id FROM therapy_user`), "the earlier attempt's write committed first")
	require.ErrorIs(t, fenced(ctx1, st, func(pgx.Tx) error { return nil }), store.ErrStale)
}

func ids(t *testing.T, st *store.Store, sql string) []int64 {
	t.Helper()
	var out []int64
	require.NoError(t, st.InTx(context.Background(), func(tx pgx.Tx) error {
		rows, err := tx.Query(context.Background(), sql)
		if err == nil {
			out, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		}
		return err
	}))
	return out
}

// Each kind of write an attempt makes outside a chunk is refused for a stale
// attempt, and leaves the job and the tables as they were.
func TestEveryFencedWriteRefusesAStaleAttempt(t *testing.T) {
	t.Parallel()
	pool, _ := testkit.Pool(t)
	st := store.New(pool)
	deps := Deps{Store: st, TZ: testkit.TZ(), Logger: testkit.Logger(t)}
	client, err := NewClient(pool, ClientConfig{}, deps)
	require.NoError(t, err)
	res, err := client.Insert(context.Background(), ArchiveMaintainArgs{}, nil)
	require.NoError(t, err)
	job := res.Job

	actx, s := attemptCtx(job.ID, 1)
	f := newFence(deps, unleasedKinds())
	ctx := rivertest.WorkContext(context.WithValue(actx, fenceKey{}, f), client)
	_, err = st.ClaimLeases(ctx, []store.Attempt{s.Attempt, {JobID: job.ID, Attempt: 2}})
	require.NoError(t, err)
	jobsBefore := testkit.Count(t, pool, `SELECT count(*) FROM river_job`)

	for name, write := range map[string]func() error{
		"output": func() error { return recordOutput(ctx, st, job.ID, map[string]int{"n": 1}) },
		"progress": func() error {
			return newProgressRecorder(job.ID, "rows", 0, 0, 10).record(ctx, st, 5, nil)
		},
		"fan-out inserts": func() error {
			_, err := insertSkippingDuplicates(ctx, client, st, []river.InsertManyParams{{Args: TherapyStatsArgs{
				TherapyUserID: 1, Year: 2026, Month: 11, BusinessDate: "2026-12-01", Trigger: TriggerDaily}}})
			return err
		},
		"a run it starts": func() error {
			_, err := EnqueueTherapyDaily(ctx, client, st, "2026-12-01", false)
			return err
		},
		"a settlement it starts": func() error {
			_, err := CatchUpSettlements(ctx, client, st, "2026-12-01")
			return err
		},
		"a write no transaction fences (Redis)": func() error { return ownsNow(ctx) },
		"a user-month recomputed": func() error {
			_, err := pool.Exec(ctx, `INSERT INTO therapy_user (id, status) VALUES (1, 'ACTIVE')`)
			require.NoError(t, err)
			return st.AggregateTherapy(ctx, []store.TherapyKey{store.NewTherapyKey(1, 2026, 11, testkit.TZ())}, testkit.TZ(), s.Attempt)
		},
	} {
		require.ErrorIs(t, write(), store.ErrStale, name)
	}
	require.True(t, isStale(ctx))
	got, err := client.JobGet(context.Background(), job.ID)
	require.NoError(t, err)
	require.JSONEq(t, `{}`, string(got.Metadata), "no output or progress reached the job")
	require.Equal(t, jobsBefore, testkit.Count(t, pool, `SELECT count(*) FROM river_job`), "no job inserted")
	require.Zero(t, testkit.Count(t, pool, `SELECT count(*) FROM therapy_statistics`), "no statistics written")
}
