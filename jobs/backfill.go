package jobs

import (
	"context"

	"github.com/tidemark/tidemark/store"
)

// SettlementTriggerBackfill marks a settlement run started by `enqueue
// backfill settlement`, for audit.
const SettlementTriggerBackfill = "backfill"

// CompletedTherapyDailyDates returns the business dates in [from, to] whose
// daily run completed, with the latest such run's job: the runs
// EnqueueTherapyDaily refuses to start again, wherever their jobs are now.
func CompletedTherapyDailyDates(ctx context.Context, st *store.Store, from, to string) (map[string]int64, error) {
	return st.CompletedDates(ctx, TherapyDailyArgs{}.Kind(), therapyDailyDateKey, from, to)
}
