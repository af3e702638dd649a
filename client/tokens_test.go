package client_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server/servertest"
)

// clock is a settable time source for the server, to expire tokens.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// tokenServer starts a server on clk with alice (user) and root (admin),
// access tokens living an hour and refresh tokens a day.
func tokenServer(t *testing.T, clk *clock) *servertest.Server {
	t.Helper()
	srv := servertest.Start(t, servertest.Options{Now: clk.now, TokenTTL: time.Hour, RefreshTTL: 24 * time.Hour})
	srv.AddUser(t, "alice", "kitten-orbit-42", "user")
	srv.AddUser(t, "root", "rooted-walrus-77", "admin")
	return srv
}

func tokenLogin(t *testing.T, c *client.Client, user, password string) *protocol.LoginData {
	t.Helper()
	l, err := c.Login(context.Background(), user, password, protocol.ModeToken)
	if err != nil {
		t.Fatalf("Login %s: %v", user, err)
	}
	return l
}

func TestRefreshRotation(t *testing.T) {
	var clk clock
	srv := tokenServer(t, &clk)
	c := dial(t, srv.Addr)
	ctx := context.Background()

	l := tokenLogin(t, c, "alice", "kitten-orbit-42")
	if l.RefreshToken == "" || l.RefreshToken == l.Token {
		t.Fatalf("login gave no separate refresh token: %+v", l)
	}
	if d := l.RefreshExpiresAt.Sub(clk.now()); d < 23*time.Hour || d > 25*time.Hour {
		t.Fatalf("RefreshExpiresAt %v is not a day away", l.RefreshExpiresAt)
	}

	r, err := c.Refresh(ctx, l.RefreshToken)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if r.Mode != protocol.ModeToken || r.Username != "alice" || r.Token == "" || r.RefreshToken == "" {
		t.Fatalf("Refresh = %+v", r)
	}
	if r.Token == l.Token || r.RefreshToken == l.RefreshToken {
		t.Fatal("Refresh did not rotate both tokens")
	}
	if w, err := c.WhoAmI(ctx, r.Token); err != nil || w.Username != "alice" {
		t.Fatalf("WhoAmI with the refreshed token = %+v, %v", w, err)
	}

	// The retired refresh token again: theft. It and the whole family die.
	_, err = c.Refresh(ctx, l.RefreshToken)
	wantCode(t, err, protocol.CodeInvalidToken)
	_, err = c.Refresh(ctx, r.RefreshToken)
	wantCode(t, err, protocol.CodeInvalidToken)

	_, err = c.Refresh(ctx, "not-a-refresh-token")
	wantCode(t, err, protocol.CodeInvalidToken)
}

// countingSave records the pairs a TokenSource saves.
type countingSave struct {
	mu    sync.Mutex
	saved []client.Tokens
}

func (s *countingSave) save(t client.Tokens) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saved = append(s.saved, t)
	return nil
}

func (s *countingSave) all() []client.Tokens {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]client.Tokens(nil), s.saved...)
}

func whoami(c *client.Client) func(ctx context.Context, token string) error {
	return func(ctx context.Context, token string) error {
		w, err := c.WhoAmI(ctx, token)
		if err == nil && w.Username != "alice" {
			err = fmt.Errorf("WhoAmI answered for %q", w.Username)
		}
		return err
	}
}

