package order_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/order"
)

// Validate refuses a username that is not safe text (package usertext), as
// an *InputError naming the field; a Korean or emoji username of up to
// MaxUsernameLen characters is valid.
func TestValidateUsername(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ username, msg string }{
		{"evil\u202etxt", "contains a right-to-left override U+202E at character 5"},
		{`=HYPERLINK("http://evil.example")`, "starts with '=' (a spreadsheet formula)"},
		{"kim\ufffd", "contains a replacement character U+FFFD at character 4 (text mangled before it arrived: invalid UTF-8 or a lone surrogate)"},
		{"kim\xff", "contains an invalid UTF-8 byte 0xFF at character 4"},
		{"ki\u200bm", "contains a zero width space U+200B at character 3"},
		{"kim\x00", "contains a NUL U+0000 at character 4"},
		{" kim", `" kim" has leading or trailing spaces`},
		{"", "must not be empty"},
		{strings.Repeat("김", order.MaxUsernameLen+1), "longer than 100 characters"},
	} {
		err := order.Request{Username: c.username, TotalPrice: 1, AppliedYearMonth: "2025-02"}.Validate()
		var ie *order.InputError
		require.ErrorAs(t, err, &ie, "%q", c.username)
		require.Equal(t, order.InputError{Field: "username", Msg: c.msg}, *ie)
	}

	for _, u := range []string{"김철수", "홍길동 2세", "이영희\U0001F600", "\U0001F469\u200d\U0001F4BB", strings.Repeat("김", order.MaxUsernameLen)} {
		require.NoError(t, order.Request{Username: u, TotalPrice: 1, AppliedYearMonth: "2025-02"}.Validate(), "%q", u)
	}
}

// The price must be positive and the month a year-month package calendar
// accepts; each refusal names its field.
func TestValidatePriceAndMonth(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   order.Request
		want order.InputError
	}{
		{order.Request{Username: "kim", TotalPrice: 0, AppliedYearMonth: "2025-02"},
			order.InputError{Field: "total_price", Msg: "must be a positive integer, got 0"}},
		{order.Request{Username: "kim", TotalPrice: -5, AppliedYearMonth: "2025-02"},
			order.InputError{Field: "total_price", Msg: "must be a positive integer, got -5"}},
		{order.Request{Username: "kim", TotalPrice: 1, AppliedYearMonth: "2025-13"},
			order.InputError{Field: "applied_year_month", Msg: `want YYYY-MM with MM in 01..12, got "2025-13"`}},
		{order.Request{Username: "kim", TotalPrice: 1, AppliedYearMonth: "2025-2"},
			order.InputError{Field: "applied_year_month", Msg: `want YYYY-MM with MM in 01..12, got "2025-2"`}},
	} {
		var ie *order.InputError
		require.ErrorAs(t, c.in.Validate(), &ie, "%+v", c.in)
		require.Equal(t, c.want, *ie)
	}
}
