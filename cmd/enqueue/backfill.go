package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/schollz/progressbar/v3"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/redact"
)

func init() {
	commands["backfill"] = command{"run a batch for each date (month) of a range that has not completed, oldest first", cmdBackfill}
}

const (
	// maxBackfillDays bounds a range: a year of daily runs, listed and
	// waited for one at a time.
	maxBackfillDays = 366
	// defaultBackfillParallel and maxBackfillParallel bound the runs in
	// flight: a backfill shares the default queue with the nightly runs.
	defaultBackfillParallel = 2
	maxBackfillParallel     = 8
	// backfillPoll is how often the runs in flight are read (one JobList).
	backfillPoll = 200 * time.Millisecond
	// backfillBarEvery is how often the bar redraws; backfillHeartbeat how
	// often, without a terminal, a line says what is still running when
	// nothing else happened.
	backfillBarEvery  = 500 * time.Millisecond
	backfillHeartbeat = 30 * time.Second
)

// backfillBatch is a batch that runs once per date or month.
type backfillBatch struct {
	kind string // its River kind
	unit string // "date" or "month"
	// limit is the last date --to may be at now, and what that date is.
	limit func(now time.Time, tz *time.Location) (last, what string)
	// items are the dates or months the range covers, oldest first.
	items func(first, last time.Time) []string
	// completed are the items in [first, last] with a completed run, each
	// with the latest such run's job.
	completed func(ctx context.Context, e *env, first, last string) (map[string]int64, error)
	// start starts item's run through the kind's own checks, which refuse
	// an item queued or running elsewhere, or completed unless rerun.
	start func(ctx context.Context, e *env, item string, rerun bool) (*rivertype.JobRow, error)
	// serial, when set, says why runs never overlap and why a failed run
	// stops the ones after it.
	serial string
}

var backfillBatches = map[string]backfillBatch{
	"therapy-daily": {
		kind: jobs.TherapyDailyArgs{}.Kind(), unit: "date", items: calendar.Dates,
		limit: func(now time.Time, tz *time.Location) (string, string) {
			today := calendar.BusinessDate(now, tz)
			return today, fmt.Sprintf("today's business date %s in %s", today, tz)
		},
		completed: func(ctx context.Context, e *env, first, last string) (map[string]int64, error) {
			return jobs.CompletedTherapyDailyDates(ctx, e.store, first, last)
		},
		start: func(ctx context.Context, e *env, date string, rerun bool) (*rivertype.JobRow, error) {
			return jobs.EnqueueTherapyDaily(ctx, e.client, e.store, date, rerun)
		},
	},
	"settlement": {
		kind: jobs.PointSettlementArgs{}.Kind(), unit: "date", items: calendar.Dates,
		limit: func(now time.Time, tz *time.Location) (string, string) {
			d := calendar.SettlementBusinessDate(now, tz)
			return d, fmt.Sprintf("the settlement's business date %s (a date is settled from 00:30 %s)", d, tz)
		},
		completed: func(ctx context.Context, e *env, first, last string) (map[string]int64, error) {
			return e.store.SettledDates(ctx, first, last)
		},
		start: func(ctx context.Context, e *env, date string, rerun bool) (*rivertype.JobRow, error) {
			return jobs.EnqueueSettlement(ctx, e.client, e.store, date, jobs.SettlementRunOpts{Rerun: rerun, Trigger: jobs.SettlementTriggerBackfill})
		},
		serial: "a settlement run collects every row due on or before its date, so a later date run alongside or after a failed one would take an earlier date's rows",
	},
	"therapy-verify": {
		kind: jobs.TherapyStatsVerifyArgs{}.Kind(), unit: "month", items: calendar.Months,
		limit: func(now time.Time, tz *time.Location) (string, string) {
			today := now.In(tz)
			end := time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, tz).AddDate(0, 0, -1).Format(time.DateOnly)
			return end, fmt.Sprintf("%s, the end of the last month that is over (today is %s in %s; a month is verified once it has ended)",
				end, calendar.BusinessDate(now, tz), tz)
		},
		completed: func(ctx context.Context, e *env, first, last string) (map[string]int64, error) {
			return e.store.CompletedVerifications(ctx, first, last)
		},
		start: func(ctx context.Context, e *env, month string, rerun bool) (*rivertype.JobRow, error) {
			return jobs.EnqueueTherapyVerifyMonth(ctx, e.client, e.store, month, rerun)
		},
	},
}

