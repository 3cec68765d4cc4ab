package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// The key set's timing: refreshed every keyRefreshEvery; before it was ever
// loaded, retried every keyRetryEvery; a token naming an unknown key
// refreshes it at most every keyUnknownEvery, so tokens with invented key ids
// cannot make tidemark hammer the identity provider; a request waits at most
// keyWaitMax for a refresh under way.
const (
	keyRefreshEvery = 15 * time.Minute
	keyRetryEvery   = 5 * time.Second
	keyUnknownEvery = 30 * time.Second
	keyWaitMax      = 3 * time.Second
	keySetMaxBytes  = 1 << 20
	minRSABits      = 2048
)

// keySet is the identity provider's public keys, fetched from its JWKS URL
// and kept in memory.
type keySet struct {
	url    string
	client *http.Client
	logger *slog.Logger

	mu          sync.Mutex
	keys        map[string]any // kid -> *rsa.PublicKey or *ecdsa.PublicKey
	algs        map[string]string
	ok          bool          // fetched at least once
	lastUnknown time.Time     // the latest refresh a token with an unknown kid asked for
	fetching    chan struct{} // closed when the fetch under way ends; nil when none is
}

func newKeySet(url string, client *http.Client, logger *slog.Logger) *keySet {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &keySet{url: url, client: client, logger: logger}
}

func (s *keySet) loaded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ok
}

// run fetches the set until ctx is done: until the first success every
// keyRetryEvery, then every keyRefreshEvery.
func (s *keySet) run(ctx context.Context) {
	for {
		wait := keyRefreshEvery
		if err := s.refresh(ctx); err != nil {
			s.logger.WarnContext(ctx, "auth: member key set not fetched; keeping the keys we have", "err", err)
			if !s.loaded() {
				wait = keyRetryEvery
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// refresh fetches the set now, or waits for the fetch under way.
func (s *keySet) refresh(ctx context.Context) error {
	s.mu.Lock()
	if ch := s.fetching; ch != nil {
		s.mu.Unlock()
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ch := make(chan struct{})
	s.fetching = ch
	s.mu.Unlock()

	// The fetch outlives a request that gave up waiting for it.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	keys, algs, err := s.fetch(fctx)
	cancel()
	s.mu.Lock()
	if err == nil {
		s.keys, s.algs, s.ok = keys, algs, true
	}
	s.fetching = nil
	s.mu.Unlock()
	close(ch)
	return err
}

func (s *keySet) fetch(ctx context.Context) (map[string]any, map[string]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("MEMBER_JWKS_URL: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch key set: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("fetch key set: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, keySetMaxBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("fetch key set: %w", err)
	}
	if len(body) > keySetMaxBytes {
		return nil, nil, fmt.Errorf("fetch key set: larger than %d bytes", keySetMaxBytes)
	}
	return ParseKeySet(body)
}

// ParseKeySet reads a JSON Web Key Set and keeps its signature keys that
// RS256 (RSA, at least 2048 bits) or ES256 (EC P-256) can use, by kid, with
// the alg each is bound to where the set says. Symmetric keys are never
// taken from a key set, so no public key can become an HS256 secret.
func ParseKeySet(body []byte) (keys map[string]any, algs map[string]string, err error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, nil, fmt.Errorf("key set: not a JSON Web Key Set: %w", err)
	}
	type usable struct {
		kid, alg string
		key      any
	}
	var found []usable
	for _, m := range set.Keys {
		if (m.USE != "" && m.USE != jwkset.UseSig) || (m.KTY != jwkset.KtyRSA && m.KTY != jwkset.KtyEC) {
			continue
		}
		// Public parts only, and nothing fetched on the set's say-so.
		m.D, m.P, m.Q, m.DP, m.DQ, m.QI, m.OTH, m.K = "", "", "", "", "", "", nil, ""
		m.X5U = ""
		jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			continue
		}
		var key any
		switch k := jwk.Key().(type) {
		case *rsa.PublicKey:
			if k.N.BitLen() >= minRSABits {
				key = k
			}
		case *ecdsa.PublicKey:
			if k.Curve == elliptic.P256() {
				key = k
			}
		}
		if key != nil {
			found = append(found, usable{kid: m.KID, alg: m.ALG.String(), key: key})
		}
	}
	keys, algs = map[string]any{}, map[string]string{}
	for _, u := range found {
		// A key without a kid is usable only as the set's one key: with
		// several, a token must say which.
		if u.kid == "" && len(found) > 1 {
			continue
		}
		if _, dup := keys[u.kid]; dup {
			return nil, nil, fmt.Errorf("key set: kid %q is used twice", u.kid)
		}
		keys[u.kid] = u.key
		if u.alg != "" {
			algs[u.kid] = u.alg
		}
	}
	if len(keys) == 0 {
		return nil, nil, errors.New("key set: no RS256 (RSA ≥ 2048 bits) or ES256 (P-256) signature key")
	}
	return keys, algs, nil
}

// key returns the key of kid for a token signed with alg. An unknown kid
// refreshes the set first, at most every keyUnknownEvery.
func (s *keySet) key(ctx context.Context, kid, alg string) (any, error) {
	k, kalg, found, due := s.lookup(kid)
	if !found && due {
		wctx, cancel := context.WithTimeout(ctx, keyWaitMax)
		if err := s.refresh(wctx); err != nil {
			s.logger.WarnContext(ctx, "auth: member key set not refreshed for an unknown kid; keeping the keys we have", "err", err)
		}
		cancel()
		k, kalg, found, _ = s.lookup(kid)
	}
	if !found {
		if kid == "" {
			return nil, &keyError{"no kid, and the key set has more than one key"}
		}
		return nil, &keyError{fmt.Sprintf("unknown key %q", kid)}
	}
	if kalg != "" && kalg != alg {
		return nil, &keyError{fmt.Sprintf("key %q is for %s, the token is signed with %s", kid, kalg, alg)}
	}
	switch k.(type) {
	case *rsa.PublicKey:
		if alg != jwt.SigningMethodRS256.Alg() {
			return nil, &keyError{fmt.Sprintf("key %q is an RSA key, the token is signed with %s", kid, alg)}
		}
	case *ecdsa.PublicKey:
		if alg != jwt.SigningMethodES256.Alg() {
			return nil, &keyError{fmt.Sprintf("key %q is an EC key, the token is signed with %s", kid, alg)}
		}
	}
	return k, nil
}

// lookup finds kid (a token without one matches a set of one key) and says
// whether an unknown kid may refresh the set now.
func (s *keySet) lookup(kid string) (key any, alg string, found, refreshDue bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[kid]; ok {
		return k, s.algs[kid], true, false
	}
	if kid == "" && len(s.keys) == 1 {
		for id, k := range s.keys {
			return k, s.algs[id], true, false
		}
	}
	if s.fetching != nil {
		// Only the token that asked for the refresh waits for it: a crowd
		// of tokens naming invented keys is refused at once.
		return nil, "", false, false
	}
	if time.Since(s.lastUnknown) < keyUnknownEvery {
		return nil, "", false, false
	}
	s.lastUnknown = time.Now()
	return nil, "", false, true
}
