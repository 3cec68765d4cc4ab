package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// livenessLockSpace seeds the hash that turns a River client id into the key
// of its liveness lock.
const livenessLockSpace = 7250400

// ErrClientIDInUse is returned when another live process holds the liveness
// lock of the same client id.
var ErrClientIDInUse = errors.New("store: river client id already held by a live process")

// ClientLiveness is a session advisory lock held, on a connection of its
// own, for as long as a worker process lives: Postgres releases it the
// moment the process dies (its connection closes), which is how other
// workers tell a dead worker's running jobs from a live one's.
type ClientLiveness struct {
	store    *Store
	clientID string
	conn     *pgx.Conn
}

// HoldClientLiveness takes the liveness lock of clientID.
func (s *Store) HoldClientLiveness(ctx context.Context, clientID string) (*ClientLiveness, error) {
	conn, err := s.lockLiveness(ctx, clientID)
	if err != nil {
		return nil, err
	}
	return &ClientLiveness{store: s, clientID: clientID, conn: conn}, nil
}

func (s *Store) lockLiveness(ctx context.Context, clientID string) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.Pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("store: liveness connection: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, $2))`, clientID, livenessLockSpace).Scan(&ok); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("store: liveness lock: %w", err)
	}
	if !ok {
		conn.Close(ctx)
		return nil, fmt.Errorf("%w: %s", ErrClientIDInUse, clientID)
	}
	return conn, nil
}

// Keep checks that the lock's connection is alive and, if it was lost (a
// Postgres restart, a network cut), takes the lock again on a new one. Until
// it does, other workers may take this process's running jobs for orphans.
// Not safe for concurrent use.
func (l *ClientLiveness) Keep(ctx context.Context) error {
	if err := l.conn.Ping(ctx); err == nil {
		return nil
	}
	_ = l.conn.Close(ctx)
	conn, err := l.store.lockLiveness(ctx, l.clientID)
	if err != nil {
		return fmt.Errorf("store: retake liveness lock: %w", err)
	}
	l.conn = conn
	return nil
}

// Close releases the lock (by closing its connection).
func (l *ClientLiveness) Close(ctx context.Context) error { return l.conn.Close(ctx) }

// ReclaimOrphanedJobs hands back running jobs of kinds whose worker process
// is gone — its client id's liveness lock is free — and that have run for at
// least minAge: available again at once, or discarded after their last
// attempt, with an error saying why, as River's rescuer would (it only does
// so after the rescue window). Jobs of clients that never took a liveness
// lock look orphaned too, so only processes that take one may run kinds
// listed here. It returns the ids handed back.
func (s *Store) ReclaimOrphanedJobs(ctx context.Context, kinds []string, minAge time.Duration) ([]int64, error) {
	rows, err := s.Pool.Query(ctx, `
		WITH orphans AS (
			SELECT j.id FROM river_job j
			WHERE j.state = 'running' AND j.kind = ANY($1)
			  AND j.attempted_at < now() - make_interval(secs => $2)
			  AND NOT EXISTS (
				SELECT 1 FROM pg_locks l,
					LATERAL (SELECT hashtextextended(j.attempted_by[cardinality(j.attempted_by)], $3) AS k) h
				WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
				  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
				  AND l.classid::bigint = (h.k >> 32) & 4294967295
				  AND l.objid::bigint = h.k & 4294967295)
			FOR UPDATE OF j SKIP LOCKED
		)
		UPDATE river_job j SET
			state = CASE WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'available' END::river_job_state,
			scheduled_at = now(),
			finalized_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END,
			errors = array_append(j.errors, jsonb_build_object(
				'at', now(), 'attempt', j.attempt, 'trace', '',
				'error', 'worker ' || j.attempted_by[cardinality(j.attempted_by)] || ' is gone (liveness lock free); job reclaimed'))
		FROM orphans o
		WHERE j.id = o.id AND j.state = 'running'
		RETURNING j.id`, kinds, minAge.Seconds(), livenessLockSpace)
	if err != nil {
		return nil, fmt.Errorf("store: reclaim orphaned jobs: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("store: reclaim orphaned jobs: %w", err)
	}
	return ids, nil
}
