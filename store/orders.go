package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tidemark/tidemark/order"
	"github.com/tidemark/tidemark/redact"
)

// OrderRequest is one row of order_request.
type OrderRequest struct {
	ID                int64
	Username          string
	TotalPrice        int64
	AppliedYearMonth  string
	Status            string // order.Pending, order.Sending, order.Applied or order.Failed
	ExternalOrderID   *int64
	ExternalCreatedAt *time.Time
	Attempts          int
	LastError         *string
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

const orderRequestCols = `id, username, total_price, applied_year_month, status, external_order_id,
	external_created_at, attempts, last_error, created_at, updated_at`

// DuplicateOrderRequestError says an input's user-month already has a request.
type DuplicateOrderRequestError struct {
	Index            int   // position of the input in the batch; -1 when unknown
	ExistingID       int64 // the existing row's id; 0 when it is unknown (a concurrent insert)
	Username         string
	AppliedYearMonth string
}

func (e *DuplicateOrderRequestError) Error() string {
	if e.Index < 0 {
		return "a user-month of this batch already has an order request (repeated in the batch, or inserted concurrently)"
	}
	if e.ExistingID == 0 {
		return fmt.Sprintf("user %q already has an order request for %s", e.Username, e.AppliedYearMonth)
	}
	return fmt.Sprintf("user %q already has an order request for %s (id %d)", e.Username, e.AppliedYearMonth, e.ExistingID)
}

// InsertOrderRequestsTx inserts in (all valid, distinct user-months) as
// PENDING rows in tx and returns their ids in input order. A user-month that
// already has a row is a *DuplicateOrderRequestError naming the first such
// input; nothing is inserted then (the caller rolls tx back).
func (s *Store) InsertOrderRequestsTx(ctx context.Context, tx pgx.Tx, in []order.Request) ([]int64, error) {
	names := make([]string, len(in))
	prices := make([]int64, len(in))
	months := make([]string, len(in))
	for i, r := range in {
		names[i], prices[i], months[i] = r.Username, r.TotalPrice, r.AppliedYearMonth
	}
	var (
		idx   int
		oldID int64
	)
	err := tx.QueryRow(ctx, `
		SELECT i.ord - 1, o.id
		FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS i(username, month, ord)
		JOIN order_request o ON o.username = i.username AND o.applied_year_month = i.month
		ORDER BY i.ord LIMIT 1`, names, months).Scan(&idx, &oldID)
	switch {
	case err == nil:
		return nil, &DuplicateOrderRequestError{Index: idx, ExistingID: oldID, Username: in[idx].Username, AppliedYearMonth: in[idx].AppliedYearMonth}
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("store: check existing order requests: %w", err)
	}
	rows, err := tx.Query(ctx, `
		INSERT INTO order_request (username, total_price, applied_year_month)
		SELECT username, price, month
		FROM unnest($1::text[], $2::bigint[], $3::text[]) WITH ORDINALITY AS i(username, price, month, ord)
		ORDER BY ord
		RETURNING id`, names, prices, months)
	var ids []int64
	if err == nil {
		// The statement's error comes with its rows, or at once in the
		// simple protocol.
		ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	}
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation { // a concurrent insert won the user-month
			return nil, &DuplicateOrderRequestError{Index: -1}
		}
		return nil, fmt.Errorf("store: insert order requests: %w", err)
	}
	// Rows are inserted in ORDER BY ord order, each taking the next id of
	// the sequence, so the sorted ids are the inputs' ids in input order.
	slices.Sort(ids)
	return ids, nil
}

// GetOrderRequest returns row id, or ErrNotFound.
func (s *Store) GetOrderRequest(ctx context.Context, id int64) (OrderRequest, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+orderRequestCols+` FROM order_request WHERE id = $1`, id)
	if err != nil {
		return OrderRequest{}, fmt.Errorf("store: get order request %d: %w", id, err)
	}
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[OrderRequest])
	if err != nil {
		return OrderRequest{}, fmt.Errorf("store: get order request %d: %w", id, notFound(err))
	}
	return r, nil
}

