package usertext_test

import (
	"fmt"

	"github.com/tidemark/tidemark/usertext"
)

// Callers name the field; Check says what is wrong with it and where.
func ExampleCheck() {
	for _, s := range []string{"김철수", "\U0001F469\u200d\U0001F4BB", "cod\u202etxt.exe", "=HYPERLINK(\"http://evil.example\")", "kim\xff", "\ufffd"} {
		if err := usertext.Check(s); err != nil {
			fmt.Printf("username: %v\n", err)
			continue
		}
		fmt.Printf("%q: ok\n", s)
	}
	// Output:
	// "김철수": ok
	// "👩\u200d💻": ok
	// username: contains a right-to-left override U+202E at character 4
	// username: starts with '=' (a spreadsheet formula)
	// username: contains an invalid UTF-8 byte 0xFF at character 4
	// username: contains a replacement character U+FFFD at character 1 (text mangled before it arrived: invalid UTF-8 or a lone surrogate)
}
