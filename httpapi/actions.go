package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidemark/tidemark/store"
)

// Actions records operators' mutating requests (store.Store).
type Actions interface {
	StartOperatorRequest(ctx context.Context, r store.OperatorRequest) (int64, error)
	FinishOperatorRequest(ctx context.Context, id int64, status int, matched, acted int64) error
}

// Record logs and records in operator_action every request next is asked
// to make, as action via the API (the target is the request's JSON body,
// counting the items of its array named list, or one when list is ""): the
// row before next acts, its answer after. A request that cannot be recorded
// is not acted on (503). It must run inside an operator guard.
func (c *Callers) Record(action, list string, next http.Handler) http.Handler {
	return c.record(store.ViaAPI, func(r *http.Request, body []byte) (string, json.RawMessage, int64) {
		n := int64(1)
		if list != "" {
			var items map[string]json.RawMessage
			var arr []json.RawMessage
			_ = json.Unmarshal(body, &items)
			_ = json.Unmarshal(items[list], &arr)
			n = int64(len(arr))
		}
		return action, targetOf(body, nil), n
	}, next)
}

// RecordRiverUI is Record for River UI's own API under prefix: retry,
// cancel and delete of jobs (the target is their ids), pause, resume and the
// settings of a queue (its name). Reads pass through unrecorded.
func (c *Callers) RecordRiverUI(prefix string, next http.Handler) http.Handler {
	rec := c.record(store.ViaRiverUI, func(r *http.Request, body []byte) (string, json.RawMessage, int64) {
		return riverUIAction(strings.TrimPrefix(r.URL.Path, prefix), r.Method, body)
	}, next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if safeMethod(r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		rec.ServeHTTP(w, r)
	})
}

// riverUIAction names a River UI request: its action, target and how many
// things it targets.
func riverUIAction(path, method string, body []byte) (string, json.RawMessage, int64) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) == 3 && parts[0] == "api" && parts[1] == "jobs" && method == http.MethodPost:
		var req struct {
			IDs []json.RawMessage `json:"ids"`
		}
		_ = json.Unmarshal(body, &req)
		return parts[2], targetOf(body, nil), int64(len(req.IDs))
	case len(parts) == 4 && parts[0] == "api" && parts[1] == "queues" && method == http.MethodPut:
		return parts[3], targetOf(nil, map[string]any{"queue": parts[2]}), 1
	case len(parts) == 3 && parts[0] == "api" && parts[1] == "queues" && method == http.MethodPatch:
		var settings any
		_ = json.Unmarshal(body, &settings)
		return "queue_update", targetOf(nil, map[string]any{"queue": parts[2], "settings": settings}), 1
	}
	return "riverui_request", targetOf(nil, map[string]any{"method": method, "path": path}), 1
}

// targetOf is body when it is a JSON object, as jsonb can keep it (no NUL,
// no lone surrogate: both become U+FFFD), else the object fallback (or one
// saying what the body was not).
func targetOf(body []byte, fallback map[string]any) json.RawMessage {
	if fallback == nil {
		var obj map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber() // ids beyond 2^53 kept exact
		if err := dec.Decode(&obj); err == nil && obj != nil {
			if b, err := json.Marshal(keepable(obj)); err == nil {
				return b
			}
		}
		fallback = map[string]any{"body": "not a JSON object"}
	}
	b, _ := json.Marshal(keepable(fallback))
	return b
}

// keepable is v with every NUL in its strings replaced by U+FFFD, which
// jsonb refuses (encoding/json already turned lone surrogates into U+FFFD),
// and numbers too long for jsonb's numeric kept as their text.
func keepable(v any) any {
	switch v := v.(type) {
	case json.Number:
		if !keepableNumber(string(v)) {
			return string(v)
		}
		return v
	case string:
		return strings.ReplaceAll(v, "\x00", "\ufffd")
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[strings.ReplaceAll(k, "\x00", "\ufffd")] = keepable(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = keepable(x)
		}
		return out
	}
	return v
}

// keepableNumber reports whether jsonb's numeric holds n: ids and amounts
// are short, and an exponent beyond a thousand (1e1000000) overflows it.
func keepableNumber(n string) bool {
	if len(n) > 40 {
		return false
	}
	if i := strings.IndexAny(n, "eE"); i >= 0 {
		exp, err := strconv.Atoi(n[i+1:])
		return err == nil && exp >= -1000 && exp <= 1000
	}
	return true
}

// actionName checks that a River UI path gave an action a safe name.
func actionName(a string) string {
	if a == "" || len(a) > 40 || strings.Trim(a, "abcdefghijklmnopqrstuvwxyz_") != "" {
		return "riverui_request"
	}
	return a
}

func (c *Callers) record(via string, describe func(*http.Request, []byte) (string, json.RawMessage, int64), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, ok := CallerOf(r.Context())
		if !ok || caller.Operator == nil {
			writeError(w, http.StatusForbidden, "", "not an operator")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		var maxErr *http.MaxBytesError
		switch {
		case errors.As(err, &maxErr):
			writeError(w, http.StatusRequestEntityTooLarge, "body", fmt.Sprintf("body is larger than %d bytes", MaxBodyBytes))
			return
		case err != nil:
			writeError(w, http.StatusBadRequest, "body", "could not read the body: it came too slowly, or the client hung up")
			return
		}
		// What is recorded must be what is acted on: encoding/json takes
		// the last of two names that differ only in case.
		if k := duplicateKey(body); k != "" {
			writeError(w, http.StatusBadRequest, k, "given twice (names are matched without regard to case)")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		action, target, matched := describe(r, body)
		action = actionName(action)
		id, err := c.Actions.StartOperatorRequest(r.Context(), store.OperatorRequest{
			Action: action, Via: via, By: caller.Operator.Name, Addr: caller.Addr, Target: target})
		if err != nil {
			c.Logger.ErrorContext(r.Context(), "http: operator request not recorded, so not acted on",
				"operator", caller.Operator.Name, "action", action, "err", err)
			w.Header().Set("Retry-After", "1")
			msg := "could not record the request; nothing was done, try again"
			if store.IsUnavailable(err) {
				msg = "postgres unavailable; nothing was done, try again"
			}
			writeError(w, http.StatusServiceUnavailable, "", msg)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		status := sw.code()
		acted := int64(0)
		if status < 300 {
			acted = matched
		}
		c.Logger.InfoContext(r.Context(), "operator action", "operator", caller.Operator.Name, "role", caller.Operator.Role,
			"via", via, "action", action, "target", string(target), "status", status, "operator_action", id)
		// The answer is written; its record must not be lost to a client
		// that hung up.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
		defer cancel()
		if err := c.Actions.FinishOperatorRequest(ctx, id, status, matched, max(acted, 0)); err != nil {
			c.Logger.ErrorContext(ctx, "http: operator request's answer not recorded", "operator_action", id, "err", err)
		}
	})
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
