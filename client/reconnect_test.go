package client_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server"
	"github.com/authline/authline/server/servertest"
)

// restartAt starts a server on the store and key in dir (those of a
// server that was stopped) and has it serve on addr too, the stopped
// server's address: what a restarted authlined looks like to its clients.
// The returned server's Addr is addr.
func restartAt(t *testing.T, addr, dir string, opts servertest.Options) *servertest.Server {
	t.Helper()
	opts.Dir = dir
	srv := servertest.Start(t, opts)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening on %s again: %v", addr, err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Server.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop(t)
		ln.Close() // in case Serve had not taken it yet
		if err := <-served; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve on %s = %v, want ErrServerClosed", addr, err)
		}
	})
	srv.Addr = addr
	return srv
}

// attempts records a Client's reconnection dials.
type attempts struct {
	mu   sync.Mutex
	list []client.ReconnectAttempt
	ch   chan client.ReconnectAttempt
}

func newAttempts() *attempts { return &attempts{ch: make(chan client.ReconnectAttempt, 100)} }

func (a *attempts) record(r client.ReconnectAttempt) {
	a.mu.Lock()
	a.list = append(a.list, r)
	a.mu.Unlock()
	select {
	case a.ch <- r:
	default:
	}
}

func (a *attempts) all() []client.ReconnectAttempt {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]client.ReconnectAttempt(nil), a.list...)
}

// waitFailed waits for a dial that failed.
func (a *attempts) waitFailed(t *testing.T) client.ReconnectAttempt {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case r := <-a.ch:
			if r.Err != nil {
				return r
			}
		case <-timeout:
			t.Fatal("no failed reconnection dial within 5s")
		}
	}
}

// reconnectEnv is a server with a store directory that survives it, and
// alice (user), bob (user) and root (admin).
type reconnectEnv struct {
	srv  *servertest.Server
	addr string
	dir  string
}

func startReconnectEnv(t *testing.T) *reconnectEnv {
	t.Helper()
	dir := t.TempDir()
	srv := servertest.Start(t, servertest.Options{Dir: dir})
	srv.AddUser(t, "alice", "kitten-orbit-42", "user")
	srv.AddUser(t, "bob", "velvet-canyon-93", "user")
	srv.AddUser(t, "root", "rooted-walrus-77", "admin")
	return &reconnectEnv{srv: srv, addr: srv.Addr, dir: dir}
}

func (e *reconnectEnv) restart(t *testing.T, opts servertest.Options) *servertest.Server {
	t.Helper()
	e.srv = restartAt(t, e.addr, e.dir, opts)
	return e.srv
}

// wantGet fails unless a token GET of the protected resource answers for
// user.
func wantGet(t *testing.T, ctx context.Context, c *client.Client, token, user string) {
	t.Helper()
	r, err := c.Get(ctx, protocol.ResourceProtected, token)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if r.Username != user {
		t.Fatalf("Get answered for %q, want %q", r.Username, user)
	}
}

