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

	"github.com/tidemark/tidemark/coupon"
)

// Coupon is one row of coupon.
type Coupon struct {
	ID             int64      `json:"id"`
	Code           string     `json:"code"`
	Name           string     `json:"name"`
	Description    string     `json:"description"`
	AmountType     string     `json:"amountType"`
	Amount         int        `json:"amount"`
	TotalQuantity  int        `json:"totalQuantity"`
	IssuedQuantity int        `json:"issuedQuantity"`
	Status         string     `json:"status"`
	ExpiresAt      *time.Time `json:"expiresAt,omitempty"`
	CreatedAt      time.Time  `json:"createdAt"`
}

// Coupon statuses and amount types.
const (
	CouponActive   = "ACTIVE"
	CouponInactive = "INACTIVE"
	AmountFix      = coupon.AmountFix
	AmountRate     = coupon.AmountRate
)

// ErrDuplicate is returned when a row with the same unique key exists.
var ErrDuplicate = errors.New("already exists")

const couponColumns = `id, code, name, description, amount_type, amount, total_quantity,
	issued_quantity, status, expires_at, created_at`

// NewCoupon is what CreateCoupon needs.
type NewCoupon struct {
	Code, Name, Description, AmountType string
	Amount, TotalQuantity               int
	Status                              string
	ExpiresAt                           *time.Time
}

// CreateCoupon inserts a coupon; an existing code is ErrDuplicate.
func (s *Store) CreateCoupon(ctx context.Context, c NewCoupon) (Coupon, error) {
	row, err := s.pool.Query(ctx, `
		INSERT INTO coupon (code, name, description, amount_type, amount, total_quantity, status, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		RETURNING `+couponColumns,
		c.Code, c.Name, c.Description, c.AmountType, c.Amount, c.TotalQuantity, c.Status, c.ExpiresAt)
	var out Coupon
	if err == nil {
		// The statement's error comes with its rows, or at once in the
		// simple protocol.
		out, err = pgx.CollectExactlyOneRow(row, pgx.RowToStructByPos[Coupon])
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation {
		return Coupon{}, fmt.Errorf("store: create coupon %s: %w", c.Code, ErrDuplicate)
	}
	if err != nil {
		return Coupon{}, fmt.Errorf("store: create coupon %s: %w", c.Code, err)
	}
	return out, nil
}

// CouponByCode returns the coupon with code, or ErrNotFound.
func (s *Store) CouponByCode(ctx context.Context, code string) (Coupon, error) {
	return s.couponWhere(ctx, s.pool, `code = $1`, code)
}

// CouponByID returns the coupon with id, or ErrNotFound.
func (s *Store) CouponByID(ctx context.Context, id int64) (Coupon, error) {
	return s.couponWhere(ctx, s.pool, `id = $1`, id)
}

func (s *Store) couponWhere(ctx context.Context, db DBTX, where string, arg any) (Coupon, error) {
	rows, err := db.Query(ctx, `SELECT `+couponColumns+` FROM coupon WHERE `+where, arg)
	if err != nil {
		return Coupon{}, fmt.Errorf("store: coupon %v: %w", arg, err)
	}
	c, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[Coupon])
	if err != nil {
		return Coupon{}, fmt.Errorf("store: coupon %v: %w", arg, notFound(err))
	}
	return c, nil
}

// ActiveCouponCodes lists the codes of every ACTIVE coupon.
func (s *Store) ActiveCouponCodes(ctx context.Context) ([]string, error) {
	return queryRows(ctx, s.pool, pgx.RowTo[string], "active coupons", `SELECT code FROM coupon WHERE status = 'ACTIVE' ORDER BY id`)
}

// PersistCouponIssue writes member's coupon_issue row for the coupon with
// code, issued at issuedAt; an existing row is left as it is (idempotent). It
// reports whether a row was inserted; an unknown code is ErrNotFound.
func (s *Store) PersistCouponIssue(ctx context.Context, code string, member int64, issuedAt time.Time) (bool, error) {
	var couponID *int64
	var inserted bool
	err := s.pool.QueryRow(ctx, `
		WITH c AS (SELECT id FROM coupon WHERE code = $1),
		     ins AS (
		         INSERT INTO coupon_issue (coupon_id, member_id, issued_at)
		         SELECT id, $2, $3 FROM c
		         ON CONFLICT (coupon_id, member_id) DO NOTHING
		         RETURNING id)
		SELECT (SELECT id FROM c), EXISTS (SELECT 1 FROM ins)`, code, member, issuedAt).Scan(&couponID, &inserted)
	if err != nil {
		return false, fmt.Errorf("store: persist coupon issue %s/%d: %w", code, member, err)
	}
	if couponID == nil {
		return false, fmt.Errorf("store: persist coupon issue %s/%d: coupon %w", code, member, ErrNotFound)
	}
	return inserted, nil
}

// RecordFailedCouponIssueTx writes a failed_coupon_issue row in tx, unless
// member does hold code in coupon_issue (then the issue did not fail after
// all, nothing is written and false is returned). The caller compensates the
// gate only when it returns true.
func (s *Store) RecordFailedCouponIssueTx(ctx context.Context, tx DBTX, code string, member int64, reason string) (bool, error) {
	tag, err := tx.Exec(ctx, `
		INSERT INTO failed_coupon_issue (coupon_code, member_id, reason)
		SELECT $1, $2, $3
		WHERE NOT EXISTS (
		    SELECT 1 FROM coupon_issue i JOIN coupon c ON c.id = i.coupon_id
		    WHERE c.code = $1 AND i.member_id = $2)`, code, member, reason)
	if err != nil {
		return false, fmt.Errorf("store: record failed coupon issue %s/%d: %w", code, member, err)
	}
	return tag.RowsAffected() == 1, nil
}

