package fault_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/testbin"
	"github.com/tidemark/tidemark/internal/testdb"
)

// partner is the simulated order API, on a database of the shared server (it
// stands for another company: tidemark's crashes are not its crashes).
type partner struct {
	proc *testbin.Proc
	url  string
	pool *pgxpool.Pool
}

func startPartner(t *testing.T, args ...string) *partner {
	t.Helper()
	pool, dbURL := testdb.Pool(t)
	proc, url := testbin.StartThirdParty(t, dbURL, args...)
	return &partner{proc: proc, url: url, pool: pool}
}

type partnerStats struct {
	Posts, Created, Conflicts, Gets, Orders int64
}

func (p *partner) stats(t *testing.T) partnerStats {
	t.Helper()
	code, body := get(strings.TrimPrefix(p.url, "http://"), "/_stats")
	require.Equal(t, 200, code, body)
	var s partnerStats
	require.NoError(t, json.Unmarshal([]byte(body), &s))
	return s
}

// orderFile writes a CSV of n order requests and returns its path.
func orderFile(t *testing.T, n int) string {
	t.Helper()
	var sb strings.Builder
	sb.WriteString("username,total_price,applied_year_month\n")
	for i := range n {
		fmt.Fprintf(&sb, "user%05d,%d,2026-11\n", i, 1000+i)
	}
	p := filepath.Join(t.TempDir(), "orders.csv")
	require.NoError(t, os.WriteFile(p, []byte(sb.String()), 0o600))
	return p
}

// requireOrdersExactlyOnce checks that every order request is APPLIED with
// the partner's order for it, and that the partner holds exactly one order per
// request and none else. It returns the requests not applied (lost) and the
// POSTs the partner refused as repeats (duplicates attempted).
func (b *bundle) requireOrdersExactlyOnce(t *testing.T, p *partner, n int) (lost, dups int64) {
	t.Helper()
	lost = b.count(t, `SELECT count(*) FROM order_request WHERE status <> 'APPLIED'`)
	st := p.stats(t)
	dups = st.Conflicts
	require.Zero(t, lost, "order requests not APPLIED")
	require.Equal(t, int64(n), b.count(t, `SELECT count(*) FROM order_request`))
	var partnerOrders int64
	require.NoError(t, p.pool.QueryRow(b.ctx, `SELECT count(*) FROM thirdparty.orders`).Scan(&partnerOrders))
	require.Equal(t, int64(n), partnerOrders, "orders at the partner")
	// Each APPLIED row carries the id the partner gave its order.
	rows, err := p.pool.Query(b.ctx, `SELECT id, username FROM thirdparty.orders`)
	require.NoError(t, err)
	partnerID := map[string]int64{}
	for rows.Next() {
		var id int64
		var u string
		require.NoError(t, rows.Scan(&id, &u))
		partnerID[u] = id
	}
	require.NoError(t, rows.Err())
	rows, err = b.pool.Query(b.ctx, `SELECT username, external_order_id FROM order_request`)
	require.NoError(t, err)
	for rows.Next() {
		var u string
		var ext int64
		require.NoError(t, rows.Scan(&u, &ext))
		require.Equal(t, partnerID[u], ext, "external order id of %s", u)
	}
	require.NoError(t, rows.Err())
	require.Zero(t, dups, "POSTs the partner refused as repeats")
	return lost, dups
}

// TestPostgresCrashDuringOrders crash-restarts Postgres while an orders file
// is being sent to the partner (20 ms a call); the worker is not restarted.
// Every request must end APPLIED with the partner's order, and the partner
// must hold each order exactly once.
func TestPostgresCrashDuringOrders(t *testing.T) {
	t.Parallel()
	n := reps(t)
	for rep := range n {
		t.Run(fmt.Sprint(rep), func(t *testing.T) {
			o := outcome{Fault: "postgres crash", Batch: "orders file", Rep: rep}
			defer func() { record(t, o) }()
			p := startPartner(t, "--latency", "20ms")
			b := setup(t, "ORDER_API_URL="+p.url)
			const orders = 3000
			workers := b.workers(t, 1)
			b.enqueue(t, "orders", "--file", orderFile(t, orders))

			at := int64(moment(rep, n) * orders)
			until(t, 60*time.Second, "orders applied before the crash", func() (bool, error) {
				return b.count(t, `SELECT count(*) FROM order_request WHERE status = 'APPLIED'`) >= at, nil
			})
			o.Note = fmt.Sprintf("%d of %d applied", at, orders)
			up := time.Now()
			o.Ready = b.crash(t, workers)
			b.waitIdle(t, 120*time.Second)
			o.Done = time.Since(up)
			o.Lost, o.Dups = b.requireOrdersExactlyOnce(t, p, orders)
			b.requireNoFailedJobs(t)
		})
	}
}
