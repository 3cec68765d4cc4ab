// Package progress shows a long command's progress, the one display every
// long `enqueue` command uses (wait, backfill, therapy-stats). On a terminal it draws
// a bar, redrawn at most every BarEvery, and prints event lines above it;
// elsewhere (a log, a pipe, CI) it writes plain lines only: every event, and
// a status line at most every LineEvery, since a file should not get five
// lines a second.
package progress

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Display is a bar or plain lines. Its zero value is not usable: see New.
type Display struct {
	out   io.Writer // events and status lines
	bar   io.Writer // the terminal the bar is drawn on; nil: plain lines
	unit  string    // what the bar counts, shown until a status describes it
	every time.Duration

	last    time.Time
	pb      *progressbar.ProgressBar
	total   int64
	cleared bool // an event took the bar's place: redraw at once
	shown   bool // a status has been shown
}

// Options are a display's cadence.
type Options struct {
	// LineEvery is the least time between two status lines, counted from
	// the last line of any kind; BarEvery between two redraws of the bar.
	LineEvery, BarEvery time.Duration
	// Quiet holds the first status line back until LineEvery has passed
	// (a heartbeat); otherwise the first status is shown at once.
	Quiet bool
}

// New returns a display writing events to out, and a bar on barTerminal
// when it is a terminal (it may be out itself), status lines to out
// otherwise.
func New(out, barTerminal io.Writer, unit string, o Options) *Display {
	if IsTerminal(barTerminal) {
		return NewBar(out, barTerminal, unit, o)
	}
	return NewLines(out, o)
}

// NewLines returns a display of plain lines on out.
func NewLines(out io.Writer, o Options) *Display {
	d := &Display{out: out, every: o.LineEvery}
	if o.Quiet {
		d.last = time.Now()
	}
	return d
}

// NewBar returns a display drawing a bar of unit on bar, events on out.
func NewBar(out, bar io.Writer, unit string, o Options) *Display {
	return &Display{out: out, bar: bar, unit: unit, every: o.BarEvery}
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Due reports whether a status given now would be shown: a caller whose
// status is costly to gather asks first.
func (d *Display) Due(now time.Time) bool {
	return d.last.IsZero() || d.cleared || now.Sub(d.last) >= d.every
}

// Status shows done of total (total may grow): as the bar, described by
// desc, or as line. It does nothing when not Due.
func (d *Display) Status(now time.Time, done, total int64, line, desc string) {
	if !d.Due(now) {
		return
	}
	d.last, d.cleared, d.shown = now, false, true
	if d.bar == nil {
		fmt.Fprintln(d.out, line)
		return
	}
	if d.pb == nil {
		d.pb = progressbar.NewOptions64(total, progressbar.OptionSetWriter(d.bar), progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true), progressbar.OptionFullWidth(), progressbar.OptionClearOnFinish(),
			progressbar.OptionSetDescription(d.unit))
		d.total = total
	}
	if total != d.total {
		d.total = total
		d.pb.ChangeMax64(total)
	}
	if desc == "" {
		desc = d.unit
	}
	d.pb.Describe(desc)
	_ = d.pb.Set64(done)
}

// Event prints a line of its own, above the bar (which the next status
// draws again at once).
func (d *Display) Event(format string, args ...any) {
	if d.pb != nil {
		_ = d.pb.Clear()
		d.cleared = true
	}
	fmt.Fprintf(d.out, format+"\n", args...)
	if d.bar == nil {
		d.last = time.Now()
	}
}

// Shown reports whether a status has been shown.
func (d *Display) Shown() bool { return d.shown }

// Stop clears the bar, for good.
func (d *Display) Stop() {
	if d.pb != nil {
		_ = d.pb.Clear()
		d.pb = nil
	}
}