func TestTokenSourceRenewsByClock(t *testing.T) {
	var clk clock
	srv := tokenServer(t, &clk)
	c := dial(t, srv.Addr)
	ctx := context.Background()
	l := tokenLogin(t, c, "alice", "kitten-orbit-42")

	var saves countingSave
	ts := client.NewTokenSource(c, client.TokensFrom(l), saves.save)
	ts.Now = clk.now

	// Valid: used as is.
	if tok, err := ts.Token(ctx); err != nil || tok != l.Token {
		t.Fatalf("Token = %q, %v; want the login's", tok, err)
	}
	if err := ts.Do(ctx, whoami(c)); err != nil {
		t.Fatal(err)
	}
	if len(saves.all()) != 0 {
		t.Fatal("a valid token was renewed")
	}

	// Expired by the clock: renewed before the request is sent.
	clk.advance(time.Hour - client.RefreshLeeway/2)
	var sent []string
	err := ts.Do(ctx, func(ctx context.Context, token string) error {
		sent = append(sent, token)
		return whoami(c)(ctx, token)
	})
	if err != nil {
		t.Fatalf("Do after expiry: %v", err)
	}
	saved := saves.all()
	if len(saved) != 1 || len(sent) != 1 {
		t.Fatalf("%d saves and %d requests, want 1 and 1", len(saved), len(sent))
	}
	if saved[0] != ts.Tokens() || sent[0] != saved[0].Access || saved[0].Access == l.Token || saved[0].Refresh == l.RefreshToken {
		t.Fatalf("saved %+v, sent %q; want a rotated pair, used", saved[0], sent[0])
	}
	if !saved[0].AccessExpiresAt.After(clk.now()) || !saved[0].RefreshExpiresAt.After(saved[0].AccessExpiresAt) {
		t.Fatalf("renewed pair expiries %+v", saved[0])
	}
}

func TestTokenSourceRenewsAfterRefusal(t *testing.T) {
	var clk clock
	srv := tokenServer(t, &clk)
	c := dial(t, srv.Addr)
	ctx := context.Background()
	l := tokenLogin(t, c, "alice", "kitten-orbit-42")

	var saves countingSave
	ts := client.NewTokenSource(c, client.TokensFrom(l), saves.save)
	// The source's clock (real time) thinks the token valid; the server's
	// says it expired.
	clk.advance(2 * time.Hour)
	var sent []string
	err := ts.Do(ctx, func(ctx context.Context, token string) error {
		sent = append(sent, token)
		return whoami(c)(ctx, token)
	})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if len(sent) != 2 || sent[0] != l.Token || sent[1] == l.Token {
		t.Fatalf("sent %d requests; want the old token refused, then the new one", len(sent))
	}
	if saved := saves.all(); len(saved) != 1 || saved[0].Access != sent[1] {
		t.Fatalf("saved %+v", saved)
	}

	// Other refusals are not retried.
	calls := 0
	err = ts.Do(ctx, func(ctx context.Context, token string) error {
		calls++
		_, err := c.Get(ctx, protocol.ResourceAdmin, token)
		return err
	})
	wantCode(t, err, protocol.CodeForbidden)
	if calls != 1 || len(saves.all()) != 1 {
		t.Fatalf("a forbidden request was retried (%d calls, %d saves)", calls, len(saves.all()))
	}
}

func TestTokenSourceSessionExpired(t *testing.T) {
	var clk clock
	srv := tokenServer(t, &clk)
	c := dial(t, srv.Addr)
	ctx := context.Background()
	l := tokenLogin(t, c, "alice", "kitten-orbit-42")

	// The refresh token expired too: only a new login helps.
	ts := client.NewTokenSource(c, client.TokensFrom(l), nil)
	ts.Now = clk.now
	clk.advance(25 * time.Hour)
	err := ts.Do(ctx, whoami(c))
	if !errors.Is(err, client.ErrSessionExpired) {
		t.Fatalf("Do = %v, want ErrSessionExpired", err)
	}
	wantCode(t, err, protocol.CodeInvalidToken)

	// No refresh token: the access token goes out as it is, and its
	// refusal cannot be helped.
	l = tokenLogin(t, c, "alice", "kitten-orbit-42")
	ts = client.NewTokenSource(c, client.Tokens{Access: l.Token, AccessExpiresAt: l.ExpiresAt}, nil)
	clk.advance(2 * time.Hour)
	err = ts.Do(ctx, whoami(c))
	if !errors.Is(err, client.ErrSessionExpired) || errors.Is(err, client.ErrConnection) {
		t.Fatalf("Do without a refresh token = %v, want ErrSessionExpired", err)
	}

	// A connection error while renewing is a connection error.
	l = tokenLogin(t, c, "alice", "kitten-orbit-42")
	ts = client.NewTokenSource(c, client.TokensFrom(l), nil)
	clk.advance(2 * time.Hour)
	c.Close()
	err = ts.Do(ctx, whoami(c))
	if !errors.Is(err, client.ErrConnection) || errors.Is(err, client.ErrSessionExpired) {
		t.Fatalf("Do on a closed client = %v, want ErrConnection", err)
	}
}

