package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testbin"
	"github.com/tidemark/tidemark/internal/harness/testkit"
)

// A SENDING row claimed minutes ago whose order reached the third party
// (its attempt's outcome was lost) is reported by --dry-run, unchanged, then
// repaired to APPLIED with the third party's id.
func TestReconcileOrdersRepairsLostOutcome(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, url := testkit.Pool(t)
	_, apiURL := testbin.StartThirdParty(t, url)

	resp, err := http.Post(apiURL+"/orders", "application/json",
		bytes.NewBufferString(`{"username":"alice","totalPrice":10000,"appliedYearMonth":"2026-11"}`))
	require.NoError(t, err)
	var order struct {
		ID int64 `json:"id"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&order))
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	var rowID int64
	require.NoError(t, pool.QueryRow(ctx, `
		INSERT INTO order_request (username, total_price, applied_year_month, status, attempts, updated_at)
		VALUES ('alice', 10000, '2026-11', 'SENDING', 1, now() - interval '5 minutes') RETURNING id`).Scan(&rowID))

	env := []string{"DATABASE_URL=" + url, "ORDER_API_URL=" + apiURL}
	bin := testbin.Build(t, "enqueue")
	status := func() (s string, ext *int64) {
		require.NoError(t, pool.QueryRow(ctx, `SELECT status, external_order_id FROM order_request WHERE id = $1`, rowID).Scan(&s, &ext))
		return s, ext
	}

	code, stdout, stderr := testbin.Run(t, bin, env, "reconcile", "--check", "orders", "--dry-run")
	require.Equal(t, 0, code, stderr)
	var rep struct {
		DryRun   bool    `json:"dry_run"`
		Repaired []int64 `json:"repaired"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &rep), stdout)
	require.Equal(t, []int64{rowID}, rep.Repaired)
	require.True(t, rep.DryRun)
	s, _ := status()
	require.Equal(t, "SENDING", s, "a dry run changes nothing")

	code, stdout, stderr = testbin.Run(t, bin, env, "reconcile", "--check", "orders")
	require.Equal(t, 0, code, stderr)
	require.NoError(t, json.Unmarshal([]byte(stdout), &rep), stdout)
	require.Equal(t, []int64{rowID}, rep.Repaired)
	s, ext := status()
	require.Equal(t, "APPLIED", s)
	require.Equal(t, order.ID, *ext)
}
