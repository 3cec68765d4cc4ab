// Package httpapi is tidemark's HTTP interface: health and readiness probes,
// the member endpoints (a coupon issue, a member's own statistics), and the
// operator endpoints that read rows or enqueue work. Callers says who may
// call which.
//
// Every error answer is JSON {"error": "...", "field": "..."} naming the field
// at fault where there is one; a request that is refused changes nothing.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tidemark/tidemark/auth"

	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// MaxBodyBytes is the largest request body accepted.
const MaxBodyBytes = 1 << 20

// Server serves the HTTP API.
type Server struct {
	Store  *store.Store
	River  *jobs.Client
	TZ     *time.Location
	Logger *slog.Logger
	// Callers authenticates every request; nil refuses every endpoint but
	// the probes.
	Callers *Callers
	// Gate is the Redis coupon gate; without it the coupon endpoint answers 503.
	Gate *coupongate.Gate
	// MemberLimit bounds each member's coupon issue requests
	// (COUPON_RATE_LIMIT); zero: no bound.
	MemberLimit coupongate.Limit

	mux     *http.ServeMux
	persist *jobs.PersistEnqueuer
	coupons couponCache
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	if s.mux != nil {
		return s.mux
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.ready)
	c := s.Callers
	if c == nil {
		c = &Callers{}
	}
	if c.Logger == nil {
		c.Logger = s.Logger
	}
	if c.Actions == nil {
		c.Actions = s.Store
	}
	// Who may call what: members their own coupon issue and statistics;
	// viewers read; operators also change things, each change recorded.
	mutation := func(action, list string, h http.Handler) http.Handler {
		return c.Operator(auth.RoleOperator, c.Record(action, list, h))
	}
	mux.Handle("GET /v1/therapy-statistics", c.MemberOrViewer(http.HandlerFunc(s.getTherapyStatistics)))
	mux.Handle("POST /v1/therapy-statistics/recover", mutation("recover_therapy_statistics", "", handleJSON(s, http.StatusAccepted, s.recoverTherapyStatistics)))
	mux.Handle("POST /v1/ledger/reprocess", mutation("reprocess_ledger", "ledgerIds", handleJSON(s, http.StatusOK, s.reprocessLedger)))
	mux.Handle("POST /v1/coupons/{code}/issue", c.Member(http.HandlerFunc(s.issueCoupon)))
	if s.River != nil {
		s.persist = jobs.NewPersistEnqueuer(s.River)
	}
	mux.Handle("POST /v1/order-requests", mutation("create_order_request", "", handleJSON(s, http.StatusAccepted, s.createOrderRequest)))
	mux.Handle("GET /v1/order-requests/{id}", c.Operator(auth.RoleViewer, http.HandlerFunc(s.getOrderRequest)))
	s.mux = mux
	return mux
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "postgres does not answer"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// apiError is an error answer.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, field, msg string) {
	writeJSON(w, status, apiError{Error: msg, Field: field})
}

// fieldError is a request error that names its field.
type fieldError struct {
	status int
	field  string
	msg    string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func badField(field, format string, args ...any) *fieldError {
	return &fieldError{status: http.StatusBadRequest, field: field, msg: fmt.Sprintf(format, args...)}
}

// writeFound answers 200 with row as its response type, or the error of the
// read that fetched it: 404 with missing (naming field) when there is no such
// row (store.ErrNotFound).
func writeFound[Row, Response any](s *Server, w http.ResponseWriter, r *http.Request, row Row, err error,
	field, missing string, response func(Row) Response,
) {
	if errors.Is(err, store.ErrNotFound) {
		err = &fieldError{status: http.StatusNotFound, field: field, msg: missing}
	}
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, response(row))
}

// positiveID parses v, the value of field, as a positive integer.
func positiveID(field, v string) (int64, error) {
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, badField(field, "want a positive integer")
	}
	return id, nil
}

// writeErr answers err: a fieldError as itself, anything else as a 500 that
// is logged but not shown.
func (s *Server) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	var fe *fieldError
	if errors.As(err, &fe) {
		writeError(w, fe.status, fe.field, fe.msg)
		return
	}
	if store.IsUnavailable(err) {
		s.Logger.WarnContext(r.Context(), "http: postgres unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "", "postgres unavailable; try again")
		return
	}
	s.Logger.ErrorContext(r.Context(), "http: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "", "internal error")
}

// handleJSON is an endpoint that takes a JSON body: it decodes the body into
// a Req (see decodeJSON) and answers what do returns with status, or the
// error of either as writeErr does.
func handleJSON[Req, Resp any](s *Server, status int, do func(*http.Request, Req) (Resp, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if err := decodeJSON(w, r, &req); err != nil {
			s.writeErr(w, r, err)
			return
		}
		resp, err := do(r, req)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		writeJSON(w, status, resp)
	}
}

// decodeJSON reads exactly one JSON object of at most MaxBodyBytes into dst,
// refusing unknown fields and naming the field of a type mismatch. The
// request must say it is JSON (Content-Type application/json, 415 else), so
// a form another site's page posts is never read as one; and the body must
// be valid UTF-8, which encoding/json would otherwise silently mend.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		return &fieldError{status: http.StatusRequestEntityTooLarge, field: "body", msg: fmt.Sprintf("body is larger than %d bytes", MaxBodyBytes)}
	case err != nil:
		return badField("body", "could not read the body: it came too slowly, or the client hung up")
	case !utf8.Valid(body):
		return badField("body", "is not valid UTF-8")
	}
	if k := duplicateKey(body); k != "" {
		return badField(k, "given twice (names are matched without regard to case)")
	}
	return decodeBody(body, dst)
}

// requireJSON refuses a request whose Content-Type is not application/json
// (the media type, in any case, with any parameters).
func requireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != "application/json" {
		got := "none"
		if ct != "" {
			got = strconv.Quote(ct)
		}
		return &fieldError{status: http.StatusUnsupportedMediaType, field: "Content-Type", msg: "want application/json, got " + got}
	}
	return nil
}

// decodeBody decodes a JSON body read whole, as decodeJSON describes.
func decodeBody(body []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		if dec.More() {
			return badField("body", "want one JSON object, found more after it")
		}
		if _, err := dec.Token(); err != io.EOF {
			return badField("body", "want one JSON object, found more after it")
		}
		return nil
	}
	var (
		typeErr   *json.UnmarshalTypeError
		syntaxErr *json.SyntaxError
	)
	switch {
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return badField("body", "want a JSON object, got %s", typeErr.Value)
	case errors.As(err, &typeErr):
		return badField(typeErr.Field, "want a JSON %s, got %s", typeErr.Type.String(), typeErr.Value)
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return badField("body", "malformed JSON: %v", err)
	case errors.Is(err, io.EOF):
		return badField("body", "empty body; want a JSON object")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if name == "" {
			return badField("body", "unknown field %q", name)
		}
		return badField(name, "unknown field %q", name)
	default:
		return badField("body", "%v", err)
	}
}
