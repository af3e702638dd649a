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
}

// prepareAuthline registers the bench user (and, for get-token, logs in
// once in token mode) and returns the plan of the run.
func (o *benchOptions) prepareAuthline(ctx context.Context) (*benchPlan, error) {
	sc, err := o.dialSetup(ctx)
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
func (o *benchOptions) dialSetup(ctx context.Context) (*benchSetupConn, error) {
	conn, err := o.dial(ctx)
	if err != nil {
		return nil, err
	}
	if o.Timeout > 0 {
		conn.SetDeadline(time.Now().Add(o.Timeout))
	}
	sc := &benchSetupConn{conn: conn, r: bufio.NewReaderSize(conn, 16<<10), opts: o}
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
	conn   net.Conn
	r      *bufio.Reader
	raw    bool
	lines  [][]byte
	next   int
	buf    []byte
	hist   *hdrhistogram.Histogram
	errors map[string]*int64
	done   atomic.Int64 // requests answered (or failed), read by the progress reporter
}

// newWorker connects (and for authline reads the greeting and logs in).
func (o *benchOptions) newWorker(ctx context.Context, p *benchPlan, i int) (*benchWorker, error) {
	w := &benchWorker{
		raw:    p.raw,
		lines:  p.lines,
		next:   (i * 37) % len(p.lines), // so that the mixed logins do not line up
		hist:   hdrhistogram.New(benchMinLatencyUS, benchMaxLatencyUS, benchSigFigs),
		errors: map[string]*int64{},
	}
	if p.raw {
		conn, err := o.dial(ctx)
		if err != nil {
			return nil, err
		}
		w.conn, w.r = conn, bufio.NewReaderSize(conn, 16<<10)
	} else {
		sc, err := o.dialSetup(ctx)
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
		w.conn.SetDeadline(time.Time{})
	}
	return w, nil
}

// benchRun is shared by the workers: the deadline, or the budget of
// requests.
type benchRun struct {
	limit    int64 // total requests; 0: run until deadline
	claimed  atomic.Int64
	deadline time.Time
	timeout  time.Duration // bound on each batch; 0: none
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

// loop runs the closed loop of one connection until the run ends or the
// connection fails.
func (w *benchWorker) loop(run *benchRun, pipeline int) {
	for {
		n := run.claim(pipeline)
		if n == 0 {
			return
		}
		w.buf = w.buf[:0]
		for range n {
			w.buf = append(w.buf, w.lines[w.next]...)
			if w.next++; w.next == len(w.lines) {
				w.next = 0
			}
		}
		t0 := time.Now()
		if run.timeout > 0 {
			w.conn.SetDeadline(t0.Add(run.timeout))
		}
		if _, err := w.conn.Write(w.buf); err != nil {
			w.fail(n, err)
			return
		}
		for i := range n {
			if err := w.readResponse(); err != nil {
				w.fail(n-i, err)
				return
			}
			us := time.Since(t0).Microseconds()
			w.hist.RecordValue(max(benchMinLatencyUS, min(us, benchMaxLatencyUS)))
			w.done.Add(1)
		}
	}
}

// fail counts the n requests left of a batch as errors of the broken
// connection.
func (w *benchWorker) fail(n int, err error) {
	code := "connection"
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		code = "timeout"
	}
	w.count(code, int64(n))
	w.done.Add(int64(n))
}

func (w *benchWorker) count(code string, n int64) {
	p := w.errors[code]
	if p == nil {
		p = new(int64)
		w.errors[code] = p
	}
	*p += n
}

var (
	benchOKPrefix    = []byte(`{"ok":true`)
	benchEventPrefix = []byte(`{"event"`)
	benchOKTrue      = []byte(`"ok":true`)
	benchOKFalse     = []byte(`"ok":false`)
	benchErrorField  = []byte(`"error":"`)
)

// readResponse reads the next response and counts it if it is an error;
// authline events in between are skipped.
func (w *benchWorker) readResponse() error {
	for {
		line, err := w.r.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			return err
		}
		full := err == nil
		event := false
		switch {
		case w.raw:
			if len(line) > 0 && line[0] == '-' {
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
			w.count("bad_response", 1)
		}
		for !full { // discard the rest of a long line
			if _, err = w.r.ReadSlice('\n'); err != nil && err != bufio.ErrBufferFull {
				return err
			}
			full = err == nil
		}
		if !event {
			return nil
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
