package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tidemark/tidemark/calendar"
)

// DeadlineBatches are the batches with a daily run, which a deadline can
// name: the therapy run (00:00 BATCH_TZ) and the settlement (00:30).
var DeadlineBatches = []string{"therapy", "settlement"}

// Deadlines maps a batch to the time of day, in BATCH_TZ, by which its run
// for that day must have completed (BATCH_DEADLINES,
// "settlement=06:00,therapy=03:00"), as the offset from midnight. A batch it
// does not name has no deadline.
type Deadlines map[string]time.Duration

// ParseDeadlines reads BATCH_DEADLINES; blank is no deadline.
func ParseDeadlines(s string) (Deadlines, error) {
	d := Deadlines{}
	if strings.TrimSpace(s) == "" {
		return d, nil
	}
	for _, part := range strings.Split(s, ",") {
		batch, at, ok := strings.Cut(strings.TrimSpace(part), "=")
		batch, at = strings.TrimSpace(batch), strings.TrimSpace(at)
		if !ok || batch == "" || at == "" {
			return nil, fmt.Errorf("BATCH_DEADLINES: want batch=HH:MM, comma-separated (settlement=06:00,therapy=03:00), got %q", part)
		}
		if !slices.Contains(DeadlineBatches, batch) {
			return nil, fmt.Errorf("BATCH_DEADLINES: %q has no daily run; deadlines apply to %s", batch, strings.Join(DeadlineBatches, ", "))
		}
		if _, dup := d[batch]; dup {
			return nil, fmt.Errorf("BATCH_DEADLINES: %s named twice", batch)
		}
		t, err := time.Parse("15:04", at)
		if err != nil || len(at) != 5 {
			return nil, fmt.Errorf("BATCH_DEADLINES: %s: want a time of day HH:MM (00:00–23:59), got %q", batch, at)
		}
		d[batch] = time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute
	}
	return d, nil
}

// String is d as BATCH_DEADLINES writes it, batches in DeadlineBatches order.
func (d Deadlines) String() string {
	var parts []string
	for _, b := range DeadlineBatches {
		if at, ok := d[b]; ok {
			parts = append(parts, fmt.Sprintf("%s=%02d:%02d", b, int(at.Hours()), int(at.Minutes())%60))
		}
	}
	return strings.Join(parts, ",")
}

// Due is the moment of day's deadline of batch in tz, and whether it has one.
// day is any time on the calendar day in tz.
func (d Deadlines) Due(batch string, day time.Time, tz *time.Location) (time.Time, bool) {
	at, ok := d[batch]
	if !ok {
		return time.Time{}, false
	}
	// The wall-clock time on that day, so a day that changes its clocks
	// keeps 03:00 at 03:00.
	y, m, dd := day.In(tz).Date()
	return time.Date(y, m, dd, int(at/time.Hour), int(at%time.Hour/time.Minute), 0, 0, tz), true
}

// DueFor is when the run of batch for businessDate (YYYY-MM-DD in tz) is
// due, and whether batch has a deadline. A settlement runs at 00:30 for its
// date, so a settlement deadline before 00:30 is the next day's.
func (d Deadlines) DueFor(batch, businessDate string, tz *time.Location) (time.Time, bool) {
	day, err := time.ParseInLocation(time.DateOnly, businessDate, tz)
	if err != nil {
		return time.Time{}, false
	}
	due, ok := d.Due(batch, day, tz)
	if ok && batch == "settlement" && d[batch] < calendar.SettlementStart {
		due = due.AddDate(0, 0, 1)
	}
	return due, ok
}

// LastDue is the latest deadline of batch at or before now: today's once it
// has passed, else yesterday's. A run late at its deadline stays late past
// midnight, until it completes.
func (d Deadlines) LastDue(batch string, now time.Time, tz *time.Location) (time.Time, bool) {
	due, ok := d.Due(batch, now, tz)
	if ok && now.Before(due) {
		y, m, dd := now.In(tz).Date()
		due, _ = d.Due(batch, time.Date(y, m, dd-1, 12, 0, 0, 0, tz), tz)
	}
	return due, ok
}
