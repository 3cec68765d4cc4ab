package main

import (
	"context"
	"time"

	"github.com/tidemark/tidemark/drain"
	"github.com/tidemark/tidemark/internal/cliflag"
)

func cmdWait(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("wait")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long (exit 1)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *timeout <= 0 {
		return cliflag.Usagef("--timeout: want a positive duration, got %s", *timeout)
	}
	if err := e.open(ctx); err != nil {
		return err
	}
	return drain.Wait(ctx, drain.Env{Client: e.client, Store: e.store, TZ: e.cfg.TZ}, e.stdout, *timeout)
}
