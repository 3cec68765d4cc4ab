package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Ledger settlement. Business dates travel as
// "YYYY-MM-DD" strings and are cast to date in SQL, so no time zone can shift
// them on the way.

// LedgerEntry is one point_ledger row to insert.
type LedgerEntry struct {
	MemberID   int64
	Kind       string // EARN, USE or EXPIRE
	Amount     int64
	OccurredAt time.Time
	// ProcessOn is the business date whose run collects the row; empty means
	// the day after OccurredAt's date in the batch time zone.
	ProcessOn string
	// NotReady marks a row whose preceding step has not finished (ready = false).
	NotReady bool
}

// InsertLedger inserts entries and returns their ids in order. process_on
// defaults to the day after occurred_at's date in tz (BATCH_TZ).
func (s *Store) InsertLedger(ctx context.Context, entries []LedgerEntry, tz *time.Location) ([]int64, error) {
	n := len(entries)
	members, amounts := make([]int64, n), make([]int64, n)
	kinds, processOn := make([]string, n), make([]*string, n)
	occurred, ready := make([]time.Time, n), make([]bool, n)
	for i, e := range entries {
		members[i], kinds[i], amounts[i], occurred[i], ready[i] = e.MemberID, e.Kind, e.Amount, e.OccurredAt, !e.NotReady
		if e.ProcessOn != "" {
			processOn[i] = &entries[i].ProcessOn
		}
	}
	return queryRows(ctx, s.pool, pgx.RowTo[int64], "insert ledger", `
		INSERT INTO point_ledger (member_id, kind, amount, occurred_at, process_on, ready)
		SELECT m, k, a, o, coalesce(p::date, (o AT TIME ZONE $7)::date + 1), r
		FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::timestamptz[], $5::text[], $6::bool[])
		     WITH ORDINALITY AS u(m, k, a, o, p, r, ord)
		ORDER BY ord
		RETURNING id`, members, kinds, amounts, occurred, processOn, ready, tz.String())
}

// LedgerRow is a point_ledger row as operators see it.
type LedgerRow struct {
	ID          int64
	MemberID    int64
	Kind        string
	Amount      int64
	ProcessOn   string
	ProcessedOn *string
	Ready       bool
}

// GetLedgerRows returns the rows with ids that exist, by id.
func (s *Store) GetLedgerRows(ctx context.Context, ids []int64) ([]LedgerRow, error) {
	return queryRows(ctx, s.pool, pgx.RowToStructByPos[LedgerRow], "ledger rows", `
		SELECT id, member_id, kind, amount, process_on::text, processed_on::text, ready
		FROM point_ledger WHERE id = ANY($1) ORDER BY id`, ids)
}

