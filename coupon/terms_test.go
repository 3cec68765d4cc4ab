package coupon_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/coupon"
)

func TestValidCode(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"A", "WELCOME", "EXCH-42", "first_come-2026", strings.Repeat("x", 64)} {
		require.True(t, coupon.ValidCode(ok), ok)
	}
	for _, bad := range []string{"", strings.Repeat("x", 65), "has space", "a/b", "a:b", "é", "WELCOME\n", " WELCOME"} {
		require.False(t, coupon.ValidCode(bad), "%q", bad)
	}
}

func TestValidateTerms(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, description, amountType string
		amount                        int
		err                           string
	}{
		{name: "welcome", amountType: coupon.AmountFix, amount: 5000},
		{name: "half off", description: "for members", amountType: coupon.AmountRate, amount: 50},
		{name: "all off", amountType: coupon.AmountRate, amount: 100},
		{name: strings.Repeat("쿠", 200), description: strings.Repeat("폰", 1000), amountType: coupon.AmountFix, amount: 1},
		{name: "", amountType: coupon.AmountFix, amount: 1, err: "name: want 1 to 200 characters"},
		{name: strings.Repeat("쿠", 201), amountType: coupon.AmountFix, amount: 1, err: "name: want 1 to 200 characters"},
		{name: "n", description: strings.Repeat("d", 1001), amountType: coupon.AmountFix, amount: 1, err: "description: want at most 1000 characters"},
		{name: "n", amountType: "fix", amount: 1, err: `amount-type: want FIX or RATE, got "fix"`},
		{name: "n", amountType: "", amount: 1, err: `amount-type: want FIX or RATE, got ""`},
		{name: "n", amountType: coupon.AmountFix, amount: 0, err: "amount: want a positive integer, got 0"},
		{name: "n", amountType: coupon.AmountRate, amount: -5, err: "amount: want a positive integer, got -5"},
		{name: "n", amountType: coupon.AmountRate, amount: 101, err: "amount: a RATE is a percentage, 1 to 100, got 101"},
		{name: "보상 쿠폰 🎁", description: "배송 오류로 인한 쿠폰 교환 (50% 할인)", amountType: coupon.AmountRate, amount: 50},
		{name: "\u202eevil", amountType: coupon.AmountFix, amount: 1, err: "name: contains a right-to-left override U+202E at character 1"},
		{name: "=HYPERLINK(\"http://evil.example\")", amountType: coupon.AmountFix, amount: 1, err: "name: starts with '=' (a spreadsheet formula)"},
		{name: "n", description: "-50% for members", amountType: coupon.AmountFix, amount: 1, err: "description: starts with '-' (a spreadsheet formula)"},
		{name: "n", description: "line one\nline two", amountType: coupon.AmountFix, amount: 1, err: "description: contains a line feed U+000A at character 9"},
		{name: "n\xff", amountType: coupon.AmountFix, amount: 1, err: "name: contains an invalid UTF-8 byte 0xFF at character 2"},
	}
	for _, tc := range cases {
		err := coupon.ValidateTerms(tc.name, tc.description, tc.amountType, tc.amount)
		if tc.err == "" {
			require.NoError(t, err, "%+v", tc)
			continue
		}
		require.EqualError(t, err, tc.err)
	}
}
