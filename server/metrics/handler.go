package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/authline/authline/server/store"
)

// Handler serves, on one listener:
//
//   - GET /metrics: the metrics in the Prometheus text (or OpenMetrics)
//     format;
//   - GET /healthz: 200 "ok" while the process is up (liveness);
//   - GET /readyz: 200 "ok" when ready returns nil, else 503 with the
//     error's text (readiness: a load balancer sends new connections only
//     to ready instances). A nil ready is always ready.
//
// ready gets the request's context, which ends if the prober gives up.
func (m *Metrics) Handler(ready func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:          m.reg, // counts its own errors in promhttp_metric_handler_errors_total
		EnableOpenMetrics: true,
		Timeout:           10 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		plain(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if ready != nil {
			if err := ready(r.Context()); err != nil {
				plain(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
				return
			}
		}
		plain(w, http.StatusOK, "ok")
	})
	return mux
}

func plain(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintln(w, body)
}

// Readiness errors, as /readyz reports them.
var (
	ErrStarting     = errors.New("starting")
	ErrShuttingDown = errors.New("shutting down")
)

// DefaultPingTimeout bounds the store ping of a readiness check.
const DefaultPingTimeout = time.Second

// Readiness is the state behind /readyz: not ready while starting, ready
// once Serving is called and as long as the store answers its ping, and
// not ready for good once Drain is called (the lame-duck phase of a
// shutdown). The zero value is starting, with no ping. It is safe for
// concurrent use.
type Readiness struct {
	state atomic.Int32 // 0 starting, 1 serving, 2 draining
	ping  atomic.Pointer[func(context.Context) error]
	// PingTimeout bounds one ping (DefaultPingTimeout when zero). Set it
	// before the first Check.
	PingTimeout time.Duration
}

// SetPing sets the store check, typically StorePing(st).
func (r *Readiness) SetPing(ping func(context.Context) error) { r.ping.Store(&ping) }

// Serving marks the server as serving (ready, if the ping succeeds),
// unless it is draining already.
func (r *Readiness) Serving() { r.state.CompareAndSwap(0, 1) }

// Drain marks the server as shutting down: not ready from now on.
func (r *Readiness) Drain() { r.state.Store(2) }

// Draining reports whether Drain was called.
func (r *Readiness) Draining() bool { return r.state.Load() == 2 }

// Check reports why the server is not ready, or nil. It pings the store
// (if a ping is set) only when the server is otherwise ready.
func (r *Readiness) Check(ctx context.Context) error {
	switch r.state.Load() {
	case 0:
		return ErrStarting
	case 2:
		return ErrShuttingDown
	}
	ping := r.ping.Load()
	if ping == nil {
		return nil
	}
	d := r.PingTimeout
	if d <= 0 {
		d = DefaultPingTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := (*ping)(ctx); err != nil {
		return fmt.Errorf("store unreachable: %w", err)
	}
	return nil
}

// StorePing returns a cheap check that st answers: it reads the newest
// change-feed position, one indexed read.
func StorePing(st store.Store) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := st.LatestChange(ctx)
		return err
	}
}
