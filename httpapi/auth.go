package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidemark/tidemark/auth"
)

// Callers knows who calls: it reads the credentials off each request, asks
// auth whose they are, and lets through only what that caller may do.
//
//   - Operators send "Authorization: Bearer <token>" or HTTP Basic
//     name:token. A viewer reads; an operator also changes things.
//   - Members send "Authorization: Bearer <JWT>" from the identity provider.
//
// Wrong credentials are logged (the address, the endpoint, never what was
// presented) and throttled per client address and per kind of credential.
// Every mutating request an operator makes is logged with the operator's
// name and recorded in operator_action (see record).
type Callers struct {
	// Operators are the operators; none disables every operator endpoint.
	Operators *auth.Operators
	// Members verifies members' tokens; nil makes the member endpoints
	// answer 503.
	Members *auth.Members
	// MetricsToken, when set, is the bearer token /metrics requires.
	MetricsToken string
	// Addr finds a request's client address (RemoteAddr when nil).
	Addr *ClientAddr
	// Actions records operators' mutating requests.
	Actions Actions
	Logger  *slog.Logger

	throttle failureThrottle
}

// Caller is who made a request, once a guard let it through.
type Caller struct {
	// Operator is set for an operator, Member for a member.
	Operator *auth.Operator
	Member   int64
	// Addr is the client's address.
	Addr string
}

type callerKey struct{}

// CallerOf returns the caller a guard put on ctx.
func CallerOf(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

func withCaller(r *http.Request, c Caller) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), callerKey{}, c))
}

// The credentials' kinds, throttled apart: a flood of wrong operator
// tokens from a load balancer's address does not lock its members out.
const (
	kindOperator = "operator"
	kindMember   = "member"
	kindMetrics  = "metrics"
)

// challenge is how a refused request is told to authenticate.
type challenge int

const (
	challengeBearer challenge = iota // JSON answer, WWW-Authenticate: Bearer
	challengeBasic                   // text answer, WWW-Authenticate: Basic, so a browser asks
)

// Operator guards an API endpoint for operators whose role allows need.
func (c *Callers) Operator(need auth.Role, next http.Handler) http.Handler {
	return c.operator(need, challengeBearer, next)
}

// Page guards an operator page (River UI, the batch page) and every request
// it makes: reading needs a viewer, anything else an operator. A browser is
// challenged for Basic credentials. Unsafe requests from another origin are
// refused (403, net/http's CrossOriginProtection) before the credentials
// are looked at, since a browser sends saved Basic credentials with a form
// another site posts. With no operator configured the page does not exist
// (404).
func (c *Callers) Page(next http.Handler) http.Handler {
	sameOrigin := http.NewCrossOriginProtection()
	read := c.operator(auth.RoleViewer, challengeBasic, next)
	write := c.operator(auth.RoleOperator, challengeBasic, next)
	return sameOrigin.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case c.Operators.Len() == 0:
			http.NotFound(w, r)
		case safeMethod(r.Method):
			read.ServeHTTP(w, r)
		default:
			write.ServeHTTP(w, r)
		}
	}))
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func (c *Callers) operator(need auth.Role, ch challenge, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.Operators.Len() == 0 {
			c.refuse(w, r, ch, http.StatusForbidden, "operator endpoints are disabled: neither ADMIN_TOKEN nor OPERATORS_FILE is set")
			return
		}
		op, ok := c.authenticateOperator(w, r, ch)
		if !ok {
			return
		}
		if !op.Role.Allows(need) {
			c.Logger.WarnContext(r.Context(), "http: operator not allowed", "operator", op.Name, "role", op.Role,
				"method", r.Method, "path", r.URL.Path, "needs", need)
			c.refuse(w, r, ch, http.StatusForbidden, fmt.Sprintf("operator %s is a %s; this needs the role %s", op.Name, op.Role, need))
			return
		}
		next.ServeHTTP(w, withCaller(r, Caller{Operator: &op, Addr: c.Addr.Of(r)}))
	})
}

// authenticateOperator finds the operator of r's credentials, or answers
// the refusal itself.
func (c *Callers) authenticateOperator(w http.ResponseWriter, r *http.Request, ch challenge) (auth.Operator, bool) {
	addr := c.Addr.Of(r)
	if c.throttled(w, r, ch, kindOperator, addr) {
		return auth.Operator{}, false
	}
	var (
		op       auth.Operator
		ok       bool
		credKind string
	)
	if token, isBearer := bearer(r); isBearer {
		op, ok = c.Operators.ByToken(token)
		credKind = "bearer"
	} else if name, pass, isBasic := r.BasicAuth(); isBasic {
		op, ok = c.Operators.ByBasic(name, pass)
		credKind = "basic"
	} else {
		c.challenge(w, ch, "")
		c.refuse(w, r, ch, http.StatusUnauthorized, "log in as an operator: Authorization: Bearer TOKEN, or Basic NAME:TOKEN")
		return auth.Operator{}, false
	}
	if !ok {
		c.failed(r, kindOperator, addr, "wrong "+credKind+" credentials")
		c.challenge(w, ch, "invalid_token")
		c.refuse(w, r, ch, http.StatusUnauthorized, "wrong credentials")
		return auth.Operator{}, false
	}
	return op, true
}

// Member guards a member endpoint: the caller is the member a valid token
// was issued to.
func (c *Callers) Member(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, _ := bearer(r)
		c.member(w, r, token, next)
	})
}

