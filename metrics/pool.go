package metrics

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// poolCollector reads this process's Postgres pool (pgxpool.Stat) at
// scrape time: what an operator sizes DB_MAX_CONNS × processes with, against
// a pooler's pool or Postgres' max_connections.
type poolCollector struct {
	stat func() *pgxpool.Stat

	acquired, idle, total, max, waits, waitTime, acquires *prometheus.Desc
}

// NewPoolCollector returns a collector of stat's figures (a pool's Stat
// method), read at each scrape.
func NewPoolCollector(stat func() *pgxpool.Stat) prometheus.Collector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &poolCollector{
		stat:     stat,
		acquired: d("tidemark_db_pool_acquired_conns", "Connections of this process's Postgres pool in use now."),
		idle:     d("tidemark_db_pool_idle_conns", "Connections of this process's Postgres pool open and idle now."),
		total:    d("tidemark_db_pool_total_conns", "Connections of this process's Postgres pool open now (acquired, idle, being opened)."),
		max:      d("tidemark_db_pool_max_conns", "The most connections this process's Postgres pool opens (DB_MAX_CONNS)."),
		acquires: d("tidemark_db_pool_acquires_total", "Connections acquired from this process's Postgres pool."),
		waits:    d("tidemark_db_pool_empty_acquire_waits_total", "Acquires from this process's Postgres pool that waited because no connection was idle."),
		waitTime: d("tidemark_db_pool_empty_acquire_wait_seconds_total", "Time acquires from this process's Postgres pool spent waiting for a connection because none was idle."),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.total, c.max, c.acquires, c.waits, c.waitTime} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stat()
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	n := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	g(c.acquired, float64(s.AcquiredConns()))
	g(c.idle, float64(s.IdleConns()))
	g(c.total, float64(s.TotalConns()))
	g(c.max, float64(s.MaxConns()))
	n(c.acquires, float64(s.AcquireCount()))
	n(c.waits, float64(s.EmptyAcquireCount()))
	n(c.waitTime, s.EmptyAcquireWaitTime().Seconds())
}

// WithPool adds the pool collector for stat (a pool's Stat method) to m.
func (m *Metrics) WithPool(stat func() *pgxpool.Stat) *Metrics {
	m.reg.MustRegister(NewPoolCollector(stat))
	return m
}
