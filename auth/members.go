package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MinSecretLen is the least length of MEMBER_JWT_SECRET: HS256's key should
// be at least as long as its 256-bit hash (RFC 7518, 3.2).
const MinSecretLen = 32

// MaxTokenLen bounds the token a member presents; a longer one is refused
// before it is decoded.
const MaxTokenLen = 8 << 10

// DefaultLeeway is how far a member's clock may be from ours when exp, nbf
// and iat are checked.
const DefaultLeeway = 30 * time.Second

// MemberOpts configures how members' tokens are verified: with the shared
// Secret (HS256) or the keys published at JWKSURL (RS256, ES256), exactly
// one of the two.
type MemberOpts struct {
	// Secret is MEMBER_JWT_SECRET, HS256's key.
	Secret []byte
	// JWKSURL is MEMBER_JWKS_URL, where the identity provider publishes its
	// public keys as a JSON Web Key Set.
	JWKSURL string
	// Issuer and Audience, when set, must be the token's iss and one of its
	// aud (MEMBER_JWT_ISSUER, MEMBER_JWT_AUDIENCE).
	Issuer, Audience string
	// Leeway is DefaultLeeway when 0.
	Leeway time.Duration
	// HTTPClient fetches the key set (a client with a 5 s timeout when nil).
	HTTPClient *http.Client
	// Logger receives the key set's fetch failures.
	Logger *slog.Logger
}

// Members verifies the tokens members present.
type Members struct {
	parser *jwt.Parser
	secret []byte
	keys   *keySet
}

// NewMembers returns a verifier for o. With a JWKSURL it fetches the key set
// in the background until ctx is done: at once, then every
// keyRefreshEvery, and when a token names a key it does not know.
func NewMembers(ctx context.Context, o MemberOpts) (*Members, error) {
	if (len(o.Secret) == 0) == (o.JWKSURL == "") {
		return nil, errors.New("auth: want exactly one of a secret (HS256) and a key set URL (RS256, ES256)")
	}
	leeway := o.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	}
	methods := []string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg()}
	if len(o.Secret) > 0 {
		if err := CheckSecret("MEMBER_JWT_SECRET", string(o.Secret)); err != nil {
			return nil, err
		}
		methods = []string{jwt.SigningMethodHS256.Alg()}
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway), jwt.WithIssuedAt()}
	if o.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(o.Issuer))
	}
	if o.Audience != "" {
		opts = append(opts, jwt.WithAudience(o.Audience))
	}
	m := &Members{parser: jwt.NewParser(opts...), secret: o.Secret}
	if o.JWKSURL != "" {
		m.keys = newKeySet(o.JWKSURL, o.HTTPClient, o.Logger)
		go m.keys.run(ctx)
	}
	return m, nil
}

// CheckSecret reports what is wrong with MEMBER_JWT_SECRET (named name),
// without quoting it.
func CheckSecret(name, secret string) error {
	switch {
	case strings.TrimSpace(secret) == "":
		return fmt.Errorf("%s: is only spaces; want a random secret of at least %d bytes", name, MinSecretLen)
	case len(secret) < MinSecretLen:
		return fmt.Errorf("%s: is %d bytes; want a random secret of at least %d bytes (HS256)", name, len(secret), MinSecretLen)
	}
	return nil
}

// ErrKeysNotLoaded is Ready's answer while the key set has never been
// fetched.
var ErrKeysNotLoaded = errors.New("the identity provider's keys (MEMBER_JWKS_URL) are not loaded yet")

// Ready reports whether tokens can be verified now: nil with a secret, or
// once the key set was fetched.
func (m *Members) Ready() error {
	if m.keys != nil && !m.keys.loaded() {
		return ErrKeysNotLoaded
	}
	return nil
}

// TokenError says why a token was refused. Its text never quotes the token.
type TokenError struct{ Reason string }

func (e *TokenError) Error() string { return "invalid token: " + e.Reason }

// Verify checks token and returns the member it was issued to: its sub, a
// positive decimal member id. Any other outcome is a *TokenError, or
// ErrKeysNotLoaded.
func (m *Members) Verify(ctx context.Context, token string) (int64, error) {
	if len(token) > MaxTokenLen {
		return 0, &TokenError{fmt.Sprintf("longer than %d bytes", MaxTokenLen)}
	}
	if err := m.Ready(); err != nil {
		return 0, err
	}
	var claims jwt.RegisteredClaims
	_, err := m.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) { return m.key(ctx, t) })
	if err != nil {
		return 0, &TokenError{reason(err)}
	}
	if err := strictClaims(token); err != nil {
		return 0, err
	}
	id, err := strconv.ParseInt(claims.Subject, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != claims.Subject {
		return 0, &TokenError{"sub is not a member id (a positive decimal integer)"}
	}
	return id, nil
}

