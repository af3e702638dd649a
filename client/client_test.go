package client_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server/servertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func dial(t *testing.T, addr string) *client.Client {
	t.Helper()
	return dialWith(t, addr, client.Options{})
}

// dialWith dials with opts (DialTimeout defaulting to 5s) and closes the
// Client when the test ends.
func dialWith(t *testing.T, addr string, opts client.Options) *client.Client {
	t.Helper()
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 5 * time.Second
	}
	c, err := client.Dial(context.Background(), addr, &opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// wantCode fails unless err is a *protocol.Error with the given code.
func wantCode(t *testing.T, err error, code protocol.Code) {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v (%T), want *protocol.Error %s", err, err, code)
	}
	if pe.Code != code || pe.Status() != code.Status() {
		t.Fatalf("err = %s/%d, want %s/%d", pe.Code, pe.Status(), code, code.Status())
	}
	if errors.Is(err, client.ErrConnection) {
		t.Fatalf("server refusal %v must not be a connection error", err)
	}
}

func TestServerGreeting(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	c := dial(t, srv.Addr)
	name, version := c.Server()
	if name != "authlined" || version == "" {
		t.Fatalf("Server() = %q, %q", name, version)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestRegister(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	c := dial(t, srv.Addr)
	ctx := context.Background()

	u, err := c.Register(ctx, "Alice", "correct horse")
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if u.Username != "alice" || u.Role != "user" {
		t.Fatalf("Register = %+v, want alice/user", u)
	}

	_, err = c.Register(ctx, "alice", "another password")
	wantCode(t, err, protocol.CodeConflict)
	if err.(*protocol.Error).Status() != 409 {
		t.Fatalf("status = %d, want 409", err.(*protocol.Error).Status())
	}
	if !errors.Is(err, &protocol.Error{Code: protocol.CodeConflict}) {
		t.Fatalf("errors.Is(conflict) = false for %v", err)
	}

	_, err = c.Register(ctx, "bob", "short")
	wantCode(t, err, protocol.CodeBadRequest)

	// A refusal leaves the connection usable.
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping after refusals: %v", err)
	}
}

func TestSessionLogin(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	srv.AddUser(t, "alice", "alice-password", "user")
	c := dial(t, srv.Addr)
	ctx := context.Background()

	_, err := c.Get(ctx, protocol.ResourceProtected, "")
	wantCode(t, err, protocol.CodeUnauthenticated)

	_, err = c.Login(ctx, "alice", "wrong-password", "")
	wantCode(t, err, protocol.CodeInvalidCredentials)

	l, err := c.Login(ctx, "alice", "alice-password", "")
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if l.Username != "alice" || l.Role != "user" || l.Mode != protocol.ModeSession || l.Token != "" {
		t.Fatalf("Login = %+v", l)
	}

	r, err := c.Get(ctx, protocol.ResourceProtected, "")
	if err != nil {
		t.Fatalf("Get protected: %v", err)
	}
	if r.Resource != "protected" || r.Username != "alice" || r.Content == "" {
		t.Fatalf("Get = %+v", r)
	}

	w, err := c.WhoAmI(ctx, "")
	if err != nil {
		t.Fatalf("WhoAmI: %v", err)
	}
	if *w != (protocol.WhoAmIData{Username: "alice", Role: "user", Auth: protocol.AuthSession}) {
		t.Fatalf("WhoAmI = %+v", w)
	}

	if err := c.Logout(ctx, ""); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	_, err = c.Get(ctx, protocol.ResourceProtected, "")
	wantCode(t, err, protocol.CodeUnauthenticated)
	_, err = c.WhoAmI(ctx, "")
	wantCode(t, err, protocol.CodeUnauthenticated)
}

func TestTokenLogin(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{TokenTTL: time.Hour})
	srv.AddUser(t, "alice", "alice-password", "user")
	ctx := context.Background()

	l, err := dial(t, srv.Addr).Login(ctx, "alice", "alice-password", protocol.ModeToken)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if l.Mode != protocol.ModeToken || l.Token == "" || l.TokenType != "Bearer" {
		t.Fatalf("Login = %+v", l)
	}
	if d := time.Until(l.ExpiresAt); d < 55*time.Minute || d > 61*time.Minute {
		t.Fatalf("ExpiresAt %v is not about an hour away", l.ExpiresAt)
	}
	if l.ExpiresIn < 3500 || l.ExpiresIn > 3600 {
		t.Fatalf("ExpiresIn = %d", l.ExpiresIn)
	}

	// The token works on another connection, which has no session.
	c := dial(t, srv.Addr)
	r, err := c.Get(ctx, protocol.ResourceProtected, l.Token)
	if err != nil {
		t.Fatalf("Get with token: %v", err)
	}
	if r.Username != "alice" {
		t.Fatalf("Get = %+v", r)
	}
	w, err := c.WhoAmI(ctx, l.Token)
	if err != nil {
		t.Fatalf("WhoAmI: %v", err)
	}
	if w.Auth != protocol.AuthToken || w.Username != "alice" {
		t.Fatalf("WhoAmI = %+v", w)
	}
	_, err = c.Get(ctx, protocol.ResourceProtected, "")
	wantCode(t, err, protocol.CodeUnauthenticated)
	_, err = c.Get(ctx, protocol.ResourceProtected, "not-a-token")
	wantCode(t, err, protocol.CodeInvalidToken)

	if err := c.Logout(ctx, l.Token); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	_, err = c.Get(ctx, protocol.ResourceProtected, l.Token)
	wantCode(t, err, protocol.CodeInvalidToken)
}