func TestTokenSourceSaveFails(t *testing.T) {
	var clk clock
	srv := tokenServer(t, &clk)
	c := dial(t, srv.Addr)
	l := tokenLogin(t, c, "alice", "kitten-orbit-42")
	diskFull := errors.New("disk full")
	ts := client.NewTokenSource(c, client.TokensFrom(l), func(client.Tokens) error { return diskFull })
	ts.Now = clk.now
	clk.advance(2 * time.Hour)
	if err := ts.Do(context.Background(), whoami(c)); !errors.Is(err, diskFull) {
		t.Fatalf("Do = %v, want the save error", err)
	}
	// The renewed pair is kept in memory: nothing is lost in this process.
	if ts.Tokens().Refresh == l.RefreshToken {
		t.Fatal("renewed pair dropped")
	}
	if err := ts.Do(context.Background(), whoami(c)); err != nil {
		t.Fatalf("Do with the pair in memory: %v", err)
	}
}

func TestTokenSourceConcurrentRenewal(t *testing.T) {
	var clk clock
	srv := tokenServer(t, &clk)
	c := dial(t, srv.Addr)
	l := tokenLogin(t, c, "alice", "kitten-orbit-42")

	var saves countingSave
	ts := client.NewTokenSource(c, client.TokensFrom(l), saves.save)
	clk.advance(2 * time.Hour) // only the server knows: every request is refused first

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- ts.Do(context.Background(), whoami(c)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err) // a second use of a refresh token would revoke them all
		}
	}
	if n := len(saves.all()); n != 1 {
		t.Fatalf("%d renewals, want 1", n)
	}
}

func TestTokenSourceRefresher(t *testing.T) {
	var clk clock
	srv := tokenServer(t, &clk)
	c := dial(t, srv.Addr)
	l := tokenLogin(t, c, "alice", "kitten-orbit-42")
	other := tokenLogin(t, c, "alice", "kitten-orbit-42") // "renewed by another process"

	ts := client.NewTokenSource(nil, client.TokensFrom(l), nil)
	var got string
	ts.Refresher = func(ctx context.Context, refreshToken string) (*protocol.LoginData, error) {
		got = refreshToken
		return other, nil
	}
	// Only the source's clock moves: the server still accepts other's token.
	ts.Now = func() time.Time { return clk.now().Add(2 * time.Hour) }
	var sent string
	err := ts.Do(context.Background(), func(ctx context.Context, token string) error {
		sent = token
		return whoami(c)(ctx, token)
	})
	if err != nil || got != l.RefreshToken || sent != other.Token {
		t.Fatalf("Do = %v; Refresher got %q, request sent %q", err, got, sent)
	}
}

