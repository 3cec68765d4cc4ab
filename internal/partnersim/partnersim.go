// Package partnersim is a simulated third-party order API (the
// partner's thirdparty-api), served by cmd/thirdparty and in-process by
// tests and cmd/bench: POST /orders accepts one order per user per month, GET
// /orders looks orders up, and faults can be injected to test a caller's
// recovery — a 500 before or after the order is stored, a hang after it is
// stored, random errors, latency, and 400s for chosen users.
//
// Orders live in Postgres in the schema "thirdparty", which the server
// creates itself, so a restart loses nothing. The check "already ordered this
// month" and the insert are one statement on a unique constraint.
package partnersim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tidemark/tidemark/calendar"
)

// ConflictMessage is the 409 error text, as the partner answers it.
const ConflictMessage = "이미 신청된 사용자"

// Duration is a time.Duration written in JSON as a Go duration string ("20ms").
type Duration time.Duration

// MarshalJSON writes d as "20ms".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "20ms" (or a number of nanoseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("want a duration like \"20ms\"")
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("want a duration like \"20ms\", got %q", s)
	}
	*d = Duration(v)
	return nil
}

// Faults is the set of injected faults. POSTs are numbered from 1 in the
// order this process received them (GET /_stats shows the count so far);
// each *Nth fault fires on that one POST only.
type Faults struct {
	// FailNth: the Nth POST answers 500 before storing anything.
	FailNth int64 `json:"failNth"`
	// FailAfterCommitNth: the Nth POST stores the order, then answers 500.
	FailAfterCommitNth int64 `json:"failAfterCommitNth"`
	// HangAfterCommitNth: the Nth POST stores the order, then never answers
	// (until the client gives up or the server stops).
	HangAfterCommitNth int64 `json:"hangAfterCommitNth"`
	// ErrorRate is the probability (0..1) that a POST answers 500 before
	// storing, drawn from a generator seeded with Seed.
	ErrorRate float64 `json:"errorRate"`
	Seed      uint64  `json:"seed"`
	// Latency is how long every /orders request takes to be answered: the
	// answer is sent Latency after the request arrived, or when its work is
	// done if that takes longer. The work (validation, the insert) is done
	// meanwhile, as a remote service's time to answer includes its own work.
	Latency Duration `json:"latency"`
	// RejectUsernames answer 400 to a POST for these users, as a partner
	// refusing a request no retry can fix.
	RejectUsernames []string `json:"rejectUsernames"`
	// RateLimit answers 429 (with Retry-After) to an /orders request when
	// RateLimit requests were already let through in the last second; 0 is
	// no limit.
	RateLimit float64 `json:"rateLimit"`
	// Maintenance answers 503 (with Retry-After) to every /orders request
	// for this long from when the faults are set (at start for flags).
	Maintenance Duration `json:"maintenance"`
	// RetryAfter is the Retry-After of a 429, and of a 503 when set (else
	// a 503's is the time left of the maintenance); whole seconds, at least 1.
	RetryAfter Duration `json:"retryAfter"`
}

// Validate reports the first thing wrong with f.
func (f Faults) Validate() error {
	switch {
	case f.FailNth < 0 || f.FailAfterCommitNth < 0 || f.HangAfterCommitNth < 0:
		return errors.New("failNth, failAfterCommitNth and hangAfterCommitNth must be 0 (off) or positive")
	case f.ErrorRate < 0 || f.ErrorRate > 1:
		return fmt.Errorf("errorRate must be in 0..1, got %v", f.ErrorRate)
	case f.Latency < 0:
		return errors.New("latency must not be negative")
	case f.RateLimit < 0:
		return fmt.Errorf("rateLimit must be 0 (off) or positive, got %v", f.RateLimit)
	case f.Maintenance < 0 || f.RetryAfter < 0:
		return errors.New("maintenance and retryAfter must not be negative")
	}
	return nil
}

