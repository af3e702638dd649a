package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
)

// benchPlan is what every connection of a run sends.
type benchPlan struct {
	raw bool // --raw: no greeting, one line per response, "-" means error
	// lines are the request lines, "\n"-terminated, sent in turn (one
	// line for every workload but mixed).
	lines [][]byte
	// user and password are the bench account; loginPerConn says that
	// every connection logs in by session before the run.
	user, password string
	loginPerConn   bool
	// sayHello (raw idle): every connection sends the line once when it
	// opens, as an authline connection logs in.
	sayHello bool
}

// prepareAuthline registers the bench user (and, for get-token, logs in
// once in token mode) and returns the plan of the run.
func (o *benchOptions) prepareAuthline(ctx context.Context) (*benchPlan, error) {
	sc, err := o.dialSetup(ctx, benchIdleReadBuffer)
	if err != nil {
		return nil, err
	}
	defer sc.conn.Close()
	p := &benchPlan{user: "bench-" + randomHex(4)}
	for p.password == "" || strings.Contains(p.password, p.user) {
		p.password = "bench-" + randomHex(12)
	}
	if _, err := sc.do("REGISTER " + p.user + " " + p.password); err != nil {
		return nil, fmt.Errorf("registering the bench user: %w", err)
	}
	get := []byte("GET protected\n")
	ping := []byte("PING\n")
	login := []byte("LOGIN " + p.user + " " + p.password + "\n")
	switch o.Workload {
	case workloadGetSession:
		p.lines, p.loginPerConn = [][]byte{get}, true
	case workloadGetToken:
		m, err := sc.do("LOGIN " + p.user + " " + p.password + " token")
		if err != nil {
			return nil, fmt.Errorf("logging in: %w", err)
		}
		var data struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal(m.Data, &data); err != nil || data.Token == "" {
			return nil, fmt.Errorf("logging in: no token in the response")
		}
		p.lines = [][]byte{[]byte("GET protected " + data.Token + "\n")}
	case workloadPing:
		p.lines = [][]byte{ping}
	case workloadLogin:
		p.lines = [][]byte{login}
	case workloadIdle:
		p.lines, p.loginPerConn = [][]byte{[]byte("WHOAMI\n")}, true
	case workloadMixed:
		// Out of every 100 requests: 1 login, 9 pings, 90 gets, spread out.
		p.loginPerConn = true
		for k := range 100 {
			switch {
			case k == 0:
				p.lines = append(p.lines, login)
			case k%10 == 5 && k < 90:
				p.lines = append(p.lines, ping)
			default:
				p.lines = append(p.lines, get)
			}
		}
	}
	return p, nil
}

// benchSetupConn is a connection during set-up, when speed does not
// matter: messages are decoded as JSON.
type benchSetupConn struct {
	conn net.Conn
	r    *bufio.Reader
	opts *benchOptions
}

