package store

import (
	"context"
	"fmt"
	"time"
)

// TherapyDrift is a sampled therapy_statistics row whose stored figures differ
// from a recomputation from therapy_perform.
type TherapyDrift struct {
	TherapyUserID   int64  `json:"therapyUserId"`
	Year            int    `json:"year"`
	Month           int    `json:"month"`
	StoredCount     int    `json:"storedPerformCount"`
	ActualCount     int    `json:"actualPerformCount"`
	StoredDuration  int64  `json:"storedDurationSeconds"`
	ActualDuration  int64  `json:"actualDurationSeconds"`
	StoredCompleted int    `json:"storedCompletedCount"`
	ActualCompleted int    `json:"actualCompletedCount"`
	StoredDays      int    `json:"storedActiveDays"`
	ActualDays      int    `json:"actualActiveDays"`
	Note            string `json:"note,omitempty"`
}

// SampleTherapyDrift recomputes up to sample randomly chosen
// therapy_statistics rows from therapy_perform (months in tz), writing
// nothing, and returns how many it checked and the rows that differ.
func (s *Store) SampleTherapyDrift(ctx context.Context, sample int, tz *time.Location) (checked int, drifts []TherapyDrift, err error) {
	return s.sampleTherapyDrift(ctx, sample, nil, nil, tz)
}

// SampleTherapyMonthDrift is SampleTherapyDrift over the rows of one
// year-month only.
func (s *Store) SampleTherapyMonthDrift(ctx context.Context, sample, year, month int, tz *time.Location) (checked int, drifts []TherapyDrift, err error) {
	return s.sampleTherapyDrift(ctx, sample, &year, &month, tz)
}

// sampleTherapyDrift samples the rows of year-month, or of every month when
// both are nil.
func (s *Store) sampleTherapyDrift(ctx context.Context, sample int, year, month *int, tz *time.Location) (checked int, drifts []TherapyDrift, err error) {
	rows, err := s.pool.Query(ctx, `
		WITH sampled AS (
		    SELECT * FROM therapy_statistics
		    WHERE $3::int IS NULL OR (year = $3 AND month = $4)
		    ORDER BY random() LIMIT $1),
		recomputed AS (
		    SELECT s.therapy_user_id, s.year, s.month,
		           s.perform_count, s.completed_count, s.total_duration_seconds, s.active_days,
		           s.first_performed_at, s.last_performed_at,
		           a.cnt, a.completed, a.duration, a.days, a.first_at, a.last_at
		    FROM sampled s
		    CROSS JOIN LATERAL (
		        SELECT count(p.id)::int AS cnt,
		               (count(p.id) FILTER (WHERE p.completed))::int AS completed,
		               coalesce(sum(p.duration_seconds), 0)::bigint AS duration,
		               count(DISTINCT (p.performed_at AT TIME ZONE $2)::date)::int AS days,
		               min(p.performed_at) AS first_at, max(p.performed_at) AS last_at
		        FROM therapy_perform p
		        WHERE p.therapy_user_id = s.therapy_user_id
		          AND p.performed_at >= make_timestamptz(s.year, s.month, 1, 0, 0, 0, $2)
		          AND p.performed_at <  make_timestamptz(s.year, s.month, 1, 0, 0, 0, $2) + interval '1 month') a)
		SELECT therapy_user_id, year, month, perform_count, cnt, total_duration_seconds, duration,
		       completed_count, completed, active_days, days,
		       CASE WHEN first_performed_at IS DISTINCT FROM first_at OR last_performed_at IS DISTINCT FROM last_at
		            THEN 'first/last performed_at differ' ELSE '' END,
		       (perform_count <> cnt OR completed_count <> completed OR total_duration_seconds <> duration
		        OR active_days <> days OR first_performed_at IS DISTINCT FROM first_at
		        OR last_performed_at IS DISTINCT FROM last_at) AS drifted
		FROM recomputed
		ORDER BY therapy_user_id, year, month`, sample, tz.String(), year, month)
	if err != nil {
		return 0, nil, fmt.Errorf("store: sample therapy drift: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d TherapyDrift
		var drifted bool
		if err := rows.Scan(&d.TherapyUserID, &d.Year, &d.Month, &d.StoredCount, &d.ActualCount,
			&d.StoredDuration, &d.ActualDuration, &d.StoredCompleted, &d.ActualCompleted,
			&d.StoredDays, &d.ActualDays, &d.Note, &drifted); err != nil {
			return 0, nil, fmt.Errorf("store: sample therapy drift: %w", err)
		}
		checked++
		if drifted {
			drifts = append(drifts, d)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("store: sample therapy drift: %w", err)
	}
	return checked, drifts, nil
}
