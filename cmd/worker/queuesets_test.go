package main_test

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testbin"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/order"
	"github.com/tidemark/tidemark/store"
)

var riverClientRE = regexp.MustCompile(`msg="worker started" .*river_client=(\S+)`)

// Three processes as a deployment splits them: one works only the partner
// calls, one only the batches' default queue, one serves the API and works
// nothing. Every job is worked, each only by the process given its queue.
func TestQueueSetsSplitTheWork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, dbURL := testkit.Pool(t)
	st := store.New(pool)
	_, partnerURL := testbin.StartThirdParty(t, dbURL)

	inserter, err := jobs.NewClient(pool, jobs.ClientConfig{}, jobs.Deps{Store: st, TZ: testkit.TZ(), Logger: testkit.Logger(t)})
	require.NoError(t, err)
	const orders, runDate = 60, "2026-11-20"
	in := make([]order.Request, orders)
	for i := range in {
		in[i] = order.Request{Username: fmt.Sprintf("split-%d", i), TotalPrice: 1000, AppliedYearMonth: "2026-11"}
	}
	_, err = jobs.CreateOrderRequests(ctx, inserter, st, in)
	require.NoError(t, err)
	due := make([]store.LedgerEntry, 50)
	for i := range due {
		due[i] = store.LedgerEntry{MemberID: int64(i%5 + 1), Kind: "EARN", Amount: 100,
			OccurredAt: time.Date(2026, 11, 19, 12, 0, i, 0, testkit.TZ()), ProcessOn: runDate}
	}
	_, err = st.InsertLedger(ctx, due, testkit.TZ())
	require.NoError(t, err)
	_, err = jobs.EnqueueSettlement(ctx, inserter, st, runDate, jobs.SettlementRunOpts{})
	require.NoError(t, err)

	common := []string{"DATABASE_URL=" + dbURL, "ORDER_API_URL=" + partnerURL, "PERIODIC_JOBS=false"}
	api := testbin.StartWorker(t, append(common, "API_ONLY=true")...)
	partner := testbin.StartWorker(t, append(common, "TIDEMARK_QUEUES=outbound=4")...)
	batches := testbin.StartWorker(t, append(common, "TIDEMARK_QUEUES=default=2")...)
	id := func(p *testbin.Proc) string {
		m := riverClientRE.FindStringSubmatch(p.Output())
		require.NotNil(t, m, "the worker logs its River client's id at start:\n%s", p.Output())
		return m[1]
	}

	testkit.WaitFor(t, 90*time.Second, "every job completed", func() (bool, error) {
		var open int64
		err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state <> 'completed'`).Scan(&open)
		return open == 0, err
	})
	require.Equal(t, int64(orders), testkit.Count(t, pool, `SELECT count(*) FROM order_request WHERE status = 'APPLIED'`))
	require.Equal(t, int64(len(due)), testkit.Count(t, pool, `SELECT count(*) FROM point_ledger WHERE processed_on = $1::date`, runDate))

	rows, err := pool.Query(ctx, `SELECT queue, attempted_by[array_length(attempted_by, 1)], count(*)
		FROM river_job GROUP BY 1, 2 ORDER BY 1, 2`)
	require.NoError(t, err)
	got := map[string]map[string]int64{}
	for rows.Next() {
		var queue, by string
		var n int64
		require.NoError(t, rows.Scan(&queue, &by, &n))
		if got[queue] == nil {
			got[queue] = map[string]int64{}
		}
		got[queue][by] = n
	}
	require.NoError(t, rows.Err())
	require.Equal(t, map[string]map[string]int64{
		"outbound": {id(partner): orders},
		"default":  {id(batches): 1},
	}, got, "each queue's jobs worked by the process given it; the API-only one (%s) works none", id(api))
}

// A queue the program does not know stops the worker before it starts,
// naming the queues it knows.
func TestUnknownQueueRefused(t *testing.T) {
	t.Parallel()
	code, _, stderr := testbin.Run(t, testbin.Build(t, "worker"), []string{"TIDEMARK_QUEUES=default=2,outbund=4"})
	require.Equal(t, 2, code, stderr)
	require.Contains(t, stderr, `TIDEMARK_QUEUES: unknown queue "outbund"; the queues are default, member, outbound, therapy`)
}
