package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidemark/tidemark/calendar"
	"github.com/tidemark/tidemark/config"
	"github.com/tidemark/tidemark/coupongate"
	"github.com/tidemark/tidemark/jobs"
	"github.com/tidemark/tidemark/order"
	"github.com/tidemark/tidemark/store"
)

// Store is what the gauges read from Postgres.
type Store interface {
	LiveJobs(ctx context.Context) ([]store.QueueJobs, error)
	OrderGauges(ctx context.Context) (store.OrderGauges, error)
	ActiveCouponIssues(ctx context.Context) ([]store.CouponIssues, error)
	LastSettledDate(ctx context.Context, onOrBefore string) (string, error)
	TherapyRunOf(ctx context.Context, businessDate string) (store.TherapyRun, error)
	LatestReconcileOutputs(ctx context.Context) ([]store.ReconcileOutput, error)
	BatchRuns(ctx context.Context, from, to string, tz *time.Location) ([]store.BatchRun, error)
	EnqueueInserts(ctx context.Context) (map[string]int64, error)
}

// Gate is what the coupon gauges read from Redis.
type Gate interface {
	Counts(ctx context.Context, code string) (coupongate.Counts, error)
}

// Defaults of CollectorOpts.
const (
	DefaultTTL     = 5 * time.Second
	DefaultTimeout = 3 * time.Second
)

// CollectorOpts configures a Collector.
type CollectorOpts struct {
	Store Store
	// Gate is the coupon gate; nil leaves out the Redis side of the coupon
	// gauges.
	Gate Gate
	// TZ is BATCH_TZ, in which "today's" business date is computed.
	TZ *time.Location
	// Queues are reported even when empty, so their series never vanish.
	Queues []string
	// TTL is how long one read serves scrapes (DefaultTTL when 0);
	// Timeout bounds one read (DefaultTimeout when 0).
	TTL, Timeout time.Duration
	Logger       *slog.Logger
	// Deadlines are BATCH_DEADLINES: each named batch's run is reported late
	// once its deadline passed without the run completed.
	Deadlines config.Deadlines
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// PerCoupon labels the coupon gauges with each ACTIVE coupon's code.
	// Without it they are sums over the ACTIVE coupons, so a /metrics open
	// to anyone names no coupon (a code is what a member needs to claim it).
	PerCoupon bool
}

// Collector is the gauges, read from Postgres and Redis at most once per
// TTL however many scrapes come. A source that fails (Postgres or Redis
// away, a timeout) is reported by tidemark_metrics_source_up{source} = 0
// and its gauges are left out of that scrape.
type Collector struct {
	opts  CollectorOpts
	descs map[string]*prometheus.Desc

	mu   sync.Mutex
	at   time.Time
	last []prometheus.Metric
}

// Live job states the gauges count.
var liveStates = []string{"available", "running", "retryable", "scheduled"}

// Checks of the reconciliation gauges, named as `enqueue reconcile --check`
// names them, by job kind.
var checkOfKind = map[string]string{
	"coupon_reconcile":     "coupon",
	"order_reconcile":      "orders",
	"therapy_stats_verify": "therapy",
}

