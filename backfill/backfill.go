// Package backfill runs a batch for each date (or month) of a range that
// has not completed, oldest first, as `enqueue backfill` asks: Spring
// Batch's re-launch of missed job instances, on the run-identity protocol
// of package jobs.
//
// A range is planned first (Plan: the dates completed, those to run, a dry
// run stops there), then run (Backfill.Run): at most Parallel runs in
// flight, each started through its kind's own enqueue, which refuses a date
// queued or running elsewhere (the backfill waits for that run instead of
// starting it twice) or completed meanwhile (skipped). A batch whose runs
// must not overlap (the settlement) runs one date at a time and stops at
// the first failure. Interrupted, it leaves the runs in flight to the
// workers; run again, it skips what completed and waits for what runs.
package backfill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/progress"
	"github.com/tidemark/tidemark/report"
)

const (
	// MaxDays bounds a range: a year of daily runs, listed and waited for
	// one at a time.
	MaxDays = 366
	// DefaultParallel and MaxParallel bound the runs in flight: a backfill
	// shares the default queue with the nightly runs.
	DefaultParallel = 2
	MaxParallel     = 8
	// poll is how often the runs in flight are read (one JobList).
	poll = 200 * time.Millisecond
	// barEvery is how often the bar redraws; heartbeat how often, without a
	// terminal, a line says what is still running when nothing else
	// happened.
	barEvery  = 500 * time.Millisecond
	heartbeat = 30 * time.Second
)

// InputError is a range or an option that cannot be run: nothing was
// enqueued.
type InputError struct{ msg string }

func (e *InputError) Error() string { return e.msg }

func inputf(format string, args ...any) error { return &InputError{fmt.Sprintf(format, args...)} }

// Options are what the operator asked for.
type Options struct {
	From, To string // the range's first and last business date, YYYY-MM-DD
	Rerun    bool   // run the completed items again, as reruns
	// Parallel is the runs in flight, 1..MaxParallel; ParallelSet tells
	// whether the operator chose it (a serial batch refuses more than 1).
	Parallel    int
	ParallelSet bool
}

// Backfill is a planned range of one batch.
type Backfill struct {
	batch     batch
	name      string
	span      string
	rerun     bool
	parallel  int
	items     []string
	completed map[string]int64
	skipped   []string
	todo      []string

	ran, elsewhere int
	failed         []*run
	notStarted     []string
}

// Plan checks name and o, without the database: the batch exists, the
// range is well formed, not in the future and at most MaxDays long, and
// Parallel fits the batch. Errors are *InputError.
func Plan(name string, o Options, now time.Time, tz *time.Location) (*Backfill, error) {
	b, ok := batches[name]
	if !ok {
		return nil, inputf("unknown batch %q; want one of %s", name, strings.Join(Names(), ", "))
	}
	if o.From == "" {
		return nil, inputf("--from is required (YYYY-MM-DD)")
	}
	if o.To == "" {
		return nil, inputf("--to is required (YYYY-MM-DD)")
	}
	first, err := calendar.ParseDate(o.From)
	if err != nil {
		return nil, inputf("--from: %v", err)
	}
	last, err := calendar.ParseDate(o.To)
	if err != nil {
		return nil, inputf("--to: %v", err)
	}
	if first.After(last) {
		return nil, inputf("--from %s is after --to %s; nothing enqueued", o.From, o.To)
	}
	if limit, what := b.limit(now, tz); o.To > limit {
		return nil, inputf("--to %s is after %s; nothing enqueued", o.To, what)
	}
	if days := int(last.Sub(first).Hours()/24) + 1; days > MaxDays {
		return nil, inputf("--from %s to --to %s is %d days; at most %d at once; nothing enqueued", o.From, o.To, days, MaxDays)
	}
	if o.Parallel < 1 || o.Parallel > MaxParallel {
		return nil, inputf("--parallel: want 1..%d, got %d", MaxParallel, o.Parallel)
	}
	parallel := o.Parallel
	if b.serial != "" {
		if o.ParallelSet && parallel > 1 {
			return nil, inputf("--parallel %d: %s runs one date at a time, oldest first: %s; leave --parallel out", parallel, name, b.serial)
		}
		parallel = 1
	}
	return &Backfill{batch: b, name: name, span: o.From + ".." + o.To, rerun: o.Rerun, parallel: parallel,
		items: b.items(first, last)}, nil
}