// Stats counts what the server saw since it started.
type Stats struct {
	Posts       int64 `json:"posts"`       // POST /orders received
	Created     int64 `json:"created"`     // orders stored by this process
	Conflicts   int64 `json:"conflicts"`   // 409s answered
	BadRequests int64 `json:"badRequests"` // 400s answered
	Injected    int64 `json:"injected"`    // 500s and hangs injected
	Gets        int64 `json:"gets"`        // GET /orders received
	Orders      int64 `json:"orders"`      // orders in the database (all time)
	// Answered /orders requests and the total time they took, from arrival
	// to the status line (microseconds): with a latency set, what a caller
	// waits for at least, and what the benchmark's bound assumes.
	Answered     int64 `json:"answered"`
	AnswerMicros int64 `json:"answerMicros"`
	// TooMany and Unavailable count the 429s (rate limit) and 503s
	// (maintenance) answered.
	TooMany     int64 `json:"tooMany"`
	Unavailable int64 `json:"unavailable"`
	// MaintenanceUntil is the end of the current maintenance window.
	MaintenanceUntil time.Time `json:"maintenanceUntil,omitzero"`
}

// Order is a stored order.
type Order struct {
	ID               int64     `json:"id"`
	Username         string    `json:"username"`
	TotalPrice       int64     `json:"totalPrice"`
	AppliedYearMonth string    `json:"appliedYearMonth"`
	CreatedAt        time.Time `json:"createdAt"`
}

// Server is the simulated API.
type Server struct {
	pool     *pgxpool.Pool
	inserter *orderInserter
	logger   *slog.Logger

	mu     sync.Mutex
	faults Faults
	rng    *rand.Rand
	// maintUntil ends the maintenance window; admitted holds the times of
	// the requests let through in the last second (RateLimit).
	maintUntil time.Time
	admitted   []time.Time

	posts, created, conflicts, bad, injected, gets atomic.Int64
	answered, answerMicros                         atomic.Int64 // /orders answers, and their total time
	tooMany, unavailable                           atomic.Int64

	closeOnce sync.Once
	closing   chan struct{}
}

// New creates the schema "thirdparty" if it does not exist and returns a
// server with faults.
func New(ctx context.Context, pool *pgxpool.Pool, faults Faults, logger *slog.Logger) (*Server, error) {
	if err := faults.Validate(); err != nil {
		return nil, fmt.Errorf("thirdparty: faults: %w", err)
	}
	if err := ensureSchema(ctx, pool); err != nil {
		return nil, err
	}
	s := &Server{pool: pool, logger: logger, closing: make(chan struct{})}
	s.inserter = newOrderInserter(pool, func() time.Duration { return insertLinger(time.Duration(s.currentFaults().Latency)) })
	s.setFaults(faults)
	return s, nil
}

