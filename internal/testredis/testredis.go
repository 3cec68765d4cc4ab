// Package testredis gives tests a real Redis (REDIS_URL, default
// redis://127.0.0.1:6379/0) and a key prefix of their own, so parallel tests
// never see each other's keys. The prefix's keys are deleted when the test ends.
package testredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tidemark/tidemark/coupongate"
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
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "t" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	return coupongate.New(rdb, prefix), rdb, prefix
}
