// Package metrics measures authlined for Prometheus: it implements the
// server's and the auth service's observers (server.Observer,
// auth.Observer), wraps the store to time its calls, and serves /metrics,
// /healthz and /readyz over HTTP (Handler).
//
// The server and the auth service know nothing of Prometheus: they call
// the small observer interfaces they define, and a nil observer costs
// nothing. Wiring it up:
//
//	m := metrics.New(version)
//	svc, _ := auth.New(auth.Config{Store: m.WrapStore(st), Observer: m, ...})
//	m.WatchHashPool(svc.HashPoolStats)
//	srv := &server.Server{Backend: svc, Observer: m, ...}
//	http.Serve(ln, m.Handler(readiness.Check))
//
// Label values come from fixed sets (the protocol's commands and statuses,
// the limits, the LOGIN outcomes, the store's methods), never from what a
// client sent: a command the protocol does not know is counted as
// "unknown", so the number of series is bounded whatever clients send.
//
// The per-request path (Request) allocates nothing: each (command,
// status) series is resolved once, on its first use, and kept in a fixed
// table.
package metrics

import (
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server"
	"github.com/authline/authline/server/auth"
)

// Namespace prefixes every authline metric.
const Namespace = "authline"

// UnknownCommand is the cmd label of a request line that named no command
// the protocol knows (or could not be parsed far enough to tell).
const UnknownCommand = "unknown"

// OtherStatus is the status label of a status outside the protocol's.
const OtherStatus = "other"

// Bucket boundaries, in seconds.
var (
	// Requests range from microseconds (GET with a session) to a bcrypt
	// hash (tens to hundreds of milliseconds) and a store timeout.
	requestBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	// A hash waits for nothing while the pool has a free worker, and for
	// several hash times when it is saturated.
	hashWaitBuckets = []float64{.0001, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	// Store calls: SQLite in microseconds, PostgreSQL over a network in
	// milliseconds, a hung store up to --store-timeout (2s).
	storeBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
)

// Command and status labels, as indexes into fixed tables.
var (
	cmdLabels   []string         // protocol.Commands, then UnknownCommand
	cmdIndex    map[string]uint8 // canonical command name → index into cmdLabels
	unknownCmd  uint8            // index of UnknownCommand
	statusLabel []string         // 0 is OtherStatus
	statusIndex [600]uint8       // status → index into statusLabel; 0: other
)

func init() {
	cmdIndex = make(map[string]uint8, len(protocol.Commands))
	for i, c := range protocol.Commands {
		cmdIndex[c] = uint8(i)
		cmdLabels = append(cmdLabels, c)
	}
	unknownCmd = uint8(len(cmdLabels))
	cmdLabels = append(cmdLabels, UnknownCommand)

	statusLabel = []string{OtherStatus}
	add := func(s int) {
		if s > 0 && s < len(statusIndex) && statusIndex[s] == 0 {
			statusIndex[s] = uint8(len(statusLabel))
			statusLabel = append(statusLabel, strconv.Itoa(s))
		}
	}
	add(protocol.StatusOK)
	add(protocol.StatusCreated)
	for _, c := range protocol.Codes {
		add(c.Status())
	}
}

// Metrics holds authlined's collectors in a registry of its own, with the
// Go runtime and process collectors. It implements server.Observer and
// auth.Observer. All methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	connsOpen   prometheus.Gauge
	connsTotal  prometheus.Counter
	requests    *prometheus.CounterVec
	requestDur  *prometheus.HistogramVec
	logins      *prometheus.CounterVec
	throttled   prometheus.Counter
	limitHits   *prometheus.CounterVec
	hashWait    prometheus.Histogram
	storeDur    *prometheus.HistogramVec
	storeErrors *prometheus.CounterVec

	// Series resolved on first use (so that only the pairs seen are
	// exported), then read without locks or allocations.
	reqCells   [][]atomic.Pointer[prometheus.Counter] // [cmd][status]
	durCells   []atomic.Pointer[prometheus.Observer]  // [cmd]
	storeCells [numStoreOps]atomic.Pointer[prometheus.Observer]
	errCells   [numStoreOps]atomic.Pointer[prometheus.Counter]
	// Series with a small known label set are created up front, at zero,
	// so that rate() and increase() see their first increment.
	loginCells map[string]prometheus.Counter
	limitCells map[string]prometheus.Counter

	hashPool atomic.Pointer[func() (running, waiting int)]
}

var (
	_ server.Observer = (*Metrics)(nil)
	_ auth.Observer   = (*Metrics)(nil)
)

