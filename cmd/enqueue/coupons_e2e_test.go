package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testbin"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/internal/harness/testredis"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// A real worker process is SIGKILLed in the middle of the exchange's step 2.
// What it committed — chunks with their cursor in the same transaction — is
// exactly what the next attempt skips: a second worker finishes with every
// member holding one compensation coupon and one notification.
//
// River's own rescuer hands the orphaned job back once it has run longer
// than the exchange's timeout (1 minute); it checks every 30 s.
func TestExchangeSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	b := setupCouponCLI(t)
	ctx := context.Background()
	const holders = 3000
	old, err := b.store.CreateCoupon(ctx, store.NewCoupon{Code: b.code(t, "KILL"), Name: "old", AmountType: "FIX", Amount: 1,
		TotalQuantity: holders, Status: store.CouponInactive})
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `INSERT INTO coupon_issue (coupon_id, member_id) SELECT $1, m FROM generate_series(1, $2) m`, old.ID, holders)
	require.NoError(t, err)
	exit, _, stderr := b.run(t, "coupon-exchange", "--name", "sorry", "--amount-type", "FIX", "--amount", "1000",
		"--expired-coupon-id", strconv.FormatInt(old.ID, 10), "--chunk-size", "10")
	require.Equal(t, 0, exit, stderr)
	var jobID int64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT id FROM river_job WHERE kind = 'coupon_exchange'`).Scan(&jobID))

	// Hold member 1501's row lock: the worker commits 150 chunks (1,500
	// members) and then blocks inside chunk 151, where it is killed.
	blocker, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer blocker.Rollback(ctx) //nolint:errcheck
	_, err = blocker.Exec(ctx, `SELECT 1 FROM coupon_issue WHERE coupon_id = $1 AND member_id = 1501 FOR UPDATE`, old.ID)
	require.NoError(t, err)

	env := []string{"DATABASE_URL=" + b.dbURL, "REDIS_URL=" + testredis.URL(), "PERIODIC_JOBS=false"}
	w1 := testbin.StartWorker(t, env...)
	type cursor struct {
		Exchanged int `json:"exchanged"`
	}
	readCursor := func() (cursor, string) {
		var raw []byte
		var state string
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT coalesce(metadata->'river:resumable_cursor'->'exchange', 'null'), state::text
			FROM river_job WHERE id = $1`, jobID).Scan(&raw, &state))
		var c cursor
		require.NoError(t, json.Unmarshal(raw, &c))
		return c, state
	}
	testkit.WaitFor(t, 30*time.Second, "step 2's cursor at 1,500 members", func() (bool, error) {
		c, state := readCursor()
		require.NotEqual(t, "completed", state, "finished before it could be killed")
		return c.Exchanged >= 1500, nil
	})
	// Kill it while chunk 151 waits for member 1501's row lock.
	testkit.WaitFor(t, 30*time.Second, "the worker waiting for the row lock", func() (bool, error) {
		var waiting bool
		err := b.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting)
		return waiting, err
	})
	w1.Kill()
	require.NoError(t, blocker.Rollback(ctx))

	committed, state := readCursor()
	require.Equal(t, "running", state, "orphaned by the kill")
	require.Equal(t, 1500, committed.Exchanged)
	newCode := jobs.ExchangeCouponCode(jobID)
	c, err := b.store.CouponByCode(ctx, newCode)
	require.NoError(t, err)
	require.Equal(t, committed.Exchanged, b.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1`, c.ID),
		"the cursor and the chunks it covers committed together")

	killedAt := time.Now()
	testbin.StartWorker(t, env...)
	testkit.WaitFor(t, 150*time.Second, "the exchange completed after the restart", func() (bool, error) {
		_, state := readCursor()
		return state == "completed", nil
	})
	t.Logf("rescued and completed %s after the SIGKILL", time.Since(killedAt).Round(time.Second))
	var rescueErr string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT errors[1]->>'error' FROM river_job WHERE id = $1`, jobID).Scan(&rescueErr))
	require.Contains(t, rescueErr, "Stuck job rescued", "River's rescuer handed the job back")

	var out jobs.CouponExchangeOutput
	var raw []byte
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT metadata->'output' FROM river_job WHERE id = $1`, jobID).Scan(&raw))
	require.NoError(t, json.Unmarshal(raw, &out))
	require.Equal(t, holders-committed.Exchanged, out.ExchangedThisAttempt, "resumed at the cursor, not from the start")
	require.Equal(t, holders, out.Issued)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM coupon WHERE code LIKE 'EXCH-%'`))
	require.Equal(t, holders, b.count(t, `SELECT count(DISTINCT member_id) FROM coupon_issue WHERE coupon_id = $1`, c.ID))
	require.Equal(t, holders, b.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1`, c.ID))
	require.Equal(t, holders, b.count(t, `SELECT count(*) FROM coupon_notification WHERE coupon_id = $1`, c.ID))
	require.Equal(t, holders, b.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1 AND exchanged_at IS NOT NULL`, old.ID))
}

// The worker binary wires the gate: coupon create loads Redis, the worker's
// endpoint issues, its River client persists.
func TestWorkerIssuesCoupon(t *testing.T) {
	t.Parallel()
	b := setupCouponCLI(t)
	code := b.code(t, "E2E")
	exit, _, stderr := b.run(t, "coupon", "create", "--code", code, "--name", "n", "--amount-type", "FIX", "--amount", "1", "--total", "1")
	require.Equal(t, 0, exit, stderr)
	const secret = "e2e-member-secret-of-at-least-32-bytes"
	w := testbin.StartWorker(t, "DATABASE_URL="+b.dbURL, "REDIS_URL="+testredis.URL(), "PERIODIC_JOBS=false",
		"MEMBER_JWT_SECRET="+secret)
	post := func(member int) int {
		// The member's token, as enqueue member-token signs it.
		exit, stdout, stderr := testbin.Run(t, testbin.Build(t, "enqueue"), []string{"MEMBER_JWT_SECRET=" + secret},
			"member-token", "--member", fmt.Sprint(member))
		require.Equal(t, 0, exit, stderr)
		id, tok, ok := strings.Cut(strings.TrimSpace(stdout), " ")
		require.True(t, ok && id == fmt.Sprint(member), stdout)
		req, err := http.NewRequest(http.MethodPost, "http://"+w.Addr+"/v1/coupons/"+code+"/issue", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusAccepted, post(42))
	require.Equal(t, http.StatusConflict, post(42))
	require.Equal(t, http.StatusGone, post(43))
	exit, _, stderr = b.run(t, "wait", "--timeout", "30s")
	require.Equal(t, 0, exit, stderr)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM coupon_issue i JOIN coupon c ON c.id = i.coupon_id
		WHERE c.code = $1 AND i.member_id = 42`, code))
}