// NewCollector returns a Collector; register it with New.
func NewCollector(opts CollectorOpts) *Collector {
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.TZ == nil {
		opts.TZ = time.UTC
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	coupon := []string{"coupon"}
	of := "an ACTIVE coupon"
	if !opts.PerCoupon {
		coupon, of = nil, "the ACTIVE coupons (summed)"
	}
	return &Collector{opts: opts, descs: map[string]*prometheus.Desc{
		"source_up":      d("tidemark_metrics_source_up", "1 if the last read of a source for these gauges succeeded, else 0 (its gauges are then missing).", "source"),
		"read_seconds":   d("tidemark_metrics_read_duration_seconds", "How long the last read of every gauge took."),
		"jobs":           d("tidemark_jobs", "Jobs not finished, by queue, kind and state (available, running, retryable, scheduled).", "queue", "kind", "state"),
		"queue_jobs":     d("tidemark_queue_jobs", "Jobs not finished, by queue and state; every configured queue, zero when empty.", "queue", "state"),
		"queue_age":      d("tidemark_queue_oldest_available_age_seconds", "How long the oldest available job of a queue has been due (0 when none is available): the queue's lag.", "queue"),
		"orders":         d("tidemark_order_requests", "order_request rows by status.", "status"),
		"sending_age":    d("tidemark_order_oldest_sending_age_seconds", "Seconds since the longest-unchanged SENDING order request last changed (its last attempt); 0 when none is SENDING."),
		"coupons_active": d("tidemark_coupons_active", "ACTIVE coupons."),
		"coupon_total":   d("tidemark_coupon_total_quantity", "Seats of "+of+".", coupon...),
		"coupon_issues":  d("tidemark_coupon_issues", "coupon_issue rows of "+of+" in Postgres, the source of truth.", coupon...),
		"gate_loaded":    d("tidemark_coupon_gate_loaded", "Loaded Redis gates (stock key exists) of "+of+": 1 or 0 a coupon.", coupon...),
		"gate_stock":     d("tidemark_coupon_gate_stock", "Seats left in the Redis gate of "+of+".", coupon...),
		"gate_issued":    d("tidemark_coupon_gate_issued", "Members in the Redis issued set of "+of+".", coupon...),
		"settled_date":   d("tidemark_settlement_last_date_timestamp_seconds", "The last settled business date, as the Unix time of its midnight in BATCH_TZ."),
		"therapy_target": d("tidemark_therapy_run_targets", "Users the therapy run of today's business date selected."),
		"therapy_done":   d("tidemark_therapy_run_done", "therapy_stats jobs of today's run completed."),
		"therapy_failed": d("tidemark_therapy_run_failed", "therapy_stats jobs of today's run discarded or cancelled."),
		"recon_found":    d("tidemark_reconcile_mismatches_found", "Mismatches the latest run of a reconciliation check found (coupon: summed over ACTIVE coupons).", "check"),
		"recon_repaired": d("tidemark_reconcile_mismatches_repaired", "Mismatches the latest run of a reconciliation check repaired.", "check"),
		"enqueue_ins":    d("tidemark_enqueue_jobs_inserted_total", "Jobs the enqueue CLI inserted, by kind, from Postgres: every process reports the same count (take max, not sum).", "kind"),
		"batch_due":      d("tidemark_batch_deadline_timestamp_seconds", "The latest deadline passed of a batch with one (BATCH_DEADLINES: today's, or yesterday's before today's), as Unix time.", "batch"),
		"batch_late":     d("tidemark_batch_late", "1 if the run due by a batch's latest deadline passed (BATCH_DEADLINES) has not completed, else 0.", "batch"),
		"recon_at":       d("tidemark_reconcile_last_run_timestamp_seconds", "When the latest run of a reconciliation check finished, as Unix time; 0 until it has run.", "check"),
	}}
}

// Describe sends every gauge's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect sends the gauges, reading them again if the last read is older
// than the TTL. Concurrent scrapes wait for one read.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	if c.last == nil || time.Since(c.at) >= c.opts.TTL {
		c.last, c.at = c.read(), time.Now()
	}
	last := c.last
	c.mu.Unlock()
	for _, m := range last {
		ch <- m
	}
}

func (c *Collector) read() []prometheus.Metric {
	start := c.opts.Now()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	r := &reading{c: c}
	today := calendar.BusinessDate(start, c.opts.TZ)
	r.source(ctx, "river_job", c.liveJobs)
	r.source(ctx, "order_request", c.orders)
	var coupons []store.CouponIssues
	r.source(ctx, "coupon", func(ctx context.Context, r *reading) (err error) {
		coupons, err = c.coupons(ctx, r)
		return err
	})
	if c.opts.Gate != nil {
		r.source(ctx, "redis", func(ctx context.Context, r *reading) error { return c.gates(ctx, r, coupons) })
	}
	r.source(ctx, "settlement", func(ctx context.Context, r *reading) error { return c.settlement(ctx, r, today) })
	r.source(ctx, "therapy", func(ctx context.Context, r *reading) error { return c.therapy(ctx, r, today) })
	r.source(ctx, "reconcile", c.reconcile)
	r.source(ctx, "enqueue_inserts", c.enqueueInserts)
	if len(c.opts.Deadlines) > 0 {
		r.source(ctx, "deadlines", func(ctx context.Context, r *reading) error { return c.deadlines(ctx, r, start) })
	}
	r.gauge("read_seconds", time.Since(start).Seconds())
	return r.out
}

// reading collects one read's metrics.
type reading struct {
	c   *Collector
	out []prometheus.Metric
}

func (r *reading) counter(desc string, v float64, labels ...string) {
	r.out = append(r.out, prometheus.MustNewConstMetric(r.c.descs[desc], prometheus.CounterValue, v, labels...))
}