// MaxLedgerID is the largest point_ledger id committed now (0 when empty):
// step 1's upper bound, so rows inserted while it runs wait for the next run.
func (s *Store) MaxLedgerID(ctx context.Context) (int64, error) {
	var id int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM point_ledger`).Scan(&id); err != nil {
		return 0, fmt.Errorf("store: max ledger id: %w", err)
	}
	return id, nil
}

// DueRow is a due ledger row read by step 1, with what the skip policy needs.
type DueRow struct {
	ID       int64
	MemberID int64
	Kind     string
	Amount   int64
	Ready    bool
	// PriorEarn reports whether the member has an EARN row that occurred
	// before this row (the skip policy rejects a USE row without one).
	PriorEarn bool
}

// ReadDueChunk reads, in tx, the next at most limit rows due for runDate with
// after < id <= bound, by id, through point_ledger_due_idx. It takes no locks:
// WriteChunk re-checks each row under its row lock.
//
// The chunk's transaction commits synchronously: the worker moves its cursor
// past the chunk once the commit is acknowledged, and River may write that
// cursor back (with a failed attempt's error) on its own, so an acknowledged
// chunk must never be lost (docs/design/commits.md).
func (s *Store) ReadDueChunk(ctx context.Context, tx pgx.Tx, runDate string, after, bound int64, limit int) ([]DueRow, error) {
	return queryRows(ctx, tx, pgx.RowToStructByPos[DueRow], fmt.Sprintf("read due chunk %s after %d", runDate, after), `
		SELECT l.id, l.member_id, l.kind, l.amount, l.ready,
		       l.kind <> 'USE' OR EXISTS (
		           SELECT 1 FROM point_ledger e
		           WHERE e.member_id = l.member_id AND e.kind = 'EARN' AND e.occurred_at < l.occurred_at)
		FROM point_ledger l
		WHERE l.process_on <= $1::date AND (l.processed_on IS NULL OR l.processed_on < l.process_on)
		  AND l.id > $2 AND l.id <= $3
		ORDER BY l.id
		LIMIT $4`, runDate, after, bound, limit)
}

// CountDueRows counts the rows ReadDueChunk would still read for runDate
// after id after up to bound: the settlement's total, for its progress. Its
// condition is point_ledger_due_idx's, so it reads due rows only, as step 1 does.
func (s *Store) CountDueRows(ctx context.Context, runDate string, after, bound int64) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `
		SELECT count(*) FROM point_ledger l
		WHERE l.process_on <= $1::date AND (l.processed_on IS NULL OR l.processed_on < l.process_on)
		  AND l.id > $2 AND l.id <= $3`, runDate, after, bound).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count due rows %s after %d: %w", runDate, after, err)
	}
	return n, nil
}

// SkippedRow is a row the skip policy refused, with why.
type SkippedRow struct {
	LedgerID int64
	Reason   string
}

// WriteChunk, in tx, marks the written and skipped rows processed on runDate,
// copies the written ones into daily_batch and records the skipped ones in
// settlement_skip, all in one statement. The UPDATE re-checks that each row is
// still due under its row lock, so a row deferred after it was read is left
// alone, and a concurrent reprocess or defer of a row this chunk marked waits
// for the commit and then sees it processed. It returns how many rows it
// wrote and skipped.
func (s *Store) WriteChunk(ctx context.Context, tx pgx.Tx, runDate string, jobID int64, written []int64, skipped []SkippedRow) (nWritten, nSkipped int64, err error) {
	ids := make([]int64, 0, len(written)+len(skipped))
	ids = append(ids, written...)
	skipIDs, reasons := make([]int64, len(skipped)), make([]string, len(skipped))
	for i, r := range skipped {
		ids = append(ids, r.LedgerID)
		skipIDs[i], reasons[i] = r.LedgerID, r.Reason
	}
	err = tx.QueryRow(ctx, `
		WITH u AS (
		    UPDATE point_ledger l SET processed_on = $1::date
		    WHERE l.id = ANY($3::bigint[])
		      AND l.process_on <= $1::date AND (l.processed_on IS NULL OR l.processed_on < l.process_on)
		    RETURNING l.id, l.member_id, l.kind, l.amount
		), k AS (
		    SELECT * FROM unnest($4::bigint[], $5::text[]) AS k(id, reason)
		), b AS (
		    INSERT INTO daily_batch (run_date, ledger_id, member_id, kind, amount, processed_at, job_id)
		    SELECT $1::date, u.id, u.member_id, u.kind, u.amount, now(), $2
		    FROM u WHERE NOT EXISTS (SELECT 1 FROM k WHERE k.id = u.id)
		    RETURNING 1
		), s AS (
		    INSERT INTO settlement_skip (run_date, ledger_id, reason, job_id)
		    SELECT $1::date, u.id, k.reason, $2 FROM u JOIN k ON k.id = u.id
		    RETURNING 1
		)
		SELECT (SELECT count(*) FROM b), (SELECT count(*) FROM s)`,
		runDate, jobID, ids, skipIDs, reasons).Scan(&nWritten, &nSkipped)
	if err != nil {
		return 0, 0, fmt.Errorf("store: write chunk %s: %w", runDate, err)
	}
	return nWritten, nSkipped, nil
}

// Settlement is one date's point_daily_settlement row.
type Settlement struct {
	RunDate   string
	Earned    int64
	Used      int64
	Expired   int64
	ItemCount int
	SettledAt time.Time
	JobID     int64
	Run       int
}

// SettleDayTx recomputes runDate's settlement from its daily_batch rows, in tx.
func (s *Store) SettleDayTx(ctx context.Context, tx pgx.Tx, runDate string, jobID int64, run int) (Settlement, error) {
	st := Settlement{RunDate: runDate}
	err := tx.QueryRow(ctx, `
		INSERT INTO point_daily_settlement AS p (run_date, earned, used, expired, item_count, settled_at, job_id, run)
		SELECT $1::date,
		       coalesce(sum(amount) FILTER (WHERE kind = 'EARN'), 0),
		       coalesce(sum(amount) FILTER (WHERE kind = 'USE'), 0),
		       coalesce(sum(amount) FILTER (WHERE kind = 'EXPIRE'), 0),
		       count(*), now(), $2, $3
		FROM daily_batch WHERE run_date = $1::date
		ON CONFLICT (run_date) DO UPDATE SET
		    earned = EXCLUDED.earned, used = EXCLUDED.used, expired = EXCLUDED.expired,
		    item_count = EXCLUDED.item_count, settled_at = EXCLUDED.settled_at,
		    job_id = EXCLUDED.job_id, run = EXCLUDED.run
		RETURNING earned, used, expired, item_count, settled_at, job_id, run`, runDate, jobID, run).
		Scan(&st.Earned, &st.Used, &st.Expired, &st.ItemCount, &st.SettledAt, &st.JobID, &st.Run)
	if err != nil {
		return st, fmt.Errorf("store: settle %s: %w", runDate, err)
	}
	return st, nil
}

// RunCollectedTx counts, in tx, the rows the run of job jobID wrote to
// runDate's daily_batch and settlement_skip.
func (s *Store) RunCollectedTx(ctx context.Context, tx pgx.Tx, runDate string, jobID int64) (written, skipped int64, err error) {
	err = tx.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM daily_batch WHERE run_date = $1::date AND job_id = $2),
		       (SELECT count(*) FROM settlement_skip WHERE run_date = $1::date AND job_id = $2)`, runDate, jobID).
		Scan(&written, &skipped)
	if err != nil {
		return 0, 0, fmt.Errorf("store: rows collected by job %d for %s: %w", jobID, runDate, err)
	}
	return written, skipped, nil
}

