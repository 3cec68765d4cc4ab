// Package joblog ties log lines to the River job they are written in.
//
// Middleware marks a job's context and keeps the job's own log (River's
// riverlog, shown on the job's page in River UI). A logger made by
// NewLogger then adds the job's kind, id and attempt to every line logged
// with that context (logger.InfoContext(ctx, …)) and copies the line into
// the job's log. Workers log as anywhere else, with the job's ctx;
// riverlog.Logger(ctx) still writes to the job's log alone.
package joblog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverlog"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/redact"
)

// The job log's bounds: one attempt keeps at most MaxAttemptBytes of lines,
// a job at most MaxJobBytes over all its attempts (oldest attempts dropped
// first), so a chatty job cannot bloat river_job.
const (
	MaxAttemptBytes = 32 << 10
	MaxJobBytes     = 128 << 10
)

// NewLogger returns a logger writing to w at level and above, as slog's
// key=value text or, with jsonLines, one JSON object a line. It adds job
// attributes to lines logged inside a job and copies them to the job's log
// (see the package doc). Every line's message and string, error and
// Stringer values are redacted (redact.Text): no URL's password or query
// values are written, whatever a library's error quoted.
func NewLogger(w io.Writer, jsonLines bool, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: redactAttr}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if jsonLines {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(&handler{root: h, inner: h})
}

// Middleware returns the River middleware that gives each job's work its
// context attributes and its own bounded log. Install both, in this order.
func Middleware() []rivertype.Middleware {
	return []rivertype.Middleware{
		&markJob{},
		riverlog.NewMiddleware(func(w io.Writer) slog.Handler {
			return slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: redactAttr})
		}, &riverlog.MiddlewareConfig{MaxSizeBytes: MaxAttemptBytes, MaxTotalBytes: MaxJobBytes}),
	}
}

// redactAttr redacts a, the message or any attribute, when its value is a
// string, an error or a Stringer. It runs for every attribute of every
// line, so text without "://" or a password keyword costs three substring
// searches (see redact.Text) and leaves the value as it was.
func redactAttr(groups []string, a slog.Attr) slog.Attr {
	// River's own lines name a job's kind job_kind; tidemark's say kind.
	if len(groups) == 0 && a.Key == "job_kind" {
		a.Key = "kind"
	}
	switch a.Value.Kind() {
	case slog.KindString:
		s := a.Value.String()
		if r := redact.Text(s); r != s {
			a.Value = slog.StringValue(r)
		}
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case error:
			// The handler would write err.Error() anyway.
			a.Value = slog.StringValue(redact.Text(v.Error()))
		case fmt.Stringer:
			// Kept as it was unless redacted: a Stringer's JSON is not
			// always its String().
			s := v.String()
			if r := redact.Text(s); r != s {
				a.Value = slog.StringValue(r)
			}
		}
	}
	return a
}

type jobKey struct{}

// markJob puts the job's attributes into its work context.
type markJob struct {
	river.MiddlewareDefaults
}

func (*markJob) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	attrs := []slog.Attr{slog.String("kind", job.Kind), slog.Int64("job_id", job.ID), slog.Int("attempt", job.Attempt)}
	return doInner(context.WithValue(ctx, jobKey{}, attrs))
}

// Attrs returns the attributes of the job whose work ctx belongs to, or nil
// outside a job.
func Attrs(ctx context.Context) []slog.Attr {
	attrs, _ := ctx.Value(jobKey{}).([]slog.Attr)
	return attrs
}

// handler wraps the process's handler: a record logged with a job's context
// goes to it with the job's attributes first, and to the job's own log.
// WithAttrs and WithGroup are kept as steps so they can be replayed on
// either.
type handler struct {
	root  slog.Handler // the process's handler, before any step
	inner slog.Handler // root with the steps applied
	steps []step
}

// step is one WithGroup (group set) or WithAttrs call.
type step struct {
	group string
	attrs []slog.Attr
}

func (h *handler) Enabled(ctx context.Context, level slog.Level) bool {
	if h.inner.Enabled(ctx, level) {
		return true
	}
	_, inJob := riverlog.LoggerSafely(ctx)
	return inJob && level >= slog.LevelInfo
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.inner.Enabled(ctx, r.Level) {
		if attrs := Attrs(ctx); attrs != nil {
			err = replay(h.root.WithAttrs(attrs), h.steps).Handle(ctx, r)
		} else {
			err = h.inner.Handle(ctx, r)
		}
	}
	if l, ok := riverlog.LoggerSafely(ctx); ok && r.Level >= slog.LevelInfo {
		// The job's log is the job's: its kind, id and attempt go without saying.
		jh := replay(l.Handler(), h.steps)
		if hb, held := ctx.Value(holdKey{}).(*holding); held {
			hb.add(jh, r.Clone())
		} else {
			_ = jh.Handle(ctx, r)
		}
	}
	return err
}

type holdKey struct{}

// holding is an attempt's job-log lines kept back until the attempt knows
// whether they may be written.
type holding struct {
	mu      sync.Mutex
	recs    []heldRecord
	dropped int
}

type heldRecord struct {
	h slog.Handler
	r slog.Record
}

// maxHeld bounds the lines an attempt holds back; River's log keeps at most
// MaxAttemptBytes of them anyway.
const maxHeld = 4096

func (hb *holding) add(h slog.Handler, r slog.Record) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if len(hb.recs) >= maxHeld {
		hb.dropped++
		return
	}
	hb.recs = append(hb.recs, heldRecord{h: h, r: r})
}

// Hold keeps the job-log lines logged with the returned context back from the
// job's log until release: release(true) writes them there, in order;
// release(false) drops them. A stale attempt (another worker took its job
// over) must not write its lines over the job's log, which River keeps on the
// job row whatever the job's state; lines logged to the process's handler
// are written at once either way.
func Hold(ctx context.Context) (context.Context, func(keep bool)) {
	hb := &holding{}
	return context.WithValue(ctx, holdKey{}, hb), func(keep bool) {
		hb.mu.Lock()
		recs := hb.recs
		hb.recs = nil
		hb.mu.Unlock()
		if !keep {
			return
		}
		for _, rec := range recs {
			_ = rec.h.Handle(ctx, rec.r)
		}
	}
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return &handler{root: h.root, inner: h.inner.WithAttrs(attrs), steps: append(slices.Clip(h.steps), step{attrs: attrs})}
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &handler{root: h.root, inner: h.inner.WithGroup(name), steps: append(slices.Clip(h.steps), step{group: name})}
}

func replay(h slog.Handler, steps []step) slog.Handler {
	for _, s := range steps {
		if s.group != "" {
			h = h.WithGroup(s.group)
		} else {
			h = h.WithAttrs(s.attrs)
		}
	}
	return h
}
