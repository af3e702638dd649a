package cli

import (
	"context"
	"crypto/tls"
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
	workloadIdle       = "idle"
)

var benchWorkloads = []string{workloadGetSession, workloadGetToken, workloadPing, workloadLogin, workloadMixed, workloadIdle}

// benchSetupParallel bounds the connections being set up (connected,
// greeted, logged in) at once: 10,000 connections opened at once would
// overflow the listen backlog, and their logins the server's hash queue
// (32 by default, besides the workers).
const benchSetupParallel = 32

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
	Warmup   time.Duration
	Rate     float64
	// ReadyFile, when set, is written once the set-up is done, so that a
	// script can start something else in step with the measured part.
	ReadyFile string

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
  idle         each connection logs in (session mode), then all stay idle for
               --duration; then each sends one WHOAMI, to check that it is
               still open and logged in. For measuring the server's memory
               per idle connection (see --ready-file)

Each run registers its own user, bench-<random hex>, with a random password;
the account is left on the server. The logins of the set-up (one per
connection for get-session, mixed and idle) and the login workload are
subject to the server's login limits: start authlined with --ip-auth-rate 0
and --no-login-throttle (and --max-conns-per-ip 0 for over 256 connections,
--max-conns 0 for over 10,000) to measure the server rather than its limits.
At most 32 connections are set up at once.

