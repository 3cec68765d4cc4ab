// Package usertext holds the rule for text a user gives — order usernames,
// coupon names and descriptions, every field of an orders file — before
// tidemark stores it, sends it to the partner, or writes it where an operator
// may open it in a spreadsheet.
//
// Check refuses, naming the first offending character and its position:
//
//   - bytes that are not valid UTF-8;
//   - U+FFFD, the replacement character: the mark of text mangled before it
//     arrived (Go's encoding/json turns invalid UTF-8 and a lone surrogate
//     such as "\udc00" into it);
//   - control characters (unicode.IsControl: NUL, tab, line feed, …) and the
//     line and paragraph separators U+2028 and U+2029;
//   - Bidi_Control characters (U+061C, U+200E, U+200F, U+202A–U+202E,
//     U+2066–U+2069), which reorder how the text around them is displayed;
//   - the other invisible characters: format characters (category Cf, such as
//     U+200B zero width space, U+2060 word joiner, U+FEFF, U+00AD soft hyphen),
//     the other default-ignorable code points (the Hangul fillers U+115F,
//     U+1160, U+3164 and U+FFA0, which make a name look blank), and
//     noncharacters (U+FFFE, U+FFFF, U+FDD0–U+FDEF, …);
//   - text whose first character other than a space is '=', '+', '-' or '@',
//     which a spreadsheet runs as a formula (CSV or formula injection, as
//     OWASP describes it). A negative number is refused with it.
//
// Three kinds of invisible character are kept where real text needs them, so
// that Korean, CJK and emoji text passes:
//
//   - variation selectors (U+FE0F in a red heart U+2764 U+FE0F, the
//     ideographic variation selectors of CJK names), which are combining
//     marks, not format characters;
//   - U+200D zero width joiner and U+200C zero width non-joiner between two
//     visible characters (emoji sequences such as U+1F469 U+200D U+1F4BB,
//     Persian and Indic words), never at either end of the text or next to
//     another invisible character;
//   - the tag characters of an emoji subdivision flag: U+1F3F4, then 3 to 7
//     tag letters or digits, then U+E007F (Scotland's flag is U+1F3F4 with
//     the tags "gbsct"); nowhere else.
//
// Text is refused, never repaired or quoted: what tidemark stores is exactly
// what the user gave, and is safe to send on and to write into a CSV cell as
// it is. Look-alike characters (a Cyrillic 'а' for a Latin 'a', fullwidth
// letters) are text and pass.
package usertext
