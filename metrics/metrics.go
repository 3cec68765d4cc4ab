// Package metrics is tidemark's /metrics, in Prometheus' text format.
//
// Two kinds of numbers:
//
//   - Counters of what this process's River client did: jobs worked by kind
//     and outcome with their run time (from River's event subscription), and
//     jobs inserted by kind (a job insert middleware).
//   - Gauges of the database and Redis at the moment of a scrape: live jobs
//     per queue, kind and state and each queue's oldest available job; order
//     requests by status; each ACTIVE coupon's Redis gate against its
//     Postgres issues; the last settled business date; today's therapy run;
//     the latest reconciliation of each check. A Collector reads them with a
//     few indexed queries and keeps the result for TTL, so scrapes from
//     several Prometheus servers cost one read.
//
// Only numbers: labels are kinds, queues, states, statuses, check names and
// the codes of ACTIVE coupons; never job args or user ids.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/version"
)

// Metrics is a registry with tidemark's metrics, the Go runtime's and the
// process's.
type Metrics struct {
	reg      *prometheus.Registry
	worked   *prometheus.CounterVec
	runTime  *prometheus.HistogramVec
	inserted *prometheus.CounterVec
	dupes    *prometheus.CounterVec
	stale    *prometheus.CounterVec
}

// New returns a registry holding the job counters and, when state is not
// nil, its gauges.
func New(state *Collector) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		worked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidemark_jobs_worked_total",
			Help: "Jobs this process worked, by kind and outcome: completed, retried (failed, will retry), discarded (failed its last attempt), cancelled, snoozed.",
		}, []string{"kind", "outcome"}),
		runTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tidemark_job_run_duration_seconds",
			Help:    "Time a job's attempt spent in its worker, by kind.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"kind"}),
		inserted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidemark_jobs_inserted_total",
			Help: "Jobs this process inserted (API requests, fan-outs, periodic jobs), by kind; an insert whose transaction later rolled back counts too.",
		}, []string{"kind"}),
		dupes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidemark_jobs_insert_duplicates_total",
			Help: "Inserts this process made that River skipped as duplicates of a unique job, by kind.",
		}, []string{"kind"}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidemark_jobs_stale_attempts_total",
			Help: "Attempts of this process that found a later attempt owning their job (their worker froze past the rescue) and ended without writing, by kind.",
		}, []string{"kind"}),
	}
	// Every kind's series exist from the start, at zero, so that rate(),
	// increase() and an alert on the first discarded job see it.
	for _, kind := range jobs.Kinds() {
		for _, o := range outcomes {
			m.worked.WithLabelValues(kind, o)
		}
		m.runTime.WithLabelValues(kind)
		m.inserted.WithLabelValues(kind)
		m.dupes.WithLabelValues(kind)
		m.stale.WithLabelValues(kind)
	}
	// Which build this process runs, for dashboards and a rollout's progress.
	v := version.Read()
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tidemark_build_info",
		Help: "1, labelled with the version, commit and Go version of this process's binary.",
	}, []string{"version", "revision", "goversion"})
	build.WithLabelValues(v.Version, v.Revision, v.Go).Set(1)
	m.reg.MustRegister(build)
	m.reg.MustRegister(m.worked, m.runTime, m.inserted, m.dupes, m.stale,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if state != nil {
		m.reg.MustRegister(state)
	}
	return m
}

// outcomes are the values of tidemark_jobs_worked_total's outcome label.
var outcomes = []string{"completed", "retried", "discarded", "cancelled", "snoozed"}

// Handler serves the registry in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, Timeout: 10 * time.Second})
}

// StaleAttempt counts a stale attempt of kind; give it to
// jobs.Deps.StaleAttempt.
func (m *Metrics) StaleAttempt(kind string) { m.stale.WithLabelValues(kind).Inc() }

// InsertMiddleware counts the jobs inserted through a River client; give
// it to jobs.ClientConfig.Middleware.
func (m *Metrics) InsertMiddleware() rivertype.Middleware { return &countInserts{m: m} }

type countInserts struct {
	river.MiddlewareDefaults
	m *Metrics
}

func (c *countInserts) InsertMany(ctx context.Context, params []*rivertype.JobInsertParams,
	doInner func(context.Context) ([]*rivertype.JobInsertResult, error),
) ([]*rivertype.JobInsertResult, error) {
	res, err := doInner(ctx)
	if err != nil {
		return res, err
	}
	for i, p := range params {
		switch {
		case i < len(res) && res[i] != nil && res[i].UniqueSkippedAsDuplicate:
			c.m.dupes.WithLabelValues(p.Kind).Inc()
		default: // River's fast bulk insert returns no rows, and skips none
			c.m.inserted.WithLabelValues(p.Kind).Inc()
		}
	}
	return res, nil
}

// CountWorked counts the jobs client works from now on, until stop is
// called or the client stops. River drops events a slow subscriber has no
// room for; counting is a few map lookups, and the buffer holds seconds of
// the fastest kind.
//
// Each outcome is also logged, with River's job_id and tidemark's kind and
// attempt: a cancelled or discarded job at warn and error, a retried one at
// info, a completed or snoozed one at debug.
func (m *Metrics) CountWorked(client *jobs.Client, logger *slog.Logger) (stop func()) {
	events, cancel := client.SubscribeConfig(&river.SubscribeConfig{ChanSize: 20_000, Kinds: []river.EventKind{
		river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled, river.EventKindJobSnoozed,
	}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range events {
			if outcome := m.observe(ev); outcome != "" && logger != nil {
				logOutcome(logger, ev, outcome)
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (m *Metrics) observe(ev *river.Event) string {
	if ev.Job == nil {
		return ""
	}
	outcome := ""
	switch ev.Kind {
	case river.EventKindJobCompleted:
		outcome = "completed"
	case river.EventKindJobFailed:
		outcome = "retried"
		if ev.Job.State == rivertype.JobStateDiscarded {
			outcome = "discarded"
		}
	case river.EventKindJobCancelled:
		outcome = "cancelled"
	case river.EventKindJobSnoozed:
		outcome = "snoozed"
	default:
		return ""
	}
	m.worked.WithLabelValues(ev.Job.Kind, outcome).Inc()
	if ev.JobStats != nil {
		m.runTime.WithLabelValues(ev.Job.Kind).Observe(ev.JobStats.RunDuration.Seconds())
	}
	return outcome
}

// outcomeLevel is the level an outcome is logged at.
var outcomeLevel = map[string]slog.Level{"completed": slog.LevelDebug, "snoozed": slog.LevelDebug,
	"retried": slog.LevelInfo, "cancelled": slog.LevelWarn, "discarded": slog.LevelError}

func logOutcome(logger *slog.Logger, ev *river.Event, outcome string) {
	j := ev.Job
	attrs := []slog.Attr{slog.String("kind", j.Kind), slog.Int64("job_id", j.ID), slog.Int("attempt", j.Attempt),
		slog.String("queue", j.Queue), slog.String("outcome", outcome)}
	if ev.JobStats != nil {
		attrs = append(attrs, slog.Duration("run", ev.JobStats.RunDuration))
	}
	if outcome != "completed" && outcome != "snoozed" && len(j.Errors) > 0 {
		attrs = append(attrs, slog.String("err", j.Errors[len(j.Errors)-1].Error))
	}
	logger.LogAttrs(context.Background(), outcomeLevel[outcome], "job "+outcome, attrs...)
}
