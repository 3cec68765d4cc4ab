// Command enqueue is tidemark's operator CLI: backfills, triggers, retries,
// status and waiting. It exits 0 on success, 2 on a usage error and 1 on a
// runtime error, saying why on stderr in one line.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	// The time zones are built in: BATCH_TZ works in an image without
	// /usr/share/zoneinfo.
	_ "time/tzdata"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
