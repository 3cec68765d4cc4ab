package joblog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverlog"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/joblog"
)

type chattyArgs struct {
	Lines int `json:"lines"`
	// URL, when set, is logged in every way a line can carry it.
	URL string `json:"url"`
}

func (chattyArgs) Kind() string { return "chatty" }

// chattyWorker logs the way tidemark's workers do: the process logger, with
// the job's ctx.
type chattyWorker struct {
	river.WorkerDefaults[chattyArgs]
	logger *slog.Logger
}

func (w *chattyWorker) Work(ctx context.Context, job *river.Job[chattyArgs]) error {
	w.logger.InfoContext(ctx, "milestone", "step", "collect")
	w.logger.With("run_date", "2026-12-01").WithGroup("counts").InfoContext(ctx, "collected", "read", 3)
	w.logger.DebugContext(ctx, "below the level")
	riverlog.Logger(ctx).InfoContext(ctx, "for the job's log only")
	if u := job.Args.URL; u != "" {
		parsed, _ := url.Parse(u)
		w.logger.With("dsn", u).WithGroup("call").InfoContext(ctx, "calling "+u, "url", u, "parsed", parsed,
			"err", fmt.Errorf("order: %w", &url.Error{Op: "Post", URL: u, Err: errors.New("refused")}))
		riverlog.Logger(ctx).WarnContext(ctx, "retrying", "url", u)
	}
	for i := range job.Args.Lines {
		w.logger.InfoContext(ctx, "chunk", "n", i, "pad", strings.Repeat("x", 100))
	}
	return nil
}

// syncBuffer is the process's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testBundle struct {
	out *syncBuffer
}

func setup(t *testing.T, jsonLines bool) (*testBundle, func(args chattyArgs) (jobID int64, jobLog string)) {
	t.Helper()
	pool, _ := testkit.Pool(t)
	b := &testBundle{out: &syncBuffer{}}
	logger := joblog.NewLogger(b.out, jsonLines, slog.LevelInfo)
	w := rivertest.NewWorker(t, riverpgxv5.New(pool), &river.Config{Logger: logger, Middleware: joblog.Middleware()},
		river.Worker[chattyArgs](&chattyWorker{logger: logger}))
	work := func(args chattyArgs) (int64, string) {
		ctx := context.Background()
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		res, err := w.Work(ctx, t, tx, args, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		var meta struct {
			Log []struct {
				Attempt int    `json:"attempt"`
				Log     string `json:"log"`
			} `json:"river:log"`
		}
		require.NoError(t, json.Unmarshal(res.Job.Metadata, &meta))
		require.Len(t, meta.Log, 1)
		require.Equal(t, 1, meta.Log[0].Attempt)
		return res.Job.ID, meta.Log[0].Log
	}
	return b, work
}

func TestLinesCarryTheJobAndAreKeptOnIt(t *testing.T) {
	t.Parallel()
	b, work := setup(t, false)
	id, jobLog := work(chattyArgs{})

	out := b.out.String()
	prefix := "kind=chatty job_id=" + itoa(id) + " attempt=1"
	require.Contains(t, out, `msg=milestone `+prefix+` step=collect`)
	require.Contains(t, out, `msg=collected `+prefix+` run_date=2026-12-01 counts.read=3`)
	require.NotContains(t, out, "below the level")
	require.NotContains(t, out, "for the job's log only")

	require.Contains(t, jobLog, "msg=milestone step=collect")
	require.Contains(t, jobLog, "msg=collected run_date=2026-12-01 counts.read=3")
	require.Contains(t, jobLog, `msg="for the job's log only"`)
	require.NotContains(t, jobLog, "job_id=", "the job's own log does not repeat the job")
	require.NotContains(t, jobLog, "below the level")

	// Outside a job nothing is added.
	joblog.NewLogger(b.out, false, slog.LevelInfo).InfoContext(context.Background(), "idle")
	require.Regexp(t, `msg=idle\n$`, b.out.String())
}

func TestJSONLines(t *testing.T) {
	t.Parallel()
	b, work := setup(t, true)
	id, _ := work(chattyArgs{})
	line, _, _ := strings.Cut(b.out.String(), "\n")
	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
	require.Equal(t, "milestone", rec["msg"])
	require.Equal(t, "chatty", rec["kind"])
	require.Equal(t, float64(id), rec["job_id"])
	require.Equal(t, float64(1), rec["attempt"])
}

func TestJobLogIsBounded(t *testing.T) {
	t.Parallel()
	_, work := setup(t, false)
	_, jobLog := work(chattyArgs{Lines: 1000}) // ~170 KB of lines
	require.LessOrEqual(t, len(jobLog), joblog.MaxAttemptBytes)
	require.Contains(t, jobLog, "msg=milestone", "the first lines are kept")
}

// A URL's password and query values are written nowhere, neither on the
// process's log nor in the job's: not in the message, a string, an error, a
// Stringer, an attribute given to With, nor through riverlog's own logger.
func TestSecretsAreRedacted(t *testing.T) {
	t.Parallel()
	for _, jsonLines := range []bool{false, true} {
		b, work := setup(t, jsonLines)
		_, jobLog := work(chattyArgs{URL: "https://order:S3cretPW@partner.example:8443/orders?api_key=S3cretKey"})
		out := b.out.String()
		for _, log := range []string{out, jobLog} {
			require.NotContains(t, log, "S3cret")
			require.Contains(t, log, "order:xxxxx@partner.example:8443/orders?api_key=xxxxx")
		}
		require.Equal(t, 5, strings.Count(out, "partner.example"), "message, dsn, url, parsed and err: %s", out)
		require.Contains(t, jobLog, "retrying")
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// River's own lines name a job's kind job_kind; through tidemark's logger
// they say kind, as tidemark's lines do.
func TestRiverKindIsNamedKind(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	logger := joblog.NewLogger(&out, true, slog.LevelInfo)
	logger.Error("jobexecutor.JobExecutor.execute: Job errored", "job_id", 7, "job_kind", "order_submit")
	var rec map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &rec), out.String())
	require.Equal(t, "order_submit", rec["kind"])
	require.NotContains(t, rec, "job_kind")
}
