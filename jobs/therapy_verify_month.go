package jobs

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/store"
)

// therapyVerifyMonthKey is TherapyStatsVerifyArgs.Month's JSON key, a month
// verification's identity (store.CompletedVerifications reads it).
const therapyVerifyMonthKey = "month"

// EnqueueTherapyVerifyMonth starts the verification of month (YYYY-MM), a
// sample of that month's therapy_statistics rows, or refuses it as a daily
// run is refused: with *RunActiveError while one is queued or running, and
// with *RunCompletedError once one completed, unless rerun. Its completed
// runs are found in job_history (store.LastCompletedVerification), where they
// stay for AUDIT_RETENTION; completed_run, which keeps a run's identity for
// good, does not hold them: a check's verdict ages with the data it checked.
func EnqueueTherapyVerifyMonth(ctx context.Context, client *Client, st *store.Store, month string, rerun bool) (*rivertype.JobRow, error) {
	if _, _, err := calendar.ParseYearMonth(month); err != nil {
		return nil, fmt.Errorf("month %q: %w", month, err)
	}
	return enqueueRun(ctx, client, st, runIdentity{
		kind:     TherapyStatsVerifyArgs{}.Kind(),
		identity: map[string]any{therapyVerifyMonthKey: month},
		build:    func(n int) river.JobArgs { return TherapyStatsVerifyArgs{Month: month, Rerun: n} },
		lastCompleted: func(ctx context.Context, tx pgx.Tx) (store.CompletedRun, error) {
			return st.LastCompletedVerification(ctx, tx, month)
		},
	}, rerun)
}