// GetSettlement returns runDate's settlement, or ErrNotFound.
func (s *Store) GetSettlement(ctx context.Context, runDate string) (Settlement, error) {
	return getSettlement(ctx, s.pool, runDate)
}

// GetSettlementTx is GetSettlement in tx.
func (s *Store) GetSettlementTx(ctx context.Context, tx pgx.Tx, runDate string) (Settlement, error) {
	return getSettlement(ctx, tx, runDate)
}

func getSettlement(ctx context.Context, db DBTX, runDate string) (Settlement, error) {
	st := Settlement{RunDate: runDate}
	err := db.QueryRow(ctx, `
		SELECT earned, used, expired, item_count, settled_at, job_id, run
		FROM point_daily_settlement WHERE run_date = $1::date`, runDate).
		Scan(&st.Earned, &st.Used, &st.Expired, &st.ItemCount, &st.SettledAt, &st.JobID, &st.Run)
	if err != nil {
		return st, fmt.Errorf("store: settlement %s: %w", runDate, notFound(err))
	}
	return st, nil
}

// NextSettlementRunTx is the run number a new run for runDate gets: one more
// than any run on record, in river_job or the archive (whose oldest months
// are dropped; the settlement row keeps the last completed run's number).
func (s *Store) NextSettlementRunTx(ctx context.Context, tx pgx.Tx, runDate string) (int, error) {
	var n int
	err := tx.QueryRow(ctx, `
		SELECT 1 + greatest(
		    (SELECT coalesce(max((args ->> '`+argRun+`')::int), 0) FROM job_history
		     WHERE kind = 'point_settlement' AND args ->> '`+argRunDate+`' = $1),
		    (SELECT coalesce(max(run), 0) FROM point_daily_settlement WHERE run_date = $1::date))`,
		runDate).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: next settlement run %s: %w", runDate, err)
	}
	return n, nil
}

// UnsettledDatesTx returns the dates in [from, to] without a settlement, in order.
func (s *Store) UnsettledDatesTx(ctx context.Context, tx pgx.Tx, from, to string) ([]string, error) {
	return queryRows(ctx, tx, pgx.RowTo[string], fmt.Sprintf("unsettled dates %s..%s", from, to), `
		SELECT d::date::text FROM generate_series($1::date, $2::date, interval '1 day') AS d
		WHERE NOT EXISTS (SELECT 1 FROM point_daily_settlement p WHERE p.run_date = d::date)
		ORDER BY d`, from, to)
}

// LastSettledDate returns the latest run date with a settlement on or before
// onOrBefore, or ErrNotFound when there is none.
func (s *Store) LastSettledDate(ctx context.Context, onOrBefore string) (string, error) {
	var d *string
	err := s.pool.QueryRow(ctx, `SELECT max(run_date)::text FROM point_daily_settlement WHERE run_date <= $1::date`, onOrBefore).Scan(&d)
	if err != nil {
		return "", fmt.Errorf("store: last settled date: %w", err)
	}
	if d == nil {
		return "", fmt.Errorf("store: last settled date: %w", ErrNotFound)
	}
	return *d, nil
}

// LedgerRowsError refuses a change to ledger rows and names them; nothing was
// changed. Unknown is true when the rows do not exist at all.
type LedgerRowsError struct {
	IDs     []int64
	Reason  string
	Unknown bool
}

func (e *LedgerRowsError) Error() string {
	s := make([]string, len(e.IDs))
	for i, id := range e.IDs {
		s[i] = fmt.Sprint(id)
	}
	return fmt.Sprintf("ledger row(s) %s %s; nothing changed", strings.Join(s, ","), e.Reason)
}

// ledgerState is what the reprocess, defer and ready checks look at.
type ledgerState struct {
	id          int64
	processOn   string
	processedOn *string
	processed   bool
}

