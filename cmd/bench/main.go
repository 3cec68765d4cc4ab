// Command bench runs tidemark's benchmarks against real Postgres (and Redis)
// and prints figures and ratios. `make bench` runs them all; `bench NAME…`
// runs some. Each benchmark works in a database of its own, dropped after.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/tidemark/tidemark/redact"
)

// benchmark is one named benchmark; each file registers its own in init.
type benchmark struct {
	name string
	run  func(ctx context.Context, env *benchEnv) error
}

var benchmarks = map[string]benchmark{}

func register(name string, run func(ctx context.Context, env *benchEnv) error) {
	benchmarks[name] = benchmark{name: name, run: run}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if dbURL := os.Getenv(childWorkerEnv); dbURL != "" {
		if err := runChildWorker(ctx, dbURL); err != nil {
			fmt.Fprintf(os.Stderr, "bench worker process: %s\n", redact.Text(err.Error()))
			os.Exit(1)
		}
		return
	}
	names := os.Args[1:]
	if len(names) == 0 {
		for n := range benchmarks {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	for _, n := range names {
		if _, ok := benchmarks[n]; !ok {
			fmt.Fprintf(os.Stderr, "bench: unknown benchmark %q\n", n)
			os.Exit(2)
		}
	}
	failed := false
	for _, n := range names {
		fmt.Printf("=== %s\n", n)
		env, err := newBenchEnv(ctx, n)
		if err == nil {
			err = benchmarks[n].run(ctx, env)
			env.close(ctx)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench %s: %s\n", n, redact.Text(err.Error()))
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}
