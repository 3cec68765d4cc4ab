package httpapi

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// ConnLimiter caps a listener's open connections at n. Unlike
// netutil.LimitListener, a connection idle between requests does not keep
// its slot from a new one: when every slot is taken, the connection idle
// longest is closed to make room, so a client holding keep-alive
// connections open cannot lock everyone else (health probes included) out.
// Past the cap with no idle connection, new connections wait in the
// kernel's backlog.
type ConnLimiter struct {
	net.Listener
	slots chan struct{}

	mu   sync.Mutex
	idle map[net.Conn]time.Time
}

// LimitListener returns ln capped at n open connections; install its
// ConnState on the http.Server that serves it.
func LimitListener(ln net.Listener, n int) *ConnLimiter {
	return &ConnLimiter{Listener: ln, slots: make(chan struct{}, n), idle: map[net.Conn]time.Time{}}
}

// Accept waits for a slot, closing the longest-idle connection if there is
// none, then accepts.
func (l *ConnLimiter) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		l.closeLongestIdle()
		l.slots <- struct{}{}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *ConnLimiter) closeLongestIdle() {
	l.mu.Lock()
	var oldest net.Conn
	var since time.Time
	for c, t := range l.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	delete(l.idle, oldest)
	l.mu.Unlock()
	if oldest != nil {
		_ = oldest.Close()
	}
}

// ConnState tracks which connections are idle; set it as the
// http.Server's ConnState.
func (l *ConnLimiter) ConnState(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s == http.StateIdle {
		l.idle[c] = time.Now()
	} else {
		delete(l.idle, c)
	}
}

// limitedConn gives its slot back once, when closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
