package calendar

import (
	"fmt"
	"time"
)

// ParseDate parses a business date "YYYY-MM-DD": a day that exists, in the
// one spelling Format gives back (so no "2026-1-2", no signs, no spaces).
func ParseDate(s string) (time.Time, error) {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil || d.Format(time.DateOnly) != s {
		return time.Time{}, fmt.Errorf("date %q: want YYYY-MM-DD, like 2026-11-20", s)
	}
	return d, nil
}

// BusinessDate is t's calendar date in tz, as YYYY-MM-DD.
func BusinessDate(t time.Time, tz *time.Location) string {
	return t.In(tz).Format(time.DateOnly)
}

// NextBusinessDate is the business date after now's in tz: tomorrow there.
// It is the default date a reprocessed ledger row is collected on.
func NextBusinessDate(now time.Time, tz *time.Location) string {
	return BusinessDate(now.In(tz).AddDate(0, 0, 1), tz)
}

// DayAfter is the business date after d.
func DayAfter(d string) (string, error) {
	t, err := ParseDate(d)
	if err != nil {
		return "", err
	}
	return t.AddDate(0, 0, 1).Format(time.DateOnly), nil
}

// FirstOfMonth is the first day of d's month ("2026-12-05" → "2026-12-01").
func FirstOfMonth(d string) (string, error) {
	t, err := ParseDate(d)
	if err != nil {
		return "", err
	}
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC).Format(time.DateOnly), nil
}

// LastMonthEnd is the last day of the month before t's month in tz: the end
// of the latest month that is over.
func LastMonthEnd(t time.Time, tz *time.Location) string {
	now := t.In(tz)
	return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, tz).AddDate(0, 0, -1).Format(time.DateOnly)
}
