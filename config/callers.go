package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tidemark/tidemark/auth"
)

// Callers is who may call the worker's HTTP listener, and how much.
type Callers struct {
	// AdminToken is ADMIN_TOKEN: the token of the operator "admin", role
	// operator. Empty: no such operator.
	AdminToken string
	// OperatorsFile is OPERATORS_FILE: one operator a line,
	// name:role:sha256 of the token (read by the worker at start).
	OperatorsFile string
	// MemberSecret (MEMBER_JWT_SECRET, HS256) or MemberJWKSURL
	// (MEMBER_JWKS_URL, RS256/ES256) verifies members' tokens; with
	// neither, the member endpoints answer 503.
	MemberSecret  string
	MemberJWKSURL string
	// MemberIssuer and MemberAudience, when set, must be a member token's
	// iss and one of its aud (MEMBER_JWT_ISSUER, MEMBER_JWT_AUDIENCE).
	MemberIssuer, MemberAudience string
	// MetricsToken (METRICS_TOKEN) is the bearer token /metrics then
	// requires; only then does it label the coupon gauges with codes.
	MetricsToken string
	// TrustedProxies (TRUSTED_PROXIES) are the load balancers whose
	// X-Forwarded-For names the client, for the failed-login throttle.
	TrustedProxies []netip.Prefix
	// CouponRate is how many issue requests one member may make
	// (COUPON_RATE_LIMIT, "10/m").
	CouponRate Rate
	// HTTPMaxConns caps the listener's open connections (HTTP_MAX_CONNS).
	HTTPMaxConns int
}

// Rate is a number of events per period.
type Rate struct {
	N      int
	Period time.Duration
}

func (r Rate) String() string {
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h"}[r.Period]
	return fmt.Sprintf("%d/%s", r.N, unit)
}

// DefaultCouponRate is COUPON_RATE_LIMIT's default: ten issue requests a
// minute per member, which no member clicking a button reaches.
var DefaultCouponRate = Rate{N: 10, Period: time.Minute}

// DefaultHTTPMaxConns is HTTP_MAX_CONNS's default.
const DefaultHTTPMaxConns = 2048

// ParseRate parses "N/s", "N/m" or "N/h", N from 1 to 1,000,000.
func ParseRate(s string) (Rate, error) {
	n, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	count, err := strconv.Atoi(n)
	period, known := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	if !ok || err != nil || !known || count < 1 || count > 1_000_000 {
		return Rate{}, fmt.Errorf("want N/s, N/m or N/h with N from 1 to 1000000, like 10/m, got %q", s)
	}
	return Rate{N: count, Period: period}, nil
}

// ParsePrefixes parses a comma-separated list of addresses and CIDR
// prefixes.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if p, err := netip.ParsePrefix(part); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("want addresses or CIDR prefixes separated by commas (10.0.0.0/8,192.0.2.7), got %q", part)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// callersFromEnv reads the caller settings. Its errors name the variable and
// never quote a secret.
func callersFromEnv(getenv func(string) string) (Callers, error) {
	var errs []error
	c := Callers{
		AdminToken:     getenv("ADMIN_TOKEN"),
		OperatorsFile:  strings.TrimSpace(getenv("OPERATORS_FILE")),
		MemberSecret:   getenv("MEMBER_JWT_SECRET"),
		MemberJWKSURL:  strings.TrimSpace(getenv("MEMBER_JWKS_URL")),
		MemberIssuer:   strings.TrimSpace(getenv("MEMBER_JWT_ISSUER")),
		MemberAudience: strings.TrimSpace(getenv("MEMBER_JWT_AUDIENCE")),
		MetricsToken:   getenv("METRICS_TOKEN"),
		CouponRate:     DefaultCouponRate,
		HTTPMaxConns:   DefaultHTTPMaxConns,
	}
	// A secret that is given must be good: spaces or a short word is a
	// mistake, never "no token". An empty one is not given.
	for _, v := range []struct{ name, val string }{{"ADMIN_TOKEN", c.AdminToken}, {"METRICS_TOKEN", c.MetricsToken}} {
		if v.val != "" {
			if err := auth.CheckToken(v.name, v.val); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if c.MemberSecret != "" {
		if err := auth.CheckSecret("MEMBER_JWT_SECRET", c.MemberSecret); err != nil {
			errs = append(errs, err)
		}
	}
	if c.MemberSecret != "" && c.MemberJWKSURL != "" {
		errs = append(errs, errors.New("MEMBER_JWT_SECRET and MEMBER_JWKS_URL: set one of them (HS256 with a shared secret, or the identity provider's key set), not both"))
	}
	if c.MemberJWKSURL != "" {
		u, err := url.Parse(c.MemberJWKSURL)
		switch {
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
			errs = append(errs, errors.New("MEMBER_JWKS_URL: want an https://host/path URL of the identity provider's JSON Web Key Set"))
		case u.Scheme == "http" && !loopback(u.Hostname()):
			// Whoever can change the key set in transit can sign in as any
			// member.
			errs = append(errs, errors.New("MEMBER_JWKS_URL: want https:// (http:// only on this machine's loopback)"))
		}
	}
	if (c.MemberIssuer != "" || c.MemberAudience != "") && c.MemberSecret == "" && c.MemberJWKSURL == "" {
		errs = append(errs, errors.New("MEMBER_JWT_ISSUER/MEMBER_JWT_AUDIENCE: set without MEMBER_JWT_SECRET or MEMBER_JWKS_URL, which verify the tokens"))
	}
	if v := getenv("TRUSTED_PROXIES"); v != "" {
		p, err := ParsePrefixes(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("TRUSTED_PROXIES: %w", err))
		}
		c.TrustedProxies = p
	}
	if v := getenv("COUPON_RATE_LIMIT"); v != "" {
		r, err := ParseRate(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("COUPON_RATE_LIMIT: %w", err))
		} else {
			c.CouponRate = r
		}
	}
	if v := getenv("HTTP_MAX_CONNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 16 || n > 1_000_000 {
			errs = append(errs, fmt.Errorf("HTTP_MAX_CONNS: want 16..1000000, got %q", v))
		} else {
			c.HTTPMaxConns = n
		}
	}
	return c, errors.Join(errs...)
}

// loopback reports whether host is this machine's loopback.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
