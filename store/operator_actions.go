package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// OperatorAction is one change an operator made (operator_action): a bulk
// retry or cancel with enqueue, a mutating API request, a River UI action.
type OperatorAction struct {
	ID     int64
	At     time.Time
	Action string
	// Via is how: ViaCLI, ViaAPI or ViaRiverUI.
	Via string
	// Filter is what the action was for, a JSON object: the filter as the
	// command resolved it, the API request's body, River UI's job ids or
	// queue.
	Filter json.RawMessage
	// Matched is how many jobs the filter listed, Acted how many of them
	// River retried or cancelled.
	Matched, Acted int64
	// By is the operator's OS user (cli) or name (api, riverui), "" when
	// unknown.
	By string
	// Status is the HTTP status the request was answered (api, riverui), 0
	// while it runs or for the CLI; Addr is the client's address.
	Status int
	Addr   string
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
	err := s.pool.QueryRow(ctx, `
		INSERT INTO operator_action (action, filter, by) VALUES ($1, $2::jsonb, nullif($3, '')) RETURNING id`,
		action, jsonText(filter), by).Scan(&id)
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
	rows, err := s.pool.Query(ctx, `
		SELECT id, at, action, via, filter, matched, acted, coalesce(by, ''), coalesce(status, 0), coalesce(addr, ''), finished_at
		FROM operator_action ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: operator actions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OperatorAction, error) {
		var a OperatorAction
		var finished *time.Time
		err := r.Scan(&a.ID, &a.At, &a.Action, &a.Via, &a.Filter, &a.Matched, &a.Acted, &a.By, &a.Status, &a.Addr, &finished)
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

// How an operator acted (operator_action.via).
const (
	ViaCLI     = "cli"
	ViaAPI     = "api"
	ViaRiverUI = "riverui"
)

// OperatorRequest is a mutating HTTP request an operator made, recorded
// before it is acted on.
type OperatorRequest struct {
	Action string // "recover", "retry", "pause", …
	Via    string // ViaAPI or ViaRiverUI
	By     string // the operator's name
	Addr   string // the client's address
	// Target is what the request is for, a JSON object.
	Target json.RawMessage
}

// StartOperatorRequest records r before it is acted on and returns the
// record's id; FinishOperatorRequest completes it with the answer. It
// commits on its own: a worker that dies in between leaves the row
// unfinished rather than no row.
func (s *Store) StartOperatorRequest(ctx context.Context, r OperatorRequest) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `
		INSERT INTO operator_action (action, via, filter, by, addr) VALUES ($1, $2, $3::jsonb, $4, nullif($5, '')) RETURNING id`,
		r.Action, r.Via, jsonText(r.Target), r.By, r.Addr).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("store: start operator request %s: %w", r.Action, err)
	}
	return id, nil
}

// FinishOperatorRequest records the answer of request id: its HTTP status
// and how many of the targets it named (matched) it changed (acted).
func (s *Store) FinishOperatorRequest(ctx context.Context, id int64, status int, matched, acted int64) error {
	tag, err := s.pool.Exec(ctx, `
		UPDATE operator_action SET status = $2, matched = $3, acted = $4, finished_at = now()
		WHERE id = $1 AND finished_at IS NULL`, id, status, matched, acted)
	if err != nil {
		return fmt.Errorf("store: finish operator request %d: %w", id, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("store: finish operator request %d: %w (or already finished)", id, ErrNotFound)
	}
	return nil
}
