package backfill

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/progress"
	"github.com/tidemark/tidemark/report"
)

// TherapyStats enqueues a therapy_stats job for each of users (nil: every
// ACTIVE user) for year-month, as `enqueue therapy-stats` does to recompute
// a month's statistics: the jobs are unique per user-month, so users whose
// job is still queued are skipped as duplicates. A user that does not exist
// is an *InputError and nothing is enqueued. A large month shows its
// progress on errOut (a bar on a terminal, a line at most every two seconds
// otherwise) and its last count; the result line goes to out.
func TherapyStats(ctx context.Context, e Env, year, month int, users []int64, out, errOut io.Writer) error {
	var err error
	if users == nil {
		if users, err = e.Store.ActiveTherapyUsers(ctx); err != nil {
			return err
		}
	} else {
		missing, err := e.Store.MissingTherapyUsers(ctx, users)
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			return inputf("--user: unknown therapy user(s) %s; nothing enqueued", report.IDs(missing))
		}
	}
	businessDate := calendar.BusinessDate(time.Now(), e.TZ)
	show := progress.New(errOut, errOut, "users", progress.Options{LineEvery: 2 * time.Second, BarEvery: barEvery})
	defer show.Stop()
	var shown func(int)
	if len(users) > 5000 {
		shown = func(done int) {
			line := fmt.Sprintf("enqueue: %d/%d users (%3.0f%%)", done, len(users), 100*float64(done)/float64(len(users)))
			if done == len(users) { // the last count is always shown, in place of the bar
				show.Stop()
				show.Event("%s", line)
				return
			}
			show.Status(time.Now(), int64(done), int64(len(users)), line, "")
		}
	}
	res, err := jobs.EnqueueTherapyStats(ctx, e.Client, e.Store, users, year, month, businessDate, jobs.TriggerBackfill, shown)
	if err != nil {
		return err
	}
	if res.StatisticsErr != nil {
		e.Logger.WarnContext(ctx, "enqueue: river_job's statistics not refreshed", "error", res.StatisticsErr)
	}
	fmt.Fprintf(out, "therapy_stats %04d-%02d: %d user(s): inserted %d, skipped %d as duplicates (business date %s)\n",
		year, month, len(users), res.Inserted, res.Duplicates, businessDate)
	return nil
}
