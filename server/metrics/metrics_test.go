package metrics_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/authline/authline/server/auth"
	"github.com/authline/authline/server/metrics"
	"github.com/authline/authline/server/servertest"
	"github.com/authline/authline/server/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	password = "kitten-orbit-42"
	timeout  = 10 * time.Second
)

// --- the metrics endpoint, over real HTTP ---

// endpoint is a metrics HTTP server on 127.0.0.1:0 and a client of it.
type endpoint struct {
	t      *testing.T
	base   string
	client *http.Client
}

// serveMetrics serves m.Handler(ready) on a loopback port until the test
// ends.
func serveMetrics(t *testing.T, m *metrics.Metrics, ready func(context.Context) error) *endpoint {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: m.Handler(ready), ReadHeaderTimeout: timeout}
	done := make(chan struct{})
	go func() { defer close(done); hs.Serve(ln) }()
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		hs.Close()
		<-done
	})
	return &endpoint{t: t, base: "http://" + ln.Addr().String(), client: &http.Client{Transport: tr, Timeout: timeout}}
}

// get returns the status and body of GET path.
func (e *endpoint) get(path string) (int, string) {
	e.t.Helper()
	resp, err := e.client.Get(e.base + path)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// scrape reads /metrics into a map from series to value. A series is
// written name{label="value",...} with the labels sorted; histograms
// appear as their _count and _sum series.
func (e *endpoint) scrape() map[string]float64 {
	e.t.Helper()
	status, body := e.get("/metrics")
	if status != http.StatusOK {
		e.t.Fatalf("GET /metrics: status %d: %s", status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		e.t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	out := map[string]float64{}
	for name, fam := range fams {
		for _, m := range fam.GetMetric() {
			key := func(suffix string) string { return series(name+suffix, m.GetLabel()) }
			switch {
			case m.Counter != nil:
				out[key("")] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key("")] = m.GetGauge().GetValue()
			case m.Untyped != nil:
				out[key("")] = m.GetUntyped().GetValue()
			case m.Histogram != nil:
				out[key("_count")] = float64(m.GetHistogram().GetSampleCount())
				out[key("_sum")] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

func series(name string, labels []*dto.LabelPair) string {
	if len(labels) == 0 {
		return name
	}
	parts := make([]string, 0, len(labels))
	for _, l := range labels {
		parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	sort.Strings(parts)
	return name + "{" + strings.Join(parts, ",") + "}"
}

// --- the protocol ---

type client struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &client{t: t, nc: nc, r: bufio.NewReader(nc)}
	if m := c.recv(); m["event"] != "hello" {
		t.Fatalf("greeting: %v", m)
	}
	return c
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(line + "\n")); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) recv() map[string]any {
	c.t.Helper()
	return servertest.ReadJSON[map[string]any](c.t, c.nc, c.r, time.Now().Add(timeout))
}

// expect sends a line and checks the response's status.
func (c *client) expect(line string, status int) map[string]any {
	c.t.Helper()
	c.send(line)
	m := c.recv()
	if m["status"] != float64(status) {
		c.t.Fatalf("%.40q: got %v, want status %d", line, m, status)
	}
	return m
}

// expectBye reads lines until the bye event and checks its reason.
func (c *client) expectBye(reason string) {
	c.t.Helper()
	for {
		m := c.recv()
		if m["event"] == "bye" {
			if m["reason"] != reason {
				c.t.Fatalf("bye %v, want reason %s", m, reason)
			}
			return
		}
	}
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkMoved compares two scrapes: each series in want must have moved
// by exactly that much.
func checkMoved(t *testing.T, before, after map[string]float64, want map[string]float64) {
	t.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		got, ok := after[k]
		if !ok {
			t.Errorf("%s: not in /metrics", k)
			continue
		}
		if d := got - before[k]; d != want[k] {
			t.Errorf("%s moved by %v, want %v", k, d, want[k])
		}
	}
}

// --- the tests ---

// TestScrapeAfterTraffic serves the metrics of a real server, sends it
// traffic of every kind and checks, through /metrics over HTTP, that each
// counter moved by what the traffic should have made it move.
func TestScrapeAfterTraffic(t *testing.T) {
	m := metrics.New("9.8.7-test")
	throttle := auth.DefaultThrottlePolicy
	throttle.PairFree = 2 // the third failure in a row is throttled
	srv := servertest.Start(t, servertest.Options{Metrics: m, Throttle: &throttle, MaxLineBytesPreAuth: 256})
	srv.AddUser(t, "alice", password, "user")
	var ready metrics.Readiness
	ready.SetPing(metrics.StorePing(srv.Store))
	ready.Serving()
	ep := serveMetrics(t, m, ready.Check)

	before := ep.scrape()
	c := dial(t, srv.Addr)
	for range 3 {
		c.expect("PING", 200)
	}
	c.expect("GET protected", 401) // no session yet
	c.expect("LOGIN alice "+password, 200)
	for range 2 {
		c.expect("GET protected", 200)
	}
	c.expect("LOGIN mallory wrong-password-1", 401)
	c.expect("LOGIN mallory wrong-password-1", 401)
	c.expect("LOGIN mallory wrong-password-1", 429) // throttled
	c.expect("FROBNICATE now", 400)                 // unknown command
	c.expect(`{"cmd":"NOPE"}`, 400)                 // unknown command, JSON
	c.expect(`{"cmd":`, 400)                        // no command at all
	c.expect("LOGIN alice", 400)                    // a known command, badly formed

	long := dial(t, srv.Addr)
	long.send(strings.Repeat("x", 300)) // over the 256-byte pre-auth limit
	if m := long.recv(); m["status"] != 413.0 {
		t.Fatalf("line over the limit: %v, want 413", m)
	}
	long.expectBye("line_too_long")
	waitFor(t, "the closed connection to be counted", func() bool {
		return ep.scrape()["authline_connections_open"] == before["authline_connections_open"]+1
	})

	after := ep.scrape()
	checkMoved(t, before, after, map[string]float64{
		`authline_requests_total{cmd="PING",status="200"}`:     3,
		`authline_requests_total{cmd="GET",status="200"}`:      2,
		`authline_requests_total{cmd="GET",status="401"}`:      1,
		`authline_requests_total{cmd="LOGIN",status="200"}`:    1,
		`authline_requests_total{cmd="LOGIN",status="401"}`:    2,
		`authline_requests_total{cmd="LOGIN",status="429"}`:    1,
		`authline_requests_total{cmd="LOGIN",status="400"}`:    1,
		`authline_requests_total{cmd="unknown",status="400"}`:  3,
		`authline_request_duration_seconds_count{cmd="PING"}`:  3,
		`authline_request_duration_seconds_count{cmd="GET"}`:   3,
		`authline_request_duration_seconds_count{cmd="LOGIN"}`: 5,
		`authline_logins_total{outcome="ok"}`:                  1,
		`authline_logins_total{outcome="bad_credentials"}`:     2,
		`authline_logins_total{outcome="throttled"}`:           1,
		`authline_logins_total{outcome="rate_limited"}`:        0,
		`authline_throttled_total`:                             1,
		`authline_limit_hits_total{limit="line_too_long"}`:     1,
		`authline_limit_hits_total{limit="max_conns"}`:         0,
		`authline_connections_total`:                           2,
		`authline_connections_open`:                            1,
		// One hash per LOGIN that got past the throttle.
		`authline_hash_wait_seconds_count`: 3,
	})
	// The store was read: the user, and the failed-login counters.
	for _, op := range []string{"get_user", "login_failures", "add_login_failure"} {
		k := fmt.Sprintf(`authline_store_duration_seconds_count{op=%q}`, op)
		if after[k] <= before[k] {
			t.Errorf("%s did not move: %v then %v", k, before[k], after[k])
		}
	}
	if d := after[`authline_request_duration_seconds_sum{cmd="LOGIN"}`] - before[`authline_request_duration_seconds_sum{cmd="LOGIN"}`]; d <= 0 {
		t.Errorf("LOGIN took %v seconds in all, want more than 0", d)
	}
	if k := fmt.Sprintf(`authline_build_info{goversion=%q,version="9.8.7-test"}`, runtime.Version()); after[k] != 1 {
		t.Errorf("%s = %v, want 1", k, after[k])
	}
	for _, k := range []string{"go_goroutines", "process_open_fds", "authline_hash_queue_depth", "authline_hash_running"} {
		if _, ok := after[k]; !ok {
			t.Errorf("%s is not in /metrics", k)
		}
	}
	if t.Failed() {
		_, body := ep.get("/metrics")
		t.Logf("/metrics:\n%s", body)
	}
}

// TestUnknownCommandsShareOneLabel: whatever commands clients make up,
// the request series stay the known commands plus "unknown".
func TestUnknownCommandsShareOneLabel(t *testing.T) {
	m := metrics.New("test")
	srv := servertest.Start(t, servertest.Options{Metrics: m})
	ep := serveMetrics(t, m, nil)
	c := dial(t, srv.Addr)
	for i := range 50 {
		c.expect(fmt.Sprintf("CMD%d arg", i), 400)
		c.expect(fmt.Sprintf(`{"cmd":"json%d"}`, i), 400)
	}
	c.expect("PING", 200)
	var names []string
	for k := range ep.scrape() {
		if strings.HasPrefix(k, "authline_requests_total{") {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	want := []string{`authline_requests_total{cmd="PING",status="200"}`, `authline_requests_total{cmd="unknown",status="400"}`}
	if !slices.Equal(names, want) {
		t.Fatalf("request series %q, want %q", names, want)
	}
	if got := ep.scrape()[`authline_requests_total{cmd="unknown",status="400"}`]; got != 100 {
		t.Fatalf("unknown commands counted %v, want 100", got)
	}
}

// TestLimitHits drives a server into each of its limits and checks the
// limit's counter.
func TestLimitHits(t *testing.T) {
	tests := []struct {
		name  string
		opts  servertest.Options
		limit string
		// hit makes the server hit the limit once.
		hit func(t *testing.T, srv *servertest.Server)
		// also lists other series that must have moved by 1.
		also []string
	}{
		{
			name: "max_conns", opts: servertest.Options{MaxConns: 1}, limit: "max_conns",
			hit: func(t *testing.T, srv *servertest.Server) {
				dial(t, srv.Addr)
				expectTooManyConns(t, srv.Addr)
			},
		},
		{
			name: "max_conns_per_ip", opts: servertest.Options{MaxConnsPerIP: 1}, limit: "max_conns_per_ip",
			hit: func(t *testing.T, srv *servertest.Server) {
				dial(t, srv.Addr)
				expectTooManyConns(t, srv.Addr)
			},
		},
		{
			name: "idle_timeout", opts: servertest.Options{IdleTimeout: 100 * time.Millisecond}, limit: "idle_timeout",
			hit: func(t *testing.T, srv *servertest.Server) {
				dial(t, srv.Addr).expectBye("idle_timeout")
			},
		},
		{
			name: "line_timeout", opts: servertest.Options{LineTimeout: 100 * time.Millisecond}, limit: "line_timeout",
			hit: func(t *testing.T, srv *servertest.Server) {
				c := dial(t, srv.Addr)
				c.nc.Write([]byte("PIN")) // and never the rest
				c.expectBye("line_timeout")
			},
		},
		{
			name: "ip_auth_rate", opts: servertest.Options{IPRateLimit: &auth.IPRateLimit{PerSecond: 0.001, Burst: 1}}, limit: "ip_auth_rate",
			hit: func(t *testing.T, srv *servertest.Server) {
				c := dial(t, srv.Addr)
				c.expect("LOGIN alice "+password, 200)
				c.expect("LOGIN alice "+password, 429)
			},
			also: []string{`authline_logins_total{outcome="rate_limited"}`, `authline_logins_total{outcome="ok"}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := metrics.New("test")
			tt.opts.Metrics = m
			srv := servertest.Start(t, tt.opts)
			srv.AddUser(t, "alice", password, "user")
			ep := serveMetrics(t, m, nil)
			key := fmt.Sprintf(`authline_limit_hits_total{limit=%q}`, tt.limit)
			before := ep.scrape()
			tt.hit(t, srv)
			// Closing a connection and counting it race with the
			// client's read of the bye: wait for the count.
			waitFor(t, key+" to move", func() bool { return ep.scrape()[key] > before[key] })
			want := map[string]float64{key: 1}
			for _, k := range tt.also {
				want[k] = 1
			}
			checkMoved(t, before, ep.scrape(), want)
		})
	}
}

func expectTooManyConns(t *testing.T, addr string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(timeout))
	got, _ := io.ReadAll(nc)
	if !strings.Contains(string(got), `"status":503`) {
		t.Fatalf("over the connection limit got %q, want a 503", got)
	}
}

// TestHashPool fills a one-worker pool with no queue: the gauges show the
// hash running, and the next LOGIN is refused as busy and counted.
func TestHashPool(t *testing.T) {
	m := metrics.New("test")
	srv := servertest.Start(t, servertest.Options{Metrics: m, HashWorkers: 1, HashQueue: -1})
	// A hash slow enough to be seen running: its cost, not the server's,
	// sets how long a LOGIN compares.
	hash, err := auth.HashPassword(password, 11)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Store.CreateUser(context.Background(), store.User{Username: "slow", PasswordHash: hash, Role: "user", CreatedAt: time.Now(), Generation: 1}); err != nil {
		t.Fatal(err)
	}
	ep := serveMetrics(t, m, nil)
	before := ep.scrape()

	first := dial(t, srv.Addr)
	first.send("LOGIN slow " + password)
	waitFor(t, "the hash to run", func() bool { return ep.scrape()["authline_hash_running"] == 1 })
	second := dial(t, srv.Addr)
	if resp := second.expect("LOGIN slow "+password, 503); resp["error"] != "unavailable" {
		t.Fatalf("LOGIN with the pool full: %v", resp)
	}
	if resp := first.recv(); resp["status"] != 200.0 {
		t.Fatalf("the first LOGIN: %v", resp)
	}
	after := ep.scrape()
	checkMoved(t, before, after, map[string]float64{
		`authline_limit_hits_total{limit="hash_queue"}`:     1,
		`authline_logins_total{outcome="busy"}`:             1,
		`authline_logins_total{outcome="ok"}`:               1,
		`authline_requests_total{cmd="LOGIN",status="503"}`: 1,
		// The first LOGIN's compare, then its re-hash at the server's
		// cost, both before it answered; the busy one never waited.
		`authline_hash_wait_seconds_count`: 2,
		`authline_hash_running`:            0,
		`authline_hash_queue_depth`:        0,
	})
}

// TestStoreErrors: with the store gone, a LOGIN is unavailable, and the
// store failure is counted for the operation that failed.
func TestStoreErrors(t *testing.T) {
	m := metrics.New("test")
	srv := servertest.Start(t, servertest.Options{Metrics: m})
	var ready metrics.Readiness
	ready.SetPing(metrics.StorePing(srv.Store))
	ready.Serving()
	ep := serveMetrics(t, m, ready.Check)
	c := dial(t, srv.Addr)
	c.expect("LOGIN nobody "+password, 401) // a clean miss is no store error
	before := ep.scrape()
	if status, body := ep.get("/readyz"); status != 200 {
		t.Fatalf("/readyz with the store up: %d %s", status, body)
	}

	if err := srv.Store.Close(); err != nil {
		t.Fatal(err)
	}
	c.expect("LOGIN nobody "+password, 503)
	after := ep.scrape()
	checkMoved(t, before, after, map[string]float64{
		`authline_logins_total{outcome="unavailable"}`:         1,
		`authline_store_errors_total{op="login_failures"}`:     1,
		`authline_requests_total{cmd="LOGIN",status="503"}`:    1,
		`authline_store_duration_seconds_count{op="get_user"}`: 0, // never reached
	})
	if _, ok := before[`authline_store_errors_total{op="get_user"}`]; ok {
		t.Errorf("a user not found was counted as a store error")
	}
	status, body := ep.get("/readyz")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "store unreachable") {
		t.Fatalf("/readyz with the store closed: %d %q, want 503 store unreachable", status, body)
	}
	if status, body := ep.get("/healthz"); status != 200 || body != "ok\n" {
		t.Fatalf("/healthz with the store closed: %d %q, want 200 ok: the process is up", status, body)
	}
}

// TestHealthAndReadiness walks /healthz and /readyz through a server's
// life: starting, serving, shutting down (lame duck), stopped.
func TestHealthAndReadiness(t *testing.T) {
	m := metrics.New("test")
	srv := servertest.Start(t, servertest.Options{Metrics: m})
	var ready metrics.Readiness
	ep := serveMetrics(t, m, ready.Check)

	check := func(stage string, wantStatus int, wantBody string) {
		t.Helper()
		status, body := ep.get("/readyz")
		if status != wantStatus || !strings.Contains(body, wantBody) {
			t.Fatalf("%s: /readyz %d %q, want %d %q", stage, status, body, wantStatus, wantBody)
		}
		if status, body := ep.get("/healthz"); status != 200 || body != "ok\n" {
			t.Fatalf("%s: /healthz %d %q, want 200 ok", stage, status, body)
		}
	}
	check("starting", 503, "not ready: starting")
	ready.SetPing(metrics.StorePing(srv.Store))
	ready.Serving()
	check("serving", 200, "ok")

	// Shutdown begins: not ready at once, while the protocol port still
	// answers (the lame-duck phase).
	idle := dial(t, srv.Addr)
	ready.Drain()
	check("draining", 503, "not ready: shutting down")
	dial(t, srv.Addr).expect("PING", 200)
	ready.Serving() // does not undo Drain
	check("draining after Serving", 503, "shutting down")

	srv.Stop(t)
	idle.expectBye("shutdown")
	check("stopped", 503, "shutting down")

	if status, _ := ep.get("/nothing-here"); status != http.StatusNotFound {
		t.Fatalf("GET /nothing-here: %d, want 404", status)
	}
}
