package fault_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/jobs"
)

// TestPostgresCrashDuringSettlement crash-restarts Postgres while a point
// settlement is committing its chunks, with the worker left running. The run
// must end completed with every due row collected exactly once, totals equal
// to a direct SQL sum over the ledger, and a record that adds up.
func TestPostgresCrashDuringSettlement(t *testing.T) {
	t.Parallel()
	n := reps(t)
	for rep := range n {
		t.Run(fmt.Sprint(rep), func(t *testing.T) {
			o := outcome{Fault: "postgres crash", Batch: "settlement", Rep: rep}
			defer func() { record(t, o) }()
			b := setup(t)
			const date, due = "2026-03-10", 20000
			// Members 1..50 earn long before; then due rows of every kind.
			_, err := b.pool.Exec(b.ctx, `
				INSERT INTO point_ledger (member_id, kind, amount, occurred_at, process_on, processed_on)
				SELECT g % 50 + 1, 'EARN', 1, '2026-01-01 10:00+09', '2026-01-02', '2026-01-02' FROM generate_series(1, 5000) g`)
			require.NoError(t, err)
			_, err = b.pool.Exec(b.ctx, `
				INSERT INTO point_ledger (member_id, kind, amount, occurred_at)
				SELECT g % 50 + 1, (ARRAY['EARN', 'USE', 'EXPIRE'])[g % 3 + 1], g % 97 + 1,
				       '2026-03-09 00:00+09'::timestamptz + make_interval(secs => g) FROM generate_series(1, $1) g`, due)
			require.NoError(t, err)
			workers := b.workers(t, 1, "TIDEMARK_QUEUES=default=2")
			b.enqueue(t, "settlement", "--date", date, "--commit-interval", "50")

			at := int64(moment(rep, n) * due)
			until(t, 60*time.Second, "chunks committed before the crash", func() (bool, error) {
				return b.count(t, `SELECT count(*) FROM daily_batch`) >= at, nil
			})
			o.Note = fmt.Sprintf("%d of %d rows", at, due)
			up := time.Now()
			o.Ready = b.crash(t, workers)

			var state string
			var meta []byte
			until(t, 90*time.Second, "settlement job finished", func() (bool, error) {
				err := b.pool.QueryRow(b.ctx, `SELECT state::text, metadata FROM river_job WHERE kind = 'point_settlement'`).Scan(&state, &meta)
				return err == nil && (state == "completed" || state == "cancelled" || state == "discarded"), err
			})
			o.Done = time.Since(up)
			o.Lost = b.count(t, `SELECT count(*) FROM point_ledger WHERE process_on <= $1::date AND (processed_on IS NULL OR processed_on < process_on)`, date)
			o.Dups = b.count(t, `SELECT count(*) - count(DISTINCT ledger_id) FROM daily_batch`)
			require.Equal(t, "completed", state)
			require.Zero(t, o.Lost, "due rows never collected")
			require.Zero(t, o.Dups, "rows collected twice")
			require.Equal(t, int64(due), b.count(t, `SELECT count(*) FROM daily_batch WHERE run_date = $1::date`, date))

			// The settlement equals a direct SQL sum over the ledger.
			var want, got [4]int64
			require.NoError(t, b.pool.QueryRow(b.ctx, `
				SELECT sum(amount) FILTER (WHERE kind = 'EARN'), sum(amount) FILTER (WHERE kind = 'USE'),
				       sum(amount) FILTER (WHERE kind = 'EXPIRE'), count(*)
				FROM point_ledger WHERE process_on = $1::date`, date).Scan(&want[0], &want[1], &want[2], &want[3]))
			require.NoError(t, b.pool.QueryRow(b.ctx, `
				SELECT earned, used, expired, item_count FROM point_daily_settlement WHERE run_date = $1::date`, date).
				Scan(&got[0], &got[1], &got[2], &got[3]))
			require.Equal(t, want, got)

			// The run's record adds up.
			var m struct {
				Output jobs.SettlementOutput `json:"output"`
			}
			require.NoError(t, json.Unmarshal(meta, &m))
			out := m.Output
			require.Equal(t, int64(due), out.Read, "read")
			require.Equal(t, int64(due), out.Written, "written")
			require.Equal(t, out.Read, out.Written+out.Skipped+out.NotReady)
			require.Equal(t, int(due), out.ItemCount)
			b.requireNoFailedJobs(t)
		})
	}
}
