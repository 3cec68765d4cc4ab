package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testbin"
	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/order"
	"github.com/tidemark/tidemark/store"
)

// The real binary: every bad file, flag or duplicate exits 2 with one line
// naming the problem, and inserts nothing; a good file inserts each row with
// its job.
func TestOrdersCommand(t *testing.T) {
	t.Parallel()
	pool, dbURL := testkit.Pool(t)
	bin := testbin.Build(t, "enqueue")
	dir := t.TempDir()
	env := []string{"DATABASE_URL=" + dbURL}
	write := func(name, content string) string {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".csv")
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	requireNothing := func(what string) {
		t.Helper()
		rows, jobs := counts(t, pool)
		require.Zero(t, rows, what)
		require.Zero(t, jobs, what)
	}
	requireOneLine := func(stderr, want, what string) {
		t.Helper()
		require.Equal(t, 1, strings.Count(stderr, "\n"), "%s: one line: %q", what, stderr)
		require.Contains(t, stderr, want, what)
	}

	// A few of the bad files package order's tests list in full.
	for _, c := range []struct{ name, content, want string }{
		{"empty", "", "empty file"},
		{"wrong header", "user,price,month\na,1,2025-02\n", "line 1: header must be username,total_price,applied_year_month"},
		{"zero price", "username,total_price,applied_year_month\na,1,2025-02\nb,0,2025-02\n", "line 3: total_price: must be a positive integer"},
		{"duplicate in file", "username,total_price,applied_year_month\na,100,2025-02\nb,1,2025-02\na,7,2025-02\n", `line 4: user "a" already has a request for 2025-02 on line 2`},
		{"formula username", "username,total_price,applied_year_month\n=1+1,100,2025-02\n", "line 2: username: starts with '=' (a spreadsheet formula)"},
		{"long line", "username,total_price,applied_year_month\n" + strings.Repeat("x", order.MaxCSVLineBytes) + ",1,2025-02\n", "line 2: longer than 4096 bytes"},
	} {
		code, _, stderr := testbin.Run(t, bin, env, "orders", "--file", write(c.name, c.content))
		require.Equal(t, 2, code, c.name)
		requireOneLine(stderr, c.want, c.name)
		require.Contains(t, stderr, "nothing inserted", c.name)
		requireNothing(c.name)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"orders"}, "--file is required"},
		{[]string{"orders", "--file", filepath.Join(dir, "missing.csv")}, "no such file"},
		{[]string{"orders", "--nope"}, "flag provided but not defined"},
		{[]string{"orders", "--file", "x.csv", "stray"}, `unexpected argument "stray"`},
	} {
		code, _, stderr := testbin.Run(t, bin, env, c.args...)
		require.Equal(t, 2, code, c.args)
		requireOneLine(stderr, c.want, strings.Join(c.args, " "))
		requireNothing(strings.Join(c.args, " "))
	}

	// A 64 MiB line with no newline is refused naming it, and the process
	// never holds it: its peak resident memory stays far below the line's size.
	huge := filepath.Join(dir, "huge.csv")
	f, err := os.Create(huge)
	require.NoError(t, err)
	_, err = f.WriteString("username,total_price,applied_year_month\n")
	require.NoError(t, err)
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for range 64 {
		_, err = f.Write(chunk)
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
	cmd := exec.Command(bin, "orders", "--file", huge)
	cmd.Env = append(os.Environ(), env...)
	var hugeErr bytes.Buffer
	cmd.Stderr = &hugeErr
	var exit *exec.ExitError
	require.ErrorAs(t, cmd.Run(), &exit)
	require.Equal(t, 2, exit.ExitCode())
	requireOneLine(hugeErr.String(), "line 2: longer than 4096 bytes; nothing inserted", "64 MiB line")
	requireNothing("64 MiB line")
	peakKiB := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB on Linux
	require.Less(t, peakKiB, int64(32<<10), "peak resident memory of enqueue (KiB) refusing a 64 MiB line")

	good := write("good", "username,total_price,applied_year_month\ntester,10000,2025-02\nkim,500,2025-02\nlee,700,2025-03\n")
	code, stdout, stderr := testbin.Run(t, bin, env, "orders", "--file", good)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "inserted 3 row(s)")
	rows, jobs := counts(t, pool)
	require.Equal(t, int64(3), rows)
	require.Equal(t, int64(3), jobs)

	// A file naming a user-month that already has a request is refused whole.
	again := write("again", "username,total_price,applied_year_month\nnew,1,2025-02\nkim,500,2025-02\n")
	code, _, stderr = testbin.Run(t, bin, env, "orders", "--file", again)
	require.Equal(t, 2, code)
	requireOneLine(stderr, `line 3: user "kim" already has an order request for 2025-02 (id 2); nothing inserted`, "duplicate")
	rows, jobs = counts(t, pool)
	require.Equal(t, int64(3), rows)
	require.Equal(t, int64(3), jobs)

	code, stdout, _ = testbin.Run(t, bin, env, "order-status")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "PENDING  3")
}

func counts(t *testing.T, pool *pgxpool.Pool) (rows, jobs int64) {
	t.Helper()
	ctx := context.Background()
	st := store.New(pool)
	c, err := st.OrderStatusCounts(ctx)
	require.NoError(t, err)
	for _, n := range c {
		rows += n
	}
	kc, err := st.JobCounts(ctx)
	require.NoError(t, err)
	for _, k := range kc {
		if k.Kind == "order_submit" {
			jobs += k.Count
		}
	}
	return rows, jobs
}
