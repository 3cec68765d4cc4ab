package fault_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/jobs"
)

// batch is one batch kind as the suite drives it: load its data, start it,
// measure how far it got, wait for its end and check its results against a
// direct computation over its source tables.
type batch struct {
	name    string
	workers int
	redis   bool     // needs Redis
	partner bool     // needs the simulated partner
	env     []string // extra worker environment
	size    int64    // units of work (progress counts up to it)
	unit    string
	load    func(t *testing.T, f *fixture) // before the workers start
	start   func(t *testing.T, f *fixture)
	done    func(f *fixture) (int64, error) // units done so far
	finish  func(t *testing.T, f *fixture)  // after the fault cleared: until the run ended
	verify  func(t *testing.T, f *fixture) (lost, dups int64)
	// givenUp reports whether a discarded or cancelled job ended as the
	// batch's protocol requires (nil: no job may be given up).
	givenUp func(t *testing.T, f *fixture, kind string, args []byte, errs string) bool
	// long is the work a worker can be frozen in (nil: the frozen-worker
	// faults do not apply).
	long *longJob
	// record is the run's record as an auditor reads it, one entry a row:
	// its jobs (f.jobRecord) and the rows it wrote. Once the run has
	// finished, no attempt may change it.
	record func(t *testing.T, f *fixture) map[string]string
}

// longJob is where a worker spends a batch's run: the job it runs for most
// of it, or the kind of its many short jobs.
type longJob struct {
	kind string
	// jobs is the condition on river_job of the run's jobs: its record and
	// their attempts.
	jobs string
	// timeout is kind's timeout (jobs/*.go): River rescues an attempt only
	// once it has run longer than that (and RESCUE_AFTER).
	timeout time.Duration
	// done, size and unit measure the job's progress where it is not the
	// batch's (the therapy fan-out ends long before its jobs do).
	done func(f *fixture) (int64, error)
	size int64
	unit string
	// lockAhead locks, in tx, a row the job's transaction at unit at will
	// wait for, and says which; nil where the job has no transaction of
	// several statements that could be caught open.
	lockAhead func(t *testing.T, f *fixture, tx pgx.Tx, at int64) string
}

func (f *fixture) defaultFinish(t *testing.T) { f.waitIdle(t, 120*time.Second) }

const settleDate, settleDue = "2026-03-10", 20000