// key is the key that verifies t: the secret, or the key set's key of t's
// kid, of the type t's alg needs.
func (m *Members) key(ctx context.Context, t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, &keyError{"the token has critical header extensions (crit), which are not supported"}
	}
	if m.keys == nil {
		return m.secret, nil
	}
	kid, _ := t.Header["kid"].(string)
	return m.keys.key(ctx, kid, t.Method.Alg())
}

// reason says why golang-jwt refused a token, in a few words a caller may
// read.
func reason(err error) string {
	var ke *keyError
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.As(err, &ke):
		return ke.msg
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "cannot be verified"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature, or an alg not allowed"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		for _, c := range []string{"exp", "iss", "aud"} {
			if strings.Contains(err.Error(), c+" claim") {
				return "missing required claim " + c
			}
		}
		return "missing a required claim"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "issued in the future (iat)"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return "invalid claims"
	}
	return "refused"
}

// registered are the claims tidemark reads, by their one spelling.
var registered = []string{"sub", "exp", "nbf", "iat", "iss", "aud"}

// strictClaims holds a verified token's claims to RFC 7519 where
// encoding/json, which golang-jwt decodes them with, is lenient: claim
// names are case-sensitive ("Sub" is not sub, and must not stand in for
// it), a registered name appears once, and the dates are numbers. It scans
// the payload's top-level names without decoding it again (golang-jwt has
// checked it is a JSON object); a name written with escapes is refused.
func strictClaims(token string) error {
	first := strings.IndexByte(token, '.')
	last := strings.LastIndexByte(token, '.')
	if first < 0 || last <= first {
		return &TokenError{"malformed"}
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(token[first+1:last], "="))
	if err != nil {
		return &TokenError{"malformed"}
	}
	var seen [6]bool
	i := skipSpace(payload, 0)
	if i >= len(payload) || payload[i] != '{' {
		return &TokenError{"malformed"}
	}
	i = skipSpace(payload, i+1)
	for i < len(payload) && payload[i] != '}' {
		if payload[i] != '"' {
			return &TokenError{"malformed"}
		}
		end := i + 1
		for end < len(payload) && payload[end] != '"' {
			if payload[end] == '\\' {
				return &TokenError{"a claim name written with escapes"}
			}
			end++
		}
		if end >= len(payload) {
			return &TokenError{"malformed"}
		}
		name := string(payload[i+1 : end])
		i = skipSpace(payload, end+1)
		if i >= len(payload) || payload[i] != ':' {
			return &TokenError{"malformed"}
		}
		i = skipSpace(payload, i+1)
		for r, want := range registered {
			if !strings.EqualFold(name, want) {
				continue
			}
			switch {
			case name != want:
				return &TokenError{fmt.Sprintf("claim %q: claim names are case-sensitive; want %q", name, want)}
			case seen[r]:
				return &TokenError{fmt.Sprintf("claim %q given twice", name)}
			case r >= 1 && r <= 3 && i < len(payload) && payload[i] != '-' && (payload[i] < '0' || payload[i] > '9'):
				return &TokenError{fmt.Sprintf("claim %q is not a number (a NumericDate)", name)}
			}
			seen[r] = true
		}
		if i = skipValue(payload, i); i < 0 {
			return &TokenError{"malformed"}
		}
		i = skipSpace(payload, i)
		if i < len(payload) && payload[i] == ',' {
			i = skipSpace(payload, i+1)
		}
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index after the JSON value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch b[i] {
		case '"':
			i++
			for i < len(b) && b[i] != '"' {
				if b[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(b) {
				return -1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
		case ',':
			if depth == 0 {
				return i
			}
		}
		i++
		if depth == 0 && i < len(b) && (b[i] == ',' || b[i] == '}') {
			return i
		}
	}
	return -1
}

// keyError is why no key verifies a token, in words a caller may read.
type keyError struct{ msg string }

func (e *keyError) Error() string { return e.msg }

// SignMember returns an HS256 token for member, valid for ttl from now, with
// iss and aud when they are not empty: what an identity provider sharing
// MEMBER_JWT_SECRET would issue. make run and the tests use it.
func SignMember(secret []byte, member int64, ttl time.Duration, iss, aud string, now time.Time) (string, error) {
	if err := CheckSecret("MEMBER_JWT_SECRET", string(secret)); err != nil {
		return "", err
	}
	if member <= 0 {
		return "", fmt.Errorf("auth: member id %d: want a positive integer", member)
	}
	c := jwt.RegisteredClaims{
		Subject:   strconv.FormatInt(member, 10),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		Issuer:    iss,
	}
	if aud != "" {
		c.Audience = jwt.ClaimStrings{aud}
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}
