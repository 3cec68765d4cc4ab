package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/auth"
)

var secret = []byte("a-member-secret-of-at-least-32-bytes!")

func hsMembers(t *testing.T, iss, aud string) *auth.Members {
	t.Helper()
	m, err := auth.NewMembers(context.Background(), auth.MemberOpts{Secret: secret, Issuer: iss, Audience: aud})
	require.NoError(t, err)
	return m
}

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

func claims(sub string, exp time.Time) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "exp": exp.Unix(), "iat": time.Now().Add(-time.Minute).Unix()}
}

func TestMemberTokenHS256(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := hsMembers(t, "", "")
	require.NoError(t, m.Ready())
	tok, err := auth.SignMember(secret, 42, time.Hour, "", "", time.Now())
	require.NoError(t, err)
	id, err := m.Verify(ctx, tok)
	require.NoError(t, err)
	require.Equal(t, int64(42), id)

	now := time.Now()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	for _, c := range []struct {
		name, token, want string
	}{
		{"not a token", "hello", "invalid token: malformed"},
		{"empty", "", "invalid token: malformed"},
		{"expired", sign(t, jwt.SigningMethodHS256, secret, claims("42", now.Add(-time.Minute)), nil), "invalid token: expired"},
		{"expired within the leeway is still good", "", ""},
		{"no exp", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "42"}, nil), "invalid token: missing required claim exp"},
		{"not before in the future", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "42", "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(time.Hour).Unix()}, nil), "not valid yet"},
		{"issued in the future", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "42", "exp": now.Add(time.Hour).Unix(), "iat": now.Add(time.Hour).Unix()}, nil), "issued in the future"},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-at-least-32-bytes!!"), claims("42", now.Add(time.Hour)), nil), "invalid token: bad signature"},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("42", now.Add(time.Hour)), nil), "invalid token: bad signature"},
		{"HS512", sign(t, jwt.SigningMethodHS512, secret, claims("42", now.Add(time.Hour)), nil), "invalid token: bad signature"},
		{"RS256 where HS256 is pinned", sign(t, jwt.SigningMethodRS256, rsaKey, claims("42", now.Add(time.Hour)), nil), "invalid token: bad signature"},
		{"sub not a number", sign(t, jwt.SigningMethodHS256, secret, claims("alice", now.Add(time.Hour)), nil), "sub is not a member id"},
		{"sub zero", sign(t, jwt.SigningMethodHS256, secret, claims("0", now.Add(time.Hour)), nil), "sub is not a member id"},
		{"sub negative", sign(t, jwt.SigningMethodHS256, secret, claims("-4", now.Add(time.Hour)), nil), "sub is not a member id"},
		{"sub with a leading zero", sign(t, jwt.SigningMethodHS256, secret, claims("042", now.Add(time.Hour)), nil), "sub is not a member id"},
		{"sub a JSON number", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": 42, "exp": now.Add(time.Hour).Unix()}, nil), "invalid token"},
		{"no sub", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}, nil), "sub is not a member id"},
		{"crit header", sign(t, jwt.SigningMethodHS256, secret, claims("42", now.Add(time.Hour)), map[string]any{"crit": []string{"b64"}}), "critical header"},
		{"too long", strings.Repeat("a", auth.MaxTokenLen+1), "longer than"},
		{"Sub beside sub", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "3", "Sub": "4", "exp": now.Add(time.Hour).Unix()}, nil), `claim "Sub"`},
		{"SUB alone", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"SUB": "4", "exp": now.Add(time.Hour).Unix()}, nil), `claim "SUB": claim names are case-sensitive`},
		{"Exp in the future beside a past exp", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "3", "exp": now.Add(-time.Hour).Unix(), "Exp": now.Add(time.Hour).Unix()}, nil), "invalid token"},
		{"exp a string", sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "3", "exp": strconv.FormatInt(now.Add(time.Hour).Unix(), 10)}, nil), `claim "exp" is not a number`},
	} {
		if c.token == "" && c.want == "" {
			tok := sign(t, jwt.SigningMethodHS256, secret, claims("42", now.Add(-10*time.Second)), nil)
			id, err := m.Verify(ctx, tok)
			require.NoError(t, err, c.name)
			require.Equal(t, int64(42), id)
			continue
		}
		_, err := m.Verify(ctx, c.token)
		require.ErrorContains(t, err, c.want, c.name)
		var te *auth.TokenError
		require.ErrorAs(t, err, &te, c.name)
	}
}

func TestMemberTokenIssuerAndAudience(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := hsMembers(t, "https://id.example", "tidemark")
	good, err := auth.SignMember(secret, 7, time.Hour, "https://id.example", "tidemark", time.Now())
	require.NoError(t, err)
	id, err := m.Verify(ctx, good)
	require.NoError(t, err)
	require.Equal(t, int64(7), id)
	for _, c := range []struct{ iss, aud, want string }{
		{"https://evil.example", "tidemark", "wrong issuer"},
		{"", "tidemark", "missing required claim iss"},
		{"https://id.example", "another-app", "wrong audience"},
		{"https://id.example", "", "missing required claim aud"},
	} {
		tok, err := auth.SignMember(secret, 7, time.Hour, c.iss, c.aud, time.Now())
		require.NoError(t, err)
		_, err = m.Verify(ctx, tok)
		require.ErrorContains(t, err, c.want, c)
	}
}

