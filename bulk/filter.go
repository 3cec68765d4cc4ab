package bulk

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/calendar"
)

// Action is what is done to each matching job.
type Action string

// The actions, as operator_action.action records them.
const (
	Retry  Action = "retry"
	Cancel Action = "cancel"
)

// States returns the states the action may be asked to act on, and those
// it acts on when no state is given.
//
// Retry: a failed job (discarded, cancelled) by default; a completed one
// runs again only when asked for by name, since re-running what succeeded
// is rarely what "retry" means. Queued and running jobs have nothing to
// retry (River's JobRetry leaves a running job alone).
//
// Cancel: every job still waiting by default; a running one only when asked
// for by name, because River cannot stop it at once — it cancels the job's
// context and the job ends when its worker returns.
func (a Action) States() (allowed, byDefault []rivertype.JobState) {
	switch a {
	case Retry:
		return []rivertype.JobState{rivertype.JobStateDiscarded, rivertype.JobStateCancelled, rivertype.JobStateCompleted},
			[]rivertype.JobState{rivertype.JobStateDiscarded, rivertype.JobStateCancelled}
	case Cancel:
		return []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStateScheduled, rivertype.JobStateRetryable,
				rivertype.JobStatePending, rivertype.JobStateRunning},
			[]rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStateScheduled, rivertype.JobStateRetryable, rivertype.JobStatePending}
	}
	return nil, nil
}

// timeWindow is the predicates --since and --until put on the column the
// action's window applies to: when a job finished for a retry (every state
// it acts on is finished, so finalized_at is set), when it was enqueued for
// a cancel (none of its states is finished).
func (a Action) timeWindow() (column, since, until string) {
	if a == Retry {
		return "finalized_at", "finalized_at >= @tm_since", "finalized_at < @tm_until"
	}
	return "created_at", "created_at >= @tm_since", "created_at < @tm_until"
}

// lastErrorContains matches a job whose last recorded error (River appends
// one per failed attempt) contains @tm_error_contains, ignoring case. No
// error recorded: no match.
const lastErrorContains = `strpos(lower(errors[array_upper(errors, 1)] ->> 'error'), lower(@tm_error_contains)) > 0`

// Filter selects jobs. Empty fields select everything; the fields that are
// set must all hold.
type Filter struct {
	Kinds  []string
	States []rivertype.JobState // empty: the action's default states
	Queues []string
	// Since and Until bound the action's time column to [Since, Until);
	// zero is unbounded.
	Since, Until time.Time
	// ErrorContains is text the job's last error contains, any case.
	ErrorContains string
}

// FilterError is a filter that cannot be used, naming the filter (the flag's
// name without its dashes) when one is to blame.
type FilterError struct {
	Filter string
	Msg    string
}

func (e *FilterError) Error() string {
	if e.Filter == "" {
		return e.Msg
	}
	return e.Filter + ": " + e.Msg
}

// Validate reports why f cannot be used for a, or nil. kinds are the kinds
// a worker runs (jobs.Kinds).
func (f Filter) Validate(a Action, kinds []string) error {
	allowed, _ := a.States()
	if allowed == nil {
		return &FilterError{Msg: fmt.Sprintf("unknown action %q", a)}
	}
	for _, k := range f.Kinds {
		if !slices.Contains(kinds, k) {
			return &FilterError{"kind", fmt.Sprintf("unknown kind %q; the kinds are %s", k, strings.Join(kinds, ", "))}
		}
	}
	for _, s := range f.States {
		if !slices.Contains(rivertype.JobStates(), s) {
			return &FilterError{"state", fmt.Sprintf("unknown state %q; %s acts on %s", s, a, joinStates(allowed))}
		}
		if !slices.Contains(allowed, s) {
			return &FilterError{"state", fmt.Sprintf("%s acts on %s jobs, not %s ones", a, joinStates(allowed), s)}
		}
	}
	for _, q := range f.Queues {
		if q == "" {
			return &FilterError{"queue", "empty queue name"}
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return &FilterError{"since", fmt.Sprintf("%s is not before --until %s",
			f.Since.Format(time.RFC3339), f.Until.Format(time.RFC3339))}
	}
	if a == Cancel && f.empty() {
		return &FilterError{Msg: "with no filter, cancel would cancel every job; " +
			"give at least one of --kind, --state, --queue, --since, --until, --error-contains"}
	}
	return nil
}

func (f Filter) empty() bool {
	return len(f.Kinds) == 0 && len(f.States) == 0 && len(f.Queues) == 0 &&
		f.Since.IsZero() && f.Until.IsZero() && f.ErrorContains == ""
}

// states is the states f selects for a: the given ones, else a's defaults.
func (f Filter) states(a Action) []rivertype.JobState {
	if len(f.States) > 0 {
		return f.States
	}
	_, byDefault := a.States()
	return byDefault
}

// listParams is River's JobList filter for f, ordered by id.
func (f Filter) listParams(a Action) *river.JobListParams {
	p := river.NewJobListParams().States(f.states(a)...).OrderBy(river.JobListOrderByID, river.SortOrderAsc)
	if len(f.Kinds) > 0 {
		p = p.Kinds(f.Kinds...)
	}
	if len(f.Queues) > 0 {
		p = p.Queues(f.Queues...)
	}
	_, since, until := a.timeWindow()
	if !f.Since.IsZero() {
		p = p.Where(since, river.NamedArgs{"tm_since": f.Since})
	}
	if !f.Until.IsZero() {
		p = p.Where(until, river.NamedArgs{"tm_until": f.Until})
	}
	if f.ErrorContains != "" {
		p = p.Where(lastErrorContains, river.NamedArgs{"tm_error_contains": f.ErrorContains})
	}
	return p
}

// filterRecord is a filter as operator_action.filter keeps it: keys named
// after the flags, the states the action used (defaults filled in), the
// window as instants with the column it bounded.
type filterRecord struct {
	Kind          []string             `json:"kind,omitempty"`
	State         []rivertype.JobState `json:"state"`
	Queue         []string             `json:"queue,omitempty"`
	Since         *time.Time           `json:"since,omitempty"`
	Until         *time.Time           `json:"until,omitempty"`
	Time          string               `json:"time,omitempty"`
	ErrorContains string               `json:"error_contains,omitempty"`
}

// Record is f as operator_action.filter keeps it for a.
func (f Filter) Record(a Action) json.RawMessage {
	r := filterRecord{Kind: f.Kinds, State: f.states(a), Queue: f.Queues, ErrorContains: f.ErrorContains}
	if !f.Since.IsZero() {
		r.Since = &f.Since
	}
	if !f.Until.IsZero() {
		r.Until = &f.Until
	}
	if r.Since != nil || r.Until != nil {
		r.Time, _, _ = a.timeWindow()
	}
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("bulk: marshal filter: %v", err)) // strings and times only
	}
	return b
}

