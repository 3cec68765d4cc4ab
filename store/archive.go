package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ArchiveMonthsAhead is how many months past the current one always have
// their job_archive partition, so the cleaner's inserts never wait on one.
const ArchiveMonthsAhead = 2

// ArchiveMaintenance is what one MaintainArchive did.
type ArchiveMaintenance struct {
	Created []string `json:"created"`
	Dropped []string `json:"dropped"`
	// LeasesDeleted are job leases (job_lease) past LeaseRetention.
	LeasesDeleted int64 `json:"leases_deleted"`
}

// LeaseRetention is how long a job's lease is kept after its last claim:
// far longer than any attempt runs. A stale attempt finds its lease gone and
// is fenced all the same.
const LeaseRetention = 48 * time.Hour

// MaintainArchive creates job_archive's monthly partitions from the current
// month (at now, UTC) to ArchiveMonthsAhead ahead, and one for any month whose
// rows landed in the default partition, moving them in; then it drops, as
// whole partitions, every month that ended at least retention before now.
// Idempotent, and serialised by an advisory lock so two workers never race
// on the DDL.
func (s *Store) MaintainArchive(ctx context.Context, retention time.Duration, now time.Time) (ArchiveMaintenance, error) {
	var out ArchiveMaintenance
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('tidemark_archive_maintain'))`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT m FROM (
				SELECT tidemark_archive_ensure_month(month::date) AS m FROM (
					SELECT (date_trunc('month', $1::timestamptz AT TIME ZONE 'UTC') + make_interval(months => i)) AS month
					FROM generate_series(0, $2::int) AS i
					UNION
					SELECT DISTINCT date_trunc('month', finalized_at AT TIME ZONE 'UTC') FROM job_archive_default
				) months ORDER BY month
			) created WHERE m IS NOT NULL`, now, ArchiveMonthsAhead)
		if err != nil {
			return err
		}
		if out.Created, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		horizon := now.Add(-retention).UTC()
		rows, err = tx.Query(ctx, `
			SELECT c.relname FROM pg_inherits i
			JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = 'job_archive'::regclass AND c.relname ~ '^job_archive_[0-9]{4}_[0-9]{2}$'
			  AND to_date(substr(c.relname, 13), 'YYYY_MM') + interval '1 month' <= $1::timestamptz AT TIME ZONE 'UTC'
			ORDER BY c.relname`, horizon)
		if err != nil {
			return err
		}
		if out.Dropped, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		for _, name := range out.Dropped {
			if _, err := tx.Exec(ctx, `DROP TABLE `+pgx.Identifier{name}.Sanitize()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("store: maintain job archive: %w", err)
	}
	return out, nil
}

// ArchivePartitions lists job_archive's monthly partitions, oldest first.
func (s *Store) ArchivePartitions(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'job_archive'::regclass AND c.relname <> 'job_archive_default'
		ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("store: archive partitions: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: archive partitions: %w", err)
	}
	return names, nil
}