func (r *reading) gauge(desc string, v float64, labels ...string) {
	r.out = append(r.out, prometheus.MustNewConstMetric(r.c.descs[desc], prometheus.GaugeValue, v, labels...))
}

// source runs one source's reads; on failure its gauges are dropped.
func (r *reading) source(ctx context.Context, name string, read func(context.Context, *reading) error) {
	sub := &reading{c: r.c}
	err := read(ctx, sub)
	up := 1.0
	if err != nil {
		up = 0
		r.c.opts.Logger.WarnContext(ctx, "metrics: read failed", "source", name, "err", err)
	} else {
		r.out = append(r.out, sub.out...)
	}
	r.gauge("source_up", up, name)
}

func (c *Collector) liveJobs(ctx context.Context, r *reading) error {
	live, err := c.opts.Store.LiveJobs(ctx)
	if err != nil {
		return err
	}
	type qs struct{ queue, state string }
	perQueue := map[qs]int64{}
	age := map[string]time.Duration{}
	for _, q := range c.opts.Queues {
		age[q] = 0
	}
	// Every kind on its queue in every live state, zero when it has none.
	type qks struct{ queue, kind, state string }
	perKind := map[qks]int64{}
	for kind, q := range jobs.KindQueues() {
		for _, s := range liveStates {
			perKind[qks{q, kind, s}] = 0
		}
	}
	for _, j := range live {
		perKind[qks{j.Queue, j.Kind, j.State}] += j.Count
		perQueue[qs{j.Queue, j.State}] += j.Count
		age[j.Queue] = max(age[j.Queue], j.OldestAvailable)
	}
	for k, n := range perKind {
		r.gauge("jobs", float64(n), k.queue, k.kind, k.state)
	}
	for q, a := range age {
		for _, s := range liveStates {
			r.gauge("queue_jobs", float64(perQueue[qs{q, s}]), q, s)
		}
		r.gauge("queue_age", a.Seconds(), q)
	}
	return nil
}

func (c *Collector) orders(ctx context.Context, r *reading) error {
	g, err := c.opts.Store.OrderGauges(ctx)
	if err != nil {
		return err
	}
	for _, s := range order.Statuses() {
		r.gauge("orders", float64(g.ByStatus[s]), s)
	}
	r.gauge("sending_age", g.OldestSending.Seconds())
	return nil
}

func (c *Collector) coupons(ctx context.Context, r *reading) ([]store.CouponIssues, error) {
	coupons, err := c.opts.Store.ActiveCouponIssues(ctx)
	if err != nil {
		return nil, err
	}
	r.gauge("coupons_active", float64(len(coupons)))
	var total, issues float64
	for _, cp := range coupons {
		if c.opts.PerCoupon {
			r.gauge("coupon_total", float64(cp.TotalQuantity), cp.Code)
			r.gauge("coupon_issues", float64(cp.Issues), cp.Code)
		}
		total += float64(cp.TotalQuantity)
		issues += float64(cp.Issues)
	}
	if !c.opts.PerCoupon {
		r.gauge("coupon_total", total)
		r.gauge("coupon_issues", issues)
	}
	return coupons, nil
}

func (c *Collector) gates(ctx context.Context, r *reading, coupons []store.CouponIssues) error {
	var loaded, stock, issued float64
	for _, cp := range coupons {
		g, err := c.opts.Gate.Counts(ctx, cp.Code)
		if err != nil {
			return err
		}
		l := 0.0
		if g.Loaded {
			l = 1
		}
		if c.opts.PerCoupon {
			r.gauge("gate_loaded", l, cp.Code)
			r.gauge("gate_stock", float64(g.Stock), cp.Code)
			r.gauge("gate_issued", float64(g.Issued), cp.Code)
		}
		loaded, stock, issued = loaded+l, stock+float64(g.Stock), issued+float64(g.Issued)
	}
	if !c.opts.PerCoupon {
		r.gauge("gate_loaded", loaded)
		r.gauge("gate_stock", stock)
		r.gauge("gate_issued", issued)
	}
	return nil
}

func (c *Collector) settlement(ctx context.Context, r *reading, today string) error {
	d, err := c.opts.Store.LastSettledDate(ctx, today)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	t, err := time.ParseInLocation(time.DateOnly, d, c.opts.TZ)
	if err != nil {
		return err
	}
	r.gauge("settled_date", float64(t.Unix()))
	return nil
}

func (c *Collector) therapy(ctx context.Context, r *reading, today string) error {
	run, err := c.opts.Store.TherapyRunOf(ctx, today)
	if err != nil || !run.Found {
		return err
	}
	r.gauge("therapy_target", float64(run.Targets))
	r.gauge("therapy_done", float64(run.Completed))
	r.gauge("therapy_failed", float64(run.Failed))
	return nil
}

