package jobs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/internal/harness/testkit"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/store"
)

// IssueNoticeArgs tells a member their coupon could not be issued. Unique on
// coupon and member: a second failure sends no second notice.
type IssueNoticeArgs struct {
	CouponCode string `json:"coupon_code" river:"unique"`
	MemberID   int64  `json:"member_id" river:"unique"`
}

// Kind is issue_notice.
func (IssueNoticeArgs) Kind() string { return "issue_notice" }

// InsertOpts: a queue, a bounded retry, the unique key.
func (IssueNoticeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: jobs.QueueDefault, MaxAttempts: 5, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// IssueNoticeWorker records the notice, with the failure's reason, as its output.
type IssueNoticeWorker struct {
	river.WorkerDefaults[IssueNoticeArgs]
	deps jobs.Deps
}

// NewIssueNoticeWorker returns the worker; jobs.Register builds every worker
// from deps like this.
func NewIssueNoticeWorker(deps jobs.Deps) *IssueNoticeWorker {
	return &IssueNoticeWorker{deps: deps}
}

// Timeout bounds an attempt, inside the client's rescue window.
func (w *IssueNoticeWorker) Timeout(*river.Job[IssueNoticeArgs]) time.Duration {
	return 10 * time.Second
}

// Work reads the failure through the store, which holds all SQL.
func (w *IssueNoticeWorker) Work(ctx context.Context, job *river.Job[IssueNoticeArgs]) error {
	failed, err := w.deps.Store.FailedCouponIssues(ctx, job.Args.CouponCode)
	if err != nil {
		return err
	}
	for _, f := range failed {
		if f.MemberID == job.Args.MemberID {
			return river.RecordOutput(ctx, fmt.Sprintf("member %d: %s not issued (%s)", f.MemberID, f.CouponCode, f.Reason))
		}
	}
	return river.JobCancel(fmt.Errorf("issue_notice %s/%d: no failure recorded", job.Args.CouponCode, job.Args.MemberID))
}

// A new batch kind: its args and worker in a kind_ file of their own, one
// line in registry.go's list that jobs.Register adds (run by jobs.NewClient),
// and its job inserted in the transaction that writes the row it is for.
func Example_newBatchKind() {
	ctx := context.Background()
	pool, st, closeDB := exampleDatabase(ctx)
	defer closeDB()

	workers := river.NewWorkers()
	check(river.AddWorkerSafely(workers, NewIssueNoticeWorker(jobs.Deps{Store: st})))
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Workers: workers})
	check(err)

	// The failure row and its notice commit together; the same member failing
	// again adds no second notice.
	for range 2 {
		check(st.InTx(ctx, func(tx pgx.Tx) error {
			if _, err := st.RecordFailedCouponIssueTx(ctx, tx, "WELCOME", 7, "sold out"); err != nil {
				return err
			}
			res, err := client.InsertTx(ctx, tx, IssueNoticeArgs{CouponCode: "WELCOME", MemberID: 7}, nil)
			if err == nil {
				fmt.Println(res.Job.Kind, "duplicate:", res.UniqueSkippedAsDuplicate)
			}
			return err
		}))
	}
	// Output:
	// issue_notice duplicate: false
	// issue_notice duplicate: true
}

// exampleDatabase opens a database of the example's own; done closes and
// drops it.
func exampleDatabase(ctx context.Context) (*pgxpool.Pool, *store.Store, func()) {
	dbURL, drop, err := testkit.NewDatabase()
	check(err)
	pool, err := pgxpool.New(ctx, dbURL)
	check(err)
	return pool, store.New(pool), func() { pool.Close(); _ = drop() }
}

func check(err error) {
	if err != nil {
		panic(err)
	}
}

// Every worker's test: rivertest on a database of the test's own, asserting
// what the member gets.
func TestIssueNoticeWorker(t *testing.T) {
	t.Parallel()
	b := jobs.SetupWorker(t, NewIssueNoticeWorker)
	require.NoError(t, b.Store.InTx(t.Context(), func(tx pgx.Tx) error {
		_, err := b.Store.RecordFailedCouponIssueTx(t.Context(), tx, "WELCOME", 7, "sold out")
		return err
	}))

	res := b.Work(t, IssueNoticeArgs{CouponCode: "WELCOME", MemberID: 7}, river.EventKindJobCompleted)
	require.Equal(t, "member 7: WELCOME not issued (sold out)", jobs.OutputOf[string](t, res.Job))
}