func TestAdminResource(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	srv.AddUser(t, "alice", "alice-password", "user")
	srv.AddUser(t, "root", "root-password", "admin")
	ctx := context.Background()

	tests := []struct {
		user, password string
		wantErr        protocol.Code
	}{
		{"alice", "alice-password", protocol.CodeForbidden},
		{"root", "root-password", ""},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			c := dial(t, srv.Addr)
			if _, err := c.Login(ctx, tt.user, tt.password, protocol.ModeSession); err != nil {
				t.Fatalf("Login: %v", err)
			}
			r, err := c.Get(ctx, protocol.ResourceAdmin, "")
			if tt.wantErr != "" {
				wantCode(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("Get admin: %v", err)
			}
			if r.Role != "admin" || r.Resource != "admin" || r.Content == "" {
				t.Fatalf("Get = %+v", r)
			}
		})
	}

	_, err := dial(t, srv.Addr).Get(ctx, "nope", "")
	wantCode(t, err, protocol.CodeNotFound)
}

func TestSecretsNotInErrors(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	srv.AddUser(t, "alice", "alice-password", "user")
	c := dial(t, srv.Addr)
	ctx := context.Background()

	const password = "Sup3r-Secret-Pw"
	_, err := c.Login(ctx, "alice", password, "")
	if err == nil || strings.Contains(err.Error(), password) {
		t.Fatalf("Login error %v leaks the password", err)
	}
	const token = "eyJhbGciOiJIUzI1NiJ9.garbage.sig"
	_, err = c.Get(ctx, protocol.ResourceProtected, token)
	if err == nil || strings.Contains(err.Error(), token) {
		t.Fatalf("Get error %v leaks the token", err)
	}
	// Nor in connection errors.
	c.Close()
	_, err = c.Login(ctx, "alice", password, protocol.ModeToken)
	if !errors.Is(err, client.ErrConnection) || strings.Contains(err.Error(), password) {
		t.Fatalf("Login after Close = %v", err)
	}
}

func TestQuit(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	c := dial(t, srv.Addr)
	if err := c.Quit(context.Background()); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	if err := c.Ping(context.Background()); !errors.Is(err, client.ErrConnection) {
		t.Fatalf("Ping after Quit = %v, want ErrConnection", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close after Quit = %v", err)
	}
}

func TestServerShutdown(t *testing.T) {
	// Without reconnection, the bye is the last word. (With it, see
	// TestReconnectGivesUp.)
	srv := servertest.Start(t, servertest.Options{})
	c := dialWith(t, srv.Addr, client.Options{NoReconnect: true})
	srv.Stop(t)
	err := c.Ping(context.Background())
	if !errors.Is(err, client.ErrConnection) {
		t.Fatalf("Ping after shutdown = %v, want ErrConnection", err)
	}
	if !strings.Contains(err.Error(), "shutdown") {
		t.Fatalf("error %q does not give the bye reason", err)
	}
}

func TestDialClosedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	_, err = client.Dial(context.Background(), addr, nil)
	if !errors.Is(err, client.ErrConnection) {
		t.Fatalf("Dial closed port = %v, want ErrConnection", err)
	}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		t.Fatalf("dial failure must not be a server refusal: %v", err)
	}
}

