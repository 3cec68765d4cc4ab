package order

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/tidemark/tidemark/usertext"
)

// CSVHeader is the header an orders file must start with.
const CSVHeader = "username,total_price,applied_year_month"

// MaxCSVRows bounds one file: `enqueue orders` inserts it in one transaction.
const MaxCSVRows = 100_000

// MaxCSVLineBytes bounds one line of an orders file, so that a file with no
// newline is refused after reading this much rather than read whole. A valid
// line is far shorter: a username of at most 100 characters of up to 4 bytes
// (each quote doubled when quoted), a price of at most 19 digits, a month.
const MaxCSVLineBytes = 4 << 10

// csvFields are the fields of an orders line, named as in the header.
var csvFields = strings.Split(CSVHeader, ",")

// ReadCSV reads an orders file (`enqueue orders --file`): the header line,
// then one request per line. Every field is text a user gives (package
// usertext), so a field starting with '-' is refused before it is read as a
// number. The first bad line is an error naming it; lines[i] is the line of
// reqs[i].
func ReadCSV(r io.Reader) (reqs []Request, lines []int, err error) {
	cr := csv.NewReader(&lineLimitReader{r: r, limit: MaxCSVLineBytes, line: 1, start: 1})
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil, errors.New("empty file; want the header " + CSVHeader)
	}
	if err != nil {
		return nil, nil, csvErr(err)
	}
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	for i := range header {
		header[i] = strings.ToLower(strings.TrimSpace(header[i]))
	}
	if got := strings.Join(header, ","); got != CSVHeader {
		return nil, nil, fmt.Errorf("line 1: header must be %s, got %q", CSVHeader, got)
	}
	seen := map[[2]string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, csvErr(err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != 3 {
			return nil, nil, fmt.Errorf("line %d: want 3 fields (%s), got %d", line, CSVHeader, len(rec))
		}
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
			if err := usertext.Check(rec[i]); err != nil {
				return nil, nil, fmt.Errorf("line %d: %s: %w", line, csvFields[i], err)
			}
		}
		in := Request{Username: rec[0], AppliedYearMonth: rec[2]}
		in.TotalPrice, err = strconv.ParseInt(rec[1], 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("line %d: total_price: want a positive integer, got %q", line, rec[1])
		}
		if err := in.Validate(); err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", line, err)
		}
		key := [2]string{in.Username, in.AppliedYearMonth}
		if prev, ok := seen[key]; ok {
			return nil, nil, fmt.Errorf("line %d: user %q already has a request for %s on line %d", line, in.Username, in.AppliedYearMonth, prev)
		}
		seen[key] = line
		if len(reqs) == MaxCSVRows {
			return nil, nil, fmt.Errorf("line %d: more than %d requests; split the file", line, MaxCSVRows)
		}
		reqs = append(reqs, in)
		lines = append(lines, line)
	}
	if len(reqs) == 0 {
		return nil, nil, errors.New("no requests after the header")
	}
	return reqs, lines, nil
}

func csvErr(err error) error {
	var (
		long *lineTooLongError
		pe   *csv.ParseError
	)
	switch {
	case errors.As(err, &long):
		return long
	case errors.As(err, &pe):
		return fmt.Errorf("line %d: malformed CSV: %v", pe.Line, pe.Err)
	}
	return fmt.Errorf("read: %w", err)
}

// lineTooLongError is a line of an orders file longer than its limit.
type lineTooLongError struct{ line, limit int }

func (e *lineTooLongError) Error() string {
	return fmt.Sprintf("line %d: longer than %d bytes", e.line, e.limit)
}

// lineLimitReader passes r on until a line grows past limit bytes (its newline
// not counted), then fails with a *lineTooLongError naming the line.
// encoding/csv reads a whole record into memory before it returns it, so
// without this a file with no newline would be read whole. A quoted field may
// hold newlines, which encoding/csv joins into one record: a newline inside
// quotes does not end a line here, and the record is named by its first line.
// Counting quotes is enough to tell, because encoding/csv refuses every quote
// that neither opens nor closes a field nor stands doubled inside one.
type lineLimitReader struct {
	r           io.Reader
	limit       int
	line, start int  // the current line and the line the current record began on, from 1
	n           int  // bytes of the current record so far
	quoted      bool // inside a quoted field
	err         error
}

func (l *lineLimitReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	for i, b := range p[:n] {
		switch b {
		case '"':
			l.quoted = !l.quoted
		case '\n':
			l.line++
			if !l.quoted {
				l.start, l.n = l.line, 0
				continue
			}
		}
		if l.n++; l.n > l.limit {
			l.err = &lineTooLongError{line: l.start, limit: l.limit}
			return i, l.err
		}
	}
	return n, err
}
