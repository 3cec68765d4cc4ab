package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/httpapi"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/store"
)

func TestReprocessEndpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testkit.Pool(t)
	st := store.New(pool)
	tz := testkit.TZ()
	srv := httptest.NewServer((&httpapi.Server{Store: st, TZ: tz, Callers: testCallers(t), Logger: testkit.Logger(t)}).Handler())
	t.Cleanup(srv.Close)

	occurred := time.Date(2026, 3, 9, 12, 0, 0, 0, tz)
	ids, err := st.InsertLedger(ctx, []store.LedgerEntry{
		{MemberID: 1, Kind: "EARN", Amount: 1, OccurredAt: occurred},
		{MemberID: 1, Kind: "EARN", Amount: 2, OccurredAt: occurred},
	}, tz)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE point_ledger SET processed_on = process_on WHERE id = $1`, ids[0])
	require.NoError(t, err)

	post := func(token, body string) (int, map[string]any) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/ledger/reprocess", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}
	processOn := func(id int64) string {
		rows, err := st.GetLedgerRows(ctx, []int64{id})
		require.NoError(t, err)
		return rows[0].ProcessOn
	}

	for _, c := range []struct {
		token, body string
		status      int
		field       string
	}{
		{"", `{"ledgerIds":[1]}`, http.StatusUnauthorized, "Authorization"},
		{"wrong", `{"ledgerIds":[1]}`, http.StatusUnauthorized, "Authorization"},
		{viewerToken, `{"ledgerIds":[1]}`, http.StatusForbidden, ""},
		{token, `{}`, http.StatusBadRequest, "ledgerIds"},
		{token, `{"ledgerIds":[1,-2]}`, http.StatusBadRequest, "ledgerIds"},
		{token, `{"ledgerIds":"1"}`, http.StatusBadRequest, "ledgerIds"},
		{token, `{"ledgerIds":[1],"on":"2026-02-30"}`, http.StatusBadRequest, "on"},
		{token, `{"ledgerIds":[1],"when":"2026-09-05"}`, http.StatusBadRequest, "when"},
		{token, `{"ledgerIds":[1,999999],"on":"2026-09-05"}`, http.StatusNotFound, "ledgerIds"},
		{token, `{"ledgerIds":[1,2],"on":"2026-09-05"}`, http.StatusConflict, "ledgerIds"},
	} {
		status, out := post(c.token, c.body)
		require.Equal(t, c.status, status, "%s: %v", c.body, out)
		require.Equal(t, c.field, str(out["field"]), "%s: %v", c.body, out)
		require.Equal(t, "2026-03-10", processOn(ids[0]), "%s changed the row", c.body)
	}
	_, out := post(token, `{"ledgerIds":[1,2],"on":"2026-09-05"}`)
	require.Contains(t, out["error"], "ledger row(s) 2 are not processed yet")

	status, out := post(token, `{"ledgerIds":[1],"on":"2026-09-05"}`)
	require.Equal(t, http.StatusOK, status, out)
	require.Equal(t, "2026-09-05", out["processOn"])
	require.Equal(t, "2026-09-05", processOn(ids[0]))
}
