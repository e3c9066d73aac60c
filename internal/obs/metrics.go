package obs

import (
	"database/sql"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the server's Prometheus collectors, on a registry of its own so that several
// servers (in tests) do not collide.
type Metrics struct {
	Registry *prometheus.Registry

	httpRequests  *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
	httpInFlight  *prometheus.GaugeVec
	operations    *prometheus.CounterVec
	operationTime *prometheus.HistogramVec
	wsOpen        prometheus.Gauge
	wsTotal       prometheus.Counter
}

// NewMetrics registers the server's collectors, the Go runtime's and the process's.
func NewMetrics() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "junction_http_requests_total",
		Help: "HTTP requests served, by route and status code.",
	}, []string{"route", "code"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "junction_http_request_duration_seconds",
		Help:    "Time to serve an HTTP request, by route (websockets excluded).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route"})
	m.httpInFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "junction_http_requests_in_flight",
		Help: "HTTP requests being served now, by route (open websockets are counted apart).",
	}, []string{"route"})
	m.operations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "junction_graphql_operations_total",
		Help: "GraphQL operations executed, by operation type (query, mutation, subscription) and result (ok, error).",
	}, []string{"type", "result"})
	m.operationTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "junction_graphql_operation_duration_seconds",
		Help:    "Time from the start of a GraphQL operation to its (first) response, by operation type.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"type"})
	m.wsOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "junction_websocket_connections",
		Help: "Websocket connections open now.",
	})
	m.wsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "junction_websocket_connections_total",
		Help: "Websocket connections accepted since start.",
	})
	m.Registry.MustRegister(m.httpRequests, m.httpDuration, m.httpInFlight, m.operations, m.operationTime, m.wsOpen, m.wsTotal,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// RegisterDB adds the statistics of a database pool (open, idle, in use, waits) under name.
func (m *Metrics) RegisterDB(name string, stats func() sql.DBStats) {
	m.Registry.MustRegister(newDBCollector(name, stats))
}

// RegisterCounterFunc adds a counter whose value is read from fn at scrape time.
func (m *Metrics) RegisterCounterFunc(name, help string, fn func() float64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn))
}

// RegisterGaugeFunc adds a gauge whose value is read from fn at scrape time.
func (m *Metrics) RegisterGaugeFunc(name, help string, fn func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

// ObserveOperation records one GraphQL operation.
func (m *Metrics) ObserveOperation(opType string, d time.Duration, failed bool) {
	result := "ok"
	if failed {
		result = "error"
	}
	m.operations.WithLabelValues(opType, result).Inc()
	m.operationTime.WithLabelValues(opType).Observe(d.Seconds())
}

// WebsocketOpened and WebsocketClosed keep the count of open websockets.
func (m *Metrics) WebsocketOpened() { m.wsOpen.Inc(); m.wsTotal.Inc() }

// WebsocketClosed is the pair of WebsocketOpened.
func (m *Metrics) WebsocketClosed() { m.wsOpen.Dec() }

// Handler serves the metrics in Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// dbCollector reports sql.DBStats of one pool. (client_golang's own DBStatsCollector wants a
// *sql.DB; ours works from a function so that the pool stays private to internal/db.)
type dbCollector struct {
	stats                               func() sql.DBStats
	open, inUse, idle, waitCount, waitS *prometheus.Desc
	maxOpen, closedIdle, closedLifetime *prometheus.Desc
}

func newDBCollector(name string, stats func() sql.DBStats) *dbCollector {
	l := prometheus.Labels{"pool": name}
	d := func(n, help string) *prometheus.Desc {
		return prometheus.NewDesc("junction_db_"+n, help, nil, l)
	}
	return &dbCollector{
		stats:          stats,
		maxOpen:        d("max_open_connections", "Maximum number of open connections of the pool."),
		open:           d("open_connections", "Connections open now, in use or idle."),
		inUse:          d("in_use_connections", "Connections in use now."),
		idle:           d("idle_connections", "Idle connections now."),
		waitCount:      d("wait_count_total", "Times a caller waited for a connection."),
		waitS:          d("wait_duration_seconds_total", "Time spent waiting for a connection."),
		closedIdle:     d("closed_max_idle_total", "Connections closed because of the idle limit."),
		closedLifetime: d("closed_max_lifetime_total", "Connections closed because of their lifetime limit."),
	}
}

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.maxOpen, c.open, c.inUse, c.idle, c.waitCount, c.waitS, c.closedIdle, c.closedLifetime} {
		ch <- d
	}
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(c.maxOpen, prometheus.GaugeValue, float64(s.MaxOpenConnections))
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(s.OpenConnections))
	ch <- prometheus.MustNewConstMetric(c.inUse, prometheus.GaugeValue, float64(s.InUse))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(s.Idle))
	ch <- prometheus.MustNewConstMetric(c.waitCount, prometheus.CounterValue, float64(s.WaitCount))
	ch <- prometheus.MustNewConstMetric(c.waitS, prometheus.CounterValue, s.WaitDuration.Seconds())
	ch <- prometheus.MustNewConstMetric(c.closedIdle, prometheus.CounterValue, float64(s.MaxIdleClosed))
	ch <- prometheus.MustNewConstMetric(c.closedLifetime, prometheus.CounterValue, float64(s.MaxLifetimeClosed))
}
