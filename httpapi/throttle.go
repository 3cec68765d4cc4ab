package httpapi

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Failed sign-ins an address may make in a window: after the last, every
// sign-in from it is answered 429 until the window ends.
const (
	maxFailures   = 20
	failureWindow = time.Minute
	// maxTracked bounds the addresses remembered; past it, expired windows
	// are dropped, and while it stays full every address not tracked shares
	// one count of its kind, so a flood of addresses is throttled as one
	// rather than not at all.
	maxTracked = 100_000
)

// failureThrottle counts failed authentications per key (kind and address)
// in fixed windows, in this process's memory: each worker process throttles
// on its own, which bounds a guesser at maxFailures a minute per process.
type failureThrottle struct {
	mu sync.Mutex
	m  map[string]*failures
	// any is set once a failure was counted: until then (the usual case)
	// over answers without taking the lock.
	any atomic.Bool
}

type failures struct {
	start time.Time
	n     int
}

// overflowAddr is the address every untracked one counts as while the
// table is full.
const overflowAddr = "(untracked addresses)"

// over reports whether addr is throttled for kind now, and for how long
// still.
func (t *failureThrottle) over(kind, addr string) (time.Duration, bool) {
	if !t.any.Load() {
		return 0, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.m[kind+" "+addr]
	if !ok && len(t.m) >= maxTracked {
		f, ok = t.m[kind+" "+overflowAddr]
	}
	if !ok {
		return 0, false
	}
	left := failureWindow - time.Since(f.start)
	if left <= 0 {
		return 0, false
	}
	return left, f.n >= maxFailures
}

// fail counts a failure of addr with kind and returns the window's count
// and whether this one reached the limit.
func (t *failureThrottle) fail(kind, addr string) (n int, crossed bool) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*failures{}
		t.any.Store(true)
	}
	key := kind + " " + addr
	f, ok := t.m[key]
	if ok && now.Sub(f.start) >= failureWindow {
		ok = false
	}
	if !ok {
		if len(t.m) >= maxTracked {
			for k, f := range t.m {
				if now.Sub(f.start) >= failureWindow {
					delete(t.m, k)
				}
			}
		}
		if len(t.m) >= maxTracked {
			key = kind + " " + overflowAddr
			if f, ok = t.m[key]; ok && now.Sub(f.start) >= failureWindow {
				ok = false
			}
		}
		if !ok {
			f = &failures{start: now}
			t.m[key] = f
		}
	}
	f.n++
	return f.n, f.n == maxFailures
}

// ClientAddr finds the address a request comes from: its peer, or, when
// the peer is a trusted proxy (a load balancer), the nearest address in
// X-Forwarded-For that is not one. An IPv6 client is its /64, the block one
// host is usually given.
type ClientAddr struct {
	// Trusted are the proxies whose X-Forwarded-For is believed
	// (TRUSTED_PROXIES).
	Trusted []netip.Prefix
}

// Of returns r's client address.
func (a *ClientAddr) Of(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if a != nil && a.trusted(peer) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			if strings.TrimSpace(hops[i]) == "" {
				continue
			}
			hop, ok := parseHop(hops[i])
			if !ok {
				// Written by a proxy we trust in a form we cannot read
				// ("unknown", an obfuscated name): the client is that.
				return "forwarded " + strconvQuote(hops[i])
			}
			peer = hop
			if !a.trusted(peer) {
				break
			}
		}
	}
	if peer.Is6() {
		p, _ := peer.Prefix(64)
		return p.String()
	}
	return peer.String()
}

// parseHop reads one X-Forwarded-For entry: an address, with or without a
// port ("192.0.2.7:51234", "[2001:db8::7]:443", "[2001:db8::7]").
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}

// strconvQuote quotes at most 64 bytes of s.
func strconvQuote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 64 {
		s = s[:64]
	}
	return strconv.Quote(s)
}

func (a *ClientAddr) trusted(ip netip.Addr) bool {
	for _, p := range a.Trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
