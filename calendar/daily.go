package calendar

import (
	"fmt"
	"time"
)

// TherapyMonthFor returns the year and month the daily therapy run on
// businessDate (YYYY-MM-DD) aggregates: the month of the previous calendar
// day, so the run on 1 December finalises November.
func TherapyMonthFor(businessDate string) (year, month int, err error) {
	d, err := ParseDate(businessDate)
	if err != nil {
		return 0, 0, fmt.Errorf("business date %q: want YYYY-MM-DD", businessDate)
	}
	year, month = TherapyMonthOf(d)
	return year, month, nil
}

// TherapyMonthOf is TherapyMonthFor of day's calendar date in day's
// location: the month of the day before.
func TherapyMonthOf(day time.Time) (year, month int) {
	prev := day.AddDate(0, 0, -1)
	return prev.Year(), int(prev.Month())
}

// SettlementStart is when, after midnight in the business time zone, the
// daily settlement of the business date starts (00:30).
const SettlementStart = 30 * time.Minute

// SettlementBusinessDate is the business date the nightly settlement runs
// for at time t: the date of the last SettlementStart boundary in tz, so a
// worker started at 00:10 does not settle a day before 00:30.
func SettlementBusinessDate(t time.Time, tz *time.Location) string {
	return BusinessDate(t.Add(-SettlementStart), tz)
}