type benchMessage struct {
	Event   string          `json:"event"`
	OK      *bool           `json:"ok"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// dialSetup connects and reads the greeting, bounded by --timeout.
func (o *benchOptions) dialSetup(ctx context.Context, bufSize int) (*benchSetupConn, error) {
	conn, err := o.dial(ctx)
	if err != nil {
		return nil, err
	}
	if o.Timeout > 0 {
		conn.SetDeadline(time.Now().Add(o.Timeout))
	}
	sc := &benchSetupConn{conn: conn, r: bufio.NewReaderSize(conn, bufSize), opts: o}
	m, err := sc.read()
	if err == nil && m.Event != "hello" {
		err = sc.refusal(m)
		if m.OK == nil {
			err = fmt.Errorf("%w: expected the hello greeting, got %q (is this an authline server? see --raw)", client.ErrConnection, m.Event)
		}
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return sc, nil
}

// read reads one message.
func (sc *benchSetupConn) read() (benchMessage, error) {
	var m benchMessage
	line, err := sc.r.ReadBytes('\n')
	if err != nil {
		return m, fmt.Errorf("%w: %w", client.ErrConnection, err)
	}
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("%w: bad message from the server: %q", client.ErrConnection, bytes.TrimSpace(line))
	}
	return m, nil
}

// do sends one request and returns its response, or the refusal as an
// error.
func (sc *benchSetupConn) do(line string) (benchMessage, error) {
	if _, err := sc.conn.Write([]byte(line + "\n")); err != nil {
		return benchMessage{}, fmt.Errorf("%w: %w", client.ErrConnection, err)
	}
	for {
		m, err := sc.read()
		if err != nil {
			return m, err
		}
		if m.OK == nil {
			continue // an event
		}
		if !*m.OK {
			return m, sc.refusal(m)
		}
		return m, nil
	}
}

// refusal turns an error response into an error, with advice for the
// server's limits.
func (sc *benchSetupConn) refusal(m benchMessage) error {
	err := error(&protocol.Error{Code: protocol.Code(m.Error), Message: m.Message})
	switch protocol.Code(m.Error) {
	case protocol.CodeRateLimited:
		err = withHint(err, "start authlined with --ip-auth-rate 0 and --no-login-throttle to benchmark logins")
	case protocol.CodeUnavailable:
		err = withHint(err, "the server may limit connections: see authlined's --max-conns and --max-conns-per-ip")
	}
	return err
}

// benchWorker is one connection of the run, with its own results, merged
// at the end so that the loop takes no lock.
type benchWorker struct {
	conn  net.Conn
	r     *bufio.Reader
	raw   bool
	lines [][]byte
	next  int
	buf   []byte
	// hist holds the latencies of the responses counted; nil for idle
	// (a histogram is 140 KB: too much for 10,000 connections).
	hist *hdrhistogram.Histogram
	// requests and errors count the responses received in the measured
	// window; errors is made on the first one.
	requests int64
	errors   map[string]*int64
	checkUS  int64 // idle: latency of the check, if it succeeded

	done atomic.Int64 // every response (or failure), read by the progress reporter
}

// Read buffers: a large one where responses come pipelined, a small one
// for idle connections, which are many and read one response at a time.
const (
	benchReadBuffer     = 16 << 10
	benchIdleReadBuffer = 2 << 10
)

// newWorker connects (and for authline reads the greeting and logs in).
// Only a worker that will loop gets a histogram.
func (o *benchOptions) newWorker(ctx context.Context, p *benchPlan, i int, loops bool) (*benchWorker, error) {
	w := &benchWorker{
		raw:   p.raw,
		lines: p.lines,
		next:  (i * 37) % len(p.lines), // so that the mixed logins do not line up
	}
	size := benchReadBuffer
	if loops {
		w.hist = hdrhistogram.New(benchMinLatencyUS, benchMaxLatencyUS, benchSigFigs)
	} else {
		size = benchIdleReadBuffer
	}
	if p.raw {
		conn, err := o.dial(ctx)
		if err != nil {
			return nil, err
		}
		w.conn, w.r = conn, bufio.NewReaderSize(conn, size)
		if p.sayHello {
			if o.Timeout > 0 {
				conn.SetDeadline(time.Now().Add(o.Timeout))
			}
			_, err := conn.Write(p.lines[0])
			if err == nil {
				_, err = w.r.ReadSlice('\n')
			}
			if err != nil {
				conn.Close()
				return nil, fmt.Errorf("%w: %w", client.ErrConnection, err)
			}
		}
	} else {
		sc, err := o.dialSetup(ctx, size)
		if err != nil {
			return nil, err
		}
		w.conn, w.r = sc.conn, sc.r
		if p.loginPerConn {
			if _, err := sc.do("LOGIN " + p.user + " " + p.password); err != nil {
				sc.conn.Close()
				return nil, fmt.Errorf("logging in: %w", err)
			}
		}
	}
	w.conn.SetDeadline(time.Time{})
	return w, nil
}

// benchRun is shared by the workers: the measured window, or the budget
// of requests.
type benchRun struct {
	limit   int64 // total requests; 0: run until deadline
	claimed atomic.Int64
	// from and deadline bound the measured window (--duration): only the
	// responses received in it count. Zero with --requests.
	from, deadline time.Time
	timeout        time.Duration // bound on each batch; 0: none
	interval       time.Duration // --rate: between two requests of one connection; 0: closed loop
}

// claim returns how many requests (at most n) the next batch may send;
// 0 means stop.
func (r *benchRun) claim(n int) int {
	if r.limit == 0 {
		if time.Now().Before(r.deadline) {
			return n
		}
		return 0
	}
	end := r.claimed.Add(int64(n))
	start := end - int64(n)
	if start >= r.limit {
		return 0
	}
	return int(min(int64(n), r.limit-start))
}

// counts reports whether a response received at t is counted.
func (r *benchRun) counts(t time.Time) bool {
	return r.deadline.IsZero() || !t.Before(r.from) && t.Before(r.deadline)
}

// batchDeadline is the I/O deadline of a batch started at now: --timeout
// later, and no later than the end of the window; zero for none.
func (r *benchRun) batchDeadline(now time.Time) time.Time {
	var d time.Time
	if r.timeout > 0 {
		d = now.Add(r.timeout)
	}
	if !r.deadline.IsZero() && (d.IsZero() || r.deadline.Before(d)) {
		d = r.deadline
	}
	return d
}

// loop runs the loop of one connection until the run ends or the
// connection fails. With --rate, the first batch is due at first and the
// next ones at regular times after it; a batch sent late because the
// responses to the previous one came late has its latency counted from
// when it was due (no coordinated omission).
func (w *benchWorker) loop(run *benchRun, pipeline int, first time.Time) {
	due := first
	for {
		n := run.claim(pipeline)
		if n == 0 {
			return
		}
		var t0 time.Time // when the batch is due; zero: when it is sent
		if run.interval > 0 {
			if !run.deadline.IsZero() && !due.Before(run.deadline) {
				return
			}
			if d := time.Until(due); d > 0 {
				// On time: a late wake-up is the client's delay, not
				// the server's, so the latency runs from the write.
				time.Sleep(d)
			} else {
				// Late, because the previous responses were: the
				// latency runs from when the batch was due.
				t0 = due
			}
			due = due.Add(time.Duration(n) * run.interval)
		}
		w.buf = w.buf[:0]
		for range n {
			w.buf = append(w.buf, w.lines[w.next]...)
			if w.next++; w.next == len(w.lines) {
				w.next = 0
			}
		}
		now := time.Now()
		if t0.IsZero() {
			t0 = now
		}
		if d := run.batchDeadline(now); !d.IsZero() {
			w.conn.SetDeadline(d)
		}
		if _, err := w.conn.Write(w.buf); err != nil {
			w.fail(run, n, err)
			return
		}
		for i := range n {
			at, err := w.readResponse(run)
			if err != nil {
				w.fail(run, n-i, err)
				return
			}
			w.done.Add(1)
			if run.counts(at) {
				w.requests++
				us := at.Sub(t0).Microseconds()
				w.hist.RecordValue(max(benchMinLatencyUS, min(us, benchMaxLatencyUS)))
			}
		}
	}
}

// check sends one request (idle: after the idle time) and reads its
// response.
func (w *benchWorker) check(run *benchRun) {
	t0 := time.Now()
	if d := run.batchDeadline(t0); !d.IsZero() {
		w.conn.SetDeadline(d)
	}
	if _, err := w.conn.Write(w.lines[0]); err != nil {
		w.fail(run, 1, err)
		return
	}
	at, err := w.readResponse(run)
	if err != nil {
		w.fail(run, 1, err)
		return
	}
	w.requests++
	w.checkUS = max(benchMinLatencyUS, at.Sub(t0).Microseconds())
}

// fail counts the n requests left of a batch as errors of the broken
// connection, unless the measured window is over (then the batch was cut
// by its end).
func (w *benchWorker) fail(run *benchRun, n int, err error) {
	w.done.Add(int64(n))
	if !run.counts(time.Now()) {
		return
	}
	code := "connection"
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		code = "timeout"
	}
	w.count(code, int64(n))
	w.requests += int64(n)
}

func (w *benchWorker) count(code string, n int64) {
	p := w.errors[code]
	if p == nil {
		if w.errors == nil {
			w.errors = map[string]*int64{}
		}
		p = new(int64)
		w.errors[code] = p
	}
	*p += n
}

// merge adds the worker's error counts to m.
func (w *benchWorker) merge(m map[string]int64) {
	for code, n := range w.errors {
		m[code] += *n
	}
}

var (
	benchOKPrefix    = []byte(`{"ok":true`)
	benchEventPrefix = []byte(`{"event"`)
	benchOKTrue      = []byte(`"ok":true`)
	benchOKFalse     = []byte(`"ok":false`)
	benchErrorField  = []byte(`"error":"`)
)

// readResponse reads the next response, returns when it was received, and
// counts it if it is an error received in the measured window; authline
// events in between are skipped.
func (w *benchWorker) readResponse(run *benchRun) (time.Time, error) {
	for {
		line, err := w.r.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			return time.Time{}, err
		}
		at := time.Now()
		counted := run.counts(at)
		full := err == nil
		event := false
		switch {
		case w.raw:
			if len(line) > 0 && line[0] == '-' && counted {
				code := line[1:]
				if i := bytes.IndexAny(code, " \r\n"); i >= 0 {
					code = code[:i]
				}
				w.countBytes(code)
			}
		case bytes.HasPrefix(line, benchOKPrefix):
		case bytes.HasPrefix(line, benchEventPrefix):
			event = true
		case bytes.Contains(line, benchOKFalse):
			if !counted {
				break
			}
			code := []byte(nil)
			if i := bytes.Index(line, benchErrorField); i >= 0 {
				code = line[i+len(benchErrorField):]
				if j := bytes.IndexByte(code, '"'); j >= 0 {
					code = code[:j]
				}
			}
			w.countBytes(code)
		case bytes.Contains(line, benchOKTrue):
		default:
			if counted {
				w.count("bad_response", 1)
			}
		}
		for !full { // discard the rest of a long line
			if _, err = w.r.ReadSlice('\n'); err != nil && err != bufio.ErrBufferFull {
				return time.Time{}, err
			}
			full = err == nil
		}
		if !event {
			return at, nil
		}
	}
}

// countBytes counts an error by code without allocating once the code was
// seen.
func (w *benchWorker) countBytes(code []byte) {
	if len(code) == 0 {
		w.count("error", 1)
		return
	}
	if p := w.errors[string(code)]; p != nil {
		*p++
		return
	}
	w.count(string(code), 1)
}
