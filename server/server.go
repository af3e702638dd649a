// Package server is authlined's transport: it accepts TCP (or TLS)
// connections, frames newline-delimited requests, keeps each connection's
// session, and dispatches to a Backend. It knows nothing of storage or of
// the command line.
package server

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the Server's limits.
const (
	DefaultMaxLineBytes        = 16 << 10
	DefaultMaxLineBytesPreAuth = 4 << 10
	DefaultIdleTimeout         = 5 * time.Minute
	DefaultLineTimeout         = 10 * time.Second
	DefaultWriteTimeout        = 10 * time.Second
	DefaultMaxConns            = 10000
	DefaultMaxConnsPerIP       = 256
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("server: closed")

// Server serves the authline protocol. Set the fields before calling Serve.
// For every limit, zero takes the default above and a negative value
// switches the limit off.
type Server struct {
	Backend Backend      // required
	Logger  *slog.Logger // nil discards logs
	Version string       // announced in the greeting

	// MaxLineBytes is the longest request line accepted, terminator not
	// counted; a longer one gets 413 and the connection is closed.
	MaxLineBytes int
	// MaxLineBytesPreAuth is the tighter line limit for connections that
	// have not logged in or sent a valid token yet (as Redis and memcached
	// limit unauthenticated clients). It never exceeds MaxLineBytes.
	MaxLineBytesPreAuth int
	// IdleTimeout closes a connection that starts no request for that long.
	IdleTimeout time.Duration
	// LineTimeout closes a connection whose started line is not complete
	// after that long (slowloris).
	LineTimeout time.Duration
	// WriteTimeout bounds each write to a client, so one that stops
	// reading cannot hold the server's buffers forever.
	WriteTimeout time.Duration
	// MaxConns and MaxConnsPerIP bound open connections, in all and from
	// one IP address; a connection over a limit gets a 503 and is closed.
	MaxConns      int
	MaxConnsPerIP int

	// Observer, if set, is told about connections, requests and limits
	// hit (for metrics; see Observer).
	Observer Observer

	// limits holds the limits in force, defaults resolved: the fields
	// above at the start, then whatever SetLimits put there.
	limits atomic.Pointer[Limits]

	mu         sync.Mutex
	listeners  map[*net.Listener]struct{}
	conns      map[*conn]struct{}
	connsPerIP map[netip.Addr]int
	sessions   map[string]map[*conn]struct{} // connections by session user
	inShutdown atomic.Bool
	connWG     sync.WaitGroup // connection goroutines, rejected ones included

	initOnce sync.Once
	// baseCtx is the parent of every request's context; it is cancelled
	// when the server is closed for good, aborting store calls in flight.
	baseCtx    context.Context
	cancelBase context.CancelFunc
}

// orDefault resolves a limit field: zero is def, negative is off.
func orDefault[T int | time.Duration](v, def, off T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return off
	}
	return v
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		if s.Logger == nil {
			s.Logger = slog.New(slog.DiscardHandler)
		}
		s.storeLimits(Limits{
			MaxLineBytes:        s.MaxLineBytes,
			MaxLineBytesPreAuth: s.MaxLineBytesPreAuth,
			IdleTimeout:         s.IdleTimeout,
			LineTimeout:         s.LineTimeout,
			WriteTimeout:        s.WriteTimeout,
			MaxConns:            s.MaxConns,
			MaxConnsPerIP:       s.MaxConnsPerIP,
		})
		if s.Version == "" {
			s.Version = "0.0.0"
		}
		s.listeners = make(map[*net.Listener]struct{})
		s.conns = make(map[*conn]struct{})
		s.connsPerIP = make(map[netip.Addr]int)
		s.sessions = make(map[string]map[*conn]struct{})
		if s.Backend != nil {
			s.Backend.WatchUsers(s.userChanged)
		}
		s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	})
}

// Limits are the limits a Server enforces; each field means what the
// Server field of the same name means, zero and negative values included.
type Limits struct {
	MaxLineBytes        int
	MaxLineBytesPreAuth int
	IdleTimeout         time.Duration
	LineTimeout         time.Duration
	WriteTimeout        time.Duration
	MaxConns            int
	MaxConnsPerIP       int
}

// resolve applies the defaults: zero is the default, negative is off.
func (l Limits) resolve() Limits {
	l.MaxLineBytes = orDefault(l.MaxLineBytes, DefaultMaxLineBytes, math.MaxInt32)
	l.MaxLineBytesPreAuth = min(orDefault(l.MaxLineBytesPreAuth, DefaultMaxLineBytesPreAuth, math.MaxInt32), l.MaxLineBytes)
	l.IdleTimeout = orDefault(l.IdleTimeout, DefaultIdleTimeout, 0)
	l.LineTimeout = orDefault(l.LineTimeout, DefaultLineTimeout, 0)
	l.WriteTimeout = orDefault(l.WriteTimeout, DefaultWriteTimeout, 0)
	l.MaxConns = orDefault(l.MaxConns, DefaultMaxConns, math.MaxInt)
	l.MaxConnsPerIP = orDefault(l.MaxConnsPerIP, DefaultMaxConnsPerIP, math.MaxInt)
	return l
}

