package usertext

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	zwj       = '\u200d'     // zero width joiner
	zwnj      = '\u200c'     // zero width non-joiner
	blackFlag = '\U0001F3F4' // the base of an emoji subdivision flag
	cancelTag = '\U000E007F' // ends an emoji tag sequence
)

// formulaPrefixes are the first characters that make a spreadsheet read a
// cell as a formula.
const formulaPrefixes = "=+-@"

// names are the characters an error names; others are named by their class.
var names = map[rune]string{
	0x00: "a NUL", '\t': "a tab", '\n': "a line feed", '\r': "a carriage return", 0x1B: "an escape", 0x7F: "a delete",

	0x061C: "an Arabic letter mark", 0x200E: "a left-to-right mark", 0x200F: "a right-to-left mark",
	0x202A: "a left-to-right embedding", 0x202B: "a right-to-left embedding", 0x202C: "a pop directional formatting",
	0x202D: "a left-to-right override", 0x202E: "a right-to-left override",
	0x2066: "a left-to-right isolate", 0x2067: "a right-to-left isolate", 0x2068: "a first strong isolate",
	0x2069: "a pop directional isolate",

	0x2028: "a line separator", 0x2029: "a paragraph separator",

	0x00AD: "a soft hyphen", 0x200B: "a zero width space", zwnj: "a zero width non-joiner", zwj: "a zero width joiner",
	0x2060: "a word joiner", 0xFEFF: "a zero width no-break space (byte order mark)",
	0x115F: "a Hangul filler", 0x1160: "a Hangul filler", 0x3164: "a Hangul filler", 0xFFA0: "a Hangul filler",

	utf8.RuneError: "a replacement character",
}

// Check reports the first thing that makes s unsafe as text a user gives, or
// nil. The error says what is wrong and where, without naming the field,
// which the caller adds: "contains a right-to-left override U+202E at
// character 3", "starts with '=' (a spreadsheet formula)". Characters are
// counted from 1, an invalid byte counting as one. The empty string passes:
// whether a field may be empty is the caller's rule.
func Check(s string) error {
	rs := make([]rune, 0, utf8.RuneCountInString(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return fmt.Errorf("contains an invalid UTF-8 byte 0x%02X at character %d", s[i], len(rs)+1)
		}
		rs = append(rs, r)
		i += size
	}
	for i, n := 0, len(rs); i < n; i++ {
		r := rs[i]
		switch {
		case r == blackFlag:
			i += flagTags(rs[i+1:])
		case r == zwj || r == zwnj:
			if i == 0 || i == n-1 || !visible(rs[i-1]) || !visible(rs[i+1]) {
				return fmt.Errorf("contains %s %U at character %d, not between two visible characters", names[r], r, i+1)
			}
		case r == utf8.RuneError:
			return fmt.Errorf("contains a replacement character %U at character %d (text mangled before it arrived: invalid UTF-8 or a lone surrogate)", r, i+1)
		default:
			if what := refused(r); what != "" {
				return fmt.Errorf("contains %s %U at character %d", what, r, i+1)
			}
		}
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsSpace(r) }); i >= 0 && strings.IndexByte(formulaPrefixes, s[i]) >= 0 {
		return fmt.Errorf("starts with '%c' (a spreadsheet formula)", s[i])
	}
	return nil
}

// refused names the kind of r when r is never allowed, or returns "".
func refused(r rune) string {
	what, named := names[r]
	switch {
	case named && r != zwj && r != zwnj:
		return what
	case unicode.IsControl(r):
		return "a control character"
	case unicode.Is(unicode.Bidi_Control, r):
		return "a bidirectional control"
	case r >= 0xE0000 && r <= 0xE007F:
		return "a tag character"
	case unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point):
		return "an invisible format character"
	case unicode.Is(unicode.Noncharacter_Code_Point, r):
		return "a noncharacter"
	}
	return ""
}

// visible reports whether r may stand next to a zero width joiner or
// non-joiner: not a space, a joiner or a refused character. A code point
// newer than Go's Unicode tables counts as visible, so that an emoji sequence
// with a newer emoji passes.
func visible(r rune) bool {
	return !unicode.IsSpace(r) && r != zwj && r != zwnj && refused(r) == ""
}

// flagTags returns how many runes at the start of rs are the tags of an
// emoji subdivision flag that follows U+1F3F4: 3 to 7 tag letters or digits
// (a CLDR subdivision id such as "gbsct") and the cancel tag; 0 if rs does
// not start with such tags.
func flagTags(rs []rune) int {
	n := 0
	for n < len(rs) && (rs[n] >= 0xE0030 && rs[n] <= 0xE0039 || rs[n] >= 0xE0061 && rs[n] <= 0xE007A) {
		n++
	}
	if n < 3 || n > 7 || n == len(rs) || rs[n] != cancelTag {
		return 0
	}
	return n + 1
}
