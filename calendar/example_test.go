package calendar_test

import (
	"fmt"
	"time"

	"github.com/tidemark/tidemark/calendar"
)

// A monthly batch names its month as text and computes its bounds in the
// business time zone.
func ExampleParseYearMonth() {
	seoul, _ := time.LoadLocation("Asia/Seoul")
	year, month, err := calendar.ParseYearMonth("2026-11")
	if err != nil {
		panic(err)
	}
	start, end := calendar.MonthBounds(year, month, seoul)
	fmt.Println(start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))

	_, _, err = calendar.ParseYearMonth("2026-13")
	fmt.Println(err)
	// Output:
	// 2026-10-31T15:00:00Z 2026-11-30T15:00:00Z
	// month out of range: want YYYY-MM with MM in 01..12
}

// The date of an instant depends on the zone: 23:30 UTC is already the next
// morning in Seoul.
func ExampleBusinessDate() {
	seoul, _ := time.LoadLocation("Asia/Seoul")
	now := time.Date(2026, 11, 20, 23, 30, 0, 0, time.UTC)
	fmt.Println(calendar.BusinessDate(now, seoul), calendar.NextBusinessDate(now, seoul))
	// Output: 2026-11-21 2026-11-22
}
