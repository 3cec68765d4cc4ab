package order

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/usertext"
)

// MaxUsernameLen is the longest username accepted, in characters.
const MaxUsernameLen = 100

// Request is one order request as an operator or API client gives it.
type Request struct {
	Username         string
	TotalPrice       int64
	AppliedYearMonth string
}

// InputError is a bad order request, naming the field at fault.
type InputError struct {
	Field string
	Msg   string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Msg }

// Validate reports the first thing wrong with r, as an *InputError. The
// rules are order_request's CHECK constraints, so a valid request always
// inserts (unless its user-month already has a request), and the username is
// text a user gives (package usertext): it goes to the partner as it is.
func (r Request) Validate() error {
	if err := usertext.Check(r.Username); err != nil {
		return &InputError{"username", err.Error()}
	}
	switch {
	case strings.TrimSpace(r.Username) == "":
		return &InputError{"username", "must not be empty"}
	case r.Username != strings.TrimSpace(r.Username):
		return &InputError{"username", fmt.Sprintf("%q has leading or trailing spaces", r.Username)}
	case utf8.RuneCountInString(r.Username) > MaxUsernameLen:
		return &InputError{"username", fmt.Sprintf("longer than %d characters", MaxUsernameLen)}
	case r.TotalPrice <= 0:
		return &InputError{"total_price", fmt.Sprintf("must be a positive integer, got %d", r.TotalPrice)}
	case !validYearMonth(r.AppliedYearMonth):
		return &InputError{"applied_year_month", fmt.Sprintf("want YYYY-MM with MM in 01..12, got %q", r.AppliedYearMonth)}
	}
	return nil
}

// validYearMonth reports whether s is a year-month calendar accepts.
func validYearMonth(s string) bool {
	_, _, err := calendar.ParseYearMonth(s)
	return err == nil
}
