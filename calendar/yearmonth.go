package calendar

import (
	"errors"
	"fmt"
	"time"
)

// yearMonthLayout is a year-month's only spelling: four-digit year, two-digit month.
const yearMonthLayout = "2006-01"

var (
	errYearMonthFormat = errors.New("want YYYY-MM, like 2026-11")
	errYearMonthRange  = errors.New("month out of range: want YYYY-MM with MM in 01..12")
)

// ParseYearMonth parses "YYYY-MM" with a year from 0001 and a month in
// 01..12. Text that is not four digits, '-', two digits is refused as
// malformed; a well-formed one whose month (or year 0000) is out of range is
// refused as out of range.
func ParseYearMonth(s string) (year, month int, err error) {
	// time.Parse with this layout accepts exactly four digits, '-' and two
	// digits, with nothing before or after.
	t, err := time.Parse(yearMonthLayout, s)
	if err == nil && ValidYearMonth(t.Year(), int(t.Month())) {
		return t.Year(), int(t.Month()), nil
	}
	if !yearMonthShaped(s) {
		return 0, 0, errYearMonthFormat
	}
	return 0, 0, errYearMonthRange
}

// yearMonthShaped reports whether s is four ASCII digits, '-', two ASCII
// digits: a year-month in form, whatever its values. It tells a malformed
// year-month from one out of range, which time.Parse does not (it calls
// "2026-13x" out of range).
func yearMonthShaped(s string) bool {
	if len(s) != len(yearMonthLayout) || s[4] != '-' {
		return false
	}
	for i := range len(s) {
		if i != 4 && (s[i] < '0' || s[i] > '9') {
			return false
		}
	}
	return true
}

// ValidYearMonth reports whether year and month are a year-month
// ParseYearMonth accepts: a year from 1 to 9999 and a month in 1..12.
func ValidYearMonth(year, month int) bool {
	return year >= 1 && year <= 9999 && month >= 1 && month <= 12
}

// FormatYearMonth is the "YYYY-MM" text of year and month.
func FormatYearMonth(year, month int) string {
	return fmt.Sprintf("%04d-%02d", year, month)
}

// MonthBounds returns [first day 00:00, next month's first day 00:00) of
// year-month in tz.
func MonthBounds(year, month int, tz *time.Location) (start, end time.Time) {
	start = time.Date(year, time.Month(month), 1, 0, 0, 0, 0, tz)
	return start, start.AddDate(0, 1, 0)
}