func TestReconnectAfterShutdownBye(t *testing.T) {
	// The server shuts down: the idle connection gets bye shutdown. The
	// server comes back on the same address; the next token request dials
	// it and is answered, the token still good.
	tests := []struct {
		name string
		// duringBackoff: restart only once the request has failed to
		// dial, so that it is the back-off that waits for the server.
		duringBackoff bool
	}{
		{"restarted before the next request", false},
		{"restarted while the request backs off", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := startReconnectEnv(t)
			events, tries := newEventLog(), newAttempts()
			c := dialWith(t, env.addr, client.Options{OnEvent: events.onEvent, OnReconnect: tries.record})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			tok := tokenLogin(t, c, "alice", "kitten-orbit-42").Token
			wantGet(t, ctx, c, tok, "alice")

			env.srv.Stop(t)
			if ev := events.wait(t, client.EventBye); ev.Reason != protocol.ByeShutdown {
				t.Fatalf("event %+v, want bye shutdown", ev)
			}

			if !tt.duringBackoff {
				env.restart(t, servertest.Options{})
				wantGet(t, ctx, c, tok, "alice")
			} else {
				got := make(chan error, 1)
				go func() {
					_, err := c.Get(ctx, protocol.ResourceProtected, tok)
					got <- err
				}()
				tries.waitFailed(t)
				env.restart(t, servertest.Options{})
				if err := <-got; err != nil {
					t.Fatalf("Get across the restart: %v", err)
				}
			}

			all := tries.all()
			if len(all) == 0 {
				t.Fatal("OnReconnect was not called")
			}
			last := all[len(all)-1]
			if last.Err != nil || last.Attempt != len(all) {
				t.Fatalf("last attempt %+v of %d, want a success", last, len(all))
			}
			if tt.duringBackoff != (len(all) > 1) {
				t.Fatalf("%d dials, want %s", len(all), map[bool]string{true: "several", false: "one"}[tt.duringBackoff])
			}
			if !errors.Is(last.Cause, client.ErrConnection) || !strings.Contains(last.Cause.Error(), protocol.ByeShutdown) {
				t.Fatalf("Cause = %v, want the bye shutdown", last.Cause)
			}
			// The new connection goes on as one.
			w, err := c.WhoAmI(ctx, tok)
			if err != nil || w.Username != "alice" || w.Auth != protocol.AuthToken {
				t.Fatalf("WhoAmI = %+v, %v", w, err)
			}
			if n := env.srv.Server.NumConns(); n != 1 {
				t.Fatalf("restarted server has %d connections, want 1", n)
			}
			if len(tries.all()) != len(all) {
				t.Fatal("a request on the new connection dialled again")
			}
		})
	}
}

// gateBackend holds the first call of one Backend method (block:
// "Resource" or "RevokeToken") until its request's context ends, and
// counts the calls of both.
type gateBackend struct {
	server.Backend
	block     string
	in        chan struct{} // signalled when the held call starts
	held      atomic.Bool
	resources atomic.Int32
	revokes   atomic.Int32
}

func (g *gateBackend) hold(ctx context.Context, method string) error {
	if method != g.block || !g.held.CompareAndSwap(false, true) {
		return nil
	}
	g.in <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

func (g *gateBackend) Resource(ctx context.Context, id *server.Identity, name string) (string, error) {
	g.resources.Add(1)
	if err := g.hold(ctx, "Resource"); err != nil {
		return "", err
	}
	return g.Backend.Resource(ctx, id, name)
}

func (g *gateBackend) RevokeToken(ctx context.Context, id server.Identity) error {
	g.revokes.Add(1)
	if err := g.hold(ctx, "RevokeToken"); err != nil {
		return err
	}
	return g.Backend.RevokeToken(ctx, id)
}

func TestReconnectInFlightFinishesThenBye(t *testing.T) {
	// Lame duck: a request in flight when the server starts shutting down
	// is answered, then comes bye; the next request reconnects.
	dir := t.TempDir()
	slow := &slowResource{in: make(chan struct{}, 1), release: make(chan struct{})}
	srv := servertest.Start(t, servertest.Options{Dir: dir, WrapBackend: func(b server.Backend) server.Backend {
		slow.Backend = b
		return slow
	}})
	srv.AddUser(t, "alice", "kitten-orbit-42", "user")
	events, tries := newEventLog(), newAttempts()
	c := dialWith(t, srv.Addr, client.Options{OnEvent: events.onEvent, OnReconnect: tries.record})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tok := tokenLogin(t, c, "alice", "kitten-orbit-42").Token

	got := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, protocol.ResourceProtected, tok)
		got <- err
	}()
	<-slow.in
	shut := make(chan error, 1)
	go func() { shut <- srv.Server.Shutdown(ctx) }()
	time.Sleep(50 * time.Millisecond) // Shutdown is waiting for the request
	close(slow.release)
	if err := <-got; err != nil {
		t.Fatalf("Get in flight during shutdown: %v", err)
	}
	if ev := events.wait(t, client.EventBye); ev.Reason != protocol.ByeShutdown {
		t.Fatalf("event %+v, want bye shutdown", ev)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := len(tries.all()); n != 0 {
		t.Fatalf("%d reconnection dials for a request that was answered", n)
	}
	srv.Stop(t)

	restartAt(t, srv.Addr, dir, servertest.Options{})
	wantGet(t, ctx, c, tok, "alice")
	if all := tries.all(); len(all) != 1 || all[0].Err != nil {
		t.Fatalf("reconnection dials %+v, want one that succeeded", all)
	}
}

