package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/authline/authline/client"
)

// The workloads of authline bench.
const (
	workloadGetSession = "get-session"
	workloadGetToken   = "get-token"
	workloadPing       = "ping"
	workloadLogin      = "login"
	workloadMixed      = "mixed"
)

var benchWorkloads = []string{workloadGetSession, workloadGetToken, workloadPing, workloadLogin, workloadMixed}

// Latencies are recorded in microseconds, from 1µs to 60s, with 3
// significant digits.
const (
	benchMinLatencyUS = 1
	benchMaxLatencyUS = 60_000_000
	benchSigFigs      = 3
)

type benchOptions struct {
	*Factory

	Conns    int
	Duration time.Duration
	Requests int64
	Pipeline int
	Workload string
	Raw      string

	// progress, when set, receives the progress lines (every second);
	// by default they go to ErrOut when it is a terminal.
	progress func(elapsed time.Duration, requests int64, rate float64)
}

func newBenchCmd(f *Factory) *cobra.Command {
	opts := &benchOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the server's throughput and latency",
		Long: `Measure the server's throughput and latency under load, in the manner of
redis-benchmark: --conns connections each run a closed loop, sending a batch
of --pipeline requests in one write and reading the responses back in
order, for --duration or until --requests requests were sent in all
(--requests wins when both are set).

Workloads (--workload):
  get-session  each connection logs in (session mode), then sends "GET protected"
  get-token    one login in token mode, then "GET protected TOKEN" everywhere
  ping         PING
  login        LOGIN with the right password: bound by bcrypt, expect few requests/s
  mixed        90% get-session, 9% ping, 1% login

Each run registers its own user, bench-<random hex>, with a random password;
the account is left on the server. The logins of the set-up (one per
connection for get-session and mixed) and the login workload are subject to
the server's login limits: start authlined with --ip-auth-rate 0 and
--no-login-throttle (and --max-conns-per-ip 0 for over 256 connections) to
measure the server rather than its limits.

With --raw LINE, bench sends LINE (with "\r\n") as every request and reads one
line per request, expecting no greeting: it measures any line-protocol server.
A response starting with "-" is an error (Redis's convention), for example
  authline bench --server 127.0.0.1:6379 --raw PING

A response with "ok":false (in raw mode, a line starting with "-") is
counted as an error, by code, and the run continues. Latency is the time
from a batch's write to the reading of each of its responses. Progress is
printed on standard error every second when it is a terminal.`,
		Example: `  authline bench --workload get-session --conns 50 --duration 10s
  authline bench --workload ping --pipeline 16 --requests 1000000 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.validate(cmd); err != nil {
				return err
			}
			return runBench(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&opts.Conns, "conns", 50, "number of connections")
	fl.DurationVar(&opts.Duration, "duration", 10*time.Second, "how long to run (ignored when --requests is set)")
	fl.Int64Var(&opts.Requests, "requests", 0, "total number of requests to send, over all connections (0: run for --duration)")
	fl.IntVar(&opts.Pipeline, "pipeline", 1, "requests in flight per connection, sent in one write")
	fl.StringVar(&opts.Workload, "workload", workloadGetSession, "get-session, get-token, ping, login or mixed")
	fl.StringVar(&opts.Raw, "raw", "", "send this fixed line as every request, read one line per request, expect no greeting")
	return cmd
}

func (o *benchOptions) validate(cmd *cobra.Command) error {
	switch {
	case o.Conns < 1:
		return usageErrorf("--conns must be at least 1")
	case o.Pipeline < 1:
		return usageErrorf("--pipeline must be at least 1")
	case o.Requests < 0:
		return usageErrorf("--requests must not be negative")
	case o.Duration < 0:
		return usageErrorf("--duration must not be negative")
	case o.Requests == 0 && o.Duration == 0:
		return usageErrorf("set --duration or --requests (both are zero)")
	}
	if !slices.Contains(benchWorkloads, o.Workload) {
		return usageErrorf("unknown workload %q (want %s)", o.Workload, strings.Join(benchWorkloads, ", "))
	}
	if cmd.Flags().Changed("raw") {
		if o.Raw == "" || strings.ContainsAny(o.Raw, "\r\n") {
			return usageErrorf("--raw must be one non-empty line")
		}
		if cmd.Flags().Changed("workload") {
			return usageErrorf("--raw and --workload cannot be used together")
		}
	}
	return nil
}

// benchResult is the JSON output of a run.
type benchResult struct {
	Workload  string           `json:"workload"`
	Conns     int              `json:"conns"`
	Pipeline  int              `json:"pipeline"`
	Requests  int64            `json:"requests"`
	Errors    map[string]int64 `json:"errors"`
	DurationS float64          `json:"duration_s"`
	RPS       float64          `json:"rps"`
	Latency   benchLatency     `json:"latency_us"`
}

type benchLatency struct {
	P50  int64 `json:"p50"`
	P90  int64 `json:"p90"`
	P99  int64 `json:"p99"`
	P999 int64 `json:"p99_9"`
	Max  int64 `json:"max"`
}

func runBench(ctx context.Context, opts *benchOptions) error {
	raw := opts.Raw != ""
	var plan *benchPlan
	if raw {
		plan = &benchPlan{raw: true, lines: [][]byte{[]byte(opts.Raw + "\r\n")}}
	} else {
		var err error
		if plan, err = opts.prepareAuthline(ctx); err != nil {
			return err
		}
	}

	// Connect (and log in) every connection before the clock starts.
	workers := make([]*benchWorker, opts.Conns)
	errs := make([]error, opts.Conns)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			workers[i], errs[i] = opts.newWorker(ctx, plan, i)
		})
	}
	wg.Wait()
	defer func() {
		for _, w := range workers {
			if w != nil {
				w.conn.Close()
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		// The first error, so that 50 identical ones are not printed.
		for _, e := range errs {
			if e != nil {
				return e
			}
		}
	}

	run := &benchRun{limit: opts.Requests, timeout: opts.Timeout}
	start := time.Now()
	if opts.Requests == 0 {
		run.deadline = start.Add(opts.Duration)
	}
	stopProgress := opts.startProgress(start, workers)
	for _, w := range workers {
		wg.Go(func() { w.loop(run, opts.Pipeline) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()

	// Merge the per-connection results.
	hist := hdrhistogram.New(benchMinLatencyUS, benchMaxLatencyUS, benchSigFigs)
	res := benchResult{Workload: plan.name(opts), Conns: opts.Conns, Pipeline: opts.Pipeline, Errors: map[string]int64{}}
	for _, w := range workers {
		hist.Merge(w.hist)
		res.Requests += w.done.Load()
		for code, n := range w.errors {
			res.Errors[code] += *n
		}
	}
	res.DurationS = elapsed.Seconds()
	if res.DurationS > 0 {
		res.RPS = float64(res.Requests) / res.DurationS
	}
	res.Latency = benchLatency{
		P50:  hist.ValueAtPercentile(50),
		P90:  hist.ValueAtPercentile(90),
		P99:  hist.ValueAtPercentile(99),
		P999: hist.ValueAtPercentile(99.9),
		Max:  hist.Max(),
	}
	return opts.printResult(res, res.text(opts.Server))
}

func (p *benchPlan) name(opts *benchOptions) string {
	if p.raw {
		return "raw"
	}
	return opts.Workload
}

func (r benchResult) text(server string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "workload:    %s (%s, %d connections, pipeline %d)\n", r.Workload, server, r.Conns, r.Pipeline)
	fmt.Fprintf(&b, "requests:    %d\n", r.Requests)
	fmt.Fprintf(&b, "duration:    %.2fs\n", r.DurationS)
	fmt.Fprintf(&b, "requests/s:  %.1f\n", r.RPS)
	var total int64
	codes := make([]string, 0, len(r.Errors))
	for code, n := range r.Errors {
		total += n
		codes = append(codes, code)
	}
	slices.Sort(codes)
	fmt.Fprintf(&b, "errors:      %d", total)
	for i, code := range codes {
		sep := ", "
		if i == 0 {
			sep = " ("
		}
		fmt.Fprintf(&b, "%s%s %d", sep, code, r.Errors[code])
	}
	if len(codes) > 0 {
		b.WriteString(")")
	}
	l := r.Latency
	fmt.Fprintf(&b, "\nlatency µs:  p50 %d  p90 %d  p99 %d  p99.9 %d  max %d", l.P50, l.P90, l.P99, l.P999, l.Max)
	return b.String()
}

// startProgress prints a progress line every second (see
// benchOptions.progress) until the returned function is called.
func (o *benchOptions) startProgress(start time.Time, workers []*benchWorker) (stop func()) {
	report := o.progress
	if report == nil {
		f, ok := o.IO.ErrOut.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return func() {}
		}
		report = func(elapsed time.Duration, requests int64, rate float64) {
			fmt.Fprintf(o.IO.ErrOut, "%6.1fs  %d requests  %.0f requests/s\n", elapsed.Seconds(), requests, rate)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var last int64
		lastAt := start
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				var n int64
				for _, w := range workers {
					n += w.done.Load()
				}
				report(now.Sub(start), n, float64(n-last)/now.Sub(lastAt).Seconds())
				last, lastAt = n, now
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// dial opens one connection, with TLS when the global flags ask for it.
func (o *benchOptions) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: o.Timeout}
	var conn net.Conn
	var err error
	if o.tlsConfig != nil {
		conn, err = (&tls.Dialer{NetDialer: d, Config: o.tlsConfig}).DialContext(ctx, "tcp", o.Server)
	} else {
		conn, err = d.DialContext(ctx, "tcp", o.Server)
	}
	if err != nil {
		return nil, withHint(fmt.Errorf("%w: %w", client.ErrConnection, err),
			fmt.Sprintf("is the server running at %s? (set --server or AUTHLINE_SERVER)", o.Server))
	}
	return conn, nil
}