// enqueueInserts reports the jobs enqueue inserted, every kind from zero.
func (c *Collector) enqueueInserts(ctx context.Context, r *reading) error {
	n, err := c.opts.Store.EnqueueInserts(ctx)
	if err != nil {
		return err
	}
	for _, kind := range jobs.Kinds() {
		r.counter("enqueue_ins", float64(n[kind]), kind)
	}
	return nil
}

// deadlines reports each batch with a deadline: its latest deadline passed
// (today's, or yesterday's before today's comes) and whether the run due by
// it is late. The run due by a deadline is the one the batch's periodic job
// starts for the business date of that moment; it stays late, past
// midnight, until it completes.
func (c *Collector) deadlines(ctx context.Context, r *reading, now time.Time) error {
	for _, batch := range config.DeadlineBatches {
		due, ok := c.opts.Deadlines.LastDue(batch, now, c.opts.TZ)
		if !ok {
			continue
		}
		date := calendar.BusinessDate(due, c.opts.TZ)
		if batch == store.BatchSettlement {
			date = calendar.SettlementBusinessDate(due, c.opts.TZ)
		}
		runs, err := c.opts.Store.BatchRuns(ctx, date, date, c.opts.TZ)
		if err != nil {
			return err
		}
		late := 1.0
		for _, run := range runs {
			if run.Kind == batch && run.State == store.RunCompleted {
				late = 0
			}
		}
		r.gauge("batch_due", float64(due.Unix()), batch)
		r.gauge("batch_late", late, batch)
	}
	return nil
}

func (c *Collector) reconcile(ctx context.Context, r *reading) error {
	outs, err := c.opts.Store.LatestReconcileOutputs(ctx)
	if err != nil {
		return err
	}
	type tally struct {
		found, repaired int
		at              time.Time
	}
	// Every check is reported, at zero (and a last run at the epoch) until
	// it has run once.
	checks := map[string]*tally{}
	for _, check := range checkOfKind {
		checks[check] = &tally{at: time.Unix(0, 0)}
	}
	for _, o := range outs {
		check := checkOfKind[o.Kind]
		found, repaired, err := mismatches(o.Kind, o.Output)
		if check == "" || err != nil {
			c.opts.Logger.WarnContext(ctx, "metrics: unreadable reconciliation output", "kind", o.Kind, "err", err)
			continue
		}
		t := checks[check]
		if t == nil {
			t = &tally{}
			checks[check] = t
		}
		t.found += found
		t.repaired += repaired
		t.at = maxTime(t.at, o.Finalized)
	}
	names := make([]string, 0, len(checks))
	for n := range checks {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		t := checks[n]
		r.gauge("recon_found", float64(t.found), n)
		r.gauge("recon_repaired", float64(t.repaired), n)
		r.gauge("recon_at", float64(t.at.Unix()), n)
	}
	return nil
}

// mismatches reads what a reconciliation's recorded report found and
// repaired. Coupon: each member only in Redis rolled back and each member
// added back, or 1 when only the stock or issued_quantity was resynced.
// Orders: every row or order that disagrees; the SENDING rows set APPLIED
// are the repairs. Therapy: drifted user-months, re-enqueued ones repaired.
func mismatches(kind string, output []byte) (found, repaired int, err error) {
	switch kind {
	case "coupon_reconcile":
		var rep jobs.CouponReport
		if err := json.Unmarshal(output, &rep); err != nil {
			return 0, 0, err
		}
		found = rep.RolledBack + rep.AddedBack
		if found == 0 && !rep.Agrees {
			found = 1
		}
		return found, found, nil
	case "order_reconcile":
		var rep jobs.OrderReconcileReport
		if err := json.Unmarshal(output, &rep); err != nil {
			return 0, 0, err
		}
		found = len(rep.Repaired) + len(rep.AppliedMissing) + len(rep.IDMismatch) + len(rep.PriceMismatch) +
			len(rep.UnexpectedOrder) + rep.UnknownOrders
		return found, len(rep.Repaired), nil
	case "therapy_stats_verify":
		var rep jobs.TherapyVerifyReport
		if err := json.Unmarshal(output, &rep); err != nil {
			return 0, 0, err
		}
		return rep.Drifted, rep.Reenqueued, nil
	}
	return 0, 0, errors.New("not a reconciliation kind")
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
