package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/store"
)

// EnqueueInsertMiddleware records the jobs the enqueue CLI inserts in
// Postgres (enqueue_job_inserts), where every worker's /metrics reads them:
// a CLI process has no /metrics of its own. Best effort: a count that fails
// to be written is logged, and the insert stands.
func EnqueueInsertMiddleware(st *store.Store, logger *slog.Logger) rivertype.Middleware {
	return &recordInserts{st: st, logger: logger}
}

type recordInserts struct {
	river.MiddlewareDefaults
	st     *store.Store
	logger *slog.Logger
}

func (r *recordInserts) InsertMany(ctx context.Context, params []*rivertype.JobInsertParams,
	doInner func(context.Context) ([]*rivertype.JobInsertResult, error),
) ([]*rivertype.JobInsertResult, error) {
	res, err := doInner(ctx)
	if err != nil {
		return res, err
	}
	n := map[string]int64{}
	for i, p := range params {
		if !(i < len(res) && res[i] != nil && res[i].UniqueSkippedAsDuplicate) {
			n[p.Kind]++
		}
	}
	if len(n) > 0 {
		// On a connection of its own, bounded: the insert's transaction may
		// hold the only one. Like tidemark_jobs_inserted_total, an insert
		// whose transaction later rolls back is counted.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := r.st.AddEnqueueInserts(wctx, n); err != nil {
			r.logger.WarnContext(ctx, "jobs: enqueue's inserts not counted", "err", err)
		}
	}
	return res, nil
}