// fakeServer accepts one connection and hands it to serve, which plays the
// server's part. It is for behaviours a correct server cannot be made to
// show: silence, protocol violations.
func fakeServer(t *testing.T, serve func(conn net.Conn, r *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		serve(conn, bufio.NewReader(conn))
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

const hello = `{"event":"hello","server":"authlined","version":"9.9.9","proto":1}` + "\n"

// silentAfterHello greets, then reads requests without answering until
// the client hangs up.
func silentAfterHello(conn net.Conn, r *bufio.Reader) {
	fmt.Fprint(conn, hello)
	for {
		if _, err := r.ReadString('\n'); err != nil {
			return
		}
	}
}

func TestContextDeadline(t *testing.T) {
	c := dialWith(t, fakeServer(t, silentAfterHello), client.Options{NoReconnect: true})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Ping(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, client.ErrConnection) {
		t.Fatalf("Ping = %v, want DeadlineExceeded and ErrConnection", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Ping took %v", d)
	}
	// The unanswered request leaves the stream out of step: closed (and,
	// with NoReconnect, not replaced).
	if err := c.Ping(context.Background()); !errors.Is(err, client.ErrConnection) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping after timeout = %v", err)
	}
}

func TestContextCancel(t *testing.T) {
	c := dial(t, fakeServer(t, silentAfterHello))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	err := c.Ping(ctx) // no deadline: only the cancel can end it
	if !errors.Is(err, context.Canceled) || !errors.Is(err, client.ErrConnection) {
		t.Fatalf("Ping = %v, want Canceled and ErrConnection", err)
	}
}

func TestCancelledBeforeRequest(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	c := dial(t, srv.Addr)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Ping(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ping = %v, want Canceled", err)
	}
	// Nothing was sent, so the connection is still good.
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("Ping after cancelled call: %v", err)
	}
}

func TestDialDeadline(t *testing.T) {
	// A peer that accepts but never greets.
	addr := fakeServer(t, func(conn net.Conn, r *bufio.Reader) { r.ReadString('\n') })

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := client.Dial(ctx, addr, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, client.ErrConnection) {
		t.Fatalf("Dial = %v, want DeadlineExceeded and ErrConnection", err)
	}
}

func TestDialTimeoutOption(t *testing.T) {
	addr := fakeServer(t, func(conn net.Conn, r *bufio.Reader) { r.ReadString('\n') })
	_, err := client.Dial(context.Background(), addr, &client.Options{DialTimeout: 100 * time.Millisecond})
	if !errors.Is(err, client.ErrConnection) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial = %v, want DeadlineExceeded and ErrConnection", err)
	}
}

func TestProtocolViolations(t *testing.T) {
	tests := []struct {
		name  string
		serve func(conn net.Conn, r *bufio.Reader)
		dial  bool // the failure is in Dial
	}{
		{"wrong proto", func(conn net.Conn, r *bufio.Reader) {
			fmt.Fprint(conn, `{"event":"hello","server":"authlined","version":"2.0.0","proto":2}`+"\n")
			r.ReadString('\n')
		}, true},
		{"no greeting", func(conn net.Conn, r *bufio.Reader) {
			fmt.Fprint(conn, `{"ok":true,"status":200,"message":"hi"}`+"\n")
			r.ReadString('\n')
		}, true},
		{"not json", func(conn net.Conn, r *bufio.Reader) {
			fmt.Fprint(conn, "SSH-2.0-OpenSSH_9.6\r\n")
			r.ReadString('\n')
		}, true},
		{"wrong id", func(conn net.Conn, r *bufio.Reader) {
			fmt.Fprint(conn, hello)
			r.ReadString('\n')
			fmt.Fprint(conn, `{"id":999,"ok":true,"status":200,"message":"pong"}`+"\n")
			r.ReadString('\n')
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, tt.serve)
			c, err := client.Dial(context.Background(), addr, nil)
			if !tt.dial {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				defer c.Close()
				err = c.Ping(context.Background())
			}
			if !errors.Is(err, client.ErrProtocol) || !errors.Is(err, client.ErrConnection) {
				t.Fatalf("err = %v, want ErrProtocol and ErrConnection", err)
			}
		})
	}
}

