package jobs_test

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// namedKind is a job of any kind, to ask a worker client whether it runs it.
type namedKind struct{ kind string }

func (a namedKind) Kind() string { return a.kind }

// Kinds are exactly the kinds a worker runs: a worker client accepts a job of
// each, and refuses one of a kind not listed.
func TestKindsAreTheKindsWorkersRun(t *testing.T) {
	t.Parallel()
	pool, _ := testkit.Pool(t)
	client, err := jobs.NewClient(pool, jobs.ClientConfig{Queues: map[string]int{jobs.QueueDefault: 1},
		Retention: 24 * time.Hour, RescueAfter: time.Minute},
		jobs.Deps{Store: store.New(pool), TZ: testkit.TZ(), Logger: testkit.Logger(t)})
	require.NoError(t, err)
	require.Equal(t, []string{"archive_maintain", "coupon_exchange", "coupon_issue_persist", "coupon_reconcile", "coupon_reconcile_all",
		"order_reconcile", "order_submit", "point_settlement", "point_settlement_daily",
		"therapy_daily", "therapy_stats", "therapy_stats_verify"}, jobs.Kinds())

	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	for _, kind := range jobs.Kinds() {
		_, err := client.InsertTx(ctx, tx, namedKind{kind}, nil)
		require.NoError(t, err, kind)
	}
	_, err = client.InsertTx(ctx, tx, namedKind{"therapy_stat"}, nil)
	var unknown *river.UnknownJobKindError
	require.ErrorAs(t, err, &unknown)
}

// Each kind's queue. The batches' starters and checks are on default, where
// nothing a member does is queued, so a rush of requests never delays them;
// the jobs a member's request creates have the member queue. Every queue is
// in the default layout: a worker started without TIDEMARK_QUEUES works
// every kind.
func TestQueueOfEachKind(t *testing.T) {
	t.Parallel()
	got := map[string]string{}
	type argsWithOpts interface {
		river.JobArgs
		river.JobArgsWithInsertOpts
	}
	for _, args := range []argsWithOpts{
		jobs.ArchiveMaintainArgs{}, jobs.CouponExchangeArgs{}, jobs.CouponIssuePersistArgs{}, jobs.CouponReconcileArgs{},
		jobs.CouponReconcileAllArgs{}, jobs.OrderReconcileArgs{}, jobs.OrderSubmitArgs{}, jobs.PointSettlementArgs{},
		jobs.PointSettlementDailyArgs{}, jobs.TherapyDailyArgs{}, jobs.TherapyStatsArgs{}, jobs.TherapyStatsVerifyArgs{},
	} {
		got[args.Kind()] = args.InsertOpts().Queue
		require.Contains(t, config.DefaultQueues(), got[args.Kind()], args.Kind())
	}
	require.Equal(t, map[string]string{
		"archive_maintain":       jobs.QueueDefault,
		"coupon_exchange":        jobs.QueueDefault,
		"coupon_issue_persist":   jobs.QueueMember,
		"coupon_reconcile":       jobs.QueueDefault,
		"coupon_reconcile_all":   jobs.QueueDefault,
		"order_reconcile":        jobs.QueueDefault,
		"order_submit":           jobs.QueueOutbound,
		"point_settlement":       jobs.QueueDefault,
		"point_settlement_daily": jobs.QueueDefault,
		"therapy_daily":          jobs.QueueDefault,
		"therapy_stats":          jobs.QueueTherapy,
		"therapy_stats_verify":   jobs.QueueDefault,
	}, got)
	require.ElementsMatch(t, jobs.Kinds(), slices.Collect(maps.Keys(got)), "every kind is listed")
}
