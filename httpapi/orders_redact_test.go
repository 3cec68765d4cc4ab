package httpapi_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/tidemark/tidemark/order"
)

// A lastError stored as it was, before last_error was redacted on writing,
// is answered with the partner's host but without its password or query
// values.
func TestOrderRequestLastErrorIsRedacted(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	ctx := context.Background()
	var ids []int64
	require.NoError(t, b.store.InTx(ctx, func(tx pgx.Tx) (err error) {
		ids, err = b.store.InsertOrderRequestsTx(ctx, tx, []order.Request{{Username: "tester", TotalPrice: 1, AppliedYearMonth: "2025-02"}})
		return err
	}))
	_, err := b.pool.Exec(ctx, `UPDATE order_request SET last_error = $2 WHERE id = $1`, ids[0],
		`orderapi: create tester/2025-02: Post "https://order:S3cretPW@partner.example/orders?api_key=S3cretKey": connection refused`)
	require.NoError(t, err)

	status, out := b.do(t, http.MethodGet, "/v1/order-requests/"+strconv.FormatInt(ids[0], 10), viewerToken, "", "")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, `orderapi: create tester/2025-02: Post "https://order:xxxxx@partner.example/orders?api_key=xxxxx": connection refused`,
		out["lastError"])
}