func ensureSchema(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("thirdparty: schema: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	// Two servers starting on one database must not race on CREATE … IF NOT EXISTS.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7250300)`); err != nil {
		return fmt.Errorf("thirdparty: schema lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `
		CREATE SCHEMA IF NOT EXISTS thirdparty;
		CREATE TABLE IF NOT EXISTS thirdparty.orders (
			id                 bigserial PRIMARY KEY,
			username           text NOT NULL,
			total_price        bigint NOT NULL,
			applied_year_month text NOT NULL,
			created_at         timestamptz NOT NULL DEFAULT now(),
			UNIQUE (username, applied_year_month)
		)`); err != nil {
		return fmt.Errorf("thirdparty: create schema: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("thirdparty: create schema: %w", err)
	}
	return nil
}

func (s *Server) setFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	s.rng = rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15))
	s.maintUntil = time.Time{}
	if f.Maintenance > 0 {
		s.maintUntil = time.Now().Add(time.Duration(f.Maintenance))
	}
	s.admitted = s.admitted[:0]
}

// refuse answers 503 during maintenance and 429 above the rate limit,
// before the request does anything, and reports whether it did.
func (s *Server) refuse(w http.ResponseWriter) bool {
	now := time.Now()
	s.mu.Lock()
	f := s.faults
	status, wait := 0, time.Duration(f.RetryAfter)
	switch {
	case now.Before(s.maintUntil):
		status = http.StatusServiceUnavailable
		if wait == 0 {
			wait = s.maintUntil.Sub(now)
		}
	case f.RateLimit > 0:
		cut := 0
		for cut < len(s.admitted) && now.Sub(s.admitted[cut]) >= time.Second {
			cut++
		}
		s.admitted = append(s.admitted[:0], s.admitted[cut:]...)
		if float64(len(s.admitted)) >= f.RateLimit {
			status = http.StatusTooManyRequests
		} else {
			s.admitted = append(s.admitted, now)
		}
	}
	s.mu.Unlock()
	if status == 0 {
		return false
	}
	secs := max(int64((wait+time.Second-1)/time.Second), 1)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	if status == http.StatusTooManyRequests {
		s.tooMany.Add(1)
		writeJSON(w, status, map[string]string{"error": "too many requests"})
	} else {
		s.unavailable.Add(1)
		writeJSON(w, status, map[string]string{"error": "down for maintenance"})
	}
	return true
}

func (s *Server) currentFaults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// Close releases requests held by a hang fault, so an http.Server's
// Shutdown does not wait for them forever.
func (s *Server) Close() { s.closeOnce.Do(func() { close(s.closing) }) }

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", s.postOrder)
	mux.HandleFunc("GET /orders", s.getOrders)
	mux.HandleFunc("PUT /_faults", s.putFaults)
	mux.HandleFunc("GET /_faults", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.currentFaults()) })
	mux.HandleFunc("GET /_stats", s.getStats)
	return mux
}

type orderBody struct {
	Username         *string `json:"username"`
	TotalPrice       *int64  `json:"totalPrice"`
	AppliedYearMonth *string `json:"appliedYearMonth"`
}

// validYearMonth is the simulated partner's check of appliedYearMonth: the
// rule tidemark applies before it calls.
func validYearMonth(s string) bool {
	_, _, err := calendar.ParseYearMonth(s)
	return err == nil
}

// answerAfter delays w's answer until latency after now (see
// Faults.Latency) and counts the time each answer took.
func (s *Server) answerAfter(w http.ResponseWriter, r *http.Request, latency time.Duration) *delayedWriter {
	now := time.Now()
	return &delayedWriter{ResponseWriter: w, ctx: r.Context(), arrived: now, at: now.Add(latency), s: s}
}

// delayedWriter holds back the status line until its time.
type delayedWriter struct {
	http.ResponseWriter
	ctx         context.Context
	arrived, at time.Time
	s           *Server
	wrote       bool
}

func (d *delayedWriter) WriteHeader(code int) {
	if d.wrote {
		return
	}
	d.wrote = true
	if wait := time.Until(d.at); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-d.ctx.Done():
			t.Stop()
		}
	}
	d.s.answered.Add(1)
	d.s.answerMicros.Add(time.Since(d.arrived).Microseconds())
	d.ResponseWriter.WriteHeader(code)
}

func (d *delayedWriter) Write(b []byte) (int, error) {
	if !d.wrote {
		d.WriteHeader(http.StatusOK)
	}
	return d.ResponseWriter.Write(b)
}

func (s *Server) postOrder(w http.ResponseWriter, r *http.Request) {
	if s.refuse(w) {
		return
	}
	n := s.posts.Add(1)
	f := s.currentFaults()
	w = s.answerAfter(w, r, time.Duration(f.Latency))
	// Like most servers, finish a request whose client went away: a caller
	// that timed out or died cannot know whether its order was stored.
	ctx := context.WithoutCancel(r.Context())

	var b orderBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	if err := dec.Decode(&b); err != nil {
		s.badRequest(w, "malformed body: "+err.Error())
		return
	}
	switch {
	case b.Username == nil || strings.TrimSpace(*b.Username) == "":
		s.badRequest(w, "username is required")
		return
	case b.TotalPrice == nil || *b.TotalPrice <= 0:
		s.badRequest(w, "totalPrice must be a positive integer")
		return
	case b.AppliedYearMonth == nil || !validYearMonth(*b.AppliedYearMonth):
		s.badRequest(w, "appliedYearMonth must be YYYY-MM")
		return
	}
	for _, u := range f.RejectUsernames {
		if u == *b.Username {
			s.badRequest(w, "username "+u+" is not allowed to order")
			return
		}
	}
	if n == f.FailNth || (f.ErrorRate > 0 && s.roll() < f.ErrorRate) {
		s.injected.Add(1)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": fmt.Sprintf("injected failure on POST #%d (nothing stored)", n)})
		return
	}

	o, stored, err := s.inserter.insert(ctx, *b.Username, *b.TotalPrice, *b.AppliedYearMonth)
	if err != nil {
		s.logger.Error("thirdparty: insert order", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "database error"})
		return
	}
	if !stored {
		s.conflicts.Add(1)
		writeJSON(w, http.StatusConflict, map[string]string{"error": ConflictMessage})
		return
	}
	s.created.Add(1)
	switch n {
	case f.FailAfterCommitNth:
		s.injected.Add(1)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": fmt.Sprintf("injected failure on POST #%d (order %d stored)", n, o.ID)})
		return
	case f.HangAfterCommitNth:
		s.injected.Add(1)
		s.logger.Info("thirdparty: hanging after commit", "post", n, "order", o.ID)
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		return
	}
	o.CreatedAt = o.CreatedAt.UTC()
	writeJSON(w, http.StatusCreated, o)
}

func (s *Server) roll() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64()
}

func (s *Server) badRequest(w http.ResponseWriter, msg string) {
	s.bad.Add(1)
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": msg})
}

// getOrders answers GET /orders?username=U&appliedYearMonth=M with that one
// order (404 when there is none), and otherwise lists orders by id:
// ?appliedYearMonth=M (optional) &afterId=N &limit=N (default 1000, at most
// 10000) → {"orders":[…]}.
func (s *Server) getOrders(w http.ResponseWriter, r *http.Request) {
	if s.refuse(w) {
		return
	}
	s.gets.Add(1)
	w = s.answerAfter(w, r, time.Duration(s.currentFaults().Latency))
	q := r.URL.Query()
	user, month := q.Get("username"), q.Get("appliedYearMonth")
	if month != "" && !validYearMonth(month) {
		s.badRequest(w, "appliedYearMonth must be YYYY-MM")
		return
	}
	if user != "" {
		if month == "" {
			s.badRequest(w, "appliedYearMonth is required with username")
			return
		}
		var o Order
		err := s.pool.QueryRow(r.Context(), `
			SELECT id, username, total_price, applied_year_month, created_at FROM thirdparty.orders
			WHERE username = $1 AND applied_year_month = $2`, user, month).
			Scan(&o.ID, &o.Username, &o.TotalPrice, &o.AppliedYearMonth, &o.CreatedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such order"})
			return
		}
		if err != nil {
			s.logger.Error("thirdparty: get order", "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "database error"})
			return
		}
		o.CreatedAt = o.CreatedAt.UTC()
		writeJSON(w, http.StatusOK, o)
		return
	}
	afterID, limit := int64(0), 1000
	if v := q.Get("afterId"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			s.badRequest(w, "afterId must be a non-negative integer")
			return
		}
		afterID = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			s.badRequest(w, "limit must be in 1..10000")
			return
		}
		limit = n
	}
	rows, err := s.pool.Query(r.Context(), `
		SELECT id, username, total_price, applied_year_month, created_at FROM thirdparty.orders
		WHERE id > $1 AND ($2 = '' OR applied_year_month = $2) ORDER BY id LIMIT $3`, afterID, month, limit)
	var out []Order
	if err == nil {
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Order, error) {
			var o Order
			err := row.Scan(&o.ID, &o.Username, &o.TotalPrice, &o.AppliedYearMonth, &o.CreatedAt)
			o.CreatedAt = o.CreatedAt.UTC()
			return o, err
		})
	}
	if err != nil {
		s.logger.Error("thirdparty: list orders", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "database error"})
		return
	}
	if out == nil {
		out = []Order{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"orders": out})
}

// putFaults replaces the whole fault set (fields left out are off).
func (s *Server) putFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed faults: " + err.Error()})
		return
	}
	if err := f.Validate(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	s.setFaults(f)
	s.logger.Info("thirdparty: faults set", "faults", fmt.Sprintf("%+v", f))
	writeJSON(w, http.StatusOK, f)
}

func (s *Server) getStats(w http.ResponseWriter, r *http.Request) {
	st := Stats{
		Posts: s.posts.Load(), Created: s.created.Load(), Conflicts: s.conflicts.Load(),
		BadRequests: s.bad.Load(), Injected: s.injected.Load(), Gets: s.gets.Load(),
		Answered: s.answered.Load(), AnswerMicros: s.answerMicros.Load(),
		TooMany: s.tooMany.Load(), Unavailable: s.unavailable.Load(),
	}
	s.mu.Lock()
	if time.Now().Before(s.maintUntil) {
		st.MaintenanceUntil = s.maintUntil.UTC()
	}
	s.mu.Unlock()
	if err := s.pool.QueryRow(r.Context(), `SELECT count(*) FROM thirdparty.orders`).Scan(&st.Orders); err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "database error"})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
