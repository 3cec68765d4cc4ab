package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/internal/combine"
	"github.com/tidemark/tidemark/store"
)

// CouponIssuePersistArgs writes one coupon_issue row after the gate let the
// member through. It is not unique: the write is idempotent (UNIQUE
// (coupon_id, member_id), ON CONFLICT DO NOTHING), and a member whose earlier
// job failed for good may be issued again with a job of its own.
type CouponIssuePersistArgs struct {
	CouponCode string    `json:"coupon_code"`
	MemberID   int64     `json:"member_id"`
	IssuedAt   time.Time `json:"issued_at"`
}

// Kind is coupon_issue_persist.
func (CouponIssuePersistArgs) Kind() string { return "coupon_issue_persist" }

// unleased: coupon_issue_persist claims no lease (fence.go). It writes its
// row ON CONFLICT DO NOTHING, which a stale attempt may do as well as a
// fresh one.
func (CouponIssuePersistArgs) unleased() {}

// InsertOpts: the member queue, where a rush's backlog delays no batch; 5
// attempts (River's backoff spreads them over about six minutes, within which
// the reconciliation leaves the member alone). Jobs of this kind inserted in
// the default queue by an older release are worked there all the same.
func (CouponIssuePersistArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMember, MaxAttempts: 5}
}

// CouponIssuePersistWorker writes the row. On the job's final failure — its
// last attempt, or a failure no retry can fix — it records the member in
// failed_coupon_issue and gives the seat back in Redis (the second safety
// layer: DLQ + compensation), unless the row turns out to exist.
type CouponIssuePersistWorker struct{ worker[CouponIssuePersistArgs] }

// NewCouponIssuePersistWorker returns the persist worker, one write bounded
// to 10 s.
func NewCouponIssuePersistWorker(deps Deps) *CouponIssuePersistWorker {
	return &CouponIssuePersistWorker{worker[CouponIssuePersistArgs]{deps: deps, timeout: 10 * time.Second}}
}

// Work persists the issue.
func (w *CouponIssuePersistWorker) Work(ctx context.Context, job *river.Job[CouponIssuePersistArgs]) error {
	a := job.Args
	if w.deps.Gate == nil {
		return errors.New("coupon_issue_persist: no coupon gate configured (REDIS_URL)")
	}
	if a.CouponCode == "" || a.MemberID <= 0 {
		// Nothing in Redis can match such args; nothing to compensate.
		return river.JobCancel(fmt.Errorf("coupon_issue_persist: invalid args %q/%d", a.CouponCode, a.MemberID))
	}
	issuedAt := a.IssuedAt
	if issuedAt.IsZero() {
		issuedAt = job.CreatedAt
	}
	// Hold the seat before writing. Normally the member is in the issued set
	// (AlreadyIssued). It is not when its seat was given back while this job
	// was late — the handler undid an insert whose outcome it could not know,
	// or a reconciliation rolled back an issue whose job came after its grace
	// period. Then the job takes a seat again if one is left, and fails for
	// good if the coupon sold out meanwhile: a late job never oversells. A
	// gate that is not loaded cannot tell; every rebuild counts this
	// unfinished job as holding a seat, so writing is consistent with it.
	res, err := w.deps.Gate.Issue(ctx, a.CouponCode, a.MemberID)
	if err != nil {
		return err
	}
	if res == coupongate.SoldOut {
		reason := "seat given back before the persist job ran, and the coupon sold out meanwhile"
		recorded, cerr := CompensateIssue(ctx, w.deps, a.CouponCode, a.MemberID, reason)
		if cerr != nil {
			return cerr
		}
		if !recorded { // the member's row exists: an earlier job wrote it
			return nil
		}
		return river.JobCancel(fmt.Errorf("coupon_issue_persist: %s/%d: %s", a.CouponCode, a.MemberID, reason))
	}
	_, err = w.deps.Store.PersistCouponIssue(ctx, a.CouponCode, a.MemberID, issuedAt)
	if err == nil {
		return nil
	}
	final := job.Attempt >= job.MaxAttempts
	if errors.Is(err, store.ErrNotFound) {
		final = true
		err = river.JobCancel(err)
	}
	if !final {
		return err
	}
	reason := fmt.Sprintf("persist failed for good (attempt %d of %d): %v", job.Attempt, job.MaxAttempts, err)
	if _, cerr := CompensateIssue(ctx, w.deps, a.CouponCode, a.MemberID, reason); cerr != nil {
		return errors.Join(err, cerr)
	}
	w.deps.Logger.WarnContext(ctx, "coupon issue compensated", "coupon", a.CouponCode, "member", a.MemberID, "err", err)
	return err
}

// CompensateIssue undoes member's seat of code in the gate and records why in
// failed_coupon_issue, in that order inside one transaction: if Redis cannot
// be reached nothing is recorded (and the caller's retry, or the next
// reconciliation, tries again). It does nothing when member holds the coupon
// in Postgres, and reports whether it compensated. It runs even when ctx is
// cancelled (a timed-out final attempt must still compensate), bounded by 10 s.
func CompensateIssue(ctx context.Context, deps Deps, code string, member int64, reason string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var recorded bool
	err := deps.Store.InTx(ctx, func(tx pgx.Tx) error {
		var err error
		recorded, err = deps.Store.RecordFailedCouponIssueTx(ctx, tx, code, member, reason)
		if err != nil || !recorded {
			return err
		}
		if _, err := deps.Gate.Undo(ctx, code, member); err != nil {
			return fmt.Errorf("jobs: compensate %s/%d: %w", code, member, err)
		}
		return nil
	})
	return recorded && err == nil, err
}

// PersistEnqueuer inserts coupon_issue_persist jobs for concurrently arriving
// issue requests in shared transactions (one InsertMany per batch), so the
// HTTP endpoint pays one Postgres commit per batch instead of per request. A
// failing batch is retried one job at a time, so each request learns its own
// outcome. Each batch is bounded by InsertTimeout.
type PersistEnqueuer struct {
	c *combine.Combiner[CouponIssuePersistArgs]
}

// InsertTimeout bounds one batch insert of persist jobs: the longest time
// between an issue's Redis step and its job being committed (or undone).
const InsertTimeout = 5 * time.Second

// NewPersistEnqueuer returns an enqueuer inserting with client.
func NewPersistEnqueuer(client *Client) *PersistEnqueuer {
	c := combine.New(2, 1000, func(ctx context.Context, batch []CouponIssuePersistArgs) error {
		params := make([]river.InsertManyParams, len(batch))
		for i, a := range batch {
			params[i] = river.InsertManyParams{Args: a}
		}
		if _, err := client.InsertManyFast(ctx, params); err != nil {
			return fmt.Errorf("jobs: insert %d coupon_issue_persist job(s): %w", len(batch), err)
		}
		return nil
	}).WithFlushTimeout(InsertTimeout)
	return &PersistEnqueuer{c: c}
}

// Enqueue inserts args' job (batched with concurrent calls) and returns once
// it is committed or has failed.
func (e *PersistEnqueuer) Enqueue(ctx context.Context, args CouponIssuePersistArgs) error {
	return e.c.Do(ctx, args)
}
