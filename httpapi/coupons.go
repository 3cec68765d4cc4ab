package httpapi

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/tidemark/tidemark/coupon"
	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// IssueRequest is the body of POST /v1/coupons/{code}/issue, which may be
// left out: the member is the token's. A memberId that is not the token's
// is refused (403).
type IssueRequest struct {
	MemberID *int64 `json:"memberId"`
}

// IssueResponse answers an accepted issue: the seat is taken and the job
// that writes coupon_issue is committed.
type IssueResponse struct {
	CouponCode string `json:"couponCode"`
	MemberID   int64  `json:"memberId"`
	Status     string `json:"status"`
}

// issueCoupon is the first-come issue for the member signed in: the
// member's allowance of requests (429); the coupon must exist, be ACTIVE and
// not expired (404); the gate's atomic step decides 409 (the member has it
// already) or 410 (sold out); then the persist job is inserted — if that
// fails, the Redis step is undone before answering 503.
func (s *Server) issueCoupon(w http.ResponseWriter, r *http.Request) {
	caller, ok := CallerOf(r.Context())
	if !ok || caller.Member <= 0 {
		writeError(w, http.StatusForbidden, "", "not a member")
		return
	}
	member := caller.Member
	code := r.PathValue("code")
	if !coupon.ValidCode(code) {
		writeError(w, http.StatusNotFound, "code", "unknown coupon")
		return
	}
	if r.ContentLength != 0 {
		var req IssueRequest
		if err := decodeJSON(w, r, &req); err != nil {
			s.writeErr(w, r, err)
			return
		}
		if req.MemberID != nil && *req.MemberID != member {
			writeError(w, http.StatusForbidden, "memberId", "a member can ask for a coupon only for themself; leave memberId out")
			return
		}
	}
	// The member's allowance is taken in the gate's own step, one round
	// trip, when the coupon is known from the cache; before the lookup
	// otherwise, so requests for invented codes spend it before they cost a
	// read of Postgres.
	limit := s.MemberLimit
	c, fresh := s.coupons.fresh(code)
	if !fresh {
		if s.Gate != nil {
			ok, wait, err := s.Gate.Allow(r.Context(), member, limit)
			if err != nil {
				s.Logger.ErrorContext(r.Context(), "coupon gate: allowance", "member", member, "err", err)
				writeError(w, http.StatusServiceUnavailable, "", "coupon gate unavailable; try again")
				return
			}
			if !ok {
				tooMany(w, wait)
				return
			}
			limit = coupongate.Limit{}
		}
		var err error
		c, err = s.coupons.get(r.Context(), s.Store, code)
		switch {
		case errors.Is(err, store.ErrNotFound):
			writeError(w, http.StatusNotFound, "code", "unknown coupon "+code)
			return
		case err != nil:
			s.writeErr(w, r, err)
			return
		}
	}
	switch {
	case c.Code == "":
		writeError(w, http.StatusNotFound, "code", "unknown coupon "+code)
		return
	case c.Status != store.CouponActive:
		writeError(w, http.StatusNotFound, "code", "coupon "+code+" is not active")
		return
	case c.ExpiresAt != nil && !time.Now().Before(*c.ExpiresAt):
		writeError(w, http.StatusNotFound, "code", "coupon "+code+" has expired")
		return
	}
	if s.Gate == nil || s.persist == nil {
		writeError(w, http.StatusServiceUnavailable, "", "coupon issuing is not configured")
		return
	}
	res, wait, err := s.Gate.IssueWithin(r.Context(), code, member, limit)
	if err != nil {
		s.Logger.ErrorContext(r.Context(), "coupon gate", "coupon", code, "member", member, "err", err)
		writeError(w, http.StatusServiceUnavailable, "", "coupon gate unavailable; try again")
		return
	}
	switch res {
	case coupongate.RateLimited:
		tooMany(w, wait)
		return
	case coupongate.AlreadyIssued:
		writeError(w, http.StatusConflict, "", "you already have coupon "+code)
		return
	case coupongate.SoldOut:
		writeError(w, http.StatusGone, "", "coupon "+code+" is sold out")
		return
	case coupongate.NotLoaded:
		writeError(w, http.StatusServiceUnavailable, "", "coupon "+code+" is not loaded in the gate; run enqueue coupon load-redis --code "+code)
		return
	}
	err = s.persist.Enqueue(r.Context(), jobs.CouponIssuePersistArgs{CouponCode: code, MemberID: member, IssuedAt: time.Now().UTC()})
	if err != nil {
		// Layer 1: the job is not there, so give the seat back now.
		undoCtx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
		defer cancel()
		if _, uerr := s.Gate.Undo(undoCtx, code, member); uerr != nil {
			err = errors.Join(err, uerr) // left for the reconciliation
		}
		s.Logger.ErrorContext(r.Context(), "coupon persist job insert failed; seat given back", "coupon", code, "member", member, "err", err)
		writeError(w, http.StatusServiceUnavailable, "", "could not record the issue; nothing was issued, try again")
		return
	}
	writeJSON(w, http.StatusAccepted, IssueResponse{CouponCode: code, MemberID: member, Status: "ACCEPTED"})
}

// tooMany answers 429: the member is past their allowance for wait.
func tooMany(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
	writeError(w, http.StatusTooManyRequests, "", "too many coupon requests; try again later")
}

// couponCache keeps coupons looked up by the issue endpoint for a second, so
// a rush on one coupon costs one Postgres read per second, not per request.
// A coupon made INACTIVE stops being issued within that second.
type couponCache struct {
	mu sync.Mutex
	m  map[string]cachedCoupon
}

type cachedCoupon struct {
	c   store.Coupon
	err error
	at  time.Time
}

const couponCacheTTL = time.Second

// fresh returns code's coupon when the cache holds it, found, from less
// than couponCacheTTL ago.
func (cc *couponCache) fresh(code string) (store.Coupon, bool) {
	cc.mu.Lock()
	e, ok := cc.m[code]
	cc.mu.Unlock()
	if !ok || e.err != nil || time.Since(e.at) >= couponCacheTTL {
		return store.Coupon{}, false
	}
	return e.c, true
}

func (cc *couponCache) get(ctx context.Context, st *store.Store, code string) (store.Coupon, error) {
	now := time.Now()
	cc.mu.Lock()
	e, ok := cc.m[code]
	cc.mu.Unlock()
	if ok && now.Sub(e.at) < couponCacheTTL {
		return e.c, e.err
	}
	c, err := st.CouponByCode(ctx, code)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return c, err
	}
	cc.mu.Lock()
	if cc.m == nil || len(cc.m) > 10000 {
		cc.m = map[string]cachedCoupon{}
	}
	cc.m[code] = cachedCoupon{c: c, err: err, at: now}
	cc.mu.Unlock()
	return c, err
}