// FailedCouponIssue is one row of failed_coupon_issue.
type FailedCouponIssue struct {
	ID         int64     `json:"id"`
	CouponCode string    `json:"couponCode"`
	MemberID   int64     `json:"memberId"`
	Reason     string    `json:"reason"`
	CreatedAt  time.Time `json:"createdAt"`
}

// FailedCouponIssues lists code's failure rows, oldest first.
func (s *Store) FailedCouponIssues(ctx context.Context, code string) ([]FailedCouponIssue, error) {
	return queryRows(ctx, s.pool, pgx.RowToStructByPos[FailedCouponIssue], fmt.Sprintf("failed coupon issues %s", code), `
		SELECT id, coupon_code, member_id, reason, created_at FROM failed_coupon_issue
		WHERE coupon_code = $1 ORDER BY id`, code)
}

// CouponSeats is who holds a seat of a coupon, as Postgres knows it.
type CouponSeats struct {
	// InFlight are the members whose coupon_issue_persist job has not
	// finished: they hold a seat although coupon_issue has no row yet.
	InFlight []int64
	// Issued are the members with a coupon_issue row.
	Issued []int64
}

// Holders lists every member holding a seat; one whose job finished between
// the two reads is in both lists.
func (cs CouponSeats) Holders() []int64 {
	return append(slices.Clone(cs.Issued), cs.InFlight...)
}

// CouponSeats reads who holds a seat of c: the unfinished persist jobs first,
// then coupon_issue. The order matters: a persist job commits its row before
// River marks it completed, so a job that is no longer seen unfinished has its
// row visible to the second read, and no holder is missed.
func (s *Store) CouponSeats(ctx context.Context, c Coupon) (CouponSeats, error) {
	var cs CouponSeats
	var err error
	if cs.InFlight, err = s.inFlightCouponPersists(ctx, c.Code); err != nil {
		return cs, err
	}
	if cs.Issued, err = s.couponIssueMembers(ctx, c.ID); err != nil {
		return cs, err
	}
	return cs, nil
}

// couponIssueMembers lists the members holding coupon id in Postgres.
func (s *Store) couponIssueMembers(ctx context.Context, couponID int64) ([]int64, error) {
	return queryRows(ctx, s.pool, pgx.RowTo[int64], fmt.Sprintf("coupon %d members", couponID), `SELECT member_id FROM coupon_issue WHERE coupon_id = $1 ORDER BY member_id`, couponID)
}

// inFlightCouponPersists lists the members of code whose coupon_issue_persist
// job is not finished yet: available, pending, running, retryable or
// scheduled. The containment test uses River's GIN index on args, so issuing
// pays for no index of ours on river_job.
func (s *Store) inFlightCouponPersists(ctx context.Context, code string) ([]int64, error) {
	return queryRows(ctx, s.pool, pgx.RowTo[int64], fmt.Sprintf("in-flight persists %s", code), `
		SELECT DISTINCT (args ->> '`+argMemberID+`')::bigint FROM river_job
		WHERE kind = 'coupon_issue_persist' AND args @> jsonb_build_object('`+argCouponCode+`', $1::text)
		  AND state IN ('available', 'pending', 'running', 'retryable', 'scheduled')
		ORDER BY 1`, code)
}

// SyncIssuedQuantity sets coupon id's issued_quantity to its COUNT(*) of
// coupon_issue rows (a count, never a read-modify-write) and
// returns the value before and after. With dryRun it only computes them.
func (s *Store) SyncIssuedQuantity(ctx context.Context, couponID int64, dryRun bool) (before, after int, err error) {
	if dryRun {
		err = s.pool.QueryRow(ctx, `
			SELECT issued_quantity, (SELECT count(*) FROM coupon_issue WHERE coupon_id = $1)::int
			FROM coupon WHERE id = $1`, couponID).Scan(&before, &after)
	} else {
		err = s.pool.QueryRow(ctx, `
			UPDATE coupon c SET issued_quantity = (SELECT count(*) FROM coupon_issue WHERE coupon_id = $1)
			FROM (SELECT id, issued_quantity FROM coupon WHERE id = $1) old
			WHERE c.id = old.id
			RETURNING old.issued_quantity, c.issued_quantity`, couponID).Scan(&before, &after)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("store: sync issued quantity %d: %w", couponID, notFound(err))
	}
	return before, after, nil
}

// CouponIssueCount counts coupon id's coupon_issue rows.
func (s *Store) CouponIssueCount(ctx context.Context, couponID int64) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM coupon_issue WHERE coupon_id = $1`, couponID).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: coupon %d issue count: %w", couponID, err)
	}
	return n, nil
}

// ExpireCoupon ends the coupon with code now: its expires_at becomes now()
// unless it already lies in the past, which is kept. The coupon stays in its
// status, so its issues can be exchanged; the issue endpoint refuses it from
// now on. An unknown code is ErrNotFound.
func (s *Store) ExpireCoupon(ctx context.Context, code string) (Coupon, error) {
	rows, err := s.pool.Query(ctx, `
		UPDATE coupon SET expires_at = LEAST(coalesce(expires_at, now()), now())
		WHERE code = $1
		RETURNING `+couponColumns, code)
	if err != nil {
		return Coupon{}, fmt.Errorf("store: expire coupon %s: %w", code, err)
	}
	c, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[Coupon])
	if err != nil {
		return Coupon{}, fmt.Errorf("store: expire coupon %s: %w", code, notFound(err))
	}
	return c, nil
}
