// Package cliflag is how tidemark's command-line programs read their flags:
// a mistake in how a command was called is a *UsageError (exit 2) naming
// the flag, --help prints the flags with only the defaults that mean
// something, and the shapes every command shares (a date, a list of ids)
// are read one way.
package cliflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/tidemark/tidemark/calendar"
)

// UsageError is a mistake in how the command was called: exit 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef is a *UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{fmt.Sprintf(format, args...)}
}

// ErrHelp is returned when --help was asked for and printed: exit 0.
var ErrHelp = errors.New("help shown")

// NewFlagSet returns a flag set for command name whose help goes to out
// (its errors are returned by Parse, for the caller to print).
func NewFlagSet(name string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return fs
}

// Parse parses args with fs, turning flag errors into usage errors and
// refusing stray positional arguments; with --help it prints the flags of
// program's command and returns ErrHelp.
func Parse(program string, fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(out)
			fmt.Fprintf(out, "usage of %s %s:\n", program, fs.Name())
			printFlags(out, fs)
			return ErrHelp
		}
		return &UsageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return Usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// printFlags lists fs's flags as flag.PrintDefaults does, but shows a
// default only where it means something: not for a required flag (its
// default is a sentinel), nor for an empty or zero one.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
		if def := f.DefValue; !strings.Contains(usage, "(required)") && def != "" && def != "0" && def != "false" {
			fmt.Fprintf(w, " (default %s)", def)
		}
		fmt.Fprintln(w)
	})
}

// Date checks the YYYY-MM-DD flag name: *v, or def when it was not given,
// or a usage error when it is required (def "").
func Date(name string, v *string, def string) error {
	if *v == "" {
		*v = def
	}
	if *v == "" {
		return Usagef("--%s is required (YYYY-MM-DD)", name)
	}
	if _, err := calendar.ParseDate(*v); err != nil {
		return Usagef("--%s: %v", name, err)
	}
	return nil
}

// IDs parses the flag name's "1,2,3" into distinct positive ids, in the
// order given.
func IDs(name, s string) ([]int64, error) {
	var ids []int64
	seen := map[int64]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		id, err := strconv.ParseInt(part, 10, 64)
		if err != nil || id <= 0 {
			return nil, Usagef("--%s: %q is not a positive integer id", name, part)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}
