package fault_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestPostgresCrashDuringExchange crash-restarts Postgres while the coupon
// exchange job is exchanging an expired coupon's issues chunk by chunk; the
// worker is not restarted. Every unused issue must end exchanged exactly once,
// with one compensation issue and one notification per member.
func TestPostgresCrashDuringExchange(t *testing.T) {
	t.Parallel()
	n := reps(t)
	for rep := range n {
		t.Run(fmt.Sprint(rep), func(t *testing.T) {
			o := outcome{Fault: "postgres crash", Batch: "exchange", Rep: rep}
			defer func() { record(t, o) }()
			b := setup(t)
			const members, used = 20000, 1000
			var expired int64
			require.NoError(t, b.pool.QueryRow(b.ctx, `
				INSERT INTO coupon (code, name, amount_type, amount, total_quantity, issued_quantity, status)
				VALUES ('EXPIRED', 'old', 'FIX', 500, $1, $1, 'INACTIVE') RETURNING id`, members).Scan(&expired))
			_, err := b.pool.Exec(b.ctx, `
				INSERT INTO coupon_issue (coupon_id, member_id, used_at)
				SELECT $1, m, CASE WHEN m <= $2 THEN now() END FROM generate_series(1, $3) m`, expired, used, members)
			require.NoError(t, err)
			workers := b.workers(t, 1)
			b.enqueue(t, "coupon-exchange", "--name", "sorry", "--amount-type", "FIX", "--amount", "1000",
				"--expired-coupon-id", fmt.Sprint(expired), "--chunk-size", "50")

			const toExchange = members - used
			at := int64(moment(rep, n) * toExchange)
			until(t, 60*time.Second, "issues exchanged before the crash", func() (bool, error) {
				return b.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1 AND exchanged_at IS NOT NULL`, expired) >= at, nil
			})
			o.Note = fmt.Sprintf("%d of %d exchanged", at, toExchange)
			up := time.Now()
			o.Ready = b.crash(t, workers)
			b.waitIdle(t, 120*time.Second)
			o.Done = time.Since(up)

			require.Equal(t, "completed", b.text(t, `SELECT state::text FROM river_job WHERE kind = 'coupon_exchange'`))
			var comp int64
			require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT id FROM coupon WHERE code LIKE 'EXCH-%'`).Scan(&comp))
			o.Lost = b.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1 AND used_at IS NULL AND exchanged_at IS NULL`, expired)
			require.Zero(t, o.Lost, "unused issues not exchanged")
			// One compensation issue and one notification per exchanged
			// member, none for the members who used theirs (UNIQUE keys make
			// a second one impossible; the counts show none is missing or extra).
			require.Equal(t, int64(toExchange), b.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1 AND member_id > $2`, comp, used))
			require.Equal(t, int64(toExchange), b.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1`, comp))
			require.Equal(t, int64(toExchange), b.count(t, `SELECT count(*) FROM coupon_notification WHERE coupon_id = $1`, comp))
			require.Equal(t, int64(toExchange), b.count(t, `SELECT issued_quantity FROM coupon WHERE id = $1`, comp))
			require.Equal(t, int64(used), b.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1 AND exchanged_at IS NULL`, expired))
			b.requireNoFailedJobs(t)
		})
	}
}
