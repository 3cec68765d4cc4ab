// Package batchui serves the batch page, /ui/: for each of the last business
// dates one row per batch with its state, counts, duration, failures and
// links into River UI's job pages; the latest reconciliation reports; and the
// order requests stuck in SENDING; the latest bulk retries and cancels
// operators made (operator_action). It is server-rendered from an embedded
// html/template, with no script; authentication is the caller's
// (httpapi.RequireAdmin).
package batchui

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/partnerbudget"
	"github.com/tidemark/tidemark/redact"
	"github.com/tidemark/tidemark/store"
)

// Store is what the page reads.
type Store interface {
	BatchRuns(ctx context.Context, from, to string, tz *time.Location) ([]store.BatchRun, error)
	LatestReconcileOutputs(ctx context.Context) ([]store.ReconcileOutput, error)
	StuckSending(ctx context.Context, olderThan time.Duration, limit int) ([]store.OrderRequest, error)
	OperatorActions(ctx context.Context, limit int) ([]store.OperatorAction, error)
}

// Defaults of Opts.
const (
	DefaultDays       = 14
	DefaultStuckAfter = time.Minute
	// maxStuck bounds the SENDING rows listed, maxActions the operator
	// actions.
	maxStuck   = 100
	maxActions = 20
)

// Opts configures the page.
type Opts struct {
	Store  Store
	TZ     *time.Location // BATCH_TZ: business dates and the times shown
	Logger *slog.Logger
	// RiverUIPrefix is where River UI is served ("/riverui"); job ids link
	// to RiverUIPrefix + "/jobs/<id>".
	RiverUIPrefix string
	// Days is how many business dates are shown (DefaultDays when 0);
	// StuckAfter how long a SENDING row must be unchanged to be listed
	// (DefaultStuckAfter when 0).
	Days       int
	StuckAfter time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Deadlines are BATCH_DEADLINES: a run not completed by its deadline is
	// shown late.
	Deadlines config.Deadlines
	// Partner reads the shared budget toward the order partner (its
	// breaker and pause); nil leaves the partner out of the page.
	Partner PartnerStatus
}

// PartnerStatus is what the page reads of the budget toward the partner
// (*partnerbudget.Budget provides it).
type PartnerStatus interface {
	Status(ctx context.Context) (partnerbudget.Status, error)
}

//go:embed page.html
var files embed.FS

var page = template.Must(template.New("page.html").ParseFS(files, "page.html"))

