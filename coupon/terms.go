package coupon

import (
	"errors"
	"fmt"
	"regexp"
	"unicode/utf8"

	"github.com/tidemark/tidemark/usertext"
)

// Amount types: FIX takes an amount off, RATE a percentage.
const (
	AmountFix  = "FIX"
	AmountRate = "RATE"
)

// codeRE keeps a code safe to put in a Redis key and a URL path unescaped.
var codeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidCode reports whether code is a valid coupon code: 1–64 letters,
// digits, '_' or '-'.
func ValidCode(code string) bool { return codeRE.MatchString(code) }

// ValidateTerms checks a coupon's name, description, amount type and amount,
// naming the field at fault. The name and description are text a user gives
// (package usertext): members see them, and operators export them.
func ValidateTerms(name, description, amountType string, amount int) error {
	if err := usertext.Check(name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	if err := usertext.Check(description); err != nil {
		return fmt.Errorf("description: %w", err)
	}
	switch {
	case name == "" || utf8.RuneCountInString(name) > 200:
		return errors.New("name: want 1 to 200 characters")
	case utf8.RuneCountInString(description) > 1000:
		return errors.New("description: want at most 1000 characters")
	case amountType != AmountFix && amountType != AmountRate:
		return fmt.Errorf("amount-type: want FIX or RATE, got %q", amountType)
	case amount <= 0:
		return fmt.Errorf("amount: want a positive integer, got %d", amount)
	case amountType == AmountRate && amount > 100:
		return fmt.Errorf("amount: a RATE is a percentage, 1 to 100, got %d", amount)
	}
	return nil
}
