// Package orderapi is tidemark's client of the third-party order API:
// create an order, look one up by user and month, list orders. Every
// call has a timeout; answers are classified so the caller can tell a
// conflict, a refusal no retry can fix, and a failure worth retrying.
package orderapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tidemark/tidemark/redact"
)

// ErrConflict is a 409: the user already has an order for that month.
var ErrConflict = errors.New("orderapi: order already exists for that user and month")

// ErrNotFound is a 404 from a lookup: no order for that user and month.
var ErrNotFound = errors.New("orderapi: no such order")

// StatusError is an answer other than the expected ones.
type StatusError struct {
	Op      string
	Status  int
	Message string
	// RetryAfter is the answer's Retry-After (seconds or an HTTP date),
	// 0 when it has none or one that does not parse.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("orderapi: %s: %d %s: %s", e.Op, e.Status, http.StatusText(e.Status), e.Message)
}

// Permanent reports whether err is a refusal no retry can fix: a 4xx other
// than 404, 408, 409 and 429.
func Permanent(err error) bool {
	var se *StatusError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Status {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooManyRequests, http.StatusNotFound:
		return false
	}
	return se.Status >= 400 && se.Status < 500
}

// Overloaded reports whether err is a 429 or a 503: the partner refused the
// call before doing anything, and says (RetryAfter, 0 if not) when to come
// back.
func Overloaded(err error) (retryAfter time.Duration, ok bool) {
	var se *StatusError
	if !errors.As(err, &se) {
		return 0, false
	}
	if se.Status == http.StatusTooManyRequests || se.Status == http.StatusServiceUnavailable {
		return se.RetryAfter, true
	}
	return 0, false
}

// Failing reports whether err says the partner is not working: no answer
// (a timeout, a refused or reset connection) or a 5xx other than 503. The
// caller's own cancellation is not the partner's failure.
func Failing(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil || errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status >= 500 && se.Status != http.StatusServiceUnavailable
	}
	return true
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}

// OrderRequest is the body of POST /orders.
type OrderRequest struct {
	Username         string `json:"username"`
	TotalPrice       int64  `json:"totalPrice"`
	AppliedYearMonth string `json:"appliedYearMonth"`
}

// Order is an order the third party holds.
type Order struct {
	ID               int64     `json:"id"`
	Username         string    `json:"username"`
	TotalPrice       int64     `json:"totalPrice"`
	AppliedYearMonth string    `json:"appliedYearMonth"`
	CreatedAt        time.Time `json:"createdAt"`
}

// Client calls the order API at one base URL.
type Client struct {
	base    string
	timeout time.Duration
	http    *http.Client
}

// New returns a client of the API at baseURL (http://host:port) whose calls
// each time out after timeout. Connections are kept for up to maxConns
// concurrent calls.
func New(baseURL string, timeout time.Duration, maxConns int) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = max(maxConns, 2)
	tr.MaxIdleConnsPerHost = max(maxConns, 2)
	tr.DialContext = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	return &Client{base: strings.TrimRight(baseURL, "/"), timeout: timeout, http: &http.Client{Transport: tr}}
}

// Create sends POST /orders. A 201 returns the order; a 409 is ErrConflict;
// anything else is a *StatusError or a transport error (timeouts included),
// after which the order may or may not exist.
func (c *Client) Create(ctx context.Context, req OrderRequest) (Order, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return Order{}, fmt.Errorf("orderapi: create: %w", err)
	}
	var o Order
	status, msg, ra, err := c.doRA(ctx, http.MethodPost, "/orders", body, &o, http.StatusCreated)
	switch {
	case err != nil:
		return Order{}, fmt.Errorf("orderapi: create %s/%s: %w", req.Username, req.AppliedYearMonth, err)
	case status == http.StatusCreated:
		return o, nil
	case status == http.StatusConflict:
		return Order{}, ErrConflict
	default:
		return Order{}, &StatusError{Op: "create " + req.Username + "/" + req.AppliedYearMonth, Status: status, Message: msg, RetryAfter: ra}
	}
}

// Lookup sends GET /orders?username=&appliedYearMonth=; a 404 is ErrNotFound.
func (c *Client) Lookup(ctx context.Context, username, yearMonth string) (Order, error) {
	q := url.Values{"username": {username}, "appliedYearMonth": {yearMonth}}
	var o Order
	status, msg, ra, err := c.doRA(ctx, http.MethodGet, "/orders?"+q.Encode(), nil, &o, http.StatusOK)
	switch {
	case err != nil:
		return Order{}, fmt.Errorf("orderapi: lookup %s/%s: %w", username, yearMonth, err)
	case status == http.StatusOK:
		return o, nil
	case status == http.StatusNotFound:
		return Order{}, ErrNotFound
	default:
		return Order{}, &StatusError{Op: "lookup " + username + "/" + yearMonth, Status: status, Message: msg, RetryAfter: ra}
	}
}

// List returns up to limit orders with id > afterID, by id.
func (c *Client) List(ctx context.Context, afterID int64, limit int) ([]Order, error) {
	q := url.Values{"afterId": {strconv.FormatInt(afterID, 10)}, "limit": {strconv.Itoa(limit)}}
	var out struct {
		Orders []Order `json:"orders"`
	}
	status, msg, err := c.do(ctx, http.MethodGet, "/orders?"+q.Encode(), nil, &out, http.StatusOK)
	if err != nil {
		return nil, fmt.Errorf("orderapi: list: %w", err)
	}
	if status != http.StatusOK {
		return nil, &StatusError{Op: "list", Status: status, Message: msg}
	}
	return out.Orders, nil
}

// do sends one request with the client's timeout, decoding a wantStatus
// answer into dst and returning any other answer's error text.
func (c *Client) do(ctx context.Context, method, path string, body []byte, dst any, wantStatus int) (int, string, error) {
	status, msg, _, err := c.doRA(ctx, method, path, body, dst, wantStatus)
	return status, msg, err
}

// doRA is do that also returns the answer's Retry-After.
func (c *Client) doRA(ctx context.Context, method, path string, body []byte, dst any, wantStatus int) (int, string, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	// A write to the connection fails once ctx's deadline is past, whatever
	// it carries: a worker that froze with a request half-written (in
	// net/http's buffer, not yet on the wire) sends none of it when it
	// wakes, after its attempt's deadline, its job possibly taken over.
	if dl, ok := ctx.Deadline(); ok {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
			_ = info.Conn.SetWriteDeadline(dl)
		}})
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return 0, "", 0, redact.Error(err)
	}
	if body != nil {
		// The body is handed over only while ctx is live, as the
		// connection is written only before its deadline (above).
		req.Body = io.NopCloser(&liveReader{ctx: ctx, r: bytes.NewReader(body)})
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// The *url.Error quotes the request URL: ORDER_API_URL's
		// credentials and the query.
		err = redact.Error(err)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return 0, "", 0, fmt.Errorf("no answer within %s: %w", c.timeout, err)
		}
		return 0, "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, "", 0, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode == wantStatus {
		if err := json.Unmarshal(b, dst); err != nil {
			return 0, "", 0, fmt.Errorf("malformed %d answer: %w", resp.StatusCode, err)
		}
		return resp.StatusCode, "", 0, nil
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(b))
	}
	// The partner's answer may quote the request, URL and all.
	return resp.StatusCode, redact.Text(e.Error), parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), nil
}

// liveReader reads r while ctx is not done.
type liveReader struct {
	ctx context.Context
	r   io.Reader
}

func (l *liveReader) Read(p []byte) (int, error) {
	if err := l.ctx.Err(); err != nil {
		return 0, err
	}
	return l.r.Read(p)
}