// MarkOrderAppliedTx sets a SENDING row APPLIED with the third party's order
// id and creation time, in tx. It reports whether the row was SENDING; false
// means something else settled it first.
func (s *Store) MarkOrderAppliedTx(ctx context.Context, tx pgx.Tx, id, externalID int64, externalCreatedAt time.Time) (bool, error) {
	tag, err := tx.Exec(ctx, `
		UPDATE order_request
		SET status = 'APPLIED', external_order_id = $2, external_created_at = $3, last_error = NULL, updated_at = now()
		WHERE id = $1 AND status = 'SENDING'`, id, externalID, externalCreatedAt)
	if err != nil {
		return false, fmt.Errorf("store: mark order request %d applied: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// MarkOrderFailed sets a SENDING row FAILED with reason, reporting whether it
// was SENDING. The reason is stored redacted, like every last_error.
func (s *Store) MarkOrderFailed(ctx context.Context, id int64, reason string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE order_request SET status = 'FAILED', last_error = $2, updated_at = now()
		WHERE id = $1 AND status = 'SENDING'`, id, redact.Text(reason))
	if err != nil {
		return false, fmt.Errorf("store: mark order request %d failed: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// RecordOrderError keeps the last retryable error of a row's attempt, unless
// the row was settled meanwhile. The message is stored redacted: it is
// served by the API and shown to operators, and a partner's URL in it may
// carry credentials or keys.
func (s *Store) RecordOrderError(ctx context.Context, id int64, msg string) error {
	if _, err := s.pool.Exec(ctx, `
		UPDATE order_request SET last_error = $2, updated_at = now() WHERE id = $1 AND status IN ('PENDING', 'SENDING')`, id, redact.Text(msg)); err != nil {
		return fmt.Errorf("store: record order request %d error: %w", id, err)
	}
	return nil
}

// OrderRequestsAfter returns up to limit rows with id > afterID, by id.
func (s *Store) OrderRequestsAfter(ctx context.Context, afterID int64, limit int) ([]OrderRequest, error) {
	return queryRows(ctx, s.pool, pgx.RowToStructByPos[OrderRequest], "list order requests", `SELECT `+orderRequestCols+` FROM order_request WHERE id > $1 ORDER BY id LIMIT $2`, afterID, limit)
}

// OrderStatusCounts counts order_request rows by status.
func (s *Store) OrderStatusCounts(ctx context.Context) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT status, count(*) FROM order_request GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("store: order status counts: %w", err)
	}
	out := map[string]int64{}
	var (
		st string
		n  int64
	)
	_, err = pgx.ForEachRow(rows, []any{&st, &n}, func() error { out[st] = n; return nil })
	if err != nil {
		return nil, fmt.Errorf("store: order status counts: %w", err)
	}
	return out, nil
}

// OrderClaim is one row's outcome of ClaimOrderRequests.
type OrderClaim struct {
	Row        OrderRequest
	PrevStatus string
}

// ClaimOrderRequests is the first step of order_submit attempts: under each
// row's lock (taken in id order), a PENDING, SENDING or FAILED row becomes
// SENDING with one more attempt, committed before the caller calls the third
// party. It returns each row with the status it had before: SENDING means an
// earlier attempt's outcome is unknown; FAILED means an operator re-queued a
// refused request (its cancelled job). APPLIED rows come back unchanged,
// with APPLIED as the previous status; missing ids are absent from the map.
// One statement serves the attempts running at the same time.
func (s *Store) ClaimOrderRequests(ctx context.Context, ids []int64) (map[int64]OrderClaim, error) {
	// One implicit transaction (a batch is one pipeline ending in one Sync):
	// the setting lasts for this statement only. A custom plan was made for
	// every claim, costing about as much as running it.
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('plan_cache_mode', 'force_generic_plan', true)`)
	b.Queue(`
		WITH locked AS (
			SELECT id, status FROM order_request WHERE id = ANY($1) ORDER BY id FOR UPDATE
		), claimed AS (
			UPDATE order_request o
			SET status = 'SENDING', attempts = o.attempts + 1, updated_at = now()
			FROM locked p
			WHERE o.id = p.id AND p.status IN ('PENDING', 'SENDING', 'FAILED')
			RETURNING o.id, o.username, o.total_price, o.applied_year_month, o.status, o.external_order_id,
				o.external_created_at, o.attempts, o.last_error, o.created_at, o.updated_at, p.status AS prev
		)
		SELECT * FROM claimed
		UNION ALL
		SELECT o.id, o.username, o.total_price, o.applied_year_month, o.status, o.external_order_id,
			o.external_created_at, o.attempts, o.last_error, o.created_at, o.updated_at, o.status
		FROM order_request o JOIN locked p ON p.id = o.id
		WHERE p.status = 'APPLIED'`, ids)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("store: claim %d order requests: %w", len(ids), err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("store: claim %d order requests: %w", len(ids), err)
	}
	out := make(map[int64]OrderClaim, len(ids))
	var c OrderClaim
	o := &c.Row
	_, err = pgx.ForEachRow(rows, []any{&o.ID, &o.Username, &o.TotalPrice, &o.AppliedYearMonth, &o.Status, &o.ExternalOrderID,
		&o.ExternalCreatedAt, &o.Attempts, &o.LastError, &o.CreatedAt, &o.UpdatedAt, &c.PrevStatus}, func() error {
		out[o.ID] = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim %d order requests: %w", len(ids), err)
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("store: claim %d order requests: %w", len(ids), err)
	}
	return out, nil
}

// AppliedOrder is the third party's order for one row.
type AppliedOrder struct {
	ID                int64
	ExternalOrderID   int64
	ExternalCreatedAt time.Time
}

// ApplyOrders marks the SENDING rows of orders APPLIED with the third
// party's id and time, in one statement; rows no longer SENDING are left as
// they are. It commits synchronously before it returns: the rows' jobs are
// completed by River after Work returns, and a job whose completion is lost
// finds its row APPLIED on its next attempt and ends without a call.
//
// plan_cache_mode force_generic_plan makes the UPDATE run its cached plan:
// a custom plan was made at every execution and cost as much as running it.
// The setting and the UPDATE go as one batch, which Postgres runs as one
// implicit transaction (one Sync), so the setting lasts for it only.
func (s *Store) ApplyOrders(ctx context.Context, orders []AppliedOrder) error {
	ids := make([]int64, len(orders))
	ext := make([]int64, len(orders))
	at := make([]time.Time, len(orders))
	for i, o := range orders {
		ids[i], ext[i], at[i] = o.ID, o.ExternalOrderID, o.ExternalCreatedAt
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('plan_cache_mode', 'force_generic_plan', true)`)
	b.Queue(`
		UPDATE order_request o
		SET status = 'APPLIED', external_order_id = a.ext, external_created_at = a.at, last_error = NULL, updated_at = now()
		FROM (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[]) AS a(id, ext, at) ORDER BY id) a
		WHERE o.id = a.id AND o.status = 'SENDING'`, ids, ext, at)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("store: apply %d orders: %w", len(orders), err)
	}
	return nil
}

// StuckSending returns up to limit SENDING rows unchanged for longer than
// olderThan, the longest-unchanged first: requests whose outcome no attempt
// has settled. It scans order_request (status has no index, so that both
// updates of a row stay HOT); the operator pages read it on demand only.
func (s *Store) StuckSending(ctx context.Context, olderThan time.Duration, limit int) ([]OrderRequest, error) {
	return queryRows(ctx, s.pool, pgx.RowToStructByPos[OrderRequest], "stuck sending", `SELECT `+orderRequestCols+` FROM order_request
		WHERE status = $1 AND updated_at < now() - make_interval(secs => $2)
		ORDER BY updated_at, id LIMIT $3`, order.Sending, olderThan.Seconds(), limit)
}
