// Package httpapi is tidemark's HTTP interface: health and readiness probes,
// read endpoints, and admin endpoints that enqueue work (Bearer ADMIN_TOKEN).
//
// Every error answer is JSON {"error": "...", "field": "..."} naming the field
// at fault where there is one; a request that is refused changes nothing.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// MaxBodyBytes is the largest request body accepted.
const MaxBodyBytes = 1 << 20

// Server serves the HTTP API.
type Server struct {
	Store      *store.Store
	River      *jobs.Client
	TZ         *time.Location
	AdminToken string
	Logger     *slog.Logger
	// Gate is the Redis coupon gate; without it the coupon endpoint answers 503.
	Gate *coupongate.Gate

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
	mux.HandleFunc("GET /v1/therapy-statistics", s.getTherapyStatistics)
	mux.Handle("POST /v1/therapy-statistics/recover", s.admin(handleJSON(s, http.StatusAccepted, s.recoverTherapyStatistics)))
	mux.Handle("POST /v1/ledger/reprocess", s.admin(handleJSON(s, http.StatusOK, s.reprocessLedger)))
	mux.HandleFunc("POST /v1/coupons/{code}/issue", s.issueCoupon)
	if s.River != nil {
		s.persist = jobs.NewPersistEnqueuer(s.River)
	}
	mux.Handle("POST /v1/order-requests", s.admin(handleJSON(s, http.StatusAccepted, s.createOrderRequest)))
	mux.HandleFunc("GET /v1/order-requests/{id}", s.getOrderRequest)
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

// admin requires "Authorization: Bearer <ADMIN_TOKEN>". With no token
// configured, every admin endpoint is refused.
func (s *Server) admin(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		switch {
		case s.AdminToken == "":
			writeError(w, http.StatusForbidden, "", "admin endpoints are disabled: ADMIN_TOKEN is not set")
		case !ok || got == "":
			w.Header().Set("WWW-Authenticate", `Bearer realm="tidemark"`)
			writeError(w, http.StatusUnauthorized, "Authorization", "missing bearer token")
		case !tokenMatches(got, s.AdminToken):
			writeError(w, http.StatusForbidden, "Authorization", "wrong bearer token")
		default:
			next(w, r)
		}
	})
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
// refusing unknown fields and naming the field of a type mismatch.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &fieldError{status: http.StatusUnsupportedMediaType, field: "Content-Type", msg: "want application/json"}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
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
		maxErr    *http.MaxBytesError
		typeErr   *json.UnmarshalTypeError
		syntaxErr *json.SyntaxError
	)
	switch {
	case errors.As(err, &maxErr):
		return &fieldError{status: http.StatusRequestEntityTooLarge, field: "body", msg: fmt.Sprintf("body is larger than %d bytes", MaxBodyBytes)}
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