// Handler returns the page's handler; it answers GET on its own path only.
func Handler(o Opts) http.Handler {
	if o.Days <= 0 {
		o.Days = DefaultDays
	}
	if o.StuckAfter <= 0 {
		o.StuckAfter = DefaultStuckAfter
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		data, err := o.read(r.Context())
		if err != nil {
			o.Logger.ErrorContext(r.Context(), "batch page", "err", err)
			http.Error(w, "the batch page could not be read; see the worker's log", http.StatusInternalServerError)
			return
		}
		var buf bytes.Buffer
		if err := page.Execute(&buf, data); err != nil {
			o.Logger.ErrorContext(r.Context(), "batch page: render", "err", err)
			http.Error(w, "the batch page could not be rendered; see the worker's log", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = buf.WriteTo(w)
	})
}

// view is what the template renders.
type view struct {
	Now, Zone     string
	Days          int
	Runs          []runRow
	Reports       []reportRow
	Stuck         []stuckRow
	StuckAfter    time.Duration
	Actions       []actionRow
	MaxActions    int
	RiverUIPrefix string
	// Partner is the budget's state; nil when the page has no budget to read.
	Partner *partnerRow
}

type partnerRow struct {
	Breaker           string // closed, open, half_open; "unknown" when Redis does not answer
	Open              bool   // open or half-open: calls are held back
	OpenUntil, Paused string
	InFlight          int64
}

type runRow struct {
	store.BatchRun
	// FirstOfDate starts a date's group of rows.
	FirstOfDate       bool
	Started, Finished string
	// Late is a run not completed by its deadline (BATCH_DEADLINES), Due
	// that deadline.
	Late                  bool
	Due                   string
	JobLinks, FailedLinks []jobLink
}

type jobLink struct {
	ID   int64
	Href string
}

type reportRow struct {
	Kind, Coupon, Finished string
	Job                    jobLink
	Output                 string
}

type stuckRow struct {
	store.OrderRequest
	Updated, Age string
}

type actionRow struct {
	store.OperatorAction
	At, Finished, Filter string
}

func (o Opts) read(ctx context.Context) (view, error) {
	now := o.Now().In(o.TZ)
	to := calendar.BusinessDate(now, o.TZ)
	from := calendar.BusinessDate(now.AddDate(0, 0, -(o.Days-1)), o.TZ)
	v := view{Now: now.Format("2006-01-02 15:04:05"), Zone: o.TZ.String(), Days: o.Days,
		StuckAfter: o.StuckAfter, RiverUIPrefix: o.RiverUIPrefix, MaxActions: maxActions}
	runs, err := o.Store.BatchRuns(ctx, from, to, o.TZ)
	if err != nil {
		return v, err
	}
	for i, r := range runs {
		r.LastError = redact.Text(r.LastError) // a job's error, stored as the job returned it
		row := runRow{BatchRun: r, FirstOfDate: i == 0 || runs[i-1].BusinessDate != r.BusinessDate,
			Started: o.clock(r.StartedAt), Finished: o.clock(r.FinishedAt),
			JobLinks: o.links(r.JobIDs), FailedLinks: o.links(r.FailedJobIDs)}
		if due, ok := o.Deadlines.DueFor(r.Kind, r.BusinessDate, o.TZ); ok {
			row.Due = o.clock(due)
			row.Late = r.State != store.RunCompleted && !now.Before(due)
		}
		v.Runs = append(v.Runs, row)
	}
	reports, err := o.Store.LatestReconcileOutputs(ctx)
	if err != nil {
		return v, err
	}
	for _, r := range reports {
		out := r.Output
		var pretty bytes.Buffer
		if json.Indent(&pretty, r.Output, "", "  ") == nil {
			out = pretty.Bytes()
		}
		v.Reports = append(v.Reports, reportRow{Kind: r.Kind, Coupon: r.CouponCode, Finished: o.clock(r.Finalized),
			Job: o.link(r.JobID), Output: string(out)})
	}
	stuck, err := o.Store.StuckSending(ctx, o.StuckAfter, maxStuck)
	if err != nil {
		return v, err
	}
	for _, s := range stuck {
		if s.LastError != nil {
			msg := redact.Text(*s.LastError) // rows written before store redacted it
			s.LastError = &msg
		}
		v.Stuck = append(v.Stuck, stuckRow{OrderRequest: s, Updated: o.clock(s.UpdatedAt),
			Age: o.Now().Sub(s.UpdatedAt).Round(time.Second).String()})
	}
	if o.Partner != nil {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := o.Partner.Status(pctx)
		cancel()
		pr := &partnerRow{Breaker: "unknown (Redis does not answer)"}
		if err == nil {
			pr = &partnerRow{Breaker: string(st.Breaker), Open: st.Breaker != partnerbudget.BreakerClosed,
				OpenUntil: o.clock(st.OpenUntil), Paused: o.clock(st.PausedUntil), InFlight: st.InFlight}
		}
		v.Partner = pr
	}
	actions, err := o.Store.OperatorActions(ctx, maxActions)
	if err != nil {
		return v, err
	}
	for _, a := range actions {
		v.Actions = append(v.Actions, actionRow{OperatorAction: a, At: o.clock(a.At), Finished: o.clock(a.FinishedAt),
			Filter: filterText(a.Filter)})
	}
	return v, nil
}

// filterKeys is the order a filter's parts are shown in, the flags' order.
var filterKeys = []string{"kind", "state", "queue", "since", "until", "time", "error_contains"}

// filterText shows a recorded filter as key=value pairs in the flags'
// order, lists comma-separated, text with spaces quoted:
// `kind=therapy_stats state=discarded,cancelled error_contains="lock timeout"`.
func filterText(raw json.RawMessage) string {
	var f map[string]any
	if json.Unmarshal(raw, &f) != nil {
		return string(raw)
	}
	keys := slices.Clone(filterKeys)
	for _, k := range slices.Sorted(maps.Keys(f)) {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	var parts []string
	for _, k := range keys {
		v, ok := f[k]
		if !ok {
			continue
		}
		var text string
		switch v := v.(type) {
		case string:
			text = v
		case []any:
			items := make([]string, len(v))
			for i, item := range v {
				items[i] = fmt.Sprint(item)
			}
			text = strings.Join(items, ",")
		default:
			b, _ := json.Marshal(v)
			text = string(b)
		}
		if text == "" || strings.ContainsAny(text, " \t\"") {
			text = strconv.Quote(text)
		}
		parts = append(parts, k+"="+text)
	}
	text := strings.Join(parts, " ")
	if r := []rune(text); len(r) > maxFilterRunes {
		text = string(r[:maxFilterRunes]) + "…"
	}
	return text
}

// maxFilterRunes bounds a filter shown: an API request's body may list
// thousands of ids.
const maxFilterRunes = 300

// clock is t in BATCH_TZ, "" for the zero time.
func (o Opts) clock(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(o.TZ).Format("2006-01-02 15:04:05")
}

func (o Opts) link(id int64) jobLink {
	return jobLink{ID: id, Href: fmt.Sprintf("%s/jobs/%d", o.RiverUIPrefix, id)}
}

func (o Opts) links(ids []int64) []jobLink {
	out := make([]jobLink, len(ids))
	for i, id := range ids {
		out[i] = o.link(id)
	}
	return out
}