func (s *Server) storeLimits(l Limits) {
	l = l.resolve()
	s.limits.Store(&l)
}

// SetLimits replaces the limits in force while the server runs (a config
// reload): new connections are admitted under the new connection limits,
// and open connections apply the line limits and timeouts from the next
// request they read. Connections already over a lowered limit stay open.
func (s *Server) SetLimits(l Limits) {
	s.init()
	s.storeLimits(l)
}

// Limits returns the limits in force, defaults resolved: a limit that is
// off is math.MaxInt32 (line lengths), math.MaxInt (connections) or 0
// (timeouts).
func (s *Server) Limits() Limits {
	s.init()
	return *s.limits.Load()
}

// Serve accepts connections on ln and serves each in its own goroutine
// until Shutdown or Close. It always returns a non-nil error; after
// Shutdown or Close it is ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	if s.Backend == nil {
		return errors.New("server: Backend is nil")
	}
	if !s.trackListener(&ln, true) {
		return ErrServerClosed
	}
	defer s.trackListener(&ln, false)

	var tempDelay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return ErrServerClosed
			}
			// Out of file descriptors and the like: back off and keep
			// serving, as net/http does, instead of spinning or dying.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				s.Logger.Warn("accept failed; retrying", "err", err, "delay", tempDelay)
				time.Sleep(tempDelay)
				continue
			}
			return err
		}
		tempDelay = 0
		c := newConn(s, nc)
		switch s.trackConn(c, true) {
		case admitted:
			go c.serve()
		case overLimit:
			go c.reject()
		case closed:
			nc.Close()
			return ErrServerClosed
		}
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) trackListener(ln *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.inShutdown.Load() {
			return false
		}
		s.listeners[ln] = struct{}{}
	} else {
		delete(s.listeners, ln)
	}
	return true
}

type admission int

const (
	admitted admission = iota
	overLimit
	closed
)

// trackConn admits a new connection, checking the limits before any work
// is done for it, or forgets one that ended. A connection over a limit is
// tracked too (its goroutine answers 503), but does not count.
func (s *Server) trackConn(c *conn, add bool) admission {
	s.mu.Lock()
	defer s.mu.Unlock()
	ip := c.peer.Addr.Addr()
	if !add {
		if !c.rejected {
			delete(s.conns, c)
			if s.connsPerIP[ip]--; s.connsPerIP[ip] <= 0 {
				delete(s.connsPerIP, ip)
			}
			if s.Observer != nil {
				s.Observer.ConnClosed()
			}
		}
		s.connWG.Done()
		return admitted
	}
	if s.inShutdown.Load() {
		return closed
	}
	s.connWG.Add(1)
	if lim := s.limits.Load(); len(s.conns) >= lim.MaxConns || s.connsPerIP[ip] >= lim.MaxConnsPerIP {
		c.rejected = true
		if s.Observer != nil {
			limit := LimitMaxConnsPerIP
			if len(s.conns) >= lim.MaxConns {
				limit = LimitMaxConns
			}
			s.Observer.ConnRejected(limit)
		}
		return overLimit
	}
	s.conns[c] = struct{}{}
	s.connsPerIP[ip]++
	if s.Observer != nil {
		s.Observer.ConnOpened()
	}
	return admitted
}

// Shutdown stops the server gracefully: it closes the listeners, lets each
// connection finish the request it is handling, sends idle connections a
// bye event and closes them. If ctx ends first, the remaining connections
// are closed at once and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.inShutdown.Store(true)
	for ln := range s.listeners {
		(*ln).Close()
	}
	for c := range s.conns {
		c.interrupt()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancelBase()
		return nil
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
	}
}

// Close stops the server at once: listeners and connections are closed and
// requests in flight are cancelled. It waits for connection goroutines to
// end.
func (s *Server) Close() error {
	s.init()
	s.mu.Lock()
	s.inShutdown.Store(true)
	for ln := range s.listeners {
		(*ln).Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.cancelBase()
	s.connWG.Wait()
	return nil
}

// trackSession moves c in the session index from user old to user name
// ("" for none).
func (s *Server) trackSession(c *conn, old, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if set := s.sessions[old]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(s.sessions, old)
		}
	}
	if name != "" {
		set := s.sessions[name]
		if set == nil {
			set = make(map[*conn]struct{})
			s.sessions[name] = set
		}
		set[c] = struct{}{}
	}
}

// userChanged asks every connection with a session of the user to
// re-validate it; those whose session ended get a session_ended event.
func (s *Server) userChanged(username string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.sessions[username] {
		c.poke()
	}
}

// NumConns returns the number of open connections.
func (s *Server) NumConns() int {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
