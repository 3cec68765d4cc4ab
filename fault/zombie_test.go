package fault_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testbin"
	"github.com/tidemark/tidemark/internal/harness/testkit"
)

// The frozen-worker faults. A worker process stops (SIGSTOP: a VM pause, a
// long GC pause, a debugger) while it runs a batch's long job, and stays
// stopped until River has rescued the job and the other worker has finished
// the run. Then it comes back (SIGCONT) and carries on with an attempt that
// is no longer its own. The run must not notice: the rescued attempt is not
// held up by what the frozen one holds (it completes without an error of its
// own, in the one attempt the rescue takes), the results equal the direct
// computation before and after the frozen worker resumes, the run's record
// is the same after as before, and the resumed worker answers and works
// jobs again.
//
// Two variants:
//   - outside a transaction: frozen where none of its sessions holds a
//     transaction that wrote or locked a row (a SIGSTOP that lands after a
//     chunk's write is undone with SIGCONT and tried again a moment later);
//   - inside a transaction: the test holds a lock on a row the long job's
//     transaction will need further on, waits until the worker's session
//     waits for it, freezes the worker and lets the lock go: the statement
//     completes in Postgres and the session sits idle in its transaction,
//     holding what the statement locked and wrote, its client frozen.

// rescuedError is the error River's rescuer records on a job it rescues.
const rescuedError = "Stuck job rescued by JobRescuer"

// rescueSlack bounds how long after an attempt's timeout the rescued job is
// worked again: River's rescuer runs every 30 s on the elected leader (not
// configurable through River's public Config, nor jobs.ClientConfig); when
// the frozen worker was the leader the other one takes over once the
// leadership's 15 s TTL has passed; then the retry's backoff (1 s) and
// River's scheduler (every 5 s) make the job available again.
const rescueSlack = 70 * time.Second

// zombieRescueAfter is the least RESCUE_AFTER config allows (more than
// 10s); every long job's own timeout is longer, so it is that timeout that
// decides when the rescue comes.
const zombieRescueAfter = "RESCUE_AFTER=11s"

// zombie is a frozen-worker fault's state in one case.
type zombie struct {
	inTx bool
	// The test's lock (inside a transaction): its transaction, backend pid
	// and what it locks, and the worker session that waited for it.
	lock       pgx.Tx
	lockPID    int32
	locked     string
	blockedPID int32
	// The frozen worker: its process, application_name and River client id.
	w      *testbin.Proc
	app    string
	client string
	// frozen are the jobs it was running: their attempts are the stale ones.
	frozen []frozenJob
	note   string // where it was frozen, for the table
	// thawed is when it was let go. Between the freeze and then the process
	// sent nothing: whatever of its own Postgres finished in that time was
	// sent before the freeze.
	thawed time.Time
}

type frozenJob struct {
	ID          int64
	Kind        string
	Attempt     int
	AttemptedAt time.Time
}

// zombieFault is the frozen-worker fault, inside a chunk's transaction or
// outside any, run on two workers.
func zombieFault(name string, inTx bool, fast []*batch) fault {
	return fault{
		name: name, fast: fast, workers: 2, env: []string{zombieRescueAfter},
		applies: func(b *batch) bool { return b.long != nil && (!inTx || b.long.lockAhead != nil) },
		moment: func(t *testing.T, f *fixture, b *batch, at float64) string {
			f.zombie = &zombie{inTx: inTx}
			if inTx {
				return f.lockAhead(t, b, at)
			}
			return f.longJobAt(t, b, at)
		},
		inject: func(t *testing.T, f *fixture, b *batch) time.Duration {
			f.freeze(t, b)
			f.waitRescued(t, b)
			return 0
		},
		after: func(t *testing.T, f *fixture, b *batch, o *outcome) { f.resume(t, b, o) },
	}
}

// progressOf is how far b's long job is, out of how many units of what.
func progressOf(b *batch) (done func(*fixture) (int64, error), size int64, unit string) {
	if b.long.done != nil {
		return b.long.done, b.long.size, b.long.unit
	}
	return b.done, b.size, b.unit
}

// longJobAt waits until b's long job has done the fraction at of its work
// and is still running.
func (f *fixture) longJobAt(t *testing.T, b *batch, at float64) string {
	t.Helper()
	done, size, unit := progressOf(b)
	n := int64(at * float64(size))
	// Polled often: a settlement collects its 20,000 rows in under a
	// second, so a late moment leaves a fraction of one to freeze it in.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	err := testkit.Poll(ctx, 2*time.Millisecond, func() (bool, error) {
		d, err := done(f)
		if err != nil || d < n {
			return false, err
		}
		running, err := f.tryCount(`SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'running'`, b.long.kind)
		return running > 0, err
	})
	require.NoError(t, err, "%s running, %d of its %d %s done", b.long.kind, n, size, unit)
	return fmt.Sprintf("%d of %d %s", n, size, unit)
}