// New returns the metrics of a server of the given version, registered in
// a new registry (see Registry).
func New(version string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	m.connsOpen = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "connections_open",
		Help: "Client connections open now."})
	m.connsTotal = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "connections_total",
		Help: "Client connections admitted (those refused by a connection limit count in authline_limit_hits_total)."})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "requests_total",
		Help: "Request lines answered, by command (\"unknown\" for a line that names no known command) and response status."},
		[]string{"cmd", "status"})
	m.requestDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "request_duration_seconds",
		Help: "Time from parsing a request line to its answer being ready, by command.", Buckets: requestBuckets},
		[]string{"cmd"})
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "logins_total",
		Help: "LOGIN requests by outcome."}, []string{"outcome"})
	m.throttled = prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "throttled_total",
		Help: "LOGIN attempts refused by failed-login throttling (per-account back-off)."})
	m.limitHits = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "limit_hits_total",
		Help: "Connections and requests refused or closed because they reached a limit, by limit."}, []string{"limit"})
	m.hashWait = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "hash_wait_seconds",
		Help: "Time a bcrypt hash waited for a worker of the hash pool.", Buckets: hashWaitBuckets})
	m.storeDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "store_duration_seconds",
		Help: "Latency of store calls, by operation.", Buckets: storeBuckets}, []string{"op"})
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "store_errors_total",
		Help: "Store calls that failed (not counting the answers not found, conflict, last admin and reused), by operation."},
		[]string{"op"})
	for _, c := range []prometheus.Collector{m.connsOpen, m.connsTotal, m.requests, m.requestDur, m.logins,
		m.throttled, m.limitHits, m.hashWait, m.storeDur, m.storeErrors} {
		f(c)
	}
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: "hash_queue_depth",
		Help: "bcrypt hashes (LOGIN, REGISTER, PASSWD) waiting for a worker of the hash pool."},
		func() float64 { _, waiting := m.hashStats(); return float64(waiting) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: "hash_running",
		Help: "bcrypt hashes being computed now (at most --hash-workers)."},
		func() float64 { running, _ := m.hashStats(); return float64(running) }))
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "build_info",
		Help: "Always 1; the labels tell the server's version and the Go version it was built with."},
		[]string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	f(build)

	m.reqCells = make([][]atomic.Pointer[prometheus.Counter], len(cmdLabels))
	for i := range m.reqCells {
		m.reqCells[i] = make([]atomic.Pointer[prometheus.Counter], len(statusLabel))
	}
	m.durCells = make([]atomic.Pointer[prometheus.Observer], len(cmdLabels))
	m.loginCells = make(map[string]prometheus.Counter, len(auth.LoginOutcomes))
	for _, o := range auth.LoginOutcomes {
		m.loginCells[o] = m.logins.WithLabelValues(o)
	}
	m.limitCells = make(map[string]prometheus.Counter)
	for _, l := range append(append([]string(nil), server.ObservedLimits...), auth.ObservedLimits...) {
		m.limitCells[l] = m.limitHits.WithLabelValues(l)
	}
	return m
}

// Registry is the registry holding the metrics (for tests, or to add
// collectors of one's own).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// WatchHashPool sets where the hash pool gauges read from, typically
// (*auth.Service).HashPoolStats. Until it is called they read zero.
func (m *Metrics) WatchHashPool(stats func() (running, waiting int)) {
	m.hashPool.Store(&stats)
}

func (m *Metrics) hashStats() (running, waiting int) {
	if f := m.hashPool.Load(); f != nil {
		return (*f)()
	}
	return 0, 0
}

// ConnOpened implements server.Observer.
func (m *Metrics) ConnOpened() {
	m.connsOpen.Inc()
	m.connsTotal.Inc()
}

// ConnClosed implements server.Observer.
func (m *Metrics) ConnClosed() { m.connsOpen.Dec() }

// ConnRejected implements server.Observer: it counts a limit hit.
func (m *Metrics) ConnRejected(limit string) { m.LimitHit(limit) }

// Request implements server.Observer. It allocates nothing once the
// (cmd, status) series exists.
func (m *Metrics) Request(cmd string, status int, d time.Duration) {
	ci, ok := cmdIndex[cmd]
	if !ok {
		ci = unknownCmd
	}
	var si uint8
	if status > 0 && status < len(statusIndex) {
		si = statusIndex[status]
	}
	c := m.reqCells[ci][si].Load()
	if c == nil {
		c = resolve(&m.reqCells[ci][si], func() prometheus.Counter {
			return m.requests.WithLabelValues(cmdLabels[ci], statusLabel[si])
		})
	}
	(*c).Inc()
	h := m.durCells[ci].Load()
	if h == nil {
		h = resolve(&m.durCells[ci], func() prometheus.Observer { return m.requestDur.WithLabelValues(cmdLabels[ci]) })
	}
	(*h).Observe(d.Seconds())
}

// resolve stores the series that get returns in cell, once: racing
// callers get the same series from the vector anyway.
func resolve[T any](cell *atomic.Pointer[T], get func() T) *T {
	v := get()
	cell.CompareAndSwap(nil, &v)
	return cell.Load()
}

// LimitHit implements server.Observer and auth.Observer. A limit outside
// the known set is ignored, to keep the labels bounded.
func (m *Metrics) LimitHit(limit string) {
	if c := m.limitCells[limit]; c != nil {
		c.Inc()
	}
}

// Login implements auth.Observer.
func (m *Metrics) Login(outcome string) {
	c := m.loginCells[outcome]
	if c == nil {
		c = m.loginCells[auth.LoginError]
	}
	c.Inc()
}

// Throttled implements auth.Observer.
func (m *Metrics) Throttled() { m.throttled.Inc() }

// HashWait implements auth.Observer.
func (m *Metrics) HashWait(d time.Duration) { m.hashWait.Observe(d.Seconds()) }

// storeDone records a store call of op that started at start.
func (m *Metrics) storeDone(op storeOp, start time.Time, err error) {
	h := m.storeCells[op].Load()
	if h == nil {
		h = resolve(&m.storeCells[op], func() prometheus.Observer { return m.storeDur.WithLabelValues(storeOpNames[op]) })
	}
	(*h).Observe(time.Since(start).Seconds())
	if err != nil && isFailure(err) {
		c := m.errCells[op].Load()
		if c == nil {
			c = resolve(&m.errCells[op], func() prometheus.Counter { return m.storeErrors.WithLabelValues(storeOpNames[op]) })
		}
		(*c).Inc()
	}
}
