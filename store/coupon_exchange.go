package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// EnsureExchangeCouponTx creates, in tx, the compensation coupon of an
// exchange with code (derived from the exchange job, so a retry finds the
// coupon its earlier attempt made) and returns its id. The coupon is INACTIVE
// — it is granted by the exchange, never claimed through the first-come gate —
// and its total is the number of issues of the expired coupon still to
// exchange. Calling it again returns the existing coupon unchanged.
func (s *Store) EnsureExchangeCouponTx(ctx context.Context, tx pgx.Tx, c NewCoupon, expiredCouponID int64) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, `
		WITH ins AS (
		    INSERT INTO coupon (code, name, description, amount_type, amount, total_quantity, status)
		    SELECT $1, $2, $3, $4, $5,
		           (SELECT count(*) FROM coupon_issue
		            WHERE coupon_id = $6 AND used_at IS NULL AND exchanged_at IS NULL),
		           'INACTIVE'
		    ON CONFLICT (code) DO NOTHING
		    RETURNING id)
		SELECT id FROM ins
		UNION ALL
		SELECT id FROM coupon WHERE code = $1
		LIMIT 1`,
		c.Code, c.Name, c.Description, c.AmountType, c.Amount, expiredCouponID).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("store: ensure exchange coupon %s: %w", c.Code, err)
	}
	return id, nil
}

// ExchangeChunk is what one chunk of an exchange did.
type ExchangeChunk struct {
	LastIssueID int64 // highest coupon_issue id of the expired coupon handled
	Exchanged   int   // issues of the expired coupon marked exchanged
	Issued      int   // compensation issues inserted
}

// CountExchangeableIssues counts the issues ExchangeChunkTx would still take
// after afterID: the exchange's total, for its progress.
func (s *Store) CountExchangeableIssues(ctx context.Context, expiredID, afterID int64) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `
		SELECT count(*) FROM coupon_issue
		WHERE coupon_id = $1 AND used_at IS NULL AND exchanged_at IS NULL AND id > $2`, expiredID, afterID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count exchangeable issues of %d after %d: %w", expiredID, afterID, err)
	}
	return n, nil
}

// ExchangeChunkTx, in tx, takes up to limit unused, unexchanged issues of the
// expired coupon with id greater than afterID (in id order, row-locked), marks
// them exchanged, and issues the compensation coupon to their members (a
// member who already holds it is skipped). It also raises the compensation
// coupon's issued_quantity (and total, if issues appeared since it was made).
func (s *Store) ExchangeChunkTx(ctx context.Context, tx pgx.Tx, expiredID, newID, afterID int64, limit int) (ExchangeChunk, error) {
	var ch ExchangeChunk
	err := tx.QueryRow(ctx, `
		WITH picked AS (
		    SELECT id FROM coupon_issue
		    WHERE coupon_id = $1 AND used_at IS NULL AND exchanged_at IS NULL AND id > $3
		    ORDER BY id LIMIT $4
		    FOR UPDATE),
		marked AS (
		    UPDATE coupon_issue c SET exchanged_at = now()
		    FROM picked p WHERE c.id = p.id
		    RETURNING c.id, c.member_id),
		issued AS (
		    INSERT INTO coupon_issue (coupon_id, member_id)
		    SELECT $2, member_id FROM marked
		    ON CONFLICT (coupon_id, member_id) DO NOTHING
		    RETURNING member_id),
		counted AS (
		    UPDATE coupon SET issued_quantity = issued_quantity + (SELECT count(*) FROM issued),
		                      total_quantity = GREATEST(total_quantity, issued_quantity + (SELECT count(*) FROM issued))
		    WHERE id = $2
		    RETURNING id)
		SELECT coalesce((SELECT max(id) FROM marked), $3),
		       (SELECT count(*) FROM marked)::int,
		       (SELECT count(*) FROM issued)::int,
		       (SELECT count(*) FROM counted)::int`,
		expiredID, newID, afterID, limit).Scan(&ch.LastIssueID, &ch.Exchanged, &ch.Issued, new(int))
	if err != nil {
		return ch, fmt.Errorf("store: exchange chunk %d→%d after %d: %w", expiredID, newID, afterID, err)
	}
	return ch, nil
}

// NotifyExchangedTx writes, in tx, one coupon_notification per holder of the
// compensation coupon newID that has none yet, and returns how many it wrote.
func (s *Store) NotifyExchangedTx(ctx context.Context, tx pgx.Tx, newID int64, message string) (int, error) {
	tag, err := tx.Exec(ctx, `
		INSERT INTO coupon_notification (member_id, coupon_id, message)
		SELECT member_id, coupon_id, $2 FROM coupon_issue WHERE coupon_id = $1
		ON CONFLICT (member_id, coupon_id) DO NOTHING`, newID, message)
	if err != nil {
		return 0, fmt.Errorf("store: notify exchanged %d: %w", newID, err)
	}
	return int(tag.RowsAffected()), nil
}
