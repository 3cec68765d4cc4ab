package calendar

import "time"

// Dates returns the business dates from first through last (both parsed by
// ParseDate), oldest first; none when first is after last.
func Dates(first, last time.Time) []string {
	var out []string
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		out = append(out, d.Format(time.DateOnly))
	}
	return out
}

// Months returns the year-months (YYYY-MM) that the dates first through last
// fall in, oldest first; none when first is after last.
func Months(first, last time.Time) []string {
	var out []string
	if first.After(last) {
		return out
	}
	end := time.Date(last.Year(), last.Month(), 1, 0, 0, 0, 0, last.Location())
	for m := time.Date(first.Year(), first.Month(), 1, 0, 0, 0, 0, first.Location()); !m.After(end); m = m.AddDate(0, 1, 0) {
		out = append(out, m.Format(yearMonthLayout))
	}
	return out
}
