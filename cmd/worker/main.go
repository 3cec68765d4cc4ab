// Command worker is tidemark's deployable: a River client working every job
// kind, the periodic jobs (on the elected leader), and the HTTP API.
//
//	worker            run until SIGINT/SIGTERM, then stop gracefully
//	worker migrate    bring the database to the current schema (a no-op when it is)
//	worker --version  print the version, commit and commit time
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
