// Command thirdparty is a stand-alone simulated third-party order API, storing orders in the schema "thirdparty" of --database-url, with
// fault injection by flags and at runtime (PUT /_faults). It logs
// `msg="thirdparty listening" addr=HOST:PORT` once it serves, so --addr
// 127.0.0.1:0 can be used.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/internal/partnersim"
	"github.com/tidemark/tidemark/joblog"
	"github.com/tidemark/tidemark/redact"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}

// Main runs the server until ctx is done and returns the exit code.
func Main(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("thirdparty", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address (port 0 picks a free port)")
	// No default shown: --help would print $DATABASE_URL, password and all.
	dbURL := fs.String("database-url", "", "Postgres URL (default $DATABASE_URL, else "+config.DefaultDatabase+"); orders go to its schema thirdparty")
	var f partnersim.Faults
	fs.Int64Var(&f.FailNth, "fail-nth", 0, "the Nth POST answers 500 before storing")
	fs.Int64Var(&f.FailAfterCommitNth, "fail-after-commit-nth", 0, "the Nth POST stores the order, then answers 500")
	fs.Int64Var(&f.HangAfterCommitNth, "hang-after-commit-nth", 0, "the Nth POST stores the order, then never answers")
	fs.Float64Var(&f.ErrorRate, "error-rate", 0, "probability 0..1 that a POST answers 500 before storing")
	fs.Uint64Var(&f.Seed, "seed", 1, "seed of the error-rate generator")
	latency := fs.Duration("latency", 0, "how long every /orders request takes to answer, its work done meanwhile, e.g. 20ms")
	reject := fs.String("reject-usernames", "", "comma-separated users whose POSTs answer 400")
	fs.Float64Var(&f.RateLimit, "rate-limit", 0, "answer 429 with Retry-After to /orders requests above this many a second (0: no limit)")
	maintenance := fs.Duration("maintenance", 0, "answer 503 with Retry-After to every /orders request for this long from start")
	retryAfter := fs.Duration("retry-after", 0, "Retry-After of a 429 (default 1s) and of a 503 (default the maintenance time left), whole seconds")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "thirdparty: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *dbURL == "" {
		*dbURL = cmp.Or(getenv("DATABASE_URL"), config.DefaultDatabase)
	}
	f.Latency = partnersim.Duration(*latency)
	f.Maintenance = partnersim.Duration(*maintenance)
	f.RetryAfter = partnersim.Duration(*retryAfter)
	if *reject != "" {
		f.RejectUsernames = strings.Split(*reject, ",")
	}
	if err := f.Validate(); err != nil {
		fmt.Fprintf(stderr, "thirdparty: %v\n", err)
		return 2
	}
	logger := joblog.NewLogger(stderr, false, slog.LevelInfo)
	if err := run(ctx, *addr, *dbURL, f, logger); err != nil {
		fmt.Fprintf(stderr, "thirdparty: %s\n", redact.Text(err.Error()))
		return 1
	}
	return 0
}

func run(ctx context.Context, addr, dbURL string, f partnersim.Faults, logger *slog.Logger) error {
	pc, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return fmt.Errorf("--database-url: %w", err)
	}
	if !strings.Contains(dbURL, "pool_max_conns") {
		pc.MaxConns = 16 // 64 concurrent callers with 20 ms latency need more than the default 4
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return fmt.Errorf("connect postgres: %w", err)
	}
	defer pool.Close()
	srv, err := partnersim.New(ctx, pool, f, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	logger.Info("thirdparty listening", "addr", ln.Addr().String(), "faults", fmt.Sprintf("%+v", f))
	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	}
	srv.Close()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}