var settlement = &batch{
	name: "settlement", workers: 1, env: []string{"TIDEMARK_QUEUES=default=2"}, size: settleDue, unit: "rows",
	load: func(t *testing.T, f *fixture) {
		// Members 1..50 earn long before; then due rows of every kind.
		_, err := f.pool.Exec(f.ctx, `
			INSERT INTO point_ledger (member_id, kind, amount, occurred_at, process_on, processed_on)
			SELECT g % 50 + 1, 'EARN', 1, '2026-01-01 10:00+09', '2026-01-02', '2026-01-02' FROM generate_series(1, 5000) g`)
		require.NoError(t, err)
		_, err = f.pool.Exec(f.ctx, `
			INSERT INTO point_ledger (member_id, kind, amount, occurred_at)
			SELECT g % 50 + 1, (ARRAY['EARN', 'USE', 'EXPIRE'])[g % 3 + 1], g % 97 + 1,
			       '2026-03-09 00:00+09'::timestamptz + make_interval(secs => g) FROM generate_series(1, $1) g`, settleDue)
		require.NoError(t, err)
	},
	start: func(t *testing.T, f *fixture) {
		f.enqueue(t, "settlement", "--date", settleDate, "--commit-interval", "50")
	},
	done: func(f *fixture) (int64, error) { return f.tryCount(`SELECT count(*) FROM daily_batch`) },
	finish: func(t *testing.T, f *fixture) {
		testkit.WaitFor(t, 120*time.Second, "settlement job finished", func() (bool, error) {
			var final bool
			err := f.pool.QueryRow(f.ctx, `SELECT finalized_at IS NOT NULL FROM river_job WHERE kind = 'point_settlement'`).Scan(&final)
			return final, err
		})
	},
	verify: func(t *testing.T, f *fixture) (lost, dups int64) {
		lost = f.count(t, `SELECT count(*) FROM point_ledger WHERE process_on <= $1::date AND (processed_on IS NULL OR processed_on < process_on)`, settleDate)
		dups = f.count(t, `SELECT count(*) - count(DISTINCT ledger_id) FROM daily_batch`)
		require.Equal(t, "completed", f.text(t, `SELECT state::text FROM river_job WHERE kind = 'point_settlement'`))
		require.Zero(t, lost, "due rows never collected")
		require.Zero(t, dups, "rows collected twice")
		require.Equal(t, int64(settleDue), f.count(t, `SELECT count(*) FROM daily_batch WHERE run_date = $1::date`, settleDate))
		// The settlement equals a direct SQL sum over the ledger.
		var want, got [4]int64
		require.NoError(t, f.pool.QueryRow(f.ctx, `
			SELECT sum(amount) FILTER (WHERE kind = 'EARN'), sum(amount) FILTER (WHERE kind = 'USE'),
			       sum(amount) FILTER (WHERE kind = 'EXPIRE'), count(*)
			FROM point_ledger WHERE process_on = $1::date`, settleDate).Scan(&want[0], &want[1], &want[2], &want[3]))
		require.NoError(t, f.pool.QueryRow(f.ctx, `
			SELECT earned, used, expired, item_count FROM point_daily_settlement WHERE run_date = $1::date`, settleDate).
			Scan(&got[0], &got[1], &got[2], &got[3]))
		require.Equal(t, want, got)
		// The run's record adds up.
		var meta []byte
		require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT metadata FROM river_job WHERE kind = 'point_settlement'`).Scan(&meta))
		var m struct {
			Output jobs.SettlementOutput `json:"output"`
		}
		require.NoError(t, json.Unmarshal(meta, &m))
		out := m.Output
		require.Equal(t, int64(settleDue), out.Read, "read")
		require.Equal(t, int64(settleDue), out.Written, "written")
		require.Equal(t, out.Read, out.Written+out.Skipped+out.NotReady)
		require.Equal(t, settleDue, out.ItemCount)
		return lost, dups
	},
	long: &longJob{
		kind: "point_settlement", jobs: `kind = 'point_settlement'`, timeout: time.Minute,
		// A chunk's transaction reads its rows (no lock), marks them
		// processed and copies them with one statement
		// (store.WriteChunk), then saves the cursor: a lock on a due row
		// makes that statement wait, its chunk's reads done.
		lockAhead: func(t *testing.T, f *fixture, tx pgx.Tx, at int64) string {
			// The row is found apart: FOR UPDATE with an OFFSET would lock
			// every row it skips as well.
			var id int64
			require.NoError(t, tx.QueryRow(f.ctx, `
				SELECT id FROM point_ledger WHERE id = (
				    SELECT id FROM point_ledger
				    WHERE process_on <= $1::date AND (processed_on IS NULL OR processed_on < process_on)
				    ORDER BY id OFFSET $2 LIMIT 1)
				FOR UPDATE`, settleDate, at).Scan(&id))
			return fmt.Sprintf("point_ledger row %d", id)
		},
	},
	record: func(t *testing.T, f *fixture) map[string]string {
		r := f.jobRecord(t, `kind = 'point_settlement'`)
		f.rows(t, f.pool, r, `SELECT 'point_daily_settlement ' || run_date, to_jsonb(p)::text FROM point_daily_settlement p`)
		f.rows(t, f.pool, r, `SELECT 'daily_batch ' || run_date || ' ' || ledger_id, to_jsonb(d)::text FROM daily_batch d`)
		f.rows(t, f.pool, r, `SELECT 'settlement_skip ' || run_date || ' ' || ledger_id, to_jsonb(s)::text FROM settlement_skip s`)
		f.rows(t, f.pool, r, `SELECT 'point_ledger ' || id, to_jsonb(l)::text FROM point_ledger l`)
		return r
	},
}

// jobRecord is the record of the jobs river_job's condition jobs selects:
// each job's state, attempts, errors and metadata (outputs, cursors), its
// batch_job_execution row, and its log apart (see requireSameRecord).
func (f *fixture) jobRecord(t *testing.T, jobs string) map[string]string {
	t.Helper()
	r := map[string]string{}
	f.rows(t, f.pool, r, `
		SELECT 'job ' || j.id, jsonb_build_object('state', j.state, 'attempt', j.attempt, 'attempted_by', j.attempted_by,
		       'errors', j.errors, 'finalized_at', j.finalized_at, 'metadata', j.metadata - 'river:log')::text
		FROM river_job j WHERE `+jobs)
	f.rows(t, f.pool, r, `SELECT 'river:log ' || j.id, coalesce(j.metadata -> 'river:log', '[]')::text FROM river_job j WHERE `+jobs)
	f.rows(t, f.pool, r, `
		SELECT 'batch_job_execution ' || e.job_execution_id, to_jsonb(e)::text
		FROM batch_job_execution e JOIN river_job j ON j.id = e.job_execution_id WHERE `+jobs)
	return r
}

// rows adds to r each row of sql, a key and a value (a repeated key gets
// a number).
func (f *fixture) rows(t *testing.T, pool *pgxpool.Pool, r map[string]string, sql string) {
	t.Helper()
	rows, err := pool.Query(f.ctx, sql)
	require.NoError(t, err, sql)
	defer rows.Close()
	for rows.Next() {
		var k, v string
		require.NoError(t, rows.Scan(&k, &v))
		key := k
		for n := 2; ; n++ {
			if _, dup := r[key]; !dup {
				break
			}
			key = fmt.Sprintf("%s #%d", k, n)
		}
		r[key] = v
	}
	require.NoError(t, rows.Err())
}

// therapyUsers is the daily run's size: every user is one job.
func therapyUsers() int64 {
	if chaos() {
		return 20000
	}
	return 10000
}

var therapy = &batch{
	name: "therapy daily run", workers: 2, size: therapyUsers(), unit: "jobs",
	load: func(t *testing.T, f *fixture) {
		f.enqueue(t, "demo-data", "--users", fmt.Sprint(therapyUsers()), "--performs", "30", "--month", "2026-11")
	},
	start: func(t *testing.T, f *fixture) { f.enqueue(t, "therapy-daily", "--date", "2026-12-01") },
	done: func(f *fixture) (int64, error) {
		return f.tryCount(`SELECT count(*) FROM river_job WHERE kind = 'therapy_stats' AND state = 'completed'`)
	},
	verify: func(t *testing.T, f *fixture) (lost, dups int64) {
		// Every target's statistics equal a direct aggregation of its performs.
		lost = f.count(t, `
			WITH m AS (
			    SELECT p.therapy_user_id AS u, count(*) AS n, count(*) FILTER (WHERE p.completed) AS c,
			           sum(p.duration_seconds) AS d,
			           count(DISTINCT (p.performed_at AT TIME ZONE 'Asia/Seoul')::date) AS days,
			           min(p.performed_at) AS f, max(p.performed_at) AS l
			    FROM therapy_perform p JOIN therapy_user tu ON tu.id = p.therapy_user_id AND tu.status = 'ACTIVE'
			    WHERE p.performed_at >= '2026-11-01 00:00+09' AND p.performed_at < '2026-12-01 00:00+09'
			    GROUP BY 1)
			SELECT count(*) FROM m
			LEFT JOIN therapy_statistics s ON s.therapy_user_id = m.u AND s.year = 2026 AND s.month = 11
			WHERE (s.perform_count, s.completed_count, s.total_duration_seconds, s.active_days, s.first_performed_at, s.last_performed_at)
			      IS DISTINCT FROM (m.n::int, m.c::int, m.d, m.days::int, m.f, m.l)`)
		dups = f.count(t, `
			SELECT count(*) - count(DISTINCT args ->> 'therapy_user_id') FROM river_job
			WHERE kind = 'therapy_stats' AND state = 'completed'`)
		require.Zero(t, lost, "user-months whose statistics differ from their performs")
		require.Zero(t, dups, "user-months aggregated by more than one job")
		users := therapyUsers()
		require.Equal(t, users, f.count(t, `SELECT count(*) FROM therapy_statistics WHERE year = 2026 AND month = 11`))
		require.Equal(t, users, f.count(t, `SELECT count(*) FROM therapy_batch_log WHERE status = 'SUCCESS'`))
		return lost, dups
	},
	long: &longJob{
		kind: "therapy_daily", timeout: time.Minute,
		jobs: `kind = 'therapy_stats' OR (kind = 'therapy_daily' AND args ->> 'business_date' = '2026-12-01')`,
		done: func(f *fixture) (int64, error) {
			return f.tryCount(`SELECT count(*) FROM river_job WHERE kind = 'therapy_stats'`)
		},
		size: therapyUsers(), unit: "jobs enqueued",
		// The fan-out inserts its jobs 2,000 users at a time, each batch
		// one COPY in a transaction of its own (jobs.EnqueueTherapyStats);
		// a job with the same unique key that another transaction inserted
		// and has not committed makes the COPY wait for that transaction.
		// On the last user of a batch the COPY has sent every row when it
		// waits: let go, it sits idle in its transaction, holding the
		// batch's uncommitted unique keys.
		lockAhead: func(t *testing.T, f *fixture, tx pgx.Tx, at int64) string {
			const perCopy = 2000
			last := min((at/perCopy+1)*perCopy, therapyUsers()) - 1
			var user int64
			require.NoError(t, tx.QueryRow(f.ctx, `
				SELECT DISTINCT p.therapy_user_id FROM therapy_perform p
				JOIN therapy_user u ON u.id = p.therapy_user_id AND u.status = 'ACTIVE'
				WHERE p.performed_at >= '2026-11-01 00:00+09' AND p.performed_at < '2026-12-01 00:00+09'
				ORDER BY 1 OFFSET $1 LIMIT 1`, last).Scan(&user))
			client, err := jobs.NewClient(f.pool, jobs.ClientConfig{}, jobs.Deps{Logger: testkit.Logger(t)})
			require.NoError(t, err)
			res, err := client.InsertTx(f.ctx, tx, jobs.TherapyStatsArgs{TherapyUserID: user, Year: 2026, Month: 11, BusinessDate: "2026-12-01"}, nil)
			require.NoError(t, err)
			require.False(t, res.UniqueSkippedAsDuplicate, "user %d's job enqueued by the fan-out already", user)
			return fmt.Sprintf("the unique key of user %d's therapy_stats job (target %d)", user, last+1)
		},
	},
	record: func(t *testing.T, f *fixture) map[string]string {
		r := f.jobRecord(t, `kind = 'therapy_stats' OR (kind = 'therapy_daily' AND args ->> 'business_date' = '2026-12-01')`)
		f.rows(t, f.pool, r, `SELECT 'therapy_batch_log ' || job_id, to_jsonb(l)::text FROM therapy_batch_log l`)
		f.rows(t, f.pool, r, `SELECT 'therapy_statistics ' || therapy_user_id || ' ' || year || '-' || month, to_jsonb(s)::text
			FROM therapy_statistics s`)
		return r
	},
}

const orderCount = 3000

var orders = &batch{
	name: "orders file", workers: 1, partner: true, size: orderCount, unit: "applied",
	start: func(t *testing.T, f *fixture) {
		var sb strings.Builder
		sb.WriteString("username,total_price,applied_year_month\n")
		for i := range orderCount {
			fmt.Fprintf(&sb, "user%05d,%d,2026-11\n", i, 1000+i)
		}
		p := filepath.Join(t.TempDir(), "orders.csv")
		require.NoError(t, os.WriteFile(p, []byte(sb.String()), 0o600))
		f.enqueue(t, "orders", "--file", p)
	},
	done: func(f *fixture) (int64, error) {
		return f.tryCount(`SELECT count(*) FROM order_request WHERE status = 'APPLIED'`)
	},
	verify: func(t *testing.T, f *fixture) (lost, dups int64) {
		// Every request APPLIED with the partner's order for it; the partner
		// holds exactly one order per request; no POST was refused as a
		// repeat (the protocol looks an order up before sending it again).
		lost = f.count(t, `SELECT count(*) FROM order_request WHERE status <> 'APPLIED'`)
		code, body := get(strings.TrimPrefix(f.partner.url, "http://"), "/_stats")
		require.Equal(t, http.StatusOK, code, body)
		var st struct{ Conflicts int64 }
		require.NoError(t, json.Unmarshal([]byte(body), &st))
		dups = st.Conflicts
		require.Zero(t, lost, "order requests not APPLIED")
		require.Equal(t, int64(orderCount), f.count(t, `SELECT count(*) FROM order_request`))
		partnerID := map[string]int64{}
		rows, err := f.partner.pool.Query(f.ctx, `SELECT id, username FROM thirdparty.orders`)
		require.NoError(t, err)
		for rows.Next() {
			var id int64
			var u string
			require.NoError(t, rows.Scan(&id, &u))
			partnerID[u] = id
		}
		require.NoError(t, rows.Err())
		require.Len(t, partnerID, orderCount, "orders at the partner")
		rows, err = f.pool.Query(f.ctx, `SELECT username, external_order_id FROM order_request`)
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
	},
	// Many short jobs, one per request. An attempt's statements are one
	// each (claims and applies are a pipeline up to its Sync, an implicit
	// transaction): no transaction stays open between two of them.
	long: &longJob{kind: "order_submit", jobs: `kind = 'order_submit'`, timeout: jobs.OrderSubmitTimeout},
	record: func(t *testing.T, f *fixture) map[string]string {
		r := f.jobRecord(t, `kind = 'order_submit'`)
		f.rows(t, f.pool, r, `SELECT 'order_request ' || id, to_jsonb(o)::text FROM order_request o`)
		f.rows(t, f.partner.pool, r, `SELECT 'partner order ' || id, to_jsonb(o)::text FROM thirdparty.orders o`)
		code, body := get(strings.TrimPrefix(f.partner.url, "http://"), "/_stats")
		require.Equal(t, http.StatusOK, code, body)
		var st struct{ Conflicts int64 }
		require.NoError(t, json.Unmarshal([]byte(body), &st))
		r["partner conflicts"] = fmt.Sprint(st.Conflicts)
		return r
	},
}

const exchangeMembers, exchangeUsed = 20000, 1000

var exchange = &batch{
	name: "exchange", workers: 1, size: exchangeMembers - exchangeUsed, unit: "exchanged",
	load: func(t *testing.T, f *fixture) {
		_, err := f.pool.Exec(f.ctx, `
			INSERT INTO coupon (code, name, amount_type, amount, total_quantity, issued_quantity, status)
			VALUES ('EXPIRED', 'old', 'FIX', 500, $1, $1, 'INACTIVE')`, exchangeMembers)
		require.NoError(t, err)
		_, err = f.pool.Exec(f.ctx, `
			INSERT INTO coupon_issue (coupon_id, member_id, used_at)
			SELECT (SELECT id FROM coupon WHERE code = 'EXPIRED'), m, CASE WHEN m <= $1 THEN now() END
			FROM generate_series(1, $2) m`, exchangeUsed, exchangeMembers)
		require.NoError(t, err)
	},
	start: func(t *testing.T, f *fixture) {
		f.enqueue(t, "coupon-exchange", "--name", "sorry", "--amount-type", "FIX", "--amount", "1000",
			"--expired-coupon-id", f.text(t, `SELECT id::text FROM coupon WHERE code = 'EXPIRED'`), "--chunk-size", "50")
	},
	done: func(f *fixture) (int64, error) {
		return f.tryCount(`SELECT count(*) FROM coupon_issue i JOIN coupon c ON c.id = i.coupon_id
			WHERE c.code = 'EXPIRED' AND i.exchanged_at IS NOT NULL`)
	},
	verify: func(t *testing.T, f *fixture) (lost, dups int64) {
		const toExchange = exchangeMembers - exchangeUsed
		require.Equal(t, "completed", f.text(t, `SELECT state::text FROM river_job WHERE kind = 'coupon_exchange'`))
		expired := f.count(t, `SELECT id FROM coupon WHERE code = 'EXPIRED'`)
		comp := f.count(t, `SELECT id FROM coupon WHERE code LIKE 'EXCH-%'`)
		lost = f.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1 AND used_at IS NULL AND exchanged_at IS NULL`, expired)
		require.Zero(t, lost, "unused issues not exchanged")
		// One compensation issue and one notification per exchanged member,
		// none for the members who used theirs (UNIQUE keys make a second one
		// impossible; the counts show none is missing or extra).
		require.Equal(t, int64(toExchange), f.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1 AND member_id > $2`, comp, exchangeUsed))
		require.Equal(t, int64(toExchange), f.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1`, comp))
		require.Equal(t, int64(toExchange), f.count(t, `SELECT count(*) FROM coupon_notification WHERE coupon_id = $1`, comp))
		require.Equal(t, int64(toExchange), f.count(t, `SELECT issued_quantity FROM coupon WHERE id = $1`, comp))
		require.Equal(t, int64(exchangeUsed), f.count(t, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1 AND exchanged_at IS NULL`, expired))
		return lost, 0
	},
	long: &longJob{
		kind: "coupon_exchange", jobs: `kind = 'coupon_exchange'`, timeout: time.Minute,
		// A chunk's transaction takes its issues FOR UPDATE, marks them,
		// inserts the compensation issues and raises the coupon's count in
		// one statement (store.ExchangeChunkTx), then saves the cursor: a
		// lock on an issue makes that statement wait.
		lockAhead: func(t *testing.T, f *fixture, tx pgx.Tx, at int64) string {
			var id int64
			require.NoError(t, tx.QueryRow(f.ctx, `
				SELECT id FROM coupon_issue WHERE id = (
				    SELECT i.id FROM coupon_issue i JOIN coupon c ON c.id = i.coupon_id
				    WHERE c.code = 'EXPIRED' AND i.used_at IS NULL AND i.exchanged_at IS NULL
				    ORDER BY i.id OFFSET $1 LIMIT 1)
				FOR UPDATE`, at).Scan(&id))
			return fmt.Sprintf("coupon_issue row %d", id)
		},
	},
	record: func(t *testing.T, f *fixture) map[string]string {
		r := f.jobRecord(t, `kind = 'coupon_exchange'`)
		f.rows(t, f.pool, r, `SELECT 'coupon ' || id, to_jsonb(c)::text FROM coupon c`)
		f.rows(t, f.pool, r, `SELECT 'coupon_issue ' || id, to_jsonb(i)::text FROM coupon_issue i`)
		f.rows(t, f.pool, r, `SELECT 'coupon_notification ' || id, to_jsonb(n)::text FROM coupon_notification n`)
		return r
	},
}

const couponTotal = 1000

var coupons = &batch{
	name: "coupon rush", workers: 1, redis: true, size: couponTotal, unit: "accepted",
	load: func(t *testing.T, f *fixture) {
		f.enqueue(t, "coupon", "create", "--code", "RUSH", "--name", "rush", "--amount-type", "FIX", "--amount", "100",
			"--total", fmt.Sprint(couponTotal))
	},
	start: func(t *testing.T, f *fixture) { f.rush = startRush(f.liveAddr, "RUSH", 2000, 40000) },
	done:  func(f *fixture) (int64, error) { return int64(f.rush.count(http.StatusAccepted)), nil },
	finish: func(t *testing.T, f *fixture) {
		f.rush.stop()
		f.waitIdle(t, 120*time.Second)
	},
	// A persist insert whose commit answer was lost: the handler gave the
	// seat back and answered 503, the job was committed after all, found
	// the coupon sold out meanwhile and compensated — the member holds
	// nothing and was never told otherwise.
	givenUp: func(t *testing.T, f *fixture, kind string, args []byte, errs string) bool {
		var a struct {
			MemberID int64 `json:"member_id"`
		}
		require.NoError(t, json.Unmarshal(args, &a))
		return kind == "coupon_issue_persist" && strings.Contains(errs, "seat given back before the persist job ran") &&
			!f.rush.accepted[a.MemberID] &&
			f.count(t, `SELECT count(*) FROM coupon_issue i JOIN coupon c ON c.id = i.coupon_id WHERE c.code = 'RUSH' AND i.member_id = $1`, a.MemberID) == 0 &&
			f.count(t, `SELECT count(*) FROM failed_coupon_issue WHERE coupon_code = 'RUSH' AND member_id = $1`, a.MemberID) > 0
	},
	verify: func(t *testing.T, f *fixture) (lost, dups int64) {
		// Only 202, 409, 410 and 503 answers (never a 500 or a dropped
		// connection), every 202 with its coupon_issue row, no more issues
		// than the coupon has, and — after the reconciliation the worker
		// runs every 5 minutes — Redis holding exactly the members Postgres
		// holds. The reconciliation may roll back only seats taken by
		// requests that were not answered 202: a reply lost between Redis
		// and the worker leaves a seat in Redis alone, and the request 503.
		res := f.rush
		var rep jobs.CouponsReport
		require.NoError(t, json.Unmarshal([]byte(f.enqueue(t, "reconcile", "--check", "coupon")), &rep))
		require.Len(t, rep.Coupons, 1)
		rolledBack := rep.Coupons[0].RolledBackIDs
		for _, m := range rolledBack {
			require.False(t, res.accepted[int64(m)], "member %d was answered 202 and then rolled back", m)
		}
		require.LessOrEqual(t, rep.Coupons[0].RolledBack, res.count(http.StatusServiceUnavailable), "seats rolled back")
		require.Zero(t, rep.Coupons[0].AddedBack, "members in Postgres missing from Redis")
		for status, n := range res.byStatus {
			switch status {
			case http.StatusAccepted, http.StatusConflict, http.StatusGone, http.StatusServiceUnavailable:
			default:
				t.Errorf("%d requests answered %d", n, status)
			}
		}
		rows, err := f.pool.Query(f.ctx, `SELECT i.member_id FROM coupon_issue i JOIN coupon c ON c.id = i.coupon_id WHERE c.code = 'RUSH'`)
		require.NoError(t, err)
		issued := map[int64]bool{}
		for rows.Next() {
			var m int64
			require.NoError(t, rows.Scan(&m))
			issued[m] = true
		}
		require.NoError(t, rows.Err())
		for m := range res.accepted {
			if !issued[m] {
				lost++
			}
		}
		require.Zero(t, lost, "202s without their coupon_issue row")
		require.LessOrEqual(t, len(issued), couponTotal, "oversold")
		opt, err := redis.ParseURL(f.redis.URL)
		require.NoError(t, err)
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		members, err := rdb.SMembers(context.Background(), "coupon:issued:RUSH").Result()
		require.NoError(t, err)
		require.Len(t, members, len(issued), "Redis and Postgres disagree on who holds the coupon")
		return lost, int64(max(0, len(issued)-couponTotal))
	},
}

// rushResult is what a rush's requests were answered.
type rushResult struct {
	mu       sync.Mutex
	byStatus map[int]int
	accepted map[int64]bool
	halt     chan struct{}
	done     chan struct{}
}

// startRush sends issue requests for coupon code to addr(), member after
// member from 1 (every fifth request repeats the member before), from 16
// goroutines, until stop is called and more than min requests were sent, or
// max were. A request whose connection fails is sent once more to addr(),
// as a load balancer does when a worker is going away.
func startRush(addr func() string, code string, min, max int64) *rushResult {
	res := &rushResult{byStatus: map[int]int{}, accepted: map[int64]bool{}, halt: make(chan struct{}), done: make(chan struct{})}
	var next atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				halted := false
				select {
				case <-res.halt:
					halted = true
				default:
				}
				if i > max || (halted && i > min) {
					return
				}
				member := i
				if i%5 == 0 {
					member = i - 1 // asks again
				}
				status := 0
				bearer := "Bearer " + memberToken(int64(member))
				for try := 0; try < 2 && status == 0; try++ {
					req, err := http.NewRequest(http.MethodPost, "http://"+addr()+"/v1/coupons/"+code+"/issue", nil)
					if err != nil {
						break
					}
					req.Header.Set("Authorization", bearer)
					resp, err := client.Do(req)
					if err == nil {
						status = resp.StatusCode
						resp.Body.Close()
					}
				}
				res.mu.Lock()
				res.byStatus[status]++
				if status == http.StatusAccepted {
					res.accepted[member] = true
				}
				res.mu.Unlock()
			}
		}()
	}
	go func() { wg.Wait(); close(res.done) }()
	return res
}

// stop ends the rush and waits for its last requests.
func (r *rushResult) stop() {
	close(r.halt)
	<-r.done
}

func (r *rushResult) count(status int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byStatus[status]
}

var allBatches = []*batch{settlement, therapy, orders, exchange, coupons}
