package cli

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authline/authline/server"
	"github.com/authline/authline/server/servertest"
	"github.com/authline/authline/server/store"
)

// runBenchJSON runs bench with --output json and decodes its result.
func runBenchJSON(t *testing.T, server string, args ...string) benchResult {
	t.Helper()
	r := run(t, "", append([]string{"--server", server, "-o", "json", "bench"}, args...)...)
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.out, r.err)
	}
	var res benchResult
	if err := json.Unmarshal([]byte(r.out), &res); err != nil {
		t.Fatalf("bad JSON output %q: %v", r.out, err)
	}
	return res
}

// checkBench checks the counts and the latencies of a run without errors.
func checkBench(t *testing.T, res benchResult, requests int64) {
	t.Helper()
	if res.Requests != requests {
		t.Errorf("requests = %d, want %d", res.Requests, requests)
	}
	if len(res.Errors) != 0 {
		t.Errorf("errors = %v, want none", res.Errors)
	}
	l := res.Latency
	if l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.P999 || l.P999 > l.Max {
		t.Errorf("latencies not positive and ordered: %+v", l)
	}
	if res.DurationS <= 0 || res.RPS <= 0 {
		t.Errorf("duration_s = %v, rps = %v", res.DurationS, res.RPS)
	}
}

func TestBenchWorkloads(t *testing.T) {
	srv := startServer(t, servertest.Options{BcryptCost: 4})
	for _, tc := range []struct {
		workload string
		requests int64
	}{
		{workloadGetSession, 300},
		{workloadGetToken, 300},
		{workloadPing, 300},
		{workloadLogin, 20},
		{workloadMixed, 300},
	} {
		t.Run(tc.workload, func(t *testing.T) {
			n := strconv.FormatInt(tc.requests, 10)
			res := runBenchJSON(t, srv.Addr, "--workload", tc.workload, "--conns", "4", "--requests", n)
			checkBench(t, res, tc.requests)
			if res.Workload != tc.workload || res.Conns != 4 || res.Pipeline != 1 {
				t.Errorf("result = %+v", res)
			}
			// Pipelining gives the same counts; 16 does not divide the
			// total, so the last batches are partial.
			res = runBenchJSON(t, srv.Addr, "--workload", tc.workload, "--conns", "3", "--requests", n, "--pipeline", "16")
			checkBench(t, res, tc.requests)
			if res.Pipeline != 16 {
				t.Errorf("pipeline = %d, want 16", res.Pipeline)
			}
		})
	}
}

func TestBenchDurationAndText(t *testing.T) {
	srv := startServer(t, servertest.Options{BcryptCost: 4})
	res := runBenchJSON(t, srv.Addr, "--workload", "ping", "--conns", "2", "--duration", "300ms")
	if res.Requests == 0 || len(res.Errors) != 0 || res.DurationS < 0.3 {
		t.Errorf("result = %+v", res)
	}

	r := run(t, "", "--server", srv.Addr, "bench", "--conns", "2", "--requests", "50")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	for _, want := range []string{"workload:    get-session", "requests:    50\n", "errors:      0\n", "requests/s:", "p99.9"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("output lacks %q:\n%s", want, r.out)
		}
	}
	if r.err != "" {
		t.Errorf("stderr = %q, want nothing (not a terminal)", r.err)
	}
}

// startLineServer starts a line server that answers "+PONG" to every line,
// and "-ERR unknown command" to the line "BAD".
func startLineServer(t *testing.T) string {
	t.Helper()
	addr, _ := startCountingLineServer(t)
	return addr
}