func TestPasswd(t *testing.T) {
	var clk clock
	srv := tokenServer(t, &clk)
	c := dial(t, srv.Addr)
	ctx := context.Background()
	l := tokenLogin(t, c, "alice", "kitten-orbit-42")
	other := tokenLogin(t, dial(t, srv.Addr), "alice", "kitten-orbit-42")

	_, err := c.Passwd(ctx, "wrong-password-1", "velvet-canyon-93", l.Token)
	wantCode(t, err, protocol.CodeInvalidCredentials)
	_, err = c.Passwd(ctx, "kitten-orbit-42", "short", l.Token)
	wantCode(t, err, protocol.CodeBadRequest)
	_, err = c.Passwd(ctx, "kitten-orbit-42", "velvet-canyon-93", "")
	wantCode(t, err, protocol.CodeUnauthenticated)

	p, err := c.Passwd(ctx, "kitten-orbit-42", "velvet-canyon-93", l.Token)
	if err != nil {
		t.Fatalf("Passwd: %v", err)
	}
	if p.Mode != protocol.ModeToken || p.Token == "" || p.RefreshToken == "" || p.Username != "alice" {
		t.Fatalf("Passwd = %+v, want a fresh token pair", p)
	}
	// The token used and every other token of alice stop working.
	for _, tok := range []string{l.Token, other.Token} {
		_, err := c.WhoAmI(ctx, tok)
		wantCode(t, err, protocol.CodeInvalidToken)
	}
	_, err = c.Refresh(ctx, l.RefreshToken)
	wantCode(t, err, protocol.CodeInvalidToken)
	if w, err := c.WhoAmI(ctx, p.Token); err != nil || w.Username != "alice" {
		t.Fatalf("WhoAmI with the new token = %+v, %v", w, err)
	}
	if _, err := c.Refresh(ctx, p.RefreshToken); err != nil {
		t.Fatalf("Refresh with the new refresh token: %v", err)
	}
	_, err = c.Login(ctx, "alice", "kitten-orbit-42", protocol.ModeToken)
	wantCode(t, err, protocol.CodeInvalidCredentials)
	tokenLogin(t, c, "alice", "velvet-canyon-93")
}

// eventLog collects a client's events.
type eventLog struct {
	ch chan protocol.Message
}

func newEventLog() *eventLog { return &eventLog{ch: make(chan protocol.Message, 16)} }

func (e *eventLog) onEvent(m protocol.Message) { e.ch <- m }

func (e *eventLog) wait(t *testing.T, event string) protocol.Message {
	t.Helper()
	select {
	case m := <-e.ch:
		if m.Event != event {
			t.Fatalf("event %+v, want %s", m, event)
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s event", event)
	}
	return protocol.Message{}
}

func dialEvents(t *testing.T, addr string, events *eventLog) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), addr, &client.Options{DialTimeout: 5 * time.Second, OnEvent: events.onEvent})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLogoutAll(t *testing.T) {
	var clk clock
	srv := tokenServer(t, &clk)
	ctx := context.Background()
	c := dial(t, srv.Addr)
	l := tokenLogin(t, c, "alice", "kitten-orbit-42")
	other := tokenLogin(t, c, "alice", "kitten-orbit-42")
	rootTok := tokenLogin(t, c, "root", "rooted-walrus-77")

	// A session on another connection, idle when it is ended.
	events := newEventLog()
	sc := dialEvents(t, srv.Addr, events)
	if _, err := sc.Login(ctx, "alice", "kitten-orbit-42", ""); err != nil {
		t.Fatal(err)
	}

	if err := c.LogoutAll(ctx, l.Token); err != nil {
		t.Fatalf("LogoutAll: %v", err)
	}
	for _, tok := range []string{l.Token, other.Token} {
		_, err := c.WhoAmI(ctx, tok)
		wantCode(t, err, protocol.CodeInvalidToken)
	}
	_, err := c.Refresh(ctx, other.RefreshToken)
	wantCode(t, err, protocol.CodeInvalidToken)
	if _, err := c.WhoAmI(ctx, rootTok.Token); err != nil {
		t.Fatalf("another user's token stopped working: %v", err)
	}

	// The session hears of it without asking, and its connection stays.
	ev := events.wait(t, client.EventSessionEnded)
	if ev.Reason != protocol.SessionEndedLogoutAll || sc.SessionEnded() != protocol.SessionEndedLogoutAll {
		t.Fatalf("event %+v, SessionEnded() %q", ev, sc.SessionEnded())
	}
	_, err = sc.WhoAmI(ctx, "")
	wantCode(t, err, protocol.CodeUnauthenticated)
	if err := sc.Ping(ctx); err != nil {
		t.Fatalf("Ping after the session ended: %v", err)
	}

	// Session-authenticated LOGOUT ALL.
	if _, err := sc.Login(ctx, "alice", "kitten-orbit-42", ""); err != nil {
		t.Fatal(err)
	}
	fresh := tokenLogin(t, c, "alice", "kitten-orbit-42")
	if err := sc.LogoutAll(ctx, ""); err != nil {
		t.Fatalf("LogoutAll on the session: %v", err)
	}
	_, err = c.WhoAmI(ctx, fresh.Token)
	wantCode(t, err, protocol.CodeInvalidToken)
	_, err = sc.WhoAmI(ctx, "")
	wantCode(t, err, protocol.CodeUnauthenticated)
}

