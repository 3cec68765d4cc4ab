package httpapi

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Failed sign-ins an address may make in a window: after the last, every
// sign-in from it is answered 429 until the window ends.
const (
	maxFailures   = 20
	failureWindow = time.Minute
	// maxTracked bounds the addresses remembered; past it, expired windows
	// are dropped, and while it stays full a new address is not counted
	// (logged still).
	maxTracked = 100_000
)

// failureThrottle counts failed authentications per key (kind and address)
// in fixed windows, in this process's memory: each worker process throttles
// on its own, which bounds a guesser at maxFailures a minute per process.
type failureThrottle struct {
	mu sync.Mutex
	m  map[string]*failures
}

type failures struct {
	start time.Time
	n     int
}

// over reports whether key is throttled now, and for how long still.
func (t *failureThrottle) over(key string) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.m[key]
	if !ok {
		return 0, false
	}
	left := failureWindow - time.Since(f.start)
	if left <= 0 {
		delete(t.m, key)
		return 0, false
	}
	return left, f.n >= maxFailures
}

// fail counts a failure of key and returns the window's count and whether
// this one crossed the limit.
func (t *failureThrottle) fail(key string) (n int, crossed bool) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*failures{}
	}
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
			if len(t.m) >= maxTracked {
				return 1, false
			}
		}
		f = &failures{start: now}
		t.m[key] = f
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
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break // a hop we cannot read: stop at the last one we trust
			}
			peer = hop.Unmap()
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

func (a *ClientAddr) trusted(ip netip.Addr) bool {
	for _, p := range a.Trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
