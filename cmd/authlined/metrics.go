package main

// Monitoring and the lame-duck shutdown of `authlined serve`: the
// --metrics-listen HTTP server (Prometheus /metrics, /healthz, /readyz)
// and the --lame-duck-delay before the graceful shutdown.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/authline/authline/server"
	"github.com/authline/authline/server/auth"
	"github.com/authline/authline/server/metrics"
	"github.com/authline/authline/server/store"
)

// monitorOptions are serve's flags for monitoring and shutdown.
type monitorOptions struct {
	metricsListen string
	lameDuckDelay time.Duration
}

func addMonitorFlags(f *pflag.FlagSet, o *monitorOptions) {
	f.StringVar(&o.metricsListen, "metrics-listen", "", `HTTP address for Prometheus /metrics, /healthz and /readyz, e.g. 127.0.0.1:9411 (default "": off)`)
	f.DurationVar(&o.lameDuckDelay, "lame-duck-delay", 0, "on SIGTERM, report not ready on /readyz and keep serving this long before shutting down, so a load balancer stops sending new connections first (a few health-check intervals)")
}

// Timeouts of the metrics HTTP server.
const (
	metricsReadHeaderTimeout = 5 * time.Second
	metricsReadTimeout       = 10 * time.Second
	metricsWriteTimeout      = 30 * time.Second
	metricsIdleTimeout       = 2 * time.Minute
	metricsStopTimeout       = 5 * time.Second
)

// monitor is serve's metrics HTTP server. A nil *monitor (no
// --metrics-listen) is valid: every method does nothing, and the server
// runs without observers.
type monitor struct {
	metrics *metrics.Metrics
	ready   metrics.Readiness
	hs      *http.Server
	done    chan struct{}
	log     *slog.Logger
}

// startMonitor starts the metrics HTTP server on addr, before anything
// else, so that /healthz answers while the store opens and /readyz says
// "starting" until the protocol listener is up. It returns nil, nil when
// addr is "".
func startMonitor(addr string, log *slog.Logger) (*monitor, error) {
	if addr == "" {
		return nil, nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, usageErrorf("--metrics-listen: %v", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	mon := &monitor{metrics: metrics.New(version), done: make(chan struct{}), log: log}
	mon.hs = &http.Server{
		Handler:           mon.metrics.Handler(mon.ready.Check),
		ReadHeaderTimeout: metricsReadHeaderTimeout,
		ReadTimeout:       metricsReadTimeout,
		WriteTimeout:      metricsWriteTimeout,
		IdleTimeout:       metricsIdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(mon.done)
		if err := mon.hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server failed", "err", err)
		}
	}()
	log.Info("metrics listening", "addr", ln.Addr().String())
	return mon, nil
}

// store wraps the auth service's store so that its calls are timed.
func (mon *monitor) store(st store.Store) store.Store {
	if mon == nil {
		return st
	}
	return mon.metrics.WrapStore(st)
}

// authObserver is auth.Config.Observer: nil (not a nil *Metrics) when off.
func (mon *monitor) authObserver() auth.Observer {
	if mon == nil {
		return nil
	}
	return mon.metrics
}

// serverObserver is server.Server.Observer: nil when off.
func (mon *monitor) serverObserver() server.Observer {
	if mon == nil {
		return nil
	}
	return mon.metrics
}

// attach points the readiness check at the store and the hash pool
// gauges at the service.
func (mon *monitor) attach(st store.Store, svc *auth.Service) {
	if mon == nil {
		return
	}
	mon.ready.SetPing(metrics.StorePing(st))
	mon.metrics.WatchHashPool(svc.HashPoolStats)
}

// serving marks the server ready: the protocol listener is up.
func (mon *monitor) serving() {
	if mon != nil {
		mon.ready.Serving()
	}
}

// stop shuts the metrics server down; it runs last, after the protocol
// server stopped and the store closed.
func (mon *monitor) stop() {
	if mon == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), metricsStopTimeout)
	defer cancel()
	if err := mon.hs.Shutdown(ctx); err != nil {
		mon.hs.Close()
	}
	<-mon.done
}

// lameDuck is the first phase of a shutdown: /readyz turns unready at
// once, then the server keeps serving for delay, so that a load balancer
// that checks /readyz stops sending it new connections before it stops
// accepting them. A second SIGINT or SIGTERM, or the server failing, ends
// the wait early; the server's error, if any, is returned.
func lameDuck(mon *monitor, log *slog.Logger, delay time.Duration, errc <-chan error) error {
	if mon != nil {
		mon.ready.Drain()
	}
	if delay <= 0 {
		return nil
	}
	log.Info("lame duck: not ready, still serving", "delay", delay)
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case sig := <-again:
		log.Info("lame duck cut short", "signal", sig.String())
	case err := <-errc:
		return err
	}
	return nil
}