func TestNewMembersRefusesBadConfiguration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, err := auth.NewMembers(ctx, auth.MemberOpts{})
	require.ErrorContains(t, err, "exactly one")
	_, err = auth.NewMembers(ctx, auth.MemberOpts{Secret: secret, JWKSURL: "http://127.0.0.1:1/jwks"})
	require.ErrorContains(t, err, "exactly one")
	_, err = auth.NewMembers(ctx, auth.MemberOpts{Secret: []byte("short-secret")})
	require.ErrorContains(t, err, "MEMBER_JWT_SECRET: is 12 bytes; want a random secret of at least 32 bytes")
	_, err = auth.NewMembers(ctx, auth.MemberOpts{Secret: []byte(strings.Repeat(" ", 40))})
	require.ErrorContains(t, err, "MEMBER_JWT_SECRET: is only spaces")
}

// idp is an identity provider publishing its key set over real HTTP.
type idp struct {
	mu      sync.Mutex
	set     []map[string]any
	fetches atomic.Int64
	down    atomic.Bool
	url     string
}

func newIDP(t *testing.T) *idp {
	t.Helper()
	p := &idp{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.fetches.Add(1)
		if p.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": p.set})
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL + "/.well-known/jwks.json"
	return p
}

func (p *idp) publish(keys ...map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.set = keys
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey, alg string) map[string]any {
	m := map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
	if alg != "" {
		m["alg"] = alg
	}
	return m
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	pub, err := k.ECDH()
	if err != nil {
		panic(err)
	}
	raw := pub.Bytes() // 0x04 || X || Y
	return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:])}
}

func jwksMembers(t *testing.T, url string) *auth.Members {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m, err := auth.NewMembers(ctx, auth.MemberOpts{JWKSURL: url})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return m.Ready() == nil }, 10*time.Second, 10*time.Millisecond, "the key set is fetched at start")
	return m
}

func TestMemberTokenJWKS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	p := newIDP(t)
	p.publish(rsaJWK("r1", &rsaKey.PublicKey, "RS256"), ecJWK("e1", &ecKey.PublicKey),
		map[string]any{"kty": "oct", "kid": "s1", "k": b64(secret)})
	m := jwksMembers(t, p.url)

	exp := time.Now().Add(time.Hour)
	id, err := m.Verify(ctx, sign(t, jwt.SigningMethodRS256, rsaKey, claims("11", exp), map[string]any{"kid": "r1"}))
	require.NoError(t, err)
	require.Equal(t, int64(11), id)
	id, err = m.Verify(ctx, sign(t, jwt.SigningMethodES256, ecKey, claims("12", exp), map[string]any{"kid": "e1"}))
	require.NoError(t, err)
	require.Equal(t, int64(12), id)

	// The classic confusion: HS256 keyed with the public key's bytes.
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&rsaKey.PublicKey))})
	_, err = m.Verify(ctx, sign(t, jwt.SigningMethodHS256, pubPEM, claims("11", exp), map[string]any{"kid": "r1"}))
	require.ErrorContains(t, err, "bad signature")
	// A symmetric key in the set is never used.
	_, err = m.Verify(ctx, sign(t, jwt.SigningMethodHS256, secret, claims("11", exp), map[string]any{"kid": "s1"}))
	require.ErrorContains(t, err, "bad signature")
	// The EC key with RS256's kid, an RS-signed token naming the EC key.
	_, err = m.Verify(ctx, sign(t, jwt.SigningMethodES256, ecKey, claims("11", exp), map[string]any{"kid": "r1"}))
	require.ErrorContains(t, err, `key "r1" is for RS256, the token is signed with ES256`)
	_, err = m.Verify(ctx, sign(t, jwt.SigningMethodRS256, rsaKey, claims("11", exp), map[string]any{"kid": "e1"}))
	require.ErrorContains(t, err, `key "e1" is an EC key, the token is signed with RS256`)
	// Another key under a known kid.
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	_, err = m.Verify(ctx, sign(t, jwt.SigningMethodRS256, other, claims("11", exp), map[string]any{"kid": "r1"}))
	require.ErrorContains(t, err, "bad signature")
	// Without a kid, in a set of several keys.
	_, err = m.Verify(ctx, sign(t, jwt.SigningMethodRS256, rsaKey, claims("11", exp), nil))
	require.ErrorContains(t, err, "no kid")
}

func TestMemberKeySetRotationAndUnknownKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k1, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	k2, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	p := newIDP(t)
	p.publish(rsaJWK("k1", &k1.PublicKey, ""))
	m := jwksMembers(t, p.url)
	exp := time.Now().Add(time.Hour)
	id, err := m.Verify(ctx, sign(t, jwt.SigningMethodRS256, k1, claims("5", exp), nil))
	require.NoError(t, err, "a token without a kid matches a set of one key")
	require.Equal(t, int64(5), id)

	// The provider rotates to k2: the first token naming it refreshes the set.
	p.publish(rsaJWK("k1", &k1.PublicKey, ""), rsaJWK("k2", &k2.PublicKey, ""))
	before := p.fetches.Load()
	id, err = m.Verify(ctx, sign(t, jwt.SigningMethodRS256, k2, claims("6", exp), map[string]any{"kid": "k2"}))
	require.NoError(t, err)
	require.Equal(t, int64(6), id)
	require.Equal(t, before+1, p.fetches.Load())

	// Tokens naming invented keys do not make tidemark fetch again and again.
	before = p.fetches.Load()
	for i := range 50 {
		_, err = m.Verify(ctx, sign(t, jwt.SigningMethodRS256, k2, claims("6", exp), map[string]any{"kid": fmt.Sprint("invented-", i)}))
		require.ErrorContains(t, err, "unknown key")
	}
	require.LessOrEqual(t, p.fetches.Load(), before+1)

	// The provider down: the keys already fetched keep working.
	p.down.Store(true)
	_, err = m.Verify(ctx, sign(t, jwt.SigningMethodRS256, k1, claims("5", exp), map[string]any{"kid": "k1"}))
	require.NoError(t, err)
}

func TestMemberKeySetNotLoaded(t *testing.T) {
	t.Parallel()
	p := newIDP(t)
	p.down.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m, err := auth.NewMembers(ctx, auth.MemberOpts{JWKSURL: p.url})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return p.fetches.Load() >= 1 }, 10*time.Second, 10*time.Millisecond)
	require.ErrorIs(t, m.Ready(), auth.ErrKeysNotLoaded)
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	_, err = m.Verify(ctx, sign(t, jwt.SigningMethodRS256, k, claims("5", time.Now().Add(time.Hour)), nil))
	require.ErrorIs(t, err, auth.ErrKeysNotLoaded)

	// Once the provider answers, the retry loads the set.
	p.publish(rsaJWK("k", &k.PublicKey, "RS256"))
	p.down.Store(false)
	require.Eventually(t, func() bool { return m.Ready() == nil }, 15*time.Second, 20*time.Millisecond)
	id, err := m.Verify(ctx, sign(t, jwt.SigningMethodRS256, k, claims("5", time.Now().Add(time.Hour)), nil))
	require.NoError(t, err)
	require.Equal(t, int64(5), id)
}

func TestParseKeySetKeepsOnlyUsableSignatureKeys(t *testing.T) {
	t.Parallel()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	good, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	enc := rsaJWK("enc", &good.PublicKey, "")
	enc["use"] = "enc"
	raw, err := json.Marshal(map[string]any{"keys": []any{rsaJWK("small", &small.PublicKey, ""), enc,
		map[string]any{"kty": "EC", "kid": "p384", "crv": "P-384", "x": b64(p384.X.FillBytes(make([]byte, 48))), "y": b64(p384.Y.FillBytes(make([]byte, 48)))},
		map[string]any{"kty": "oct", "kid": "sym", "k": b64(secret)}}})
	require.NoError(t, err)
	_, _, err = auth.ParseKeySet(raw)
	require.ErrorContains(t, err, "no RS256 (RSA ≥ 2048 bits) or ES256 (P-256) signature key")
	_, _, err = auth.ParseKeySet([]byte(`{"keys": 5}`))
	require.ErrorContains(t, err, "not a JSON Web Key Set")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// FuzzVerifyToken: no input makes Verify accept a token it did not sign, or
// quote the token in its error.
func FuzzVerifyToken(f *testing.F) {
	m, err := auth.NewMembers(context.Background(), auth.MemberOpts{Secret: secret})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := auth.SignMember(secret, 42, time.Hour, "", "", time.Now())
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiI0MiJ9.")
	f.Add("a.b.c")
	f.Add(strings.Replace(good, ".", "..", 1))
	f.Fuzz(func(t *testing.T, token string) {
		id, err := m.Verify(context.Background(), token)
		if err != nil {
			require.Zero(t, id)
			if len(token) > 12 {
				require.NotContains(t, err.Error(), token)
			}
			return
		}
		require.Positive(t, id)
		// Accepted: it must carry a signature made with the secret.
		parts := strings.Split(token, ".")
		require.Len(t, parts, 3)
		want, err := jwt.SigningMethodHS256.Sign(parts[0]+"."+parts[1], secret)
		require.NoError(t, err)
		got, err := base64.RawURLEncoding.DecodeString(parts[2])
		require.NoError(t, err)
		require.Equal(t, want, got)
	})
}