func backfillNames() []string {
	names := make([]string, 0, len(backfillBatches))
	for n := range backfillBatches {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func cmdBackfill(ctx context.Context, e *env, args []string) error {
	names := backfillNames()
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	fs := e.newFlagSet("backfill <" + strings.Join(names, "|") + ">")
	from := fs.String("from", "", "first business date of the range, YYYY-MM-DD (required)")
	to := fs.String("to", "", "last business date of the range, YYYY-MM-DD (required); therapy-verify runs each month the range touches")
	dryRun := fs.Bool("dry-run", false, "print the dates completed and the dates to run, and change nothing")
	rerun := fs.Bool("rerun", false, "run every date of the range, the completed ones again as reruns")
	parallel := fs.Int("parallel", defaultBackfillParallel, fmt.Sprintf("runs at once, 1..%d (settlement: one at a time)", maxBackfillParallel))
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if name == "" {
		return usagef("missing batch: enqueue backfill <%s> --from YYYY-MM-DD --to YYYY-MM-DD", strings.Join(names, "|"))
	}
	batch, ok := backfillBatches[name]
	if !ok {
		return usagef("unknown batch %q; want one of %s", name, strings.Join(names, ", "))
	}
	first, last, err := backfillRange(*from, *to, batch, e.cfg.TZ)
	if err != nil {
		return err
	}
	if *parallel < 1 || *parallel > maxBackfillParallel {
		return usagef("--parallel: want 1..%d, got %d", maxBackfillParallel, *parallel)
	}
	if batch.serial != "" {
		explicit := false
		fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "parallel" })
		if explicit && *parallel > 1 {
			return usagef("--parallel %d: %s runs one date at a time, oldest first: %s; leave --parallel out", *parallel, name, batch.serial)
		}
		*parallel = 1
	}
	items := batch.items(first, last)
	if err := e.open(ctx); err != nil {
		return err
	}
	done, err := batch.completed(ctx, e, items[0], items[len(items)-1])
	if err != nil {
		return err
	}

	b := &backfill{e: e, batch: batch, name: name, span: *from + ".." + *to, parallel: *parallel, completed: done}
	for _, it := range items {
		if _, ok := done[it]; ok && !*rerun {
			b.skipped = append(b.skipped, it)
		} else {
			b.todo = append(b.todo, it)
		}
	}
	w := e.stdout
	fmt.Fprintf(w, "backfill %s %s: %d %s(s)\n", name, b.span, len(items), batch.unit)
	if *rerun {
		fmt.Fprintf(w, "completed, to run again (%d): %s\n", len(done), spans(items, func(it string) bool { _, ok := done[it]; return ok }))
	} else {
		fmt.Fprintf(w, "completed, skipped (%d): %s\n", len(b.skipped), spans(items, func(it string) bool { _, ok := done[it]; return ok }))
	}
	fmt.Fprintf(w, "to run (%d): %s\n", len(b.todo), spans(items, func(it string) bool { _, ok := done[it]; return *rerun || !ok }))
	if *dryRun {
		fmt.Fprintln(w, "dry run: nothing enqueued")
		return nil
	}
	return b.run(ctx, *rerun)
}