// Report reads which items completed and writes what the backfill skips and
// runs to w.
func (b *Backfill) Report(ctx context.Context, e Env, w io.Writer) error {
	done, err := b.batch.completed(ctx, e, b.items[0], b.items[len(b.items)-1])
	if err != nil {
		return err
	}
	b.completed, b.skipped, b.todo = done, nil, nil
	for _, it := range b.items {
		if _, ok := done[it]; ok && !b.rerun {
			b.skipped = append(b.skipped, it)
		} else {
			b.todo = append(b.todo, it)
		}
	}
	isDone := func(it string) bool { _, ok := done[it]; return ok }
	fmt.Fprintf(w, "backfill %s %s: %d %s(s)\n", b.name, b.span, len(b.items), b.batch.unit)
	if b.rerun {
		fmt.Fprintf(w, "completed, to run again (%d): %s\n", len(done), spans(b.items, isDone))
	} else {
		fmt.Fprintf(w, "completed, skipped (%d): %s\n", len(b.skipped), spans(b.items, isDone))
	}
	fmt.Fprintf(w, "to run (%d): %s\n", len(b.todo), spans(b.items, func(it string) bool { return b.rerun || !isDone(it) }))
	return nil
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

// run is one item's run in flight.
type run struct {
	item      string
	jobID     int64
	state     rivertype.JobState
	elsewhere bool
	outcome   string // for a failed run: its state and last error
}

// Run runs the items Report found to run and waits for them, writing every
// event and the summary to out, and a bar to barTerminal when it is a
// terminal. It returns the first error that stopped it, or the runs that
// failed.
func (b *Backfill) Run(ctx context.Context, e Env, out, barTerminal io.Writer) error {
	show := progress.New(out, barTerminal, b.batch.unit+"s", progress.Options{LineEvery: heartbeat, BarEvery: barEvery, Quiet: true})
	defer show.Stop()
	var inflight []*run
	next, finished := 0, 0
	for {
		for len(inflight) < b.parallel && next < len(b.todo) && (b.batch.serial == "" || len(b.failed) == 0) {
			it := b.todo[next]
			next++
			_, wasDone := b.completed[it]
			r, err := b.start(ctx, e, show, it, b.rerun && wasDone)
			if err != nil {
				b.notStarted = b.todo[next-1:]
				return b.finish(out, show, inflight, interrupted(ctx, fmt.Errorf("start %s: %w", it, err)))
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
		desc := describeInflight(inflight)
		show.Status(time.Now(), int64(finished), int64(len(b.todo)), fmt.Sprintf("waiting: %d of %d done; %s", finished, len(b.todo), desc), desc)
		still, err := b.poll(ctx, e, show, inflight)
		if err != nil {
			b.notStarted = b.todo[next:]
			return b.finish(out, show, inflight, interrupted(ctx, err))
		}
		finished += len(inflight) - len(still)
		if len(still) == len(inflight) {
			select {
			case <-ctx.Done():
				b.notStarted = b.todo[next:]
				return b.finish(out, show, inflight, interrupted(ctx, ctx.Err()))
			case <-time.After(poll):
			}
		}
		inflight = still
	}
	b.notStarted = b.todo[next:]
	return b.finish(out, show, nil, nil)
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
func (b *Backfill) start(ctx context.Context, e Env, show *progress.Display, it string, rerun bool) (*run, error) {
	job, err := b.batch.start(ctx, e, it, rerun)
	var (
		active *jobs.RunActiveError
		done   *jobs.RunCompletedError
	)
	switch {
	case err == nil:
		what := ""
		if rerun {
			what = " (rerun)"
		}
		show.Event("%s: started job %d%s", it, job.ID, what)
		return &run{item: it, jobID: job.ID, state: job.State}, nil
	case errors.As(err, &active):
		// Someone else started it: wait for that run, never start it twice.
		what := "running"
		if active.State != rivertype.JobStateRunning {
			what = fmt.Sprintf("queued (%s)", active.State)
		}
		show.Event("%s: already %s as job %d, started elsewhere; not started again, waiting for it", it, what, active.JobID)
		return &run{item: it, jobID: active.JobID, state: active.State, elsewhere: true}, nil
	case errors.As(err, &done):
		show.Event("%s: completed meanwhile as job %d; skipped", it, done.JobID)
		b.skipped = append(b.skipped, it)
		return nil, nil
	default:
		return nil, err
	}
}

// poll reads the runs in flight and returns those not finished yet.
func (b *Backfill) poll(ctx context.Context, e Env, show *progress.Display, inflight []*run) ([]*run, error) {
	ids := make([]int64, len(inflight))
	for i, r := range inflight {
		ids[i] = r.jobID
	}
	res, err := e.Client.JobList(ctx, river.NewJobListParams().IDs(ids...).First(len(ids)))
	if err != nil {
		return inflight, fmt.Errorf("read the runs in flight: %w", err)
	}
	byID := make(map[int64]*rivertype.JobRow, len(res.Jobs))
	for _, j := range res.Jobs {
		byID[j.ID] = j
	}
	var still []*run
	for _, r := range inflight {
		j, ok := byID[r.jobID]
		switch {
		case !ok:
			r.outcome = "deleted before it finished"
			show.Event("%s: job %d was deleted before it finished", r.item, r.jobID)
			b.failed = append(b.failed, r)
		case j.State == rivertype.JobStateCompleted:
			show.Event("%s: completed (job %d, %s)", r.item, r.jobID, runTime(j))
			b.ran++
			if r.elsewhere {
				b.elsewhere++
			}
		case j.State == rivertype.JobStateCancelled || j.State == rivertype.JobStateDiscarded:
			r.outcome = string(j.State)
			line := fmt.Sprintf("%s: %s (job %d, %s)", r.item, j.State, r.jobID, runTime(j))
			if n := len(j.Errors); n > 0 {
				msg := report.ErrorText(j.Errors[n-1].Error, 120)
				r.outcome += ": " + msg
				line += ": " + msg
			}
			show.Event("%s", line)
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
func (b *Backfill) finish(out io.Writer, show *progress.Display, inflight []*run, cause error) error {
	show.Stop()
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
		line += " (jobs " + report.IDs(ids) + ")"
	}
	if len(inflight) > 0 {
		ids := make([]int64, len(inflight))
		for i, r := range inflight {
			ids[i] = r.jobID
		}
		line += fmt.Sprintf(", in flight %d (jobs %s)", len(inflight), report.IDs(ids))
	}
	if len(b.notStarted) > 0 {
		line += fmt.Sprintf(", not started %d (%s)", len(b.notStarted), spans(b.notStarted, func(string) bool { return true }))
	}
	fmt.Fprintln(out, line)
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

// describeInflight is "2026-09-03 job 812 running, 2026-09-04 job 813 available".
func describeInflight(inflight []*run) string {
	parts := make([]string, len(inflight))
	for i, r := range inflight {
		parts[i] = fmt.Sprintf("%s job %d %s", r.item, r.jobID, r.state)
	}
	return strings.Join(parts, ", ")
}
