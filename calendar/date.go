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
