package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidemark/tidemark/partnerbudget"
)

// Partner counts what the shared budget toward the order partner did in
// this process; give it to partnerbudget.New, then call WatchBreaker.
type Partner struct {
	waits, snoozes *prometheus.CounterVec
	throttled      *prometheus.CounterVec
	opened         prometheus.Counter
}

// Partner registers the partner budget's metrics and returns their
// observer.
func (m *Metrics) Partner() *Partner {
	p := &Partner{
		waits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidemark_partner_budget_waits_total",
			Help: "Partner calls of this process that waited in the process for the shared budget, by reason (rate, concurrency).",
		}, []string{"reason"}),
		snoozes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidemark_partner_budget_snoozes_total",
			Help: "Partner calls of this process not made (their job snoozed, no attempt spent), by reason: rate, concurrency, retry_after (a 429 or 503 answered or in force), breaker, redis (a budget is set and Redis does not answer).",
		}, []string{"reason"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidemark_partner_throttled_total",
			Help: "Partner answers of 429 (too many requests) and 503 (unavailable) to this process, by status.",
		}, []string{"status"}),
		opened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tidemark_partner_breaker_opened_total",
			Help: "Times a failure of this process's call opened the shared breaker toward the partner.",
		}),
	}
	for _, r := range partnerbudget.Reasons {
		p.snoozes.WithLabelValues(string(r))
		if r == partnerbudget.ReasonRate || r == partnerbudget.ReasonConcurrency {
			p.waits.WithLabelValues(string(r))
		}
	}
	p.throttled.WithLabelValues("429")
	p.throttled.WithLabelValues("503")
	m.reg.MustRegister(p.waits, p.snoozes, p.throttled, p.opened)
	return p
}

// Waited implements partnerbudget.Observer.
func (p *Partner) Waited(r partnerbudget.Reason) { p.waits.WithLabelValues(string(r)).Inc() }

// Snoozed implements partnerbudget.Observer.
func (p *Partner) Snoozed(r partnerbudget.Reason) { p.snoozes.WithLabelValues(string(r)).Inc() }

// Throttled implements partnerbudget.Observer.
func (p *Partner) Throttled(status int) { p.throttled.WithLabelValues(strconv.Itoa(status)).Inc() }

// BreakerOpened implements partnerbudget.Observer.
func (p *Partner) BreakerOpened() { p.opened.Inc() }

// WatchBreaker adds the shared breaker's state, the pause and the calls in
// flight, read from Redis at each scrape (bounded to a second; a scrape
// while Redis is away shows no breaker series).
func (m *Metrics) WatchBreaker(b *partnerbudget.Budget) {
	m.reg.MustRegister(&breakerCollector{b: b, state: prometheus.NewDesc("tidemark_partner_breaker_state",
		"The shared circuit breaker toward the partner: 1 for its current state (closed, open, half_open), 0 for the others.", []string{"state"}, nil),
		paused: prometheus.NewDesc("tidemark_partner_paused_seconds",
			"Seconds left of the pause a 429 or 503 with Retry-After set for every process (0: none).", nil, nil),
		inFlight: prometheus.NewDesc("tidemark_partner_calls_in_flight",
			"Partner calls holding a shared concurrency slot, all processes together (0 when ORDER_API_CONCURRENCY is unset).", nil, nil)})
}

type breakerCollector struct {
	b                       *partnerbudget.Budget
	state, paused, inFlight *prometheus.Desc
}

func (c *breakerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.state
	ch <- c.paused
	ch <- c.inFlight
}

func (c *breakerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := c.b.Status(ctx)
	if err != nil {
		return
	}
	for _, s := range []partnerbudget.BreakerState{partnerbudget.BreakerClosed, partnerbudget.BreakerOpen, partnerbudget.BreakerHalfOpen} {
		v := 0.0
		if st.Breaker == s {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, string(s))
	}
	ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, max(time.Until(st.PausedUntil).Seconds(), 0))
	ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(st.InFlight))
}
