package cli

import (
	"bufio"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/authline/authline/server/servertest"
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
	return ln.Addr().String()
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
