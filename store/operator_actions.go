package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// OperatorAction is one bulk retry or cancel an operator ran (operator_action).
type OperatorAction struct {
	ID     int64
	At     time.Time
	Action string
	// Filter is the filter as the command resolved it, a JSON object.
	Filter json.RawMessage
	// Matched is how many jobs the filter listed, Acted how many of them
	// River retried or cancelled.
	Matched, Acted int64
	// By is the operator's OS user, "" when unknown.
	By string
	// FinishedAt is when the last batch committed; zero while the command
	// runs, or when it stopped before going through every matching job.
	FinishedAt time.Time
}

// StartOperatorAction records that an operator is about to act on the jobs
// filter matches, with nothing done yet, and returns the record's id. It
// commits on its own, before the first batch: a command that dies in any
// batch still leaves its record.
func (s *Store) StartOperatorAction(ctx context.Context, action string, filter json.RawMessage, by string) (int64, error) {
	var id int64
	err := s.Pool.QueryRow(ctx, `
		INSERT INTO operator_action (action, filter, by) VALUES ($1, $2, nullif($3, '')) RETURNING id`,
		action, filter, by).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("store: start operator action %s: %w", action, err)
	}
	return id, nil
}

// AddOperatorActionBatchTx adds one batch's counts to operator action id, in
// tx, the transaction that retried or cancelled the batch's jobs, so the
// record never claims a change that rolled back. last marks the batch after
// which no matching job is left: the action is finished.
func (s *Store) AddOperatorActionBatchTx(ctx context.Context, tx pgx.Tx, id, matched, acted int64, last bool) error {
	tag, err := tx.Exec(ctx, `
		UPDATE operator_action
		SET matched = matched + $2, acted = acted + $3,
		    finished_at = CASE WHEN $4 THEN now() END
		WHERE id = $1 AND finished_at IS NULL`, id, matched, acted, last)
	if err != nil {
		return fmt.Errorf("store: operator action %d: add batch: %w", id, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("store: operator action %d: add batch: %w (or already finished)", id, ErrNotFound)
	}
	return nil
}

// OperatorActions returns the latest limit operator actions, newest first.
func (s *Store) OperatorActions(ctx context.Context, limit int) ([]OperatorAction, error) {
	rows, err := s.Pool.Query(ctx, `
		SELECT id, at, action, filter, matched, acted, coalesce(by, ''), finished_at
		FROM operator_action ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: operator actions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OperatorAction, error) {
		var a OperatorAction
		var finished *time.Time
		err := r.Scan(&a.ID, &a.At, &a.Action, &a.Filter, &a.Matched, &a.Acted, &a.By, &finished)
		if finished != nil {
			a.FinishedAt = *finished
		}
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: operator actions: %w", err)
	}
	return out, nil
}