// backfillRange parses and checks --from and --to for batch.
func backfillRange(from, to string, batch backfillBatch, tz *time.Location) (first, last time.Time, err error) {
	if from == "" {
		return first, last, usagef("--from is required (YYYY-MM-DD)")
	}
	if to == "" {
		return first, last, usagef("--to is required (YYYY-MM-DD)")
	}
	if first, err = calendar.ParseDate(from); err != nil {
		return first, last, usagef("--from: %v", err)
	}
	if last, err = calendar.ParseDate(to); err != nil {
		return first, last, usagef("--to: %v", err)
	}
	if first.After(last) {
		return first, last, usagef("--from %s is after --to %s; nothing enqueued", from, to)
	}
	if limit, what := batch.limit(time.Now(), tz); to > limit {
		return first, last, usagef("--to %s is after %s; nothing enqueued", to, what)
	}
	if days := int(last.Sub(first).Hours()/24) + 1; days > maxBackfillDays {
		return first, last, usagef("--from %s to --to %s is %d days; at most %d at once; nothing enqueued", from, to, days, maxBackfillDays)
	}
	return first, last, nil
}

// spans lists the items of all (in order) that keep reports true, a run of
// consecutive ones as "first..last": "2026-09-01..2026-09-05, 2026-09-07".
func spans(all []string, keep func(string) bool) string {
	var parts []string
	for i := 0; i < len(all); i++ {
		if !keep(all[i]) {
			continue
		}
		j := i
		for j+1 < len(all) && keep(all[j+1]) {
			j++
		}
		if j == i {
			parts = append(parts, all[i])
		} else {
			parts = append(parts, all[i]+".."+all[j])
		}
		i = j
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// backfill runs the items of one range.
type backfill struct {
	e         *env
	batch     backfillBatch
	name      string
	span      string
	parallel  int
	completed map[string]int64
	skipped   []string
	todo      []string

	ran, elsewhere int
	failed         []*backfillRun
	notStarted     []string
}

// backfillRun is one item's run in flight.
type backfillRun struct {
	item      string
	jobID     int64
	state     rivertype.JobState
	elsewhere bool
	outcome   string // for a failed run: its state and last error
}

func (b *backfill) run(ctx context.Context, rerun bool) error {
	show := b.display()
	defer show.stop()
	var inflight []*backfillRun
	next, finished := 0, 0
	for {
		for len(inflight) < b.parallel && next < len(b.todo) && (b.batch.serial == "" || len(b.failed) == 0) {
			it := b.todo[next]
			next++
			_, wasDone := b.completed[it]
			r, err := b.start(ctx, show, it, rerun && wasDone)
			if err != nil {
				b.notStarted = b.todo[next-1:]
				return b.finish(show, inflight, interrupted(ctx, fmt.Errorf("start %s: %w", it, err)))
			}
			if r == nil {
				finished++
				continue
			}
			inflight = append(inflight, r)
		}
		if len(inflight) == 0 {
			break
		}
		show.update(time.Now(), finished, len(b.todo), inflight)
		still, err := b.poll(ctx, show, inflight)
		if err != nil {
			b.notStarted = b.todo[next:]
			return b.finish(show, inflight, interrupted(ctx, err))
		}
		finished += len(inflight) - len(still)
		if len(still) == len(inflight) {
			select {
			case <-ctx.Done():
				b.notStarted = b.todo[next:]
				return b.finish(show, inflight, interrupted(ctx, ctx.Err()))
			case <-time.After(backfillPoll):
			}
		}
		inflight = still
	}
	b.notStarted = b.todo[next:]
	return b.finish(show, nil, nil)
}

// interrupted names err an interruption when ctx was cancelled (SIGINT).
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	return err
}

// start starts the run of it (a date or a month), or adopts the one queued
// or running elsewhere. It returns nil when it completed meanwhile.
func (b *backfill) start(ctx context.Context, show backfillDisplay, it string, rerun bool) (*backfillRun, error) {
	job, err := b.batch.start(ctx, b.e, it, rerun)
	var (
		runActive    *jobs.RunActiveError
		runDone      *jobs.RunCompletedError
		settleActive *jobs.SettlementActiveError
		settleDone   *jobs.SettlementCompletedError
	)
	switch {
	case err == nil:
		what := ""
		if rerun {
			what = " (rerun)"
		}
		show.line("%s: started job %d%s", it, job.ID, what)
		return &backfillRun{item: it, jobID: job.ID, state: job.State}, nil
	case errors.As(err, &runActive):
		return b.adopt(show, it, runActive.JobID, runActive.State), nil
	case errors.As(err, &settleActive):
		return b.adopt(show, it, settleActive.JobID, rivertype.JobState(settleActive.State)), nil
	case errors.As(err, &runDone):
		show.line("%s: completed meanwhile as job %d; skipped", it, runDone.JobID)
	case errors.As(err, &settleDone):
		show.line("%s: completed meanwhile as job %d; skipped", it, settleDone.JobID)
	default:
		return nil, err
	}
	b.skipped = append(b.skipped, it)
	return nil, nil
}

// adopt waits for a run someone else started: the item is not started twice.
func (b *backfill) adopt(show backfillDisplay, it string, jobID int64, state rivertype.JobState) *backfillRun {
	what := "running"
	if state != rivertype.JobStateRunning {
		what = fmt.Sprintf("queued (%s)", state)
	}
	show.line("%s: already %s as job %d, started elsewhere; not started again, waiting for it", it, what, jobID)
	return &backfillRun{item: it, jobID: jobID, state: state, elsewhere: true}
}

// poll reads the runs in flight and returns those not finished yet.
func (b *backfill) poll(ctx context.Context, show backfillDisplay, inflight []*backfillRun) ([]*backfillRun, error) {
	ids := make([]int64, len(inflight))
	for i, r := range inflight {
		ids[i] = r.jobID
	}
	res, err := b.e.client.JobList(ctx, river.NewJobListParams().IDs(ids...).First(len(ids)))
	if err != nil {
		return inflight, fmt.Errorf("read the runs in flight: %w", err)
	}
	byID := make(map[int64]*rivertype.JobRow, len(res.Jobs))
	for _, j := range res.Jobs {
		byID[j.ID] = j
	}
	var still []*backfillRun
	for _, r := range inflight {
		j, ok := byID[r.jobID]
		switch {
		case !ok:
			r.outcome = "deleted before it finished"
			show.line("%s: job %d was deleted before it finished", r.item, r.jobID)
			b.failed = append(b.failed, r)
		case j.State == rivertype.JobStateCompleted:
			show.line("%s: completed (job %d, %s)", r.item, r.jobID, runTime(j))
			b.ran++
			if r.elsewhere {
				b.elsewhere++
			}
		case j.State == rivertype.JobStateCancelled || j.State == rivertype.JobStateDiscarded:
			r.outcome = string(j.State)
			line := fmt.Sprintf("%s: %s (job %d, %s)", r.item, j.State, r.jobID, runTime(j))
			if n := len(j.Errors); n > 0 {
				msg := truncate(redact.Text(strings.Join(strings.Fields(j.Errors[n-1].Error), " ")), 120)
				r.outcome += ": " + msg
				line += ": " + msg
			}
			show.line("%s", line)
			b.failed = append(b.failed, r)
			if r.elsewhere {
				b.elsewhere++
			}
		default:
			r.state = j.State
			still = append(still, r)
		}
	}
	return still, nil
}

// runTime is how long a finished job took from its insert.
func runTime(j *rivertype.JobRow) string {
	if j.FinalizedAt == nil {
		return "?"
	}
	d := j.FinalizedAt.Sub(j.CreatedAt)
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// finish prints the summary and returns the backfill's error: cause, or the
// runs that failed. Runs still in flight carry on in the worker.
func (b *backfill) finish(show backfillDisplay, inflight []*backfillRun, cause error) error {
	show.stop()
	line := fmt.Sprintf("backfill %s %s: ran %d", b.name, b.span, b.ran)
	if b.elsewhere > 0 {
		line += fmt.Sprintf(" (%d started elsewhere)", b.elsewhere)
	}
	line += fmt.Sprintf(", skipped %d completed, failed %d", len(b.skipped), len(b.failed))
	var failed []string
	if len(b.failed) > 0 {
		ids := make([]int64, len(b.failed))
		for i, r := range b.failed {
			ids[i] = r.jobID
			failed = append(failed, fmt.Sprintf("%s (job %d, %s)", r.item, r.jobID, r.outcome))
		}
		line += " (jobs " + joinIDs(ids) + ")"
	}
	if len(inflight) > 0 {
		ids := make([]int64, len(inflight))
		for i, r := range inflight {
			ids[i] = r.jobID
		}
		line += fmt.Sprintf(", in flight %d (jobs %s)", len(inflight), joinIDs(ids))
	}
	if len(b.notStarted) > 0 {
		line += fmt.Sprintf(", not started %d (%s)", len(b.notStarted), spans(b.notStarted, func(string) bool { return true }))
	}
	fmt.Fprintln(b.e.stdout, line)
	var err error
	switch {
	case cause != nil:
		err = cause
		if len(inflight) > 0 {
			err = fmt.Errorf("%w; the runs in flight carry on in the worker", err)
		}
	case len(b.failed) > 0:
		err = fmt.Errorf("%d run(s) failed: %s", len(b.failed), strings.Join(failed, "; "))
		if b.batch.serial != "" && len(b.notStarted) > 0 {
			err = fmt.Errorf("%w; the later %ss were not started (%s): fix the failure and run the backfill again", err, b.batch.unit, b.batch.serial)
		}
	}
	if err != nil && cause != nil {
		err = fmt.Errorf("%w (run the backfill again to carry on: completed %ss are skipped, runs in flight waited for)", err, b.batch.unit)
	}
	return err
}

// backfillDisplay shows a backfill's progress: every event as a line on
// stdout, and on a terminal a bar on stderr.
type backfillDisplay interface {
	line(format string, args ...any)
	update(now time.Time, done, total int, inflight []*backfillRun)
	stop()
}

func (b *backfill) display() backfillDisplay {
	if isTerminal(b.e.stderr) {
		return &backfillBar{out: b.e.stdout, w: b.e.stderr, unit: b.batch.unit, total: len(b.todo)}
	}
	return &backfillLines{w: b.e.stdout, last: time.Now()}
}

// backfillLines writes events, and a line of what is still running when
// nothing happened for backfillHeartbeat.
type backfillLines struct {
	w    io.Writer
	last time.Time
}

func (l *backfillLines) line(format string, args ...any) {
	fmt.Fprintf(l.w, format+"\n", args...)
	l.last = time.Now()
}

func (l *backfillLines) update(now time.Time, done, total int, inflight []*backfillRun) {
	if now.Sub(l.last) < backfillHeartbeat {
		return
	}
	l.line("waiting: %d of %d done; %s", done, total, describeInflight(inflight))
}

func (l *backfillLines) stop() {}

// backfillBar draws items finished of those to run, described by the runs in
// flight. An event line clears it; the next update draws it again at once.
type backfillBar struct {
	out, w io.Writer
	unit   string
	total  int
	bar    *progressbar.ProgressBar
	last   time.Time
	// cleared is set when a line took the bar's place.
	cleared bool
}

func (b *backfillBar) line(format string, args ...any) {
	if b.bar != nil {
		_ = b.bar.Clear()
		b.cleared = true
	}
	fmt.Fprintf(b.out, format+"\n", args...)
}

func (b *backfillBar) update(now time.Time, done, total int, inflight []*backfillRun) {
	if b.bar == nil {
		b.bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(b.w), progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true), progressbar.OptionFullWidth(), progressbar.OptionClearOnFinish(),
			progressbar.OptionSetDescription(b.unit+"s"))
	} else if !b.cleared && now.Sub(b.last) < backfillBarEvery {
		return
	}
	b.last, b.cleared = now, false
	b.bar.Describe(describeInflight(inflight))
	_ = b.bar.Set(done)
}

func (b *backfillBar) stop() {
	if b.bar != nil {
		_ = b.bar.Clear()
		b.bar = nil
	}
}

// describeInflight is "2026-09-03 job 812 running, 2026-09-04 job 813 available".
func describeInflight(inflight []*backfillRun) string {
	parts := make([]string, len(inflight))
	for i, r := range inflight {
		parts[i] = fmt.Sprintf("%s job %d %s", r.item, r.jobID, r.state)
	}
	return strings.Join(parts, ", ")
}