// lockAhead takes, in a transaction of the test's own, the lock of a row
// b's long job will need once it has done the fraction at of its work, and
// waits until a worker's session waits for it.
func (f *fixture) lockAhead(t *testing.T, b *batch, at float64) string {
	t.Helper()
	z := f.zombie
	_, size, unit := progressOf(b)
	n := int64(at * float64(size))
	tx, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	z.lock = tx
	z.locked = b.long.lockAhead(t, f, tx, n)
	require.NoError(t, tx.QueryRow(f.ctx, `SELECT pg_backend_pid()`).Scan(&z.lockPID))
	testkit.WaitFor(t, 60*time.Second, "a worker's "+b.long.kind+" waiting for "+z.locked, func() (bool, error) {
		err := f.pool.QueryRow(f.ctx, `
			SELECT pid, application_name FROM pg_stat_activity
			WHERE $1 = ANY(pg_blocking_pids(pid)) AND application_name LIKE 'tidemark-worker-%'
			LIMIT 1`, z.lockPID).Scan(&z.blockedPID, &z.app)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return err == nil, err
	})
	return fmt.Sprintf("%d of %d %s, %s locked", n, size, unit, z.locked)
}

// freeze freezes the worker running b's long job (the one running most of
// its jobs, for a kind of many short jobs) and records the jobs it was
// running.
func (f *fixture) freeze(t *testing.T, b *batch) {
	t.Helper()
	z := f.zombie
	if z.inTx {
		z.w = f.workerByApp(t, z.app)
		require.NoError(t, z.w.Freeze())
		require.NoError(t, z.lock.Rollback(f.ctx))
		// Let go, the statement completes in Postgres; the frozen client
		// sends nothing more, so its transaction stays open with what the
		// statement locked and wrote (a COPY waiting for the rest of its
		// rows would hold them as well).
		var state string
		testkit.WaitFor(t, 10*time.Second, "the frozen worker's transaction open after its statement", func() (bool, error) {
			var wrote bool
			err := f.pool.QueryRow(f.ctx, `
				SELECT state || CASE WHEN state = 'active' THEN coalesce(' (' || wait_event || ')', '') ELSE '' END,
				       backend_xid IS NOT NULL
				FROM pg_stat_activity WHERE pid = $1`,
				z.blockedPID).Scan(&state, &wrote)
			open := wrote && (state == "idle in transaction" || state == "active (ClientRead)")
			if err == nil && !open {
				err = fmt.Errorf("session %d: %s, transaction id: %t", z.blockedPID, state, wrote)
			}
			return open, err
		})
		f.settled(t, z.app)
		z.note = "frozen " + state + " once the lock was let go"
	} else {
		var client string
		require.NoError(t, f.pool.QueryRow(f.ctx, `
			SELECT attempted_by[cardinality(attempted_by)] FROM river_job WHERE kind = $1 AND state = 'running'
			GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1`, b.long.kind).Scan(&client),
			"the worker running %s (none running: it ended before the freeze?)", b.long.kind)
		z.w = f.workerByClient(t, client)
		z.app = f.appOf(z.w)
		tries := f.freezeOutsideTx(t, z.w, z.app)
		z.note = fmt.Sprintf("frozen outside a transaction (SIGSTOPs: %d)", tries)
	}
	z.client = riverClientID(t, z.w)
	rows, err := f.pool.Query(f.ctx, `
		SELECT id, kind, attempt, attempted_at FROM river_job
		WHERE (`+b.long.jobs+`) AND state = 'running' AND attempted_by[cardinality(attempted_by)] = $1
		ORDER BY id`, z.client)
	require.NoError(t, err)
	z.frozen, err = pgx.CollectRows(rows, pgx.RowToStructByPos[frozenJob])
	require.NoError(t, err)
	require.True(t, slices.ContainsFunc(z.frozen, func(j frozenJob) bool { return j.Kind == b.long.kind }),
		"the frozen worker %s runs no %s job (it ended before the freeze?): %v", z.app, b.long.kind, z.frozen)
	z.note += fmt.Sprintf(", jobs held: %d", len(z.frozen))
	f.faultNote = z.note
}