// MemberOrViewer guards an endpoint a member may call about themself and
// any operator about anyone: Basic credentials, or a bearer token that is an
// operator's or not shaped like a JWT, are an operator's; any other bearer
// token a member's. Which path a token takes must not tell a guesser
// whether it is an operator's, so an address throttled for either kind is
// answered 429 here whatever it presents.
func (c *Callers) MemberOrViewer(next http.Handler) http.Handler {
	asOperator := c.Operator(auth.RoleViewer, next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, isBearer := bearer(r)
		_, _, isBasic := r.BasicAuth()
		if isBearer || isBasic {
			addr := c.Addr.Of(r)
			if c.throttled(w, r, challengeBearer, kindOperator, addr) || c.throttled(w, r, challengeBearer, kindMember, addr) {
				return
			}
		}
		if isBasic || (isBearer && c.operatorToken(token)) {
			asOperator.ServeHTTP(w, r)
			return
		}
		c.member(w, r, token, next)
	})
}

// operatorToken reports whether a bearer token is to be checked as an
// operator's: it is one, or it cannot be a JWT (three dot-separated parts).
func (c *Callers) operatorToken(token string) bool {
	if _, ok := c.Operators.ByToken(token); ok {
		return true
	}
	return strings.Count(token, ".") != 2
}

func (c *Callers) member(w http.ResponseWriter, r *http.Request, token string, next http.Handler) {
	if c.Members == nil {
		writeError(w, http.StatusServiceUnavailable, "",
			"member sign-in is not configured: set MEMBER_JWT_SECRET or MEMBER_JWKS_URL")
		return
	}
	if err := c.Members.Ready(); err != nil {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "", err.Error())
		return
	}
	addr := c.Addr.Of(r)
	if c.throttled(w, r, challengeBearer, kindMember, addr) {
		return
	}
	if token == "" {
		c.challenge(w, challengeBearer, "invalid_token")
		writeError(w, http.StatusUnauthorized, "Authorization", "sign in: Authorization: Bearer TOKEN, the token from the identity provider")
		return
	}
	id, err := c.Members.Verify(r.Context(), token)
	var te *auth.TokenError
	switch {
	case errors.As(err, &te):
		c.failed(r, kindMember, addr, te.Reason)
		c.challenge(w, challengeBearer, "invalid_token")
		writeError(w, http.StatusUnauthorized, "Authorization", te.Error())
		return
	case err != nil:
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "", err.Error())
		return
	}
	next.ServeHTTP(w, withCaller(r, Caller{Member: id, Addr: addr}))
}

// Metrics guards /metrics: open when no METRICS_TOKEN is set (the handler
// then serves aggregates only), else only with that bearer token.
func (c *Callers) Metrics(next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(c.MetricsToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.MetricsToken == "" {
			next.ServeHTTP(w, r)
			return
		}
		addr := c.Addr.Of(r)
		if c.throttled(w, r, challengeBearer, kindMetrics, addr) {
			return
		}
		token, ok := bearer(r)
		got := sha256.Sum256([]byte(token))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			if ok {
				c.failed(r, kindMetrics, addr, "wrong bearer token")
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="tidemark metrics"`)
			http.Error(w, "401 unauthorized: /metrics needs Authorization: Bearer $METRICS_TOKEN", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearer returns a request's bearer token ("Bearer" in any case, RFC 7235).
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", false
	}
	return strings.TrimSpace(h[7:]), true
}

func (c *Callers) challenge(w http.ResponseWriter, ch challenge, errCode string) {
	switch {
	case ch == challengeBasic:
		w.Header().Set("WWW-Authenticate", `Basic realm="tidemark"`)
	case errCode != "":
		w.Header().Set("WWW-Authenticate", `Bearer realm="tidemark", error="`+errCode+`"`)
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="tidemark"`)
	}
}

func (c *Callers) refuse(w http.ResponseWriter, r *http.Request, ch challenge, status int, msg string) {
	if ch == challengeBasic {
		http.Error(w, strconv.Itoa(status)+" "+strings.ToLower(http.StatusText(status))+": "+msg, status)
		return
	}
	field := ""
	if status == http.StatusUnauthorized {
		field = "Authorization"
	}
	writeError(w, status, field, msg)
}

// throttled answers 429 when addr failed to authenticate with this kind of
// credentials more than maxFailures times in the last window.
func (c *Callers) throttled(w http.ResponseWriter, r *http.Request, ch challenge, kind, addr string) bool {
	wait, over := c.throttle.over(kind, addr)
	if !over {
		return false
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+0.999)))
	c.refuse(w, r, ch, http.StatusTooManyRequests,
		fmt.Sprintf("too many failed sign-ins from %s; try again in %d s", addr, int(wait.Seconds()+0.999)))
	return true
}

// failed counts and logs a failed authentication. The log line names the
// address, the endpoint and the reason, never what was presented; once the
// address is throttled, one line says so for the whole window.
func (c *Callers) failed(r *http.Request, kind, addr, reason string) {
	n, crossed := c.throttle.fail(kind, addr)
	switch {
	case crossed:
		c.Logger.WarnContext(r.Context(), "http: authentication throttled", "credentials", kind, "addr", addr,
			"failures", n, "window", failureWindow, "method", r.Method, "path", r.URL.Path)
	case n < maxFailures:
		c.Logger.WarnContext(r.Context(), "http: authentication failed", "credentials", kind, "addr", addr,
			"method", r.Method, "path", r.URL.Path, "reason", reason)
	}
}