// lockLedgerRows locks ids' rows in tx (in id order) and fails with a
// LedgerRowsError naming the ids that do not exist.
func lockLedgerRows(ctx context.Context, tx pgx.Tx, ids []int64) ([]ledgerState, error) {
	rows, err := tx.Query(ctx, `
		SELECT id, process_on::text, processed_on::text, coalesce(processed_on >= process_on, false)
		FROM point_ledger WHERE id = ANY($1)
		ORDER BY id
		FOR UPDATE`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ledgerState
	found := make(map[int64]bool, len(ids))
	for rows.Next() {
		var st ledgerState
		if err := rows.Scan(&st.id, &st.processOn, &st.processedOn, &st.processed); err != nil {
			return nil, err
		}
		found[st.id] = true
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var unknown []int64
	for _, id := range ids {
		if !found[id] {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		return nil, &LedgerRowsError{IDs: unknown, Reason: "do not exist", Unknown: true}
	}
	return out, nil
}

// ReprocessLedger sets process_on = on for ids, so the run of date on (or the
// first run after it) collects them again. Every row must exist, be processed
// already (reprocessing a row still waiting is illogical), and have
// been processed before on; otherwise nothing changes and the error is a
// *LedgerRowsError naming the rows.
func (s *Store) ReprocessLedger(ctx context.Context, ids []int64, on string) error {
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		rows, err := lockLedgerRows(ctx, tx, ids)
		if err != nil {
			return err
		}
		var waiting, notBefore []int64
		for _, r := range rows {
			switch {
			case !r.processed:
				waiting = append(waiting, r.id)
			case *r.processedOn >= on:
				notBefore = append(notBefore, r.id)
			}
		}
		if len(waiting) > 0 {
			return &LedgerRowsError{IDs: waiting, Reason: "are not processed yet (only processed rows can be reprocessed)"}
		}
		if len(notBefore) > 0 {
			return &LedgerRowsError{IDs: notBefore, Reason: fmt.Sprintf("were processed on or after %s; reprocess them on a later date", on)}
		}
		_, err = tx.Exec(ctx, `UPDATE point_ledger SET process_on = $2::date WHERE id = ANY($1)`, ids, on)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: reprocess ledger: %w", err)
	}
	return nil
}

// DeferLedger sets process_on = to for ids, which must all exist and be
// unprocessed (due or waiting); otherwise nothing changes and the error is a
// *LedgerRowsError. The caller checks that to is in the future.
func (s *Store) DeferLedger(ctx context.Context, ids []int64, to string) error {
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		rows, err := lockLedgerRows(ctx, tx, ids)
		if err != nil {
			return err
		}
		var done []int64
		for _, r := range rows {
			if r.processed {
				done = append(done, r.id)
			}
		}
		if len(done) > 0 {
			return &LedgerRowsError{IDs: done, Reason: "are already processed (only unprocessed rows can be deferred; use reprocess)"}
		}
		_, err = tx.Exec(ctx, `UPDATE point_ledger SET process_on = $2::date WHERE id = ANY($1)`, ids, to)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: defer ledger: %w", err)
	}
	return nil
}

// MarkLedgerReady sets ready = true on ids (their preceding step finished)
// and returns how many were not ready before. Unknown ids change nothing.
func (s *Store) MarkLedgerReady(ctx context.Context, ids []int64) (int64, error) {
	var changed int64
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := lockLedgerRows(ctx, tx, ids); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE point_ledger SET ready = true WHERE id = ANY($1) AND NOT ready`, ids)
		changed = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: mark ledger ready: %w", err)
	}
	return changed, nil
}

// DemoLedger makes n ledger rows for members 1..members (`enqueue
// demo-ledger`), spread over the day before date in tz and due on date:
// mostly earnings, some uses and expiries. Each member's first row is an
// earning, so the skip policy (no USE before an EARN) passes every row.
func DemoLedger(n, members int, date time.Time, tz *time.Location) []LedgerEntry {
	y, m, d := date.Date()
	dayBefore := time.Date(y, m, d-1, 0, 0, 0, 0, tz)
	kinds := [...]string{"EARN", "USE", "EXPIRE", "EARN", "EARN"}
	// Points per unit of each kind: members use and lose less than they earn.
	units := map[string]int64{"EARN": 100, "USE": 40, "EXPIRE": 10}
	step := 24 * time.Hour / time.Duration(n)
	processOn := date.Format(time.DateOnly)
	out := make([]LedgerEntry, n)
	for i := range out {
		kind := kinds[(i/members)%len(kinds)]
		out[i] = LedgerEntry{MemberID: int64(i%members) + 1, Kind: kind,
			Amount: units[kind] * int64(i%10+1), OccurredAt: dayBefore.Add(time.Duration(i) * step), ProcessOn: processOn}
	}
	return out
}