func TestEvents(t *testing.T) {
	// Events other than bye are skipped; bye ends the connection with its
	// reason.
	addr := fakeServer(t, func(conn net.Conn, r *bufio.Reader) {
		fmt.Fprint(conn, hello)
		r.ReadString('\n')
		fmt.Fprint(conn, `{"event":"notice","message":"maintenance soon"}`+"\n")
		fmt.Fprint(conn, `{"id":1,"ok":true,"status":200,"message":"pong"}`+"\n")
		r.ReadString('\n')
		fmt.Fprint(conn, `{"event":"bye","reason":"idle_timeout"}`+"\n")
		r.ReadString('\n')
	})
	c := dialWith(t, addr, client.Options{NoReconnect: true})
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("Ping with a notice before the answer: %v", err)
	}
	err := c.Ping(context.Background())
	if !errors.Is(err, client.ErrConnection) || !strings.Contains(err.Error(), "idle_timeout") {
		t.Fatalf("Ping after bye = %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	srv.AddUser(t, "alice", "alice-password", "user")
	c := dial(t, srv.Addr)
	ctx := context.Background()
	l, err := c.Login(ctx, "alice", "alice-password", protocol.ModeToken)
	if err != nil {
		t.Fatal(err)
	}

	const workers, rounds = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				switch (w + i) % 3 {
				case 0:
					errs <- c.Ping(ctx)
				case 1:
					r, err := c.Get(ctx, protocol.ResourceProtected, l.Token)
					if err == nil && r.Username != "alice" {
						err = fmt.Errorf("Get answered for %q", r.Username)
					}
					errs <- err
				case 2:
					_, err := c.Get(ctx, protocol.ResourceAdmin, l.Token)
					if !errors.Is(err, &protocol.Error{Code: protocol.CodeForbidden}) {
						err = fmt.Errorf("Get admin = %v, want forbidden", err)
					} else {
						err = nil
					}
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestCloseDuringRequest(t *testing.T) {
	c := dial(t, fakeServer(t, silentAfterHello))
	time.AfterFunc(100*time.Millisecond, func() { c.Close() })
	if err := c.Ping(context.Background()); !errors.Is(err, client.ErrConnection) {
		t.Fatalf("Ping during Close = %v, want ErrConnection", err)
	}
}

func TestTLS(t *testing.T) {
	tc := servertest.NewCert(t)
	cert, pool := tc.TLS, tc.Pool
	srv := servertest.Start(t, servertest.Options{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	})
	ctx := context.Background()

	c, err := client.Dial(ctx, srv.Addr, &client.Options{TLSConfig: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatalf("Dial TLS: %v", err)
	}
	defer c.Close()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping over TLS: %v", err)
	}

	// Without the CA the certificate is refused.
	_, err = client.Dial(ctx, srv.Addr, &client.Options{TLSConfig: &tls.Config{}})
	if !errors.Is(err, client.ErrConnection) {
		t.Fatalf("Dial with unknown CA = %v, want ErrConnection", err)
	}
}

func TestContextWhileWaitingForTurn(t *testing.T) {
	c := dial(t, fakeServer(t, silentAfterHello))
	blocked := make(chan error, 1)
	go func() { blocked <- c.Ping(context.Background()) }() // never answered

	// Give the first Ping time to take the connection.
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := c.Ping(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("queued Ping = %v, want DeadlineExceeded", err)
	}
	if errors.Is(err, client.ErrConnection) {
		t.Fatalf("a request that was never sent is not a connection error: %v", err)
	}

	c.Close()
	if err := <-blocked; !errors.Is(err, client.ErrConnection) {
		t.Fatalf("blocked Ping after Close = %v", err)
	}
}