func TestSessionEndedEvents(t *testing.T) {
	// session_ended before a response is skipped (not a bye) and kept;
	// one sent while no request is waiting reaches OnEvent at once.
	idle := make(chan struct{})
	addr := fakeServer(t, func(conn net.Conn, r *bufio.Reader) {
		fmt.Fprint(conn, hello)
		r.ReadString('\n')
		fmt.Fprint(conn, `{"event":"session_ended","reason":"revoked"}`+"\n")
		fmt.Fprint(conn, `{"id":1,"ok":true,"status":200,"message":"pong"}`+"\n")
		<-idle
		fmt.Fprint(conn, `{"event":"session_ended","reason":"deleted"}`+"\n")
		r.ReadString('\n')
		fmt.Fprint(conn, `{"id":2,"ok":true,"status":200,"message":"pong"}`+"\n")
		r.ReadString('\n')
	})
	events := newEventLog()
	c := dialEvents(t, addr, events)
	if c.SessionEnded() != "" {
		t.Fatalf("SessionEnded() = %q before any event", c.SessionEnded())
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("Ping with session_ended before the answer: %v", err)
	}
	if ev := events.wait(t, client.EventSessionEnded); ev.Reason != "revoked" || c.SessionEnded() != "revoked" {
		t.Fatalf("event %+v, SessionEnded() %q", ev, c.SessionEnded())
	}
	close(idle)
	if ev := events.wait(t, client.EventSessionEnded); ev.Reason != "deleted" {
		t.Fatalf("event %+v", ev)
	}
	if c.SessionEnded() != "deleted" {
		t.Fatalf("SessionEnded() = %q, want the last reason", c.SessionEnded())
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("Ping after an idle event: %v", err)
	}
}

func TestByeWhileIdle(t *testing.T) {
	// A bye while no request is waiting is noticed: the next request fails
	// at once with its reason, and OnEvent saw it.
	addr := fakeServer(t, func(conn net.Conn, r *bufio.Reader) {
		fmt.Fprint(conn, hello)
		fmt.Fprint(conn, `{"event":"bye","reason":"idle_timeout"}`+"\n")
		r.ReadString('\n') // until the client hangs up
	})
	events := newEventLog()
	c := dialWith(t, addr, client.Options{OnEvent: events.onEvent, NoReconnect: true})
	if ev := events.wait(t, client.EventBye); ev.Reason != "idle_timeout" {
		t.Fatalf("event %+v", ev)
	}
	err := c.Ping(context.Background())
	if !errors.Is(err, client.ErrConnection) || err.Error() != "connection error: PING: server closed the connection (idle_timeout)" {
		t.Fatalf("Ping after bye = %v", err)
	}
}

func TestCloseFromOnEvent(t *testing.T) {
	addr := fakeServer(t, func(conn net.Conn, r *bufio.Reader) {
		fmt.Fprint(conn, hello)
		fmt.Fprint(conn, `{"event":"session_ended","reason":"revoked"}`+"\n")
		r.ReadString('\n')
	})
	closed := make(chan error, 1)
	var c *client.Client
	ready := make(chan struct{})
	c, err := client.Dial(context.Background(), addr, &client.Options{OnEvent: func(protocol.Message) {
		<-ready
		closed <- c.Close() // must not wait for the goroutine it runs on
	}})
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close from OnEvent: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close from OnEvent deadlocked")
	}
	if err := c.Ping(context.Background()); !errors.Is(err, client.ErrConnection) {
		t.Fatalf("Ping after Close = %v", err)
	}
}
