package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Attempt is one attempt of one job: River's job id and attempt number.
type Attempt struct {
	JobID   int64
	Attempt int
}

// ErrStale is the error of a write an attempt may no longer make: a later
// attempt owns its job.
var ErrStale = errors.New("stale attempt: a later attempt owns the job")

// ClaimLeases makes each attempt the owner of its job (job_lease), unless a
// later attempt already is, and returns the jobs it owns now. A claim waits
// for any transaction that read the job's lease FOR SHARE (an earlier
// attempt's write) to end: nothing an earlier attempt writes commits after a
// later one took over.
func (s *Store) ClaimLeases(ctx context.Context, attempts []Attempt) (map[int64]bool, error) {
	// One row per job, the latest attempt's: one statement cannot update a
	// row twice.
	latest := map[int64]int{}
	for _, a := range attempts {
		latest[a.JobID] = max(latest[a.JobID], a.Attempt)
	}
	unique := make([]Attempt, 0, len(latest))
	for id, n := range latest {
		unique = append(unique, Attempt{JobID: id, Attempt: n})
	}
	ids, nums := splitAttempts(unique)
	rows, err := s.pool.Query(ctx, `
		INSERT INTO job_lease (job_id, attempt)
		SELECT * FROM unnest($1::bigint[], $2::int[])
		ON CONFLICT (job_id) DO UPDATE SET attempt = excluded.attempt, claimed_at = now()
		WHERE job_lease.attempt <= excluded.attempt
		RETURNING job_id`, ids, nums)
	if err != nil {
		return nil, fmt.Errorf("store: claim %d job lease(s): %w", len(attempts), err)
	}
	return collectOwned(rows, len(attempts))
}

// HeldLeases returns which of attempts still own their jobs (read without a
// lock: the answer for the end of an attempt, whose writes are fenced each
// in its own transaction).
func (s *Store) HeldLeases(ctx context.Context, attempts []Attempt) (map[int64]bool, error) {
	ids, nums := splitAttempts(attempts)
	rows, err := s.pool.Query(ctx, `
		SELECT l.job_id FROM job_lease l JOIN unnest($1::bigint[], $2::int[]) AS a(job_id, attempt)
			ON l.job_id = a.job_id AND l.attempt = a.attempt`, ids, nums)
	if err != nil {
		return nil, fmt.Errorf("store: %d job lease(s): %w", len(attempts), err)
	}
	return collectOwned(rows, len(attempts))
}

// CheckLeaseTx is the fence of a write: in tx, it reads a's lease FOR SHARE,
// holding off a later attempt's claim until tx ends, and returns ErrStale
// unless a still owns its job.
func (s *Store) CheckLeaseTx(ctx context.Context, tx pgx.Tx, a Attempt) error {
	var attempt int
	err := tx.QueryRow(ctx, `SELECT attempt FROM job_lease WHERE job_id = $1 FOR SHARE`, a.JobID).Scan(&attempt)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && attempt != a.Attempt) {
		return fmt.Errorf("store: job %d attempt %d: %w", a.JobID, a.Attempt, ErrStale)
	}
	if err != nil {
		return fmt.Errorf("store: job %d lease: %w", a.JobID, err)
	}
	return nil
}

// RunningAttempts returns which of attempts River still runs: their job is
// running with that attempt number (a read of river_job, nothing more).
// It is the owner check of kinds that claim no lease.
func (s *Store) RunningAttempts(ctx context.Context, attempts []Attempt) (map[int64]bool, error) {
	ids, nums := splitAttempts(attempts)
	rows, err := s.pool.Query(ctx, `
		SELECT j.id FROM river_job j JOIN unnest($1::bigint[], $2::int[]) AS a(job_id, attempt)
			ON j.id = a.job_id AND j.attempt = a.attempt
		WHERE j.state = 'running'`, ids, nums)
	if err != nil {
		return nil, fmt.Errorf("store: %d running attempt(s): %w", len(attempts), err)
	}
	return collectOwned(rows, len(attempts))
}

// JobSettled reports whether River can no longer run job id within margin:
// it is finished (completed, cancelled, discarded) or gone, or it waits to
// be retried at least margin from now. A stale attempt may end then without
// its end changing a later attempt's job (River writes an attempt's end only
// to a running job).
func (s *Store) JobSettled(ctx context.Context, id int64, margin time.Duration) (bool, error) {
	var settled bool
	err := s.pool.QueryRow(ctx, `
		SELECT state IN ('completed', 'cancelled', 'discarded')
		    OR (state IN ('retryable', 'scheduled') AND scheduled_at > now() + $2::interval)
		FROM river_job WHERE id = $1`, id, margin).Scan(&settled)
	if errors.Is(err, pgx.ErrNoRows) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: job %d state: %w", id, err)
	}
	return settled, nil
}

// DeleteLeases deletes the leases claimed more than olderThan ago: no attempt
// runs that long, and a missing lease fences its old attempts all the same.
func (s *Store) DeleteLeases(ctx context.Context, olderThan time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM job_lease WHERE claimed_at < now() - $1::interval`, olderThan)
	if err != nil {
		return 0, fmt.Errorf("store: delete old job leases: %w", err)
	}
	return tag.RowsAffected(), nil
}

// IsLockTimeout reports whether err is a lock wait Postgres ended
// (lock_timeout): the statement's transaction rolled back, and may be tried
// again.
func IsLockTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == pgerrcode.LockNotAvailable
}

func splitAttempts(attempts []Attempt) ([]int64, []int32) {
	ids := make([]int64, len(attempts))
	nums := make([]int32, len(attempts))
	for i, a := range attempts {
		ids[i], nums[i] = a.JobID, int32(a.Attempt)
	}
	return ids, nums
}

func collectOwned(rows pgx.Rows, n int) (map[int64]bool, error) {
	owned := make(map[int64]bool, n)
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: leases: %w", err)
		}
		owned[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: leases: %w", err)
	}
	return owned, nil
}

// isStaleError reports whether err is tidemark_require_running's refusal.
func isStaleError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "TMST1"
}
