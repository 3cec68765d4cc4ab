package jobs

import (
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/store"
)

// WorkerBundle is what a worker's rivertest test works with: the worker, the
// Deps it was built with, on a database of the test's own, and the
// transaction its jobs are worked in, rolled back when the test ends. It is
// exported for the tests of package jobs_test too.
type WorkerBundle[T river.JobArgs] struct {
	Deps   Deps
	Store  *store.Store
	Pool   *pgxpool.Pool // the test database's pool, for the test's own SQL
	Driver *riverpgxv5.Driver
	Tx     pgx.Tx
	Worker *rivertest.Worker[T, pgx.Tx]
}

// SetupWorker builds the worker newWorker returns for Deps on a new test
// database (Store, TZ and Logger; with sets whatever else the worker needs).
func SetupWorker[T river.JobArgs, W river.Worker[T]](t *testing.T, newWorker func(Deps) W, with ...func(*Deps)) *WorkerBundle[T] {
	t.Helper()
	pool, _ := testkit.Pool(t)
	deps := Deps{Store: store.New(pool), TZ: testkit.TZ(), Logger: testkit.Logger(t)}
	for _, f := range with {
		f(&deps)
	}
	w, tx := testkit.NewWorker(t, pool, newWorker(deps))
	return &WorkerBundle[T]{Deps: deps, Store: deps.Store, Pool: pool, Driver: riverpgxv5.New(pool), Tx: tx, Worker: w}
}

// Work works a job of args in the bundle's transaction and requires its
// attempt to end as want. An attempt that fails also returns its error: work
// those with b.Worker.Work.
func (b *WorkerBundle[T]) Work(t *testing.T, args T, want river.EventKind) *rivertest.WorkResult {
	t.Helper()
	res, err := b.Worker.Work(t.Context(), t, b.Tx, args, nil)
	require.NoError(t, err, "%+v", args)
	require.Equal(t, want, res.EventKind, "%+v", args)
	return res
}

// RequireCancelled works a job of args and requires it cancelled at once (a
// failure no retry can fix), its error containing want.
func (b *WorkerBundle[T]) RequireCancelled(t *testing.T, args T, want string) {
	t.Helper()
	res := b.Work(t, args, river.EventKindJobCancelled)
	require.Contains(t, res.Job.Errors[0].Error, want, "%+v", args)
}

// OutputOf decodes the output job recorded with river.RecordOutput.
func OutputOf[T any](t *testing.T, job *rivertype.JobRow) T {
	t.Helper()
	var meta struct {
		Output T `json:"output"`
	}
	require.NoError(t, json.Unmarshal(job.Metadata, &meta))
	return meta.Output
}
