package main_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/auth"
	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/internal/harness/testbin"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/internal/harness/testredis"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// floodBacklog is how many persist jobs must be waiting for a worker before
// the settlement is enqueued: seconds of work for the persist workers.
const floodBacklog = 5000

// A flood of coupon requests to the real worker, with its default queues and
// pool, builds a backlog of persist jobs; a settlement enqueued during the
// flood is worked to completion while persist jobs that were waiting before
// it are still waiting. On one queue shared with the persist jobs, River
// would hand the settlement to a worker only after every one of them.
func TestSettlementOvertakesCouponFloodBacklog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, dbURL := testkit.Pool(t)
	st := store.New(pool)
	rdb := testredis.Client(t)
	gate := coupongate.New(rdb, "") // the worker's gate: no key prefix, a code of this test's own
	r := make([]byte, 4)
	_, _ = rand.Read(r)
	code := "FLOOD-" + hex.EncodeToString(r)
	t.Cleanup(func() { rdb.Del(context.Background(), gate.StockKey(code), gate.IssuedKey(code)) })
	const seats = 1_000_000
	_, err := st.CreateCoupon(ctx, store.NewCoupon{Code: code, Name: "flood", AmountType: store.AmountFix, Amount: 1,
		TotalQuantity: seats, Status: store.CouponActive})
	require.NoError(t, err)
	_, err = gate.Load(ctx, code, seats, nil)
	require.NoError(t, err)
	const runDate = "2026-11-20"
	due := make([]store.LedgerEntry, 100)
	for i := range due {
		due[i] = store.LedgerEntry{MemberID: int64(i%10 + 1), Kind: "EARN", Amount: 100,
			OccurredAt: time.Date(2026, 11, 19, 12, 0, i, 0, testkit.TZ()), ProcessOn: runDate}
	}
	_, err = st.InsertLedger(ctx, due, testkit.TZ())
	require.NoError(t, err)

	// TIDEMARK_QUEUES and DB_MAX_CONNS unset: the default layout and pool.
	const secret = "flood-member-secret-of-at-least-32-bytes"
	w := testbin.StartWorker(t, "DATABASE_URL="+dbURL, "REDIS_URL="+testredis.URL(), "PERIODIC_JOBS=false",
		"MEMBER_JWT_SECRET="+secret)
	url := "http://" + w.Addr + "/v1/coupons/" + code + "/issue"
	tr := &http.Transport{MaxIdleConnsPerHost: 32, MaxConnsPerHost: 32}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var member, accepted atomic.Int64
	var refusedMu sync.Mutex
	var refused []string
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Every request a member of its own, signed in.
				tok, err := auth.SignMember([]byte(secret), member.Add(1), time.Hour, "", "", time.Now())
				require.NoError(t, err)
				req, err := http.NewRequest(http.MethodPost, url, nil)
				require.NoError(t, err)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := hc.Do(req)
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusAccepted {
						accepted.Add(1)
						continue
					}
					err = fmt.Errorf("%d %s", resp.StatusCode, body)
				}
				refusedMu.Lock()
				refused = append(refused, err.Error())
				refusedMu.Unlock()
			}
		}()
	}
	stopFlood := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopFlood)

	waiting := func() (int64, error) {
		var n int64
		err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'coupon_issue_persist' AND state = 'available'`).Scan(&n)
		return n, err
	}
	testkit.WaitFor(t, 2*time.Minute, fmt.Sprintf("%d persist jobs waiting for a worker", floodBacklog), func() (bool, error) {
		n, err := waiting()
		return n >= floodBacklog, err
	})
	var backlog []int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT array_agg(id) FROM river_job
		WHERE kind = 'coupon_issue_persist' AND state = 'available'`).Scan(&backlog))
	inserter, err := jobs.NewClient(pool, jobs.ClientConfig{}, jobs.Deps{Store: st, TZ: testkit.TZ(), Logger: testkit.Logger(t)})
	require.NoError(t, err)
	settlement, err := jobs.EnqueueSettlement(ctx, inserter, st, runDate, jobs.SettlementRunOpts{})
	require.NoError(t, err)
	testkit.WaitFor(t, 2*time.Minute, "the settlement completed", func() (bool, error) {
		j, err := inserter.JobGet(ctx, settlement.ID)
		if err != nil {
			return false, err
		}
		require.NotContains(t, []string{"cancelled", "discarded"}, string(j.State), "the settlement failed: %v", j.Errors)
		return j.State == "completed", nil
	})
	stopFlood()

	require.Empty(t, refused, "every request of the flood is accepted")
	var finalized time.Time
	var settled int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT finalized_at, (SELECT count(*) FROM point_ledger WHERE processed_on = $2::date)
		FROM river_job WHERE id = $1`, settlement.ID, runDate).Scan(&finalized, &settled))
	require.Equal(t, int64(len(due)), settled, "the settlement collected its due rows")
	var after, sharing int64
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE attempted_at IS NULL OR attempted_at > $2),
		       count(*) FILTER (WHERE queue = $3)
		FROM river_job WHERE id = ANY($1)`, backlog, finalized, settlement.Queue).Scan(&after, &sharing))
	t.Logf("flood: %d accepted; %d persist jobs waiting at the settlement's insert, %d of them still not started when it completed",
		accepted.Load(), len(backlog), after)
	require.Positive(t, after, "the settlement completed only after all %d persist jobs waiting at its insert had started: "+
		"it waited behind the flood's backlog (%d of them on its queue, %s)", len(backlog), sharing, settlement.Queue)
}
