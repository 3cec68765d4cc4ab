// Package testredis gives tests a real Redis (REDIS_URL, default
// redis://127.0.0.1:6379/0) and a key prefix of their own, so parallel tests
// never see each other's keys. The prefix's keys are deleted when the test ends.
package testredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/internal/harness/testkit"
)

// URL is the Redis tests use.
func URL() string {
	if v := os.Getenv("REDIS_URL"); v != "" {
		return v
	}
	return "redis://127.0.0.1:6379/0"
}

// Client returns a client on URL(), closed when the test ends.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(URL())
	if err != nil {
		t.Fatalf("testredis: %v", err)
	}
	opt.PoolSize = 64
	rdb := redis.NewClient(opt)
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("testredis: ping %s: %v (is Redis running? `make test` starts it)", URL(), err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// Gate returns a gate on Client(t) with a fresh key prefix, whose keys are
// deleted when the test ends.
func Gate(t testing.TB) (*coupongate.Gate, *redis.Client, string) {
	t.Helper()
	rdb := Client(t)
	prefix := Prefix(t, rdb) + ":"
	return coupongate.New(rdb, prefix), rdb, prefix
}

// Server is a private redis-server for tests that kill or restart it. It
// keeps nothing on disk, so a restart starts empty, as a lost Redis does.
type Server struct {
	port int
	cmd  *exec.Cmd
	done chan struct{}
	// URL is the server's redis:// URL.
	URL string
}

// Start runs a private redis-server on a free loopback port and stops it when
// the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("testredis: redis-server not found (scripts/services.sh installs Debian's redis-server): %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testredis: %v", err)
	}
	s := &Server{port: ln.Addr().(*net.TCPAddr).Port}
	ln.Close()
	s.URL = fmt.Sprintf("redis://127.0.0.1:%d/0", s.port)
	t.Cleanup(s.Kill)
	if err := s.Start(); err != nil {
		t.Fatalf("testredis: %v", err)
	}
	return s
}

// Start starts the server (empty) and waits until it answers PING.
func (s *Server) Start() error {
	s.cmd = exec.Command("redis-server", "--port", fmt.Sprint(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--loglevel", "warning")
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(s.cmd, s.done)
	opt, _ := redis.ParseURL(s.URL)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := testkit.Poll(ctx, 10*time.Millisecond, func() (bool, error) { return true, rdb.Ping(ctx).Err() })
	if err != nil {
		return fmt.Errorf("redis-server on port %d does not answer: %w", s.port, err)
	}
	return nil
}

// Kill kills the server (SIGKILL) and waits until it is gone; everything it
// held is lost.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Prefix returns a fresh key prefix of the test's own on rdb; every key
// starting with it is deleted when the test ends.
func Prefix(t testing.TB, rdb *redis.Client) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "t" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	return prefix
}