// slowResource holds every GET until release is closed.
type slowResource struct {
	server.Backend
	in      chan struct{}
	release chan struct{}
}

func (s *slowResource) Resource(ctx context.Context, id *server.Identity, name string) (string, error) {
	select {
	case s.in <- struct{}{}:
	default:
	}
	<-s.release
	return s.Backend.Resource(ctx, id, name)
}

func TestReconnectAfterCutMidRequest(t *testing.T) {
	// The server receives the request, then the connection is cut (a
	// shutdown that outlasts its deadline) with no answer. A read is sent
	// again on a new connection; a LOGOUT, which may have been carried
	// out, is not.
	tests := []struct {
		name    string
		block   string // the Backend method that holds the request
		do      func(ctx context.Context, c *client.Client, tok string) error
		resent  bool
		calls   func(g *gateBackend) int32
		wantOld int32 // calls on the server that was cut
	}{
		{
			name:  "GET is resent",
			block: "Resource",
			do: func(ctx context.Context, c *client.Client, tok string) error {
				_, err := c.Get(ctx, protocol.ResourceProtected, tok)
				return err
			},
			resent: true,
			calls:  func(g *gateBackend) int32 { return g.resources.Load() },
		},
		{
			name:  "LOGOUT is not",
			block: "RevokeToken",
			do: func(ctx context.Context, c *client.Client, tok string) error {
				return c.Logout(ctx, tok)
			},
			resent: false,
			calls:  func(g *gateBackend) int32 { return g.revokes.Load() },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			gate := &gateBackend{block: tt.block, in: make(chan struct{}, 1)}
			srv := servertest.Start(t, servertest.Options{Dir: dir, WrapBackend: func(b server.Backend) server.Backend {
				gate.Backend = b
				return gate
			}})
			srv.AddUser(t, "alice", "kitten-orbit-42", "user")
			tries := newAttempts()
			c := dialWith(t, srv.Addr, client.Options{OnReconnect: tries.record})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			tok := tokenLogin(t, c, "alice", "kitten-orbit-42").Token

			got := make(chan error, 1)
			go func() { got <- tt.do(ctx, c, tok) }()
			<-gate.in // the server has the request
			sctx, scancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer scancel()
			if err := srv.Server.Shutdown(sctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Shutdown = %v, want the deadline to cut the request", err)
			}
			srv.Stop(t)
			if n := tt.calls(gate); n != 1 {
				t.Fatalf("%d calls on the old server, want 1", n)
			}

			if tt.resent {
				tries.waitFailed(t) // the request waits for the server
			} else {
				err := <-got
				if !errors.Is(err, client.ErrConnection) {
					t.Fatalf("err = %v, want ErrConnection", err)
				}
				if errors.Is(err, client.ErrSessionLost) {
					t.Fatalf("err = %v: no session was held", err)
				}
				if n := len(tries.all()); n != 0 {
					t.Fatalf("%d reconnection dials for a request not to be resent", n)
				}
			}

			count := &gateBackend{}
			restartAt(t, srv.Addr, dir, servertest.Options{WrapBackend: func(b server.Backend) server.Backend {
				count.Backend = b
				return count
			}})
			if tt.resent {
				if err := <-got; err != nil {
					t.Fatalf("resent request: %v", err)
				}
				if n := tt.calls(count); n != 1 {
					t.Fatalf("%d calls on the new server, want the one resent", n)
				}
			}
			// Either way the token still works: the LOGOUT was neither
			// carried out (it was held) nor sent again.
			wantGet(t, ctx, c, tok, "alice")
			if n := count.revokes.Load(); n != 0 {
				t.Fatalf("the new server revoked %d tokens", n)
			}
		})
	}
}