// ParseTime parses a --since or --until value: an RFC 3339 timestamp, or a
// business date YYYY-MM-DD in tz. A date as the lower bound is its first
// instant; as the upper bound, the first instant of the day after, so that
// --since D --until D is the whole of day D.
func ParseTime(s string, tz *time.Location, upper bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := calendar.ParseDate(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want an RFC 3339 timestamp (2026-11-20T09:00:00+09:00) or a date YYYY-MM-DD in %s", s, tz)
	}
	t := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, tz)
	if upper {
		t = time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, tz)
	}
	return t, nil
}

func joinStates(states []rivertype.JobState) string {
	parts := make([]string, len(states))
	for i, s := range states {
		parts[i] = string(s)
	}
	if len(parts) < 2 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " or " + parts[len(parts)-1]
}

// FilterText is a filter as an operator writes it, each field the text of
// its flag (names and states comma-separated; times as ParseTime takes
// them). Given names the flags that were set: a flag set to "" is refused,
// never read as no filter.
type FilterText struct {
	Kinds, States, Queues, Since, Until, ErrorContains string
	Given                                              map[string]bool // by flag name: "kind", "state", "queue", "since", "until", "error-contains"
}

// ParseFilter parses t into the filter of a, with dates in tz, and
// validates it (Validate, with kinds). Every error is a *FilterError
// naming the flag at fault.
func ParseFilter(a Action, t FilterText, tz *time.Location, kinds []string) (Filter, error) {
	var f Filter
	var err error
	if f.Kinds, err = parseNames(t, "kind", t.Kinds); err != nil {
		return f, err
	}
	states, err := parseNames(t, "state", t.States)
	if err != nil {
		return f, err
	}
	for _, s := range states {
		f.States = append(f.States, rivertype.JobState(s))
	}
	if f.Queues, err = parseNames(t, "queue", t.Queues); err != nil {
		return f, err
	}
	if t.Given["since"] {
		if f.Since, err = ParseTime(t.Since, tz, false); err != nil {
			return f, &FilterError{"since", err.Error()}
		}
	}
	if t.Given["until"] {
		if f.Until, err = ParseTime(t.Until, tz, true); err != nil {
			return f, &FilterError{"until", err.Error()}
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return f, &FilterError{Msg: fmt.Sprintf("--since %s is not before --until %s: no job could match", t.Since, t.Until)}
	}
	if t.Given["error-contains"] && t.ErrorContains == "" {
		return f, &FilterError{"error-contains", "empty text would match every error; leave the flag out instead"}
	}
	f.ErrorContains = t.ErrorContains
	return f, f.Validate(a, kinds)
}

// parseNames parses flag name's value "a,b" into distinct non-empty names,
// in the order given; nil when the flag was not given.
func parseNames(t FilterText, name, s string) ([]string, error) {
	if !t.Given[name] {
		return nil, nil
	}
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, &FilterError{name, fmt.Sprintf("an empty name in %q", s)}
		}
		if !slices.Contains(out, part) {
			out = append(out, part)
		}
	}
	return out, nil
}