// startCountingLineServer is startLineServer that also counts the lines
// it received.
func startCountingLineServer(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var lines atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				r, w := bufio.NewReader(c), bufio.NewWriter(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					lines.Add(1)
					if strings.TrimSpace(line) == "BAD" {
						w.WriteString("-ERR unknown command\r\n")
					} else {
						w.WriteString("+PONG\r\n")
					}
					if r.Buffered() == 0 {
						if w.Flush() != nil {
							return
						}
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String(), &lines
}

func TestBenchRaw(t *testing.T) {
	isolate(t)
	addr := startLineServer(t)
	res := runBenchJSON(t, addr, "--raw", "PING", "--conns", "3", "--requests", "500")
	checkBench(t, res, 500)
	if res.Workload != "raw" {
		t.Errorf("workload = %q, want raw", res.Workload)
	}
	res = runBenchJSON(t, addr, "--raw", "PING", "--conns", "3", "--requests", "500", "--pipeline", "16")
	checkBench(t, res, 500)

	// Errors are counted by code and the run goes on.
	res = runBenchJSON(t, addr, "--raw", "BAD", "--conns", "2", "--requests", "40", "--pipeline", "8")
	if res.Requests != 40 || len(res.Errors) != 1 || res.Errors["ERR"] != 40 {
		t.Errorf("requests = %d, errors = %v, want 40 and {ERR: 40}", res.Requests, res.Errors)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	isolate(t)
	for _, args := range [][]string{
		{"--workload", "nope"},
		{"--duration", "0"},
		{"--duration", "0", "--requests", "0"},
		{"--conns", "0"},
		{"--pipeline", "0"},
		{"--requests", "-1"},
		{"--raw", ""},
		{"--raw", "PING", "--workload", "ping"},
		{"extra-arg"},
		{"--warmup", "-1s"},
		{"--warmup", "1s", "--requests", "10"},
		{"--rate", "-5"},
		{"--workload", "idle", "--requests", "10"},
		{"--workload", "idle", "--pipeline", "2"},
		{"--workload", "idle", "--rate", "100"},
	} {
		r := run(t, "", append([]string{"--server", "127.0.0.1:1", "bench"}, args...)...)
		if r.code != exitUsage {
			t.Errorf("bench %v: exit %d, want 2 (stderr %q)", args, r.code, r.err)
		}
	}
}

func TestBenchCannotConnect(t *testing.T) {
	isolate(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, args := range [][]string{
		{"--requests", "10"},
		{"--raw", "PING", "--requests", "10"},
	} {
		r := run(t, "", append([]string{"--server", addr, "bench"}, args...)...)
		if r.code != exitConnect {
			t.Errorf("bench %v: exit %d, want 3 (stderr %q)", args, r.code, r.err)
		}
		if !strings.Contains(r.err, "error:") {
			t.Errorf("stderr = %q, want an error", r.err)
		}
	}
}

// A server that refuses the set-up (here: its per-address connection limit)
// fails the run with exit 1 and advice.
func TestBenchRefused(t *testing.T) {
	srv := startServer(t, servertest.Options{BcryptCost: 4, MaxConnsPerIP: 2})
	r := run(t, "", "--server", srv.Addr, "bench", "--workload", "ping", "--conns", "5", "--requests", "10")
	if r.code != exitRefused || !strings.Contains(r.err, "too many connections") || !strings.Contains(r.err, "hint:") {
		t.Errorf("exit %d, stderr %q; want 1, too many connections, a hint", r.code, r.err)
	}
}

// benchAsync runs bench in the background, for tests that act while it
// runs: once the run wrote its --ready-file, or failed; wait returns its
// decoded result.
type benchAsync struct {
	t    *testing.T
	done chan result
}

func startBench(t *testing.T, server string, args ...string) *benchAsync {
	t.Helper()
	b := &benchAsync{t: t, done: make(chan result, 1)}
	go func() {
		var out, errOut strings.Builder
		s := &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
		code := Main(append([]string{"--server", server, "-o", "json", "bench"}, args...), s)
		b.done <- result{out: out.String(), err: errOut.String(), code: code}
	}()
	return b
}

// waitReady waits until the run wrote its --ready-file.
func (b *benchAsync) waitReady(path string) {
	b.t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		if data, err := os.ReadFile(path); err == nil && strings.HasPrefix(string(data), "ready ") {
			return
		}
		select {
		case r := <-b.done:
			b.t.Fatalf("bench ended before writing %s: exit %d\nstdout: %s\nstderr: %s", path, r.code, r.out, r.err)
		case <-timeout:
			b.t.Fatalf("%s not written in 30s", path)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// wait waits for the end of the run and returns its result.
func (b *benchAsync) wait() benchResult {
	b.t.Helper()
	r := <-b.done
	if r.code != 0 {
		b.t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.out, r.err)
	}
	var res benchResult
	if err := json.Unmarshal([]byte(r.out), &res); err != nil {
		b.t.Fatalf("bad JSON output %q: %v", r.out, err)
	}
	return res
}

// benchUser returns the user a bench run registered.
func benchUser(t *testing.T, srv *servertest.Server) store.User {
	t.Helper()
	users, err := srv.Store.ListUsers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var found []store.User
	for _, u := range users {
		if strings.HasPrefix(u.Username, "bench-") {
			found = append(found, u)
		}
	}
	if len(found) != 1 {
		t.Fatalf("bench users: %+v, want one", found)
	}
	return found[0]
}

// The idle workload opens and logs in every connection, holds them, then
// checks with WHOAMI that each is still open and logged in: a check that
// fails is counted, whether the server closed the connection or ended the
// session.
func TestBenchIdle(t *testing.T) {
	const conns = 40
	for _, tc := range []struct {
		name string
		opts servertest.Options
		// during runs while the connections are idle.
		during    func(t *testing.T, srv *servertest.Server)
		wantError string // the code of the failed checks; "" for none
		idle      string // --duration; default 1s
	}{
		{name: "held", opts: servertest.Options{IdleTimeout: -1}},
		{
			name: "session ended",
			opts: servertest.Options{IdleTimeout: -1},
			during: func(t *testing.T, srv *servertest.Server) {
				u := benchUser(t, srv)
				if _, err := srv.Store.BumpGeneration(context.Background(), u.Username, "test"); err != nil {
					t.Fatal(err)
				}
			},
			wantError: "unauthenticated",
		},
		{
			// Long enough for the set-up of every connection, even
			// under -race on a loaded machine; shorter than the idle time.
			name:      "closed by the server",
			opts:      servertest.Options{IdleTimeout: time.Second},
			idle:      "2500ms",
			wantError: "connection",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.BcryptCost = 4
			srv := startServer(t, tc.opts)
			ready := filepath.Join(t.TempDir(), "ready")
			idle := cmp.Or(tc.idle, "1s")
			b := startBench(t, srv.Addr, "--workload", "idle", "--conns", strconv.Itoa(conns), "--duration", idle, "--ready-file", ready)
			b.waitReady(ready)
			// Every connection is open (unless the idle timeout closes
			// them already), and the logins were recorded.
			if n := srv.Server.NumConns(); n != conns && tc.opts.IdleTimeout < 0 {
				t.Errorf("NumConns = %d after set-up, want %d", n, conns)
			}
			if u := benchUser(t, srv); u.LastLogin.IsZero() {
				t.Errorf("bench user %s never logged in", u.Username)
			}
			if tc.during != nil {
				tc.during(t, srv)
			}
			res := b.wait()
			if res.Workload != "idle" || res.Conns != conns || res.Requests != conns || res.RPS != 0 {
				t.Errorf("result = %+v, want idle, %d conns, %d checks, rps 0", res, conns, conns)
			}
			if res.DurationS < 1 || res.SetupS <= 0 {
				t.Errorf("duration_s = %v, setup_s = %v; want >= 1 and > 0", res.DurationS, res.SetupS)
			}
			switch {
			case tc.wantError == "" && len(res.Errors) != 0:
				t.Errorf("errors = %v, want none", res.Errors)
			case tc.wantError != "" && (len(res.Errors) != 1 || res.Errors[tc.wantError] != conns):
				t.Errorf("errors = %v, want {%s: %d}", res.Errors, tc.wantError, conns)
			}
		})
	}
}

// In raw mode, idle connections send the line when they open and once
// after the idle time.
func TestBenchRawIdle(t *testing.T) {
	isolate(t)
	addr, lines := startCountingLineServer(t)
	res := runBenchJSON(t, addr, "--raw", "PING", "--workload", "idle", "--conns", "7", "--duration", "100ms")
	if res.Workload != "raw-idle" || res.Requests != 7 || len(res.Errors) != 0 {
		t.Errorf("result = %+v, want raw-idle, 7 checks, no errors", res)
	}
	if n := lines.Load(); n != 14 {
		t.Errorf("the server received %d lines, want 14", n)
	}

	r := run(t, "", "--server", addr, "bench", "--raw", "PING", "--workload", "idle", "--conns", "3", "--duration", "50ms")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	for _, want := range []string{"workload:    raw-idle", "checked:     3\n", "errors:      0\n", "check µs:"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("output lacks %q:\n%s", want, r.out)
		}
	}
}

// --rate paces the requests; --warmup runs before the measured window.
func TestBenchRateAndWarmup(t *testing.T) {
	srv := startServer(t, servertest.Options{BcryptCost: 4})
	res := runBenchJSON(t, srv.Addr, "--workload", "ping", "--conns", "4", "--rate", "400", "--warmup", "300ms", "--duration", "1s")
	// 400 requests/s for 1s: some scheduling slack either way.
	if res.Requests < 300 || res.Requests > 420 || len(res.Errors) != 0 {
		t.Errorf("requests = %d, errors = %v; want about 400, none", res.Requests, res.Errors)
	}
	if res.Rate != 400 || res.WarmupS != 0.3 || res.DurationS < 0.9 || res.DurationS > 1.0 {
		t.Errorf("rate = %v, warmup_s = %v, duration_s = %v; want 400, 0.3, 1", res.Rate, res.WarmupS, res.DurationS)
	}
	// Paced requests find the server idle: far below the closed loop's rate.
	closed := runBenchJSON(t, srv.Addr, "--workload", "ping", "--conns", "4", "--duration", "300ms")
	if closed.RPS < 2*res.RPS {
		t.Errorf("closed loop: %.0f requests/s, paced: %.0f; want the closed loop well above", closed.RPS, res.RPS)
	}
}

// slowLogin makes every LOGIN take d (or until the request is cancelled).
type slowLogin struct {
	server.Backend
	d time.Duration
}

func (b slowLogin) Login(ctx context.Context, peer server.Peer, username, password string) (server.Identity, error) {
	select {
	case <-time.After(b.d):
	case <-ctx.Done():
	}
	return b.Backend.Login(ctx, peer, username, password)
}

// With --duration, the requests still in flight when the window closes are
// abandoned: the run ends on time, and they are not counted.
func TestBenchWindowAbandonsInFlight(t *testing.T) {
	srv := startServer(t, servertest.Options{
		BcryptCost:  4,
		WrapBackend: func(b server.Backend) server.Backend { return slowLogin{b, 4 * time.Second} },
	})
	start := time.Now()
	res := runBenchJSON(t, srv.Addr, "--workload", "login", "--conns", "3", "--duration", "300ms")
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Errorf("bench took %v, want it to end with the window (300ms), not wait for the 4s logins", took)
	}
	if res.Requests != 0 || len(res.Errors) != 0 || res.DurationS > 0.31 {
		t.Errorf("result = %+v, want no requests counted, no errors, duration_s 0.3", res)
	}
}

// At most benchSetupParallel connections are set up at once, so that
// their logins fit in the server's hash queue: 100 connections against a
// server that lets 32 hashes run or wait.
func TestBenchSetupBounded(t *testing.T) {
	// One worker and 31 waiting: 32 hashes, the server's default queue
	// and its two workers less two.
	srv := startServer(t, servertest.Options{BcryptCost: 4, HashWorkers: 1, HashQueue: 31})
	res := runBenchJSON(t, srv.Addr, "--workload", "get-session", "--conns", "100", "--requests", "200")
	checkBench(t, res, 200)
	if res.SetupS <= 0 {
		t.Errorf("setup_s = %v, want > 0", res.SetupS)
	}
}