func TestReconnectSessionNotCarriedOver(t *testing.T) {
	// A connection holding a session login is not replaced: the session
	// would be silently gone. Once the session is over by the client's or
	// the server's doing, the Client reconnects as any other.
	tests := []struct {
		name string
		// setup runs on c (and admin, a Client with root's token) before
		// the restart and returns the token to use after it.
		setup    func(t *testing.T, ctx context.Context, c *client.Client, events *eventLog, admin *client.Client, rootTok string) string
		wantLost bool
	}{
		{
			name: "session login",
			setup: func(t *testing.T, ctx context.Context, c *client.Client, _ *eventLog, _ *client.Client, _ string) string {
				if _, err := c.Login(ctx, "alice", "kitten-orbit-42", ""); err != nil {
					t.Fatal(err)
				}
				return tokenLogin(t, c, "bob", "velvet-canyon-93").Token
			},
			wantLost: true,
		},
		{
			name: "session login, then token login",
			setup: func(t *testing.T, ctx context.Context, c *client.Client, _ *eventLog, _ *client.Client, _ string) string {
				if _, err := c.Login(ctx, "alice", "kitten-orbit-42", protocol.ModeSession); err != nil {
					t.Fatal(err)
				}
				return tokenLogin(t, c, "alice", "kitten-orbit-42").Token // the session stays
			},
			wantLost: true,
		},
		{
			name: "session logged out",
			setup: func(t *testing.T, ctx context.Context, c *client.Client, _ *eventLog, _ *client.Client, _ string) string {
				if _, err := c.Login(ctx, "alice", "kitten-orbit-42", ""); err != nil {
					t.Fatal(err)
				}
				if err := c.Logout(ctx, ""); err != nil {
					t.Fatal(err)
				}
				return tokenLogin(t, c, "bob", "velvet-canyon-93").Token
			},
		},
		{
			name: "session ended by the server",
			setup: func(t *testing.T, ctx context.Context, c *client.Client, events *eventLog, admin *client.Client, rootTok string) string {
				if _, err := c.Login(ctx, "alice", "kitten-orbit-42", ""); err != nil {
					t.Fatal(err)
				}
				if _, err := admin.Revoke(ctx, rootTok, "alice"); err != nil {
					t.Fatal(err)
				}
				if ev := events.wait(t, client.EventSessionEnded); ev.Reason == "" {
					t.Fatalf("event %+v", ev)
				}
				return tokenLogin(t, c, "bob", "velvet-canyon-93").Token
			},
		},
		{
			name: "token login only",
			setup: func(t *testing.T, ctx context.Context, c *client.Client, _ *eventLog, _ *client.Client, _ string) string {
				return tokenLogin(t, c, "bob", "velvet-canyon-93").Token
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := startReconnectEnv(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			admin := dialWith(t, env.addr, client.Options{NoReconnect: true})
			rootTok := tokenLogin(t, admin, "root", "rooted-walrus-77").Token
			events, tries := newEventLog(), newAttempts()
			c := dialWith(t, env.addr, client.Options{OnEvent: events.onEvent, OnReconnect: tries.record})
			tok := tt.setup(t, ctx, c, events, admin, rootTok)

			env.srv.Stop(t)
			if ev := events.wait(t, client.EventBye); ev.Reason != protocol.ByeShutdown {
				t.Fatalf("event %+v, want bye shutdown", ev)
			}
			env.restart(t, servertest.Options{})

			if !tt.wantLost {
				wantGet(t, ctx, c, tok, "bob")
				if len(tries.all()) != 1 {
					t.Fatalf("reconnection dials %+v, want one", tries.all())
				}
				return
			}
			// Both the session's request and a token one fail, now and
			// later, without dialing.
			_, err := c.Get(ctx, protocol.ResourceProtected, "")
			if !errors.Is(err, client.ErrConnection) || !errors.Is(err, client.ErrSessionLost) {
				t.Fatalf("Get with the lost session = %v, want ErrConnection and ErrSessionLost", err)
			}
			if !strings.Contains(err.Error(), protocol.ByeShutdown) {
				t.Fatalf("error %q does not say why the connection was lost", err)
			}
			for range 2 {
				_, err = c.WhoAmI(ctx, tok)
				if !errors.Is(err, client.ErrConnection) || !errors.Is(err, client.ErrSessionLost) {
					t.Fatalf("WhoAmI after the session was lost = %v", err)
				}
			}
			if n := len(tries.all()); n != 0 {
				t.Fatalf("%d reconnection dials with a session login", n)
			}
			if n := env.srv.Server.NumConns(); n != 0 {
				t.Fatalf("restarted server has %d connections, want none", n)
			}
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

func TestReconnectGivesUp(t *testing.T) {
	// Nothing listens any more: reconnection stops at the context's
	// deadline or after ReconnectAttempts dials, and the error wraps
	// ErrConnection and says why the connection was lost.
	tests := []struct {
		name         string
		opts         client.Options
		timeout      time.Duration // of the request; zero: none
		wantDials    int           // -1: at least one
		wantDeadline bool
		within       time.Duration
	}{
		{"context deadline", client.Options{ReconnectAttempts: -1}, 300 * time.Millisecond, -1, true, 2 * time.Second},
		{"default attempts within the deadline", client.Options{}, 300 * time.Millisecond, -1, true, 2 * time.Second},
		{"attempts run out", client.Options{ReconnectAttempts: 3}, 0, 3, false, 3 * time.Second},
		{"no reconnection", client.Options{NoReconnect: true}, 0, 0, false, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := servertest.Start(t, servertest.Options{})
			tries := newAttempts()
			opts := tt.opts
			opts.OnReconnect = tries.record
			c := dialWith(t, srv.Addr, opts)
			if err := c.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
			srv.Stop(t)

			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			start := time.Now()
			err := c.Ping(ctx)
			took := time.Since(start)
			if !errors.Is(err, client.ErrConnection) {
				t.Fatalf("Ping = %v, want ErrConnection", err)
			}
			if errors.Is(err, context.DeadlineExceeded) != tt.wantDeadline {
				t.Fatalf("Ping = %v; DeadlineExceeded %v, want %v", err, !tt.wantDeadline, tt.wantDeadline)
			}
			if !strings.Contains(err.Error(), protocol.ByeShutdown) {
				t.Fatalf("error %q does not say why the connection was lost", err)
			}
			if took > tt.within {
				t.Fatalf("Ping took %v, want at most %v", took, tt.within)
			}
			all := tries.all()
			switch {
			case tt.wantDials < 0 && len(all) == 0:
				t.Fatal("no reconnection dial")
			case tt.wantDials >= 0 && len(all) != tt.wantDials:
				t.Fatalf("%d reconnection dials, want %d", len(all), tt.wantDials)
			}
			for i, r := range all {
				if r.Attempt != i+1 || r.Err == nil || !errors.Is(r.Err, client.ErrConnection) {
					t.Fatalf("dial %d: %+v", i+1, r)
				}
			}
		})
	}
}

func TestReconnectStopsAtClose(t *testing.T) {
	// Close ends a reconnection in progress at once, and nothing dials
	// afterwards, even when the server is back.
	env := startReconnectEnv(t)
	tries := newAttempts()
	c, err := client.Dial(context.Background(), env.addr, &client.Options{ReconnectAttempts: -1, OnReconnect: tries.record})
	if err != nil {
		t.Fatal(err)
	}
	tok := tokenLogin(t, c, "alice", "kitten-orbit-42").Token
	env.srv.Stop(t)

	got := make(chan error, 1)
	go func() {
		_, err := c.Get(context.Background(), protocol.ResourceProtected, tok)
		got <- err
	}()
	tries.waitFailed(t)
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-got:
		if !errors.Is(err, client.ErrConnection) || !strings.Contains(err.Error(), "client closed") {
			t.Fatalf("Get during Close = %v, want ErrConnection, client closed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not end the reconnection")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the reconnection ended %v after Close", d)
	}
	dials := len(tries.all())

	srv := env.restart(t, servertest.Options{})
	_, err = c.Get(context.Background(), protocol.ResourceProtected, tok)
	if !errors.Is(err, client.ErrConnection) || !strings.Contains(err.Error(), "client closed") {
		t.Fatalf("Get after Close = %v", err)
	}
	if n := len(tries.all()); n != dials {
		t.Fatalf("%d dials after Close", n-dials)
	}
	if n := srv.Server.NumConns(); n != 0 {
		t.Fatalf("server has %d connections from a closed Client", n)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestReconnectConcurrentRequests(t *testing.T) {
	// Requests from many goroutines keep going while the server shuts
	// down and comes back: in flight, after the bye, or while it is
	// gone, every one is answered.
	env := startReconnectEnv(t)
	c := dialWith(t, env.addr, client.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok := tokenLogin(t, c, "alice", "kitten-orbit-42").Token

	var (
		wg       sync.WaitGroup
		stop     = make(chan struct{})
		answered atomic.Int32
		errs     = make(chan error, 8)
	)
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := c.Get(ctx, protocol.ResourceProtected, tok)
				if err == nil && r.Username != "alice" {
					err = errors.New("answered for " + r.Username)
				}
				if err != nil {
					errs <- err
					return
				}
				answered.Add(1)
			}
		})
	}
	waitAnswers := func(n int32) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for answered.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d answers", answered.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitAnswers(50)
	env.srv.Stop(t)
	before := answered.Load()
	time.Sleep(100 * time.Millisecond) // requests back off meanwhile
	env.restart(t, servertest.Options{})
	waitAnswers(before + 50)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("request across the restart: %v", err)
	}
}

func TestReconnectTokenSource(t *testing.T) {
	// A TokenSource over a Client renews an expired token across a
	// restart: the REFRESH is sent on the new connection (it had not been
	// written to the old one), then the request.
	var clk clock
	dir := t.TempDir()
	opts := servertest.Options{Dir: dir, Now: clk.now, TokenTTL: time.Hour, RefreshTTL: 24 * time.Hour}
	srv := servertest.Start(t, opts)
	srv.AddUser(t, "alice", "kitten-orbit-42", "user")
	events, tries := newEventLog(), newAttempts()
	c := dialWith(t, srv.Addr, client.Options{OnEvent: events.onEvent, OnReconnect: tries.record})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first := client.TokensFrom(tokenLogin(t, c, "alice", "kitten-orbit-42"))
	var saved atomic.Int32
	ts := client.NewTokenSource(c, first, func(client.Tokens) error { saved.Add(1); return nil })
	ts.Now = clk.now

	srv.Stop(t)
	// Once the bye is in, the REFRESH is known not to have been written
	// to the old connection (were it written before the bye came, it
	// could not be sent again).
	events.wait(t, client.EventBye)
	clk.advance(2 * time.Hour) // the access token has expired
	restartAt(t, srv.Addr, dir, opts)

	err := ts.Do(ctx, func(ctx context.Context, token string) error {
		r, err := c.Get(ctx, protocol.ResourceProtected, token)
		if err == nil && r.Username != "alice" {
			err = errors.New("answered for " + r.Username)
		}
		return err
	})
	if err != nil {
		t.Fatalf("Do across the restart: %v", err)
	}
	if got := ts.Tokens(); got.Access == first.Access || got.Refresh == first.Refresh || saved.Load() != 1 {
		t.Fatalf("tokens not renewed once (saved %d times)", saved.Load())
	}
	if all := tries.all(); len(all) != 1 || all[0].Err != nil {
		t.Fatalf("reconnection dials %+v, want one that succeeded", all)
	}
}