With --raw LINE, bench sends LINE (with "\r\n") as every request and reads one
line per request, expecting no greeting: it measures any line-protocol server.
A response starting with "-" is an error (Redis's convention), for example
  authline bench --server 127.0.0.1:6379 --raw PING
With --raw and --workload idle, each connection sends LINE once when it
opens and once after the idle time.

With --duration, the measurement is the window from the end of --warmup to
--duration later: only responses received in it are counted (requests,
errors, latency), requests/s is their number over the window, and the
requests still in flight when it closes are abandoned. With --rate, each
connection sends its share of the rate at regular times instead of as fast
as it can; a request sent late because the previous responses came late
has its latency counted from the time it was due, so that a server that
falls behind is not hidden by a client that waits for it.

A response with "ok":false (in raw mode, a line starting with "-") is
counted as an error, by code, and the run continues. Latency is the time
from a batch's write to the reading of each of its responses. Progress is
printed on standard error every second when it is a terminal.`,
		Example: `  authline bench --workload get-session --conns 50 --duration 10s
  authline bench --workload ping --pipeline 16 --requests 1000000 -o json
  authline bench --workload get-session --conns 10 --rate 2000 --warmup 2s --duration 10s
  authline bench --workload idle --conns 10000 --duration 30s --ready-file /tmp/ready`,
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
	fl.StringVar(&opts.Workload, "workload", workloadGetSession, "get-session, get-token, ping, login, mixed or idle")
	fl.StringVar(&opts.Raw, "raw", "", "send this fixed line as every request, read one line per request, expect no greeting")
	fl.DurationVar(&opts.Warmup, "warmup", 0, "run the workload this long before the measured --duration")
	fl.Float64Var(&opts.Rate, "rate", 0, "requests per second over all connections, sent at regular times (0: as fast as possible)")
	fl.StringVar(&opts.ReadyFile, "ready-file", "", "write this file once every connection is set up (open, logged in)")
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
	case o.Warmup < 0:
		return usageErrorf("--warmup must not be negative")
	case o.Warmup > 0 && o.Requests > 0:
		return usageErrorf("--warmup goes with --duration, not --requests")
	case o.Rate < 0:
		return usageErrorf("--rate must not be negative")
	}
	if !slices.Contains(benchWorkloads, o.Workload) {
		return usageErrorf("unknown workload %q (want %s)", o.Workload, strings.Join(benchWorkloads, ", "))
	}
	if cmd.Flags().Changed("raw") {
		if o.Raw == "" || strings.ContainsAny(o.Raw, "\r\n") {
			return usageErrorf("--raw must be one non-empty line")
		}
		if cmd.Flags().Changed("workload") && o.Workload != workloadIdle {
			return usageErrorf("--raw goes with no --workload but idle")
		}
	}
	if o.Workload == workloadIdle {
		switch {
		case o.Requests > 0:
			return usageErrorf("--workload idle runs for --duration, not --requests")
		case o.Pipeline > 1 || o.Rate > 0 || o.Warmup > 0:
			return usageErrorf("--workload idle takes no --pipeline, --rate or --warmup")
		}
	}
	return nil
}

// benchResult is the JSON output of a run.
type benchResult struct {
	Workload string           `json:"workload"`
	Conns    int              `json:"conns"`
	Pipeline int              `json:"pipeline"`
	Rate     float64          `json:"rate,omitempty"` // --rate, requests/s asked for
	Requests int64            `json:"requests"`
	Errors   map[string]int64 `json:"errors"`
	// SetupS is how long opening (and logging in) the connections took.
	SetupS  float64 `json:"setup_s"`
	WarmupS float64 `json:"warmup_s,omitempty"`
	// DurationS is the measured time: the window of --duration, the time
	// the --requests took, or (idle) the time the connections were idle.
	DurationS float64      `json:"duration_s"`
	RPS       float64      `json:"rps"` // 0 for idle
	Latency   benchLatency `json:"latency_us"`
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
		plan.sayHello = opts.Workload == workloadIdle
	} else {
		var err error
		if plan, err = opts.prepareAuthline(ctx); err != nil {
			return err
		}
	}
	idle := opts.Workload == workloadIdle

	// Connect (and log in) every connection before the clock starts, at
	// most benchSetupParallel at a time; the first failure stops the set-up.
	setupStart := time.Now()
	workers := make([]*benchWorker, opts.Conns)
	defer func() {
		for _, w := range workers {
			if w != nil {
				w.conn.Close()
			}
		}
	}()
	setupCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		setupErr error
	)
	next := make(chan int)
	for range min(opts.Conns, benchSetupParallel) {
		wg.Go(func() {
			for i := range next {
				w, err := opts.newWorker(setupCtx, plan, i, !idle)
				if err != nil {
					errOnce.Do(func() { setupErr = err; cancel() })
					return
				}
				workers[i] = w
			}
		})
	}
feed:
	for i := range workers {
		select {
		case next <- i:
		case <-setupCtx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if setupErr != nil {
		return setupErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	setup := time.Since(setupStart)
	if opts.ReadyFile != "" {
		if err := os.WriteFile(opts.ReadyFile, fmt.Appendf(nil, "ready %d connections %.3fs\n", opts.Conns, setup.Seconds()), 0o644); err != nil {
			return fmt.Errorf("--ready-file: %w", err)
		}
	}
	res := benchResult{Workload: plan.name(opts), Conns: opts.Conns, Pipeline: opts.Pipeline, Rate: opts.Rate,
		Errors: map[string]int64{}, SetupS: setup.Seconds(), WarmupS: opts.Warmup.Seconds()}
	hist := hdrhistogram.New(benchMinLatencyUS, benchMaxLatencyUS, benchSigFigs)

	if idle {
		opts.holdIdle(ctx, setup)
		start := time.Now()
		res.DurationS = start.Sub(setupStart.Add(setup)).Seconds()
		run := &benchRun{timeout: opts.Timeout}
		for _, w := range workers {
			wg.Go(func() { w.check(run) })
		}
		wg.Wait()
		for _, w := range workers {
			res.Requests += w.requests
			w.merge(res.Errors)
			if w.checkUS > 0 { // the check succeeded
				hist.RecordValue(min(w.checkUS, benchMaxLatencyUS))
			}
		}
	} else {
		run := &benchRun{limit: opts.Requests, timeout: opts.Timeout}
		start := time.Now()
		if opts.Requests == 0 {
			run.from = start.Add(opts.Warmup)
			run.deadline = run.from.Add(opts.Duration)
		}
		if opts.Rate > 0 {
			run.interval = time.Duration(float64(opts.Conns) / opts.Rate * float64(time.Second))
		}
		stopProgress := opts.startProgress(start, workers)
		for i, w := range workers {
			// Spread the connections' schedules over one interval.
			first := start.Add(run.interval * time.Duration(i) / time.Duration(opts.Conns))
			wg.Go(func() { w.loop(run, opts.Pipeline, first) })
		}
		wg.Wait()
		end := time.Now()
		stopProgress()
		if run.deadline.IsZero() {
			res.DurationS = end.Sub(start).Seconds()
		} else {
			if end.After(run.deadline) {
				end = run.deadline
			}
			res.DurationS = max(0, end.Sub(run.from).Seconds())
		}
		for _, w := range workers {
			hist.Merge(w.hist)
			res.Requests += w.requests
			w.merge(res.Errors)
		}
		if res.DurationS > 0 {
			res.RPS = float64(res.Requests) / res.DurationS
		}
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

// holdIdle keeps the connections idle for --duration (or until ctx ends),
// saying so on a terminal.
func (o *benchOptions) holdIdle(ctx context.Context, setup time.Duration) {
	if f, ok := o.IO.ErrOut.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(o.IO.ErrOut, "%d connections open in %.1fs; holding them idle for %s\n", o.Conns, setup.Seconds(), o.Duration)
	}
	t := time.NewTimer(o.Duration)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (p *benchPlan) name(opts *benchOptions) string {
	switch {
	case p.raw && opts.Workload == workloadIdle:
		return "raw-" + workloadIdle
	case p.raw:
		return "raw"
	}
	return opts.Workload
}

func (r benchResult) text(server string) string {
	var b strings.Builder
	idle := r.Workload == workloadIdle || r.Workload == "raw-"+workloadIdle
	if idle {
		fmt.Fprintf(&b, "workload:    %s (%s, %d connections)\n", r.Workload, server, r.Conns)
		fmt.Fprintf(&b, "set-up:      %.2fs\n", r.SetupS)
		fmt.Fprintf(&b, "idle:        %.2fs\n", r.DurationS)
		fmt.Fprintf(&b, "checked:     %d\n", r.Requests)
	} else {
		fmt.Fprintf(&b, "workload:    %s (%s, %d connections, pipeline %d", r.Workload, server, r.Conns, r.Pipeline)
		if r.Rate > 0 {
			fmt.Fprintf(&b, ", rate %g/s", r.Rate)
		}
		b.WriteString(")\n")
		fmt.Fprintf(&b, "requests:    %d\n", r.Requests)
		fmt.Fprintf(&b, "duration:    %.2fs", r.DurationS)
		if r.WarmupS > 0 {
			fmt.Fprintf(&b, " (after %.2fs of warm-up)", r.WarmupS)
		}
		fmt.Fprintf(&b, "\nrequests/s:  %.1f\n", r.RPS)
	}
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
	label := "latency µs:"
	if idle {
		label = "check µs:  " // the latency of the checks after the idle time
	}
	fmt.Fprintf(&b, "\n%s  p50 %d  p90 %d  p99 %d  p99.9 %d  max %d", label, l.P50, l.P90, l.P99, l.P999, l.Max)
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
