package usertext_test

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/usertext"
)

// Text Check accepts is valid UTF-8 with no control, bidirectional control,
// replacement or stray invisible character, and does not start with a
// formula; text it refuses gets an error saying where; never a panic.
func FuzzCheck(f *testing.F) {
	for _, s := range accepted {
		f.Add(s)
	}
	for _, s := range []string{"\u202e", "a\u200bb", "\x00", "\t", "\xff", "=1+1", "-5", "@SUM", "\ufffd", "\u200d", "\U0001F3F4\U000E0067"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := usertext.Check(s)
		if err != nil {
			require.Regexp(t, `^(contains .* at character [1-9][0-9]*|starts with '[=+\-@]' \(a spreadsheet formula\))`, err.Error())
			return
		}
		require.True(t, utf8.ValidString(s))
		rs := []rune(s)
		for i, r := range rs {
			require.False(t, unicode.IsControl(r), "%q: %U", s, r)
			require.False(t, unicode.Is(unicode.Bidi_Control, r), "%q: %U", s, r)
			require.NotEqual(t, utf8.RuneError, r, "%q", s)
			require.False(t, unicode.In(r, unicode.Zl, unicode.Zp, unicode.Noncharacter_Code_Point), "%q: %U", s, r)
			if r == '\u200d' || r == '\u200c' {
				require.True(t, i > 0 && i < len(rs)-1, "%q: a joiner at an end", s)
				continue
			}
			if unicode.In(r, unicode.Cf, unicode.Other_Default_Ignorable_Code_Point) {
				require.True(t, r >= 0xE0030 && r <= 0xE007F, "%q: %U outside a flag", s, r)
				require.Contains(t, s, "\U0001F3F4", "%q: a tag with no flag", s)
			}
		}
		trimmed := strings.TrimLeftFunc(s, unicode.IsSpace)
		require.False(t, trimmed != "" && strings.ContainsRune("=+-@", rune(trimmed[0])), "%q starts with a formula", s)
	})
}
