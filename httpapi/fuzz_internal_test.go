package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/store"
)

// Every endpoint's JSON body either decodes into its type, and then encodes
// and decodes again to the same value, or is refused with a field error of
// status 4xx naming the field or the body; never a panic.
func FuzzDecodeBodies(f *testing.F) {
	for _, s := range []string{
		`{"memberId": 42}`, `{"memberId": -1}`, `{"memberId": "x"}`, `{"memberId": 1} {}`, `{"member": 1}`,
		`{"ledgerIds": [1, 2], "on": "2026-11-20"}`, `{"ledgerIds": []}`, `{"ledgerIds": [1.5]}`,
		`{"username": "kim", "totalPrice": 100, "appliedYearMonth": "2025-02"}`, `{"totalPrice": 1e30}`,
		`{"therapyUserId": 1, "yearMonth": "2026-11", "startDateTime": "2026-11-01T00:00:00"}`,
		``, `null`, `[]`, `{`, `"x"`, `{"a":` + strings.Repeat("[", 100),
	} {
		f.Add(s)
	}
	kst := testkit.TZ()
	pool, _ := testkit.Pool(f)
	_, err := pool.Exec(context.Background(), `INSERT INTO therapy_user (id, status) VALUES (1, 'ACTIVE')`)
	require.NoError(f, err)
	srv := &Server{TZ: kst, Store: store.New(pool)}
	f.Fuzz(func(t *testing.T, body string) {
		check := func(dst, again any) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			err := decodeJSON(httptest.NewRecorder(), r, dst)
			if err != nil {
				var fe *fieldError
				require.True(t, errors.As(err, &fe), "%T: %v", err, err)
				require.True(t, fe.status >= 400 && fe.status < 500, "status %d", fe.status)
				require.NotEmpty(t, fe.field)
				return
			}
			b, err := json.Marshal(dst)
			require.NoError(t, err)
			r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(b)))
			r.Header.Set("Content-Type", "application/json")
			require.NoError(t, decodeJSON(httptest.NewRecorder(), r, again), "re-encoded %s", b)
			require.Equal(t, dst, again)
		}
		check(&IssueRequest{}, &IssueRequest{})
		check(&ReprocessRequest{}, &ReprocessRequest{})
		check(&OrderRequestBody{}, &OrderRequestBody{})
		var rec, rec2 RecoverRequest
		check(&rec, &rec2)
		// The recover endpoint's own checks (a user lookup included) refuse
		// with a field error too.
		if _, err := srv.validateRecover(httptest.NewRequest(http.MethodPost, "/", nil), rec); err != nil {
			var fe *fieldError
			require.True(t, errors.As(err, &fe), "%T: %v", err, err)
		}
	})
}