// freezeOutsideTx freezes w at a moment when none of its sessions holds a
// transaction that wrote or locked a row; a freeze that lands inside one is
// undone once its statements have finished, and tried again after the
// worker has moved on. It returns how many freezes it took.
func (f *fixture) freezeOutsideTx(t *testing.T, w *testbin.Proc, app string) int {
	t.Helper()
	for tries := 1; ; tries++ {
		require.NoError(t, w.Freeze())
		if f.settled(t, app) {
			return tries
		}
		require.Less(t, tries, 200, "%s always frozen inside a transaction:\n%s", app, f.sessions(t))
		mark := f.text(t, `SELECT coalesce(max(state_change), 'epoch')::text FROM pg_stat_activity WHERE application_name = $1`, app)
		require.NoError(t, w.Thaw())
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := testkit.Poll(ctx, 2*time.Millisecond, func() (bool, error) {
			var moved bool
			err := f.pool.QueryRow(f.ctx, `SELECT coalesce(max(state_change) > $2::timestamptz, false) FROM pg_stat_activity
				WHERE application_name = $1`, app, mark).Scan(&moved)
			return moved, err
		})
		cancel()
		require.NoError(t, err, "%s moved on after a SIGCONT", app)
	}
}

// settled waits until no session of the frozen worker app runs a statement
// Postgres can finish without it (one waiting for a lock or for the client
// never will), and reports whether none of them is in a transaction that
// wrote or locked a row, or still runs one.
func (f *fixture) settled(t *testing.T, app string) bool {
	t.Helper()
	testkit.WaitFor(t, 10*time.Second, app+"'s statements finished", func() (bool, error) {
		n, err := f.tryCount(`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'
			AND wait_event_type IS DISTINCT FROM 'Lock' AND wait_event_type IS DISTINCT FROM 'Client'`, app)
		return n == 0, err
	})
	return f.count(t, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1
		AND (backend_xid IS NOT NULL OR state = 'active')`, app) == 0
}

// waitRescued waits until every job the frozen worker held has been
// rescued and finished by the other worker. An attempt after a rescue must
// not fail: waiting on what the frozen worker holds until a lock or
// statement timeout, or until the job's own timeout, fails the case at
// once, with the error.
func (f *fixture) waitRescued(t *testing.T, b *batch) {
	t.Helper()
	z := f.zombie
	var latest time.Time
	ids := make([]int64, len(z.frozen))
	for i, j := range z.frozen {
		ids[i] = j.ID
		if j.AttemptedAt.After(latest) {
			latest = j.AttemptedAt
		}
	}
	// Rescued once it has run longer than its timeout, worked again within
	// the slack, and given its own timeout to finish.
	deadline := latest.Add(2*b.long.timeout + rescueSlack)
	ctx, cancel := context.WithDeadline(t.Context(), deadline)
	defer cancel()
	err := testkit.Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		f.requireCleanAttempts(t, false)
		left, err := f.tryCount(`SELECT count(*) FROM river_job WHERE id = ANY($1) AND finalized_at IS NULL`, ids)
		return left == 0, err
	})
	if err != nil {
		require.Failf(t, "the frozen worker's jobs were not rescued and finished by the other worker",
			"within %s of the latest frozen attempt's start: %v\n%s", deadline.Sub(latest), err, f.sessions(t))
	}
}

// requireCleanAttempts requires of every job the frozen worker held that
// the rescue is the only error recorded since its frozen attempt, and that
// one attempt more was all it took (final: it was rescued, and finished by
// the other worker). One exception, final only: a job completed at its
// frozen attempt by the frozen client, without an error, before the thaw
// (waitRescued had every held job finalised before it) was completed by a
// statement sent before the freeze and finished by Postgres while the
// process was stopped: that attempt did its work once, and nothing rescued
// it.
func (f *fixture) requireCleanAttempts(t *testing.T, final bool) {
	t.Helper()
	z := f.zombie
	ids, attempts := make([]int64, len(z.frozen)), make([]int32, len(z.frozen))
	for i, j := range z.frozen {
		ids[i], attempts[i] = j.ID, int32(j.Attempt)
	}
	rows, err := f.pool.Query(f.ctx, `
		SELECT j.id, j.kind, j.state::text, j.attempt, fz.attempt, j.attempted_by[cardinality(j.attempted_by)],
		       j.finalized_at,
		       coalesce(jsonb_agg(e ORDER BY e ->> 'at') FILTER (WHERE (e ->> 'attempt')::int >= fz.attempt), '[]')::text
		FROM unnest($1::bigint[], $2::int[]) AS fz(id, attempt)
		JOIN river_job j ON j.id = fz.id
		LEFT JOIN LATERAL unnest(j.errors) AS e ON true
		GROUP BY j.id, j.kind, j.state, j.attempt, fz.attempt, j.attempted_by, j.finalized_at
		ORDER BY j.id`, ids, attempts)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var (
			id                int64
			kind, state, last string
			attempt, frozenAt int
			errsJSON          string
			finalized         *time.Time
		)
		require.NoError(t, rows.Scan(&id, &kind, &state, &attempt, &frozenAt, &last, &finalized, &errsJSON))
		var errs []struct {
			Attempt int    `json:"attempt"`
			Error   string `json:"error"`
		}
		require.NoError(t, json.Unmarshal([]byte(errsJSON), &errs))
		for _, e := range errs {
			require.Truef(t, e.Attempt == frozenAt && e.Error == rescuedError,
				"job %d (%s), frozen in attempt %d: attempt %d failed: %s", id, kind, frozenAt, e.Attempt, e.Error)
		}
		require.LessOrEqualf(t, len(errs), 1, "job %d (%s) rescued more than once: %s", id, kind, errsJSON)
		require.LessOrEqualf(t, attempt, frozenAt+1, "job %d (%s), frozen in attempt %d, is at attempt %d: %s",
			id, kind, frozenAt, attempt, errsJSON)
		if final {
			require.Equalf(t, "completed", state, "job %d (%s)", id, kind)
			if len(errs) == 0 && attempt == frozenAt && last == z.client && finalized != nil && finalized.Before(z.thawed) {
				// Its completion was in Postgres's hands at the freeze (a
				// statement waiting for a lock then, granted while the
				// process was stopped): the attempt finished its work
				// before the freeze, once, and was never rescued.
				continue
			}
			require.Lenf(t, errs, 1, "job %d (%s), frozen in attempt %d, not rescued", id, kind, frozenAt)
			require.Equalf(t, frozenAt+1, attempt, "job %d (%s)", id, kind)
			require.NotEqualf(t, z.client, last, "job %d (%s) finished by the frozen worker", id, kind)
		}
	}
	require.NoError(t, rows.Err())
}

// resume checks what happens once the frozen worker comes back, after the
// run has finished and its results were checked: the run's record is
// taken, the other worker stopped (so that a job enqueued now can only be
// the frozen one's), the frozen one thawed; it must answer /readyz, work a
// new job, and stop cleanly, its stale attempts over; then the record must
// be the same, the results still equal the direct computation and the
// rescued attempts still clean.
func (f *fixture) resume(t *testing.T, b *batch, o *outcome) {
	t.Helper()
	z := f.zombie
	before := b.record(t, f)
	f.mu.Lock()
	others := slices.DeleteFunc(slices.Clone(f.workers), func(w *testbin.Proc) bool { return w == z.w })
	f.workers = []*testbin.Proc{z.w}
	f.mu.Unlock()
	for _, w := range others {
		require.NoError(t, w.Stop(30*time.Second), "the other worker's exit")
	}

	z.thawed = time.Now()
	require.NoError(t, z.w.Thaw())
	thawed := time.Now()
	f.allReady(t, http.StatusOK, 30*time.Second, "the thawed worker's /readyz 200")
	o.Ready = time.Since(thawed)
	// A new job (a therapy run of a date without data) is the thawed
	// worker's to work: it is the only one left.
	f.enqueue(t, "therapy-daily", "--date", "2001-01-01")
	var by []string
	testkit.WaitFor(t, 60*time.Second, "a new job worked by the thawed worker", func() (bool, error) {
		var state string
		err := f.pool.QueryRow(f.ctx, `SELECT state::text, attempted_by FROM river_job
			WHERE kind = 'therapy_daily' AND args ->> 'business_date' = '2001-01-01'`).Scan(&state, &by)
		return state == "completed", err
	})
	require.Equal(t, []string{z.client}, by, "who worked the new job")
	// Stopped, River has finished or handed back every attempt it ran, the
	// stale ones included, and written their completions.
	require.NoError(t, z.w.Stop(30*time.Second), "the thawed worker's exit")
	require.Contains(t, z.w.Output(), `msg="worker stopped"`)
	// The fence caught the attempt it held: it ended without writing.
	require.Contains(t, z.w.Output(), `msg="jobs: stale attempt: a later attempt owns the job; ending without writing"`)

	requireSameRecord(t, before, b.record(t, f))
	lost, dups := b.verify(t, f)
	o.Lost, o.Dups = o.Lost+lost, o.Dups+dups
	f.requireNoFailedJobs(t, b)
	f.requireCleanAttempts(t, true)
}

// requireSameRecord requires a run's record after the frozen worker resumed
// to be the one before. A job's log may gain lines (the stale attempt's
// own), but keeps every line it had.
func requireSameRecord(t *testing.T, before, after map[string]string) {
	t.Helper()
	keys := map[string]bool{}
	for k := range before {
		keys[k] = true
	}
	for k := range after {
		keys[k] = true
	}
	var changed []string
	for k := range keys {
		b, inBefore := before[k]
		a, inAfter := after[k]
		if strings.HasPrefix(k, "river:log ") && inBefore && inAfter && logKept(b, a) {
			continue
		}
		if b == a && inBefore == inAfter {
			continue
		}
		changed = append(changed, k+": "+diffJSON(b, inBefore, a, inAfter))
	}
	if len(changed) > 0 {
		sort.Strings(changed)
		require.Failf(t, "the run's record changed after the frozen worker resumed",
			"%d rows:\n%s", len(changed), strings.Join(changed[:min(len(changed), 10)], "\n"))
	}
}

// diffJSON says how a row's value changed: the JSON fields that differ,
// before → after, or both values when they are not JSON objects.
func diffJSON(before string, inBefore bool, after string, inAfter bool) string {
	var b, a map[string]any
	if !inBefore || !inAfter || json.Unmarshal([]byte(before), &b) != nil || json.Unmarshal([]byte(after), &a) != nil {
		return clip(before, inBefore) + " → " + clip(after, inAfter)
	}
	var out []string
	diffFields("", b, a, &out)
	return strings.Join(out, ", ")
}

func diffFields(path string, before, after map[string]any, out *[]string) {
	keys := map[string]bool{}
	for k := range before {
		keys[k] = true
	}
	for k := range after {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		b, inB := before[k]
		a, inA := after[k]
		bm, bObj := b.(map[string]any)
		am, aObj := a.(map[string]any)
		switch {
		case bObj && aObj:
			diffFields(path+k+".", bm, am, out)
		case inB != inA || fmt.Sprint(b) != fmt.Sprint(a):
			bj, _ := json.Marshal(b)
			aj, _ := json.Marshal(a)
			*out = append(*out, fmt.Sprintf("%s%s %s → %s", path, k, clip(string(bj), inB), clip(string(aj), inA)))
		}
	}
}

// logKept reports whether the job log after holds every entry of before.
func logKept(before, after string) bool {
	var b, a []json.RawMessage
	if json.Unmarshal([]byte(before), &b) != nil || json.Unmarshal([]byte(after), &a) != nil {
		return false
	}
	for _, e := range b {
		if !slices.ContainsFunc(a, func(x json.RawMessage) bool { return string(x) == string(e) }) {
			return false
		}
	}
	return true
}

func clip(s string, present bool) string {
	if !present {
		return "(none)"
	}
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// sessions describes the workers' sessions that are not idle, for a
// failure's message.
func (f *fixture) sessions(t *testing.T) string {
	t.Helper()
	rows, err := f.pool.Query(f.ctx, `
		SELECT application_name || ' pid ' || pid || ': ' || state || coalesce(' (' || wait_event_type || ' ' || wait_event || ')', '')
		       || coalesce(', xid ' || backend_xid, '') || ', blocked by ' || pg_blocking_pids(pid)::text
		       || ', for ' || date_trunc('second', now() - state_change) || ': ' || left(regexp_replace(query, '\s+', ' ', 'g'), 100)
		FROM pg_stat_activity
		WHERE application_name LIKE 'tidemark-worker-%' AND state <> 'idle'
		ORDER BY application_name, pid`)
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return "workers' sessions not idle:\n  " + strings.Join(lines, "\n  ")
}

var clientIDRE = regexp.MustCompile(`msg="River client started" client_id=(\S+)`)

// riverClientID is the id of w's River client, as river_job.attempted_by
// holds it.
func riverClientID(t *testing.T, w *testbin.Proc) string {
	t.Helper()
	m := clientIDRE.FindStringSubmatch(w.Output())
	require.NotNil(t, m, "the worker printed no River client id")
	return m[1]
}

// workerByClient is the worker whose River client is client.
func (f *fixture) workerByClient(t *testing.T, client string) *testbin.Proc {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, w := range f.workers {
		if m := clientIDRE.FindStringSubmatch(w.Output()); m != nil && m[1] == client {
			return w
		}
	}
	require.FailNow(t, "no worker has River client "+client)
	return nil
}

// workerByApp is the worker whose sessions carry application_name app.
func (f *fixture) workerByApp(t *testing.T, app string) *testbin.Proc {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for w, a := range f.apps {
		if a == app {
			return w
		}
	}
	require.FailNow(t, "no worker has application_name "+app)
	return nil
}

// appOf is w's application_name.
func (f *fixture) appOf(w *testbin.Proc) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.apps[w]
}
