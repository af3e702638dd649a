package main

// End-to-end test of --metrics-listen and the lame-duck shutdown, on the
// built binary (run by TestE2E).

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var e2eMetricsListening = regexp.MustCompile(`msg="metrics listening" addr=(\S+)`)

// e2eHTTP is a client of a server's metrics listener.
type e2eHTTP struct {
	t      *testing.T
	base   string
	client *http.Client
}

func (h *e2eHTTP) get(path string) (int, string) {
	h.t.Helper()
	resp, err := h.client.Get(h.base + path)
	if err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// scrape returns the value of every series in /metrics, keyed by the
// series as written (name{labels}).
func (h *e2eHTTP) scrape() map[string]float64 {
	h.t.Helper()
	status, body := h.get("/metrics")
	if status != http.StatusOK {
		h.t.Fatalf("GET /metrics: %d\n%s", status, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			h.t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// testE2EMetrics runs `serve --metrics-listen 127.0.0.1:0`, checks that
// the counters of /metrics move with traffic, then sends SIGTERM with an
// idle client and a LOGIN in flight and checks the lame-duck sequence:
// /readyz turns 503 while the protocol port still serves, the idle client
// gets bye shutdown, the LOGIN gets its answer, the process exits 0.
func testE2EMetrics(t *testing.T, bins e2eBins) {
	dir := t.TempDir()
	db := filepath.Join(dir, "m.db")

	e2eRun(t, bins.authlined, "", nil, serveArgs(db, "--metrics-listen", "no-port-here")...).wantCode(t, 2, "serve with a bad --metrics-listen")

	// A user whose hash is slow to compare, so that a LOGIN is surely in
	// flight through the lame-duck delay: about 2s without -race, more
	// with.
	cost := "15"
	if e2eRace {
		cost = "12"
	}
	e2eRun(t, bins.authlined, "kitten-orbit-42\n", nil, "user", "add", "slowpoke", "--password-stdin", "--bcrypt-cost", cost, "--db", db).
		wantCode(t, 0, "user add slowpoke")

	const lameDuck = time.Second
	srv := e2eStart(t, bins.authlined, nil, serveArgs(db, "--metrics-listen", "127.0.0.1:0",
		"--lame-duck-delay", lameDuck.String(), "--shutdown-timeout", "60s")...)
	ml := e2eMetricsListening.FindStringSubmatch(srv.stderr.String())
	if ml == nil {
		t.Fatalf("no \"metrics listening\" line in the log:\n%s", srv.stderr.String())
	}
	metricsAddr := ml[1]
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	h := &e2eHTTP{t: t, base: "http://" + metricsAddr, client: &http.Client{Transport: tr, Timeout: e2eReadTimeout}}
	if status, body := h.get("/healthz"); status != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q, want 200 ok", status, body)
	}
	if status, body := h.get("/readyz"); status != 200 || body != "ok\n" {
		t.Fatalf("/readyz while serving: %d %q, want 200 ok", status, body)
	}

	// Traffic, and the counters it moves.
	before := h.scrape()
	c := e2eDial(t, srv.addr)
	c.expect("PING", 200, "")
	c.expect("REGISTER metricsuser kitten-orbit-42", 201, "")
	c.expect("LOGIN metricsuser wrong-password-9", 401, "invalid_credentials")
	c.expect("LOGIN metricsuser kitten-orbit-42", 200, "")
	c.expect("GET protected", 200, "")
	c.expect("TELEPORT me", 400, "unknown_command")
	after := h.scrape()
	for series, want := range map[string]float64{
		`authline_requests_total{cmd="PING",status="200"}`:     1,
		`authline_requests_total{cmd="REGISTER",status="201"}`: 1,
		`authline_requests_total{cmd="LOGIN",status="401"}`:    1,
		`authline_requests_total{cmd="LOGIN",status="200"}`:    1,
		`authline_requests_total{cmd="GET",status="200"}`:      1,
		`authline_requests_total{cmd="unknown",status="400"}`:  1,
		`authline_request_duration_seconds_count{cmd="LOGIN"}`: 2,
		`authline_logins_total{outcome="ok"}`:                  1,
		`authline_logins_total{outcome="bad_credentials"}`:     1,
		`authline_connections_total`:                           1,
		`authline_connections_open`:                            1,
		`authline_hash_wait_seconds_count`:                     3, // REGISTER, two LOGINs
	} {
		if got := after[series] - before[series]; got != want {
			t.Errorf("%s moved by %v, want %v", series, got, want)
		}
	}
	if after[`authline_store_duration_seconds_count{op="get_user"}`] <= before[`authline_store_duration_seconds_count{op="get_user"}`] {
		t.Errorf("authline_store_duration_seconds{op=\"get_user\"} did not move")
	}
	if got := after[fmt.Sprintf(`authline_build_info{goversion=%q,version=%q}`, runtimeVersion(t, bins), version)]; got != 1 {
		t.Errorf("authline_build_info for version %s: %v, want 1", version, got)
	}
	if t.Failed() {
		_, body := h.get("/metrics")
		t.Fatalf("/metrics:\n%s", body)
	}

	// A LOGIN in flight: its hash is running.
	idle := e2eDial(t, srv.addr)
	busy := e2eDial(t, srv.addr)
	busy.nc.Write([]byte("LOGIN slowpoke kitten-orbit-42\n"))
	e2eWait(t, "the slow LOGIN's hash to run", func() bool { return h.scrape()["authline_hash_running"] == 1 })

	srv.terminate()
	e2eWait(t, "/readyz to turn 503", func() bool { status, _ := h.get("/readyz"); return status == 503 })
	if status, body := h.get("/readyz"); status != 503 || body != "not ready: shutting down\n" {
		t.Fatalf("/readyz in the lame-duck phase: %d %q", status, body)
	}
	// The lame duck still serves, new connections included.
	e2eDial(t, srv.addr).expect("PING", 200, "")
	if status, _ := h.get("/healthz"); status != 200 {
		t.Fatalf("/healthz in the lame-duck phase: %d, want 200", status)
	}

	if m := idle.recv(); m["event"] != "bye" || m["reason"] != "shutdown" {
		t.Fatalf("idle connection: got %v, want the bye event with reason shutdown", m)
	}
	resp := busy.recv()
	if resp["status"] != 200.0 {
		t.Fatalf("the LOGIN in flight: got %v, want its 200", resp)
	}
	log := srv.stderr.String()
	if !strings.Contains(log, `msg="shutting down"`) {
		t.Fatalf("the LOGIN was answered before the shutdown began, so it tested nothing; make its hash slower:\n%s", log)
	}
	if m := busy.recv(); m["event"] != "bye" || m["reason"] != "shutdown" {
		t.Fatalf("after the LOGIN in flight: got %v, want the bye event with reason shutdown", m)
	}
	srv.waitStopped()
	log = srv.stderr.String()
	lame, shut := strings.Index(log, `msg="lame duck: not ready, still serving"`), strings.Index(log, `msg="shutting down"`)
	if lame < 0 || shut < lame {
		t.Fatalf("want the lame-duck line, then shutting down:\n%s", log)
	}
	// The metrics listener closed with the process.
	if nc, err := net.DialTimeout("tcp", metricsAddr, time.Second); err == nil {
		nc.Close()
		t.Fatalf("the metrics address %s still accepts connections after the exit", metricsAddr)
	}
}

// runtimeVersion is the Go version the binary was built with, as
// `authlined version` prints it.
func runtimeVersion(t *testing.T, bins e2eBins) string {
	t.Helper()
	r := e2eRun(t, bins.authlined, "", nil, "version")
	r.wantCode(t, 0, "version")
	m := regexp.MustCompile(`, (go\S+)\)`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("version: %q", r.stdout)
	}
	return m[1]
}

// e2eWait polls cond until it holds, for at most e2eReadTimeout.
func e2eWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(e2eReadTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
