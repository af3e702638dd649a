// Package client is a Go client for authline servers: it speaks the
// newline-delimited JSON protocol of package protocol over TCP or TLS.
//
// Errors fall into two classes that callers can tell apart:
//
//   - the request could not be carried out on the wire (dial failure, broken
//     or closed connection, timeout, server shutting down, garbled reply,
//     and no new connection could take over, see below):
//     errors.Is(err, ErrConnection) is true;
//   - the server answered and refused: the error is a *protocol.Error
//     (errors.As) with the wire Code and Status, and RetryAfter when the
//     server said how long to wait (rate_limited, a full hashing queue);
//     the Client stays usable.
//
// # Reconnection
//
// A Client stands for a server address rather than for one connection.
// When its connection is lost (the server said bye because it is shutting
// down or the connection sat idle, the connection broke, or a request
// timed out and left it out of step), the next request dials the same
// address again, with the same Options (TLS included), and goes on over
// the new connection. Failed dials are retried after a pause of
// ReconnectBackoffMin, doubling up to ReconnectBackoffMax, at most
// Options.ReconnectAttempts dials (DefaultReconnectAttempts, about 5
// seconds) and never past the request's context; when none succeeds the
// error wraps ErrConnection and says why the connection was lost.
//
// Which requests are sent on the new connection:
//
//   - any request (but QUIT) that had not been written to the lost
//     connection: the connection was found lost before it was sent;
//   - once more, a request that only reads (GET, WHOAMI, PING, JWKS, USERS,
//     USER) and had been written when the connection broke before its
//     answer (not when the server garbled the answer: ErrProtocol);
//   - never, one that changes something (LOGIN, REGISTER, PASSWD, REFRESH,
//     LOGOUT, SETROLE, DISABLE, ENABLE, DELETE, UNLOCK, REVOKE) and had
//     been written: it may or may not have been carried out, so it fails
//     with an error wrapping ErrConnection, and the next request
//     reconnects.
//
// This is what token-mode use needs: a token is checked by whichever
// server answers, so a program that holds a token (see TokenSource) goes
// on across a server restart or a lame-duck shutdown. A session-mode
// login lives on its connection and dies with it, so a Client whose
// connection held a session login when it was lost does not reconnect:
// that request and every later one fail with an error wrapping both
// ErrConnection and ErrSessionLost, and the Client is closed; dial a new
// one and log in again. (A session that was logged out, or ended by the
// server with session_ended, no longer counts.) Nothing reconnects after
// Close or Quit, nor at all with Options.NoReconnect, which gives the
// behaviour of a single connection. Dial itself does not retry.
//
// The server may send events at any time, not only in reply to a request
// (session_ended when the connection's session was ended from elsewhere).
// A Client therefore reads its connection continuously in a goroutine of
// its own: events are reported through Options.OnEvent as they arrive (and
// the last session_ended reason is kept, see SessionEnded), responses are
// handed to the request waiting for them, and a bye or a broken connection
// is noticed even while no request is in flight.
package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authline/authline/protocol"
)

// ErrConnection is wrapped by every error that means the client could not
// talk to the server: it could not connect, the connection broke or timed
// out, or the server closed it, and reconnecting (when allowed) did not
// help either.
var ErrConnection = errors.New("connection error")

// ErrProtocol is wrapped (together with ErrConnection) when the server sent
// something that is not valid protocol v1: a bad greeting, a line that is
// not JSON, or a response to another request.
var ErrProtocol = errors.New("protocol violation")

// ErrSessionLost is wrapped (together with ErrConnection) when the
// connection that held a session-mode login was lost. The session cannot
// move to another connection, so the Client does not reconnect: it is
// closed, and every later request fails the same way. Dial a new Client
// and log in again.
var ErrSessionLost = errors.New("session login lost")

// Event names of protocol v1.
const (
	EventHello        = "hello"
	EventBye          = "bye"
	EventSessionEnded = "session_ended"
)

// Reconnection defaults; see Options.
const (
	// DefaultReconnectAttempts is how many dials one request makes, at
	// most, to replace a lost connection when Options.ReconnectAttempts
	// is zero. With the back-off between them they span about 5 seconds.
	DefaultReconnectAttempts = 8
	// ReconnectBackoffMin is the pause after the first failed dial; it
	// doubles after each further one, up to ReconnectBackoffMax. Each
	// pause is randomized between half and all of its value, so that
	// clients cut off together do not all come back at the same instant.
	ReconnectBackoffMin = 50 * time.Millisecond
	ReconnectBackoffMax = 2 * time.Second
	// DefaultReconnectDialTimeout bounds each reconnection dial when
	// Options.DialTimeout is zero, so that an address that accepts and
	// stays silent cannot hold a request without a deadline forever.
	DefaultReconnectDialTimeout = 5 * time.Second
)

// maxReconnects bounds the new connections one request makes: a server
// that accepts and then drops every connection must not keep a request
// going forever.
const maxReconnects = 2

// maxLine bounds a server line; real responses are a few hundred bytes, a
// full page of USERS a few hundred KB, so anything near this is a
// misbehaving peer rather than data to keep.
const maxLine = 1 << 20

// Options configure Dial. The zero value (or nil) dials plaintext TCP with
// no timeout besides the context's, and reconnects (see the package
// documentation).
type Options struct {
	// TLSConfig, when set, makes Dial use TLS with this configuration;
	// nil means plaintext.
	TLSConfig *tls.Config
	// DialTimeout bounds connecting and reading the greeting, for Dial
	// and for each dial made to reconnect; zero means only the context's
	// deadline applies to Dial, and DefaultReconnectDialTimeout (besides
	// the request's context) to each reconnection dial.
	DialTimeout time.Duration
	// OnEvent, when set, is called with every event the server sends after
	// its greeting (session_ended, bye, and events unknown to this
	// package), in the order they arrive and before any response that
	// follows them. It is called from the Client's reading goroutine: it
	// must return quickly (hand the event over to a channel, say) and must
	// not make requests on the Client, which would wait for that very
	// goroutine. It may call Close.
	OnEvent func(protocol.Message)

	// NoReconnect turns reconnection off: once the connection is lost,
	// every request fails with an error wrapping ErrConnection, as if the
	// Client had been closed.
	NoReconnect bool
	// ReconnectAttempts bounds the dials one request makes to replace a
	// lost connection: zero means DefaultReconnectAttempts, a negative
	// value no bound but the request's context.
	ReconnectAttempts int
	// OnReconnect, when set, is told about every dial made to replace a
	// lost connection, for logging. It is called from the goroutine of
	// the request that dials, while that request holds the Client: it
	// must not make requests on the Client (they would wait for it). It
	// may call Close.
	OnReconnect func(ReconnectAttempt)
}

// ReconnectAttempt describes one dial made to replace a lost connection.
type ReconnectAttempt struct {
	// Attempt counts the dials made for this loss, from 1.
	Attempt int
	// Cause is why the previous connection was lost; it wraps
	// ErrConnection.
	Cause error
	// Err is nil when the dial succeeded (the request then goes on over
	// the new connection), else why it failed.
	Err error
}

// Client is a connection to an authline server, replaced by a new one to
// the same address when it is lost (see the package documentation). It is
// safe for concurrent use; requests are sent one at a time, in the order
// they acquire the connection.
type Client struct {
	addr string
	opts Options // a copy of Dial's, for reconnecting

	// life is cancelled by Close (and when the session is lost): it ends
	// dials and back-off pauses in progress.
	life context.Context
	kill context.CancelFunc

	mu      sync.Mutex
	link    *link // the current connection; replaced only with turn held
	closed  bool
	lost    bool // closed because a session login was lost
	name    string
	version string

	sessionEnded atomic.Pointer[string]

	// turn serializes round trips and guards nextID. It is a channel
	// rather than a mutex so that waiting for it honours the caller's
	// context.
	turn   chan struct{}
	nextID uint64
}

// link is one connection and its reading goroutine.
type link struct {
	conn net.Conn

	closeOnce sync.Once
	closing   chan struct{} // closed by shutdown

	// The reading goroutine hands responses over on resp (unbuffered, so
	// a response is never left behind when it stops) and closes done when
	// it stops, after setting readErr or byeReason.
	resp      chan *protocol.Message
	done      chan struct{}
	readErr   error
	byeReason string
	inEvent   atomic.Bool // the reader is inside OnEvent

	// session is set while the connection holds a session-mode login, as
	// far as the client can tell (it errs on the side of set).
	session atomic.Bool

	// failed is set (with the Client's turn held) when a request left the
	// connection unusable; it is the request's error.
	failed error
}

// Dial connects to the authline server at addr ("host:port") and reads its
// greeting. Failures wrap ErrConnection; Dial does not retry.
func Dial(ctx context.Context, addr string, opts *Options) (*Client, error) {
	c := &Client{addr: addr, turn: make(chan struct{}, 1)}
	if opts != nil {
		c.opts = *opts
	}
	l, lines, err := c.dial(ctx, c.opts.DialTimeout)
	if err != nil {
		return nil, err
	}
	c.life, c.kill = context.WithCancel(context.Background())
	c.link = l
	go c.readLoop(l, lines)
	return c, nil
}

// dial opens a connection to c.addr and reads its greeting, bounded by
// ctx and timeout (none when zero). The reading goroutine is not started.
func (c *Client) dial(ctx context.Context, timeout time.Duration) (*link, *bufio.Scanner, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}

	var (
		conn net.Conn
		err  error
	)
	netDialer := &net.Dialer{}
	if c.opts.TLSConfig != nil {
		// tls.Dialer fills in ServerName from addr when the config has none.
		d := &tls.Dialer{NetDialer: netDialer, Config: c.opts.TLSConfig}
		conn, err = d.DialContext(ctx, "tcp", c.addr)
	} else {
		conn, err = netDialer.DialContext(ctx, "tcp", c.addr)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrConnection, err)
	}

	l := &link{
		conn:    conn,
		closing: make(chan struct{}),
		resp:    make(chan *protocol.Message),
		done:    make(chan struct{}),
	}
	lines := bufio.NewScanner(conn)
	lines.Buffer(make([]byte, 0, 4096), maxLine)
	if err := c.readHello(ctx, l, lines); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return l, lines, nil
}

func (c *Client) readHello(ctx context.Context, l *link, lines *bufio.Scanner) error {
	stop := watch(ctx, l.conn.SetDeadline)
	msg, err := readMessage(lines)
	stop()
	if err == nil && ctx.Err() != nil {
		// The context ended as the greeting came: the watcher may have
		// poisoned the deadline, so do not trust the connection.
		err = ctx.Err()
	}
	if err != nil {
		if errors.Is(err, ErrConnection) {
			return err
		}
		return c.wireError(ctx, "reading greeting", err)
	}
	// The greeting's deadline must not linger into the reading goroutine.
	l.conn.SetDeadline(time.Time{})
	if msg.Event != EventHello {
		return fmt.Errorf("%w: %w: expected a hello greeting, got %s", ErrConnection, ErrProtocol, describe(msg))
	}
	if msg.Proto != protocol.Proto {
		return fmt.Errorf("%w: %w: server speaks protocol %d, this client speaks %d",
			ErrConnection, ErrProtocol, msg.Proto, protocol.Proto)
	}
	c.mu.Lock()
	c.name, c.version = msg.Server, msg.Version
	c.mu.Unlock()
	return nil
}

// readLoop reads every line after the greeting until the connection ends:
// events go to OnEvent, responses to the waiting request. Whatever ends it
// (bye, end of stream, read error, undecodable line) closes the connection;
// the next request replaces it.
func (c *Client) readLoop(l *link, lines *bufio.Scanner) {
	// done closes before the connection does, so a request whose write
	// fails on the closed connection finds the reason already set.
	defer func() {
		close(l.done)
		l.shutdown()
	}()
	for {
		msg, err := readMessage(lines)
		if err != nil {
			l.readErr = err
			return
		}
		if msg.Event != "" {
			if msg.Event == EventSessionEnded {
				reason := msg.Reason
				c.sessionEnded.Store(&reason)
				l.session.Store(false)
			}
			if c.opts.OnEvent != nil {
				l.inEvent.Store(true)
				c.opts.OnEvent(*msg)
				l.inEvent.Store(false)
			}
			if msg.Event == EventBye {
				l.byeReason = msg.Reason
				if l.byeReason == "" {
					l.byeReason = "no reason given"
				}
				return
			}
			continue // informational events need no answer
		}
		select {
		case l.resp <- msg:
		case <-l.closing:
			l.readErr = net.ErrClosed
			return
		}
	}
}

// Server returns the server name and version from the greeting of the
// current connection (after a reconnection, of the server that answered
// it).
func (c *Client) Server() (name, version string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.name, c.version
}

// SessionEnded returns the reason of the last session_ended event the
// server sent to this Client ("logout_all", "password_changed",
// "revoked", "disabled", "deleted", ...), or "" if none came. Such an
// event means the connection's session login is over; the connection
// itself stays open.
func (c *Client) SessionEnded() string {
	if r := c.sessionEnded.Load(); r != nil {
		return *r
	}
	return ""
}

// Register creates an account with the "user" role.
func (c *Client) Register(ctx context.Context, username, password string) (*protocol.UserData, error) {
	return call[protocol.UserData](ctx, c, &request{Cmd: protocol.CmdRegister, Username: username, Password: password})
}

// Login authenticates. Mode is protocol.ModeSession (the default when
// empty: later requests on this connection are authenticated) or
// protocol.ModeToken (the result carries an access token and a refresh
// token).
func (c *Client) Login(ctx context.Context, username, password, mode string) (*protocol.LoginData, error) {
	if mode == "" {
		mode = protocol.ModeSession
	}
	return call[protocol.LoginData](ctx, c, &request{Cmd: protocol.CmdLogin, Username: username, Password: password, Mode: mode})
}

// Refresh trades a refresh token for a new access token and a new refresh
// token (the data of a token-mode login). The refresh token presented is
// retired: presenting it again is taken for theft and revokes every token
// descended from the same login. See TokenSource for a helper that
// refreshes when needed.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (*protocol.LoginData, error) {
	return call[protocol.LoginData](ctx, c, &request{Cmd: protocol.CmdRefresh, RefreshToken: refreshToken})
}

// Passwd changes the password of the user of token (or, when token is
// empty, of the session). Every other session and token of the user stops
// working; when token was given, the result carries a fresh token pair
// (mode "token") to go on with. A wrong old password is refused with
// invalid_credentials, a new one the password policy refuses with
// bad_request.
func (c *Client) Passwd(ctx context.Context, oldPassword, newPassword, token string) (*protocol.LoginData, error) {
	return call[protocol.LoginData](ctx, c, &request{Cmd: protocol.CmdPasswd, OldPassword: oldPassword, NewPassword: newPassword, Token: token})
}

// Get fetches a resource (protocol.ResourceProtected or
// protocol.ResourceAdmin). An empty token means the session's login.
func (c *Client) Get(ctx context.Context, resource, token string) (*protocol.ResourceData, error) {
	return call[protocol.ResourceData](ctx, c, &request{Cmd: protocol.CmdGet, Resource: resource, Token: token})
}

// Logout revokes token, or ends the session when token is empty.
func (c *Client) Logout(ctx context.Context, token string) error {
	return c.roundTrip(ctx, &request{Cmd: protocol.CmdLogout, Token: token}, nil)
}

// LogoutAll ends every session and token of the user of token (or, when
// token is empty, of the session), this one included.
func (c *Client) LogoutAll(ctx context.Context, token string) error {
	return c.roundTrip(ctx, &request{Cmd: protocol.CmdLogout, All: true, Token: token}, nil)
}

// WhoAmI reports who the token (or, when empty, the session) belongs to.
func (c *Client) WhoAmI(ctx context.Context, token string) (*protocol.WhoAmIData, error) {
	return call[protocol.WhoAmIData](ctx, c, &request{Cmd: protocol.CmdWhoAmI, Token: token})
}

// Ping checks that the server answers.
func (c *Client) Ping(ctx context.Context) error {
	return c.roundTrip(ctx, &request{Cmd: protocol.CmdPing}, nil)
}

// The admin commands below act as the user of token (or, when token is
// empty, of the session), who must have the admin role: anyone else is
// refused with forbidden. A username that does not exist is not_found;
// removing, demoting or disabling the last admin is a conflict.

// Users returns one page of accounts in username order: at most limit
// (zero: the server's default, protocol.DefaultUsersLimit) whose names
// sort after after ("" for the first page). A non-empty Next in the result
// is the after of the next page.
func (c *Client) Users(ctx context.Context, token string, limit int, after string) (*protocol.UsersData, error) {
	return call[protocol.UsersData](ctx, c, &request{Cmd: protocol.CmdUsers, Token: token, Limit: limit, After: after})
}

// User describes one account.
func (c *Client) User(ctx context.Context, token, username string) (*protocol.UserInfo, error) {
	return c.adminUser(ctx, protocol.CmdUser, token, username)
}

// SetRole gives an account the role "user" or "admin".
func (c *Client) SetRole(ctx context.Context, token, username, role string) (*protocol.UserInfo, error) {
	return call[protocol.UserInfo](ctx, c, &request{Cmd: protocol.CmdSetRole, Token: token, Username: username, Role: role})
}

// Disable stops an account from logging in and ends its sessions and
// tokens.
func (c *Client) Disable(ctx context.Context, token, username string) (*protocol.UserInfo, error) {
	return c.adminUser(ctx, protocol.CmdDisable, token, username)
}

// Enable lets a disabled account log in again.
func (c *Client) Enable(ctx context.Context, token, username string) (*protocol.UserInfo, error) {
	return c.adminUser(ctx, protocol.CmdEnable, token, username)
}

// Unlock clears an account's failed-login throttling.
func (c *Client) Unlock(ctx context.Context, token, username string) (*protocol.UserInfo, error) {
	return c.adminUser(ctx, protocol.CmdUnlock, token, username)
}

// Revoke ends every session and token of an account.
func (c *Client) Revoke(ctx context.Context, token, username string) (*protocol.UserInfo, error) {
	return c.adminUser(ctx, protocol.CmdRevoke, token, username)
}

// Delete removes an account for good.
func (c *Client) Delete(ctx context.Context, token, username string) (*protocol.UserData, error) {
	return call[protocol.UserData](ctx, c, &request{Cmd: protocol.CmdDelete, Token: token, Username: username})
}

func (c *Client) adminUser(ctx context.Context, cmd, token, username string) (*protocol.UserInfo, error) {
	return call[protocol.UserInfo](ctx, c, &request{Cmd: cmd, Token: token, Username: username})
}

// Quit says goodbye: it sends QUIT, reads the answer and waits for the
// server's bye, and closes the connection. The Client is closed afterwards
// whatever happens. Quit does not reconnect to say goodbye: on a lost
// connection it fails with ErrConnection.
func (c *Client) Quit(ctx context.Context) error {
	defer c.Close()
	if err := c.roundTrip(ctx, &request{Cmd: protocol.CmdQuit}, nil); err != nil {
		return err
	}
	// The bye follows the answer, and the reading goroutine stops on it.
	// Not seeing it is not worth failing over: we are leaving either way.
	l := c.current()
	select {
	case <-l.done:
	case <-ctx.Done():
	}
	return nil
}

// Close closes the connection without saying goodbye; the Client never
// reconnects afterwards. It may be called concurrently with a request,
// which then fails with ErrConnection.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	l := c.link
	c.mu.Unlock()
	c.kill() // ends a reconnection in progress
	err := l.shutdown()
	if !l.inEvent.Load() { // OnEvent calling Close must not wait for itself
		<-l.done
	}
	return err
}

// shutdown closes the connection once; the reading goroutine then stops.
func (l *link) shutdown() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.closing)
		err = l.conn.Close()
	})
	return err
}

// current returns the current connection.
func (c *Client) current() *link {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.link
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// acquire waits for the connection's turn, or until ctx is done.
func (c *Client) acquire(ctx context.Context) error {
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	// select picks at random when both are ready; a done ctx must not send.
	if err := ctx.Err(); err != nil {
		c.release()
		return err
	}
	return nil
}

func (c *Client) release() { <-c.turn }

// request is the JSON shape of a request line.
type request struct {
	ID           uint64 `json:"id"`
	Cmd          string `json:"cmd"`
	Username     string `json:"username,omitempty"`
	Password     string `json:"password,omitempty"`
	Mode         string `json:"mode,omitempty"`
	Resource     string `json:"resource,omitempty"`
	Token        string `json:"token,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	OldPassword  string `json:"old_password,omitempty"`
	NewPassword  string `json:"new_password,omitempty"`
	All          bool   `json:"all,omitempty"`
	Role         string `json:"role,omitempty"`
	Limit        int    `json:"limit,omitempty"`
	After        string `json:"after,omitempty"`
}

// resendable lists the commands that may be sent again on a new
// connection after being written to one that broke before their answer:
// they only read, so carrying one out twice does no harm. Every other
// command (and any command not listed) is sent at most once.
var resendable = map[string]bool{
	protocol.CmdGet:    true,
	protocol.CmdWhoAmI: true,
	protocol.CmdPing:   true,
	protocol.CmdJWKS:   true,
	protocol.CmdUsers:  true,
	protocol.CmdUser:   true,
}

// call makes a round trip whose response data decodes into a T.
func call[T any](ctx context.Context, c *Client, req *request) (*T, error) {
	var d T
	if err := c.roundTrip(ctx, req, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// roundTrip sends req and waits for its response, decoding the data into
// out (when non-nil). Error responses come back as *protocol.Error. A
// lost connection is replaced first when allowed (see usable); anything
// that leaves the stream in an unknown state closes the connection, and
// the request is sent again on a new one only if that is safe (see
// retryable). Errors that remain wrap ErrConnection.
func (c *Client) roundTrip(ctx context.Context, req *request, out any) error {
	if err := c.acquire(ctx); err != nil {
		return err // nothing was sent: the connection is still good
	}
	defer c.release()

	reconnects, resent := 0, false
	for {
		l, err := c.usable(ctx, req.Cmd, &reconnects)
		if err != nil {
			return err
		}

		c.nextID++
		req.ID = c.nextID
		line, err := json.Marshal(req)
		if err != nil {
			return fmt.Errorf("encoding %s request: %w", req.Cmd, err)
		}
		line = append(line, '\n')

		msg, sent, err := c.exchange(ctx, l, req, line)
		if err != nil {
			// A timeout or a half-written line leaves the stream out of
			// step with our ids, so the connection cannot be reused.
			select {
			case <-l.done: // the reader knows why it was lost
			default:
				if l.failed == nil {
					l.failed = err
				}
			}
			l.shutdown()
			if c.retryable(ctx, l, req.Cmd, sent, resent, err) {
				resent = resent || sent
				continue
			}
			if l.session.Load() {
				return c.loseSession(err)
			}
			return err
		}
		if perr := msg.Err(); perr != nil {
			return perr
		}
		noteSession(l, req)
		if out != nil && len(msg.Data) > 0 {
			if err := json.Unmarshal(msg.Data, out); err != nil {
				l.failed = fmt.Errorf("%w: %w: %s response data: %v", ErrConnection, ErrProtocol, req.Cmd, err)
				l.shutdown()
				return l.failed
			}
		}
		return nil
	}
}

// noteSession keeps track of whether l holds a session login, after a
// successful answer to req. A session ended by the server's own doing
// clears it too (the session_ended event, see readLoop). Doubtful cases
// (LOGOUT ALL with a token, which ends the session only if it is the same
// user's) keep it set: a session wrongly believed lost costs a new Dial,
// one wrongly believed absent would carry on without it.
func noteSession(l *link, req *request) {
	switch {
	case req.Cmd == protocol.CmdLogin && req.Mode == protocol.ModeSession:
		l.session.Store(true)
	case req.Cmd == protocol.CmdLogout && req.Token == "":
		l.session.Store(false)
	}
}

// usable returns a connection to send cmd on: the current one if it is
// still up, else a new one (counted in *reconnects) when reconnecting is
// allowed. Call it with the turn held.
func (c *Client) usable(ctx context.Context, cmd string, reconnects *int) (*link, error) {
	c.mu.Lock()
	l, closed, lost := c.link, c.closed, c.lost
	c.mu.Unlock()
	switch {
	case lost:
		return nil, fmt.Errorf("%w: %s: %w, log in again on a new Client", ErrConnection, cmd, ErrSessionLost)
	case closed:
		return nil, fmt.Errorf("%w: %s: client closed", ErrConnection, cmd)
	}
	if l.failed == nil {
		select {
		case <-l.done:
		default:
			return l, nil // up, as far as we know
		}
	}

	var cause error
	if l.failed != nil {
		// Not %w: the earlier request's timeout, say, is not this one's.
		cause = fmt.Errorf("%w: %s: the connection was closed after an earlier request failed (%s)",
			ErrConnection, cmd, strings.TrimPrefix(l.failed.Error(), ErrConnection.Error()+": "))
	} else {
		cause = c.readerError(ctx, l, cmd)
	}
	if l.session.Load() {
		return nil, c.loseSession(cause)
	}
	if c.opts.NoReconnect || cmd == protocol.CmdQuit || *reconnects >= maxReconnects {
		return nil, cause
	}
	*reconnects++
	return c.reconnect(ctx, l, cause)
}

// retryable reports whether a request whose exchange on l failed with err
// may be sent again on a new connection: never once ctx is done or the
// Client closed, nor when l held a session login, reconnecting is off, or
// the server broke the protocol (asking again would hide that); always
// when nothing of it was written; once for a request that only reads.
func (c *Client) retryable(ctx context.Context, l *link, cmd string, sent, resent bool, err error) bool {
	if ctx.Err() != nil || c.isClosed() || l.session.Load() || c.opts.NoReconnect ||
		cmd == protocol.CmdQuit || errors.Is(err, ErrProtocol) {
		return false
	}
	if !sent {
		return true
	}
	return resendable[cmd] && !resent
}

// loseSession closes the Client after the connection holding a session
// login was lost with cause, and returns the error for the request.
func (c *Client) loseSession(cause error) error {
	c.mu.Lock()
	if !c.closed {
		c.closed, c.lost = true, true
	}
	c.mu.Unlock()
	c.kill()
	return fmt.Errorf("%w; %w, log in again on a new Client", cause, ErrSessionLost)
}

// reconnect replaces the lost connection old, dialing with back-off until
// a dial succeeds, the attempts run out, ctx is done or the Client is
// closed. Call it with the turn held.
func (c *Client) reconnect(ctx context.Context, old *link, cause error) (*link, error) {
	// Let the old connection's reader finish before another starts, so
	// that at most one ever runs (and Close waits for the right one).
	old.shutdown()
	select {
	case <-old.done:
	case <-ctx.Done():
		return nil, c.giveUp(cause, fmt.Errorf("%w: %w", ErrConnection, ctx.Err()), 0)
	}

	// Dials and pauses end when Close is called, as well as with ctx.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.life, cancel)
	defer stop()

	limit := c.opts.ReconnectAttempts
	if limit == 0 {
		limit = DefaultReconnectAttempts
	}
	timeout := c.opts.DialTimeout
	if timeout == 0 {
		timeout = DefaultReconnectDialTimeout
	}
	pause := ReconnectBackoffMin
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			t := time.NewTimer(pause/2 + rand.N(pause/2+1))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, c.giveUp(cause, fmt.Errorf("%w: %w", ErrConnection, ctx.Err()), attempt-1)
			}
			pause = min(2*pause, ReconnectBackoffMax)
		}
		l, lines, err := c.dial(ctx, timeout)
		if c.opts.OnReconnect != nil {
			c.opts.OnReconnect(ReconnectAttempt{Attempt: attempt, Cause: cause, Err: err})
		}
		if err == nil {
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				l.conn.Close()
				return nil, c.giveUp(cause, nil, attempt)
			}
			c.link = l
			c.mu.Unlock()
			go c.readLoop(l, lines)
			return l, nil
		}
		if ctx.Err() != nil || (limit > 0 && attempt >= limit) {
			return nil, c.giveUp(cause, err, attempt)
		}
	}
}

// giveUp is the error of a reconnection that ended after attempts dials,
// the last failing with last.
func (c *Client) giveUp(cause, last error, attempts int) error {
	if c.isClosed() {
		last = errors.New("client closed")
	}
	return &reconnectError{lost: cause, last: last, attempts: attempts}
}

// reconnectError is a lost connection that could not be replaced: it
// reads as the loss followed by the last dial's failure, and wraps both.
type reconnectError struct {
	lost, last error
	attempts   int
}

func (e *reconnectError) Error() string {
	last := "client closed"
	if e.last != nil {
		last = strings.TrimPrefix(e.last.Error(), ErrConnection.Error()+": ")
	}
	if e.attempts == 0 {
		return fmt.Sprintf("%v; not reconnected: %s", e.lost, last)
	}
	return fmt.Sprintf("%v; reconnecting failed after %d attempts: %s", e.lost, e.attempts, last)
}

func (e *reconnectError) Unwrap() []error {
	if e.last == nil {
		return []error{e.lost}
	}
	return []error{e.lost, e.last}
}

// exchange writes one request line on l and waits for the reading
// goroutine to hand over its response. Every error it returns wraps
// ErrConnection; sent reports whether any of the line may have been
// written.
func (c *Client) exchange(ctx context.Context, l *link, req *request, line []byte) (msg *protocol.Message, sent bool, err error) {
	select {
	case <-l.done: // lost since usable looked: nothing was written
		return nil, false, c.readerError(ctx, l, req.Cmd)
	default:
	}
	// Only writes get the conn deadline: a read deadline would stop the
	// reading goroutine, which outlives this request.
	stop := watch(ctx, l.conn.SetWriteDeadline)
	n, err := l.conn.Write(line)
	stop()
	if err != nil {
		sent = n > 0
		select {
		case <-l.done: // the server said bye, or the stream ended: say why
			return nil, sent, c.readerError(ctx, l, req.Cmd)
		default:
		}
		return nil, sent, c.wireError(ctx, req.Cmd, err)
	}
	select {
	case msg = <-l.resp:
	case <-l.done:
		return nil, true, c.readerError(ctx, l, req.Cmd)
	case <-ctx.Done():
		return nil, true, fmt.Errorf("%w: %s: %w", ErrConnection, req.Cmd, ctx.Err())
	}
	want := strconv.FormatUint(req.ID, 10)
	switch {
	case string(msg.ID) == want:
		return msg, true, nil
	case len(msg.ID) == 0 && !msg.OK:
		// The server could not read our line far enough to find the id
		// (e.g. line_too_long); the error is still ours.
		return msg, true, nil
	default:
		return nil, true, fmt.Errorf("%w: %w: %s: response id %s, want %s", ErrConnection, ErrProtocol, req.Cmd, msg.ID, want)
	}
}

// readerError explains why l's reading goroutine stopped, for a request
// that was waiting or about to be sent. Call it only after l.done.
func (c *Client) readerError(ctx context.Context, l *link, what string) error {
	if l.byeReason != "" {
		return fmt.Errorf("%w: %s: server closed the connection (%s)", ErrConnection, what, l.byeReason)
	}
	if errors.Is(l.readErr, ErrConnection) {
		return l.readErr // a protocol violation, classified already
	}
	return c.wireError(ctx, what, l.readErr)
}

// readMessage reads and decodes one line. Decoding failures wrap
// ErrConnection and ErrProtocol; read failures are returned as is for
// wireError to classify.
func readMessage(lines *bufio.Scanner) (*protocol.Message, error) {
	if !lines.Scan() {
		if err := lines.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("server closed the connection")
	}
	var msg protocol.Message
	if err := json.Unmarshal(lines.Bytes(), &msg); err != nil {
		return nil, fmt.Errorf("%w: %w: undecodable line from server: %v", ErrConnection, ErrProtocol, err)
	}
	return &msg, nil
}

// watch applies ctx to a connection through setDeadline (the read and
// write deadline, or the write deadline only) for one operation: its
// deadline becomes the conn deadline (none when ctx has none), and
// cancelling ctx interrupts blocked I/O. The returned stop must be called
// once the operation is over.
func watch(ctx context.Context, setDeadline func(time.Time) error) (stop func()) {
	deadline, _ := ctx.Deadline() // zero time clears any previous deadline
	setDeadline(deadline)
	// A deadline in the past wakes up blocked reads and writes at once.
	unwatch := context.AfterFunc(ctx, func() { setDeadline(time.Unix(1, 0)) })
	return func() { unwatch() }
}

// wireError wraps a network-level failure in ErrConnection, reporting the
// context's error rather than a bare i/o timeout when the context is why.
func (c *Client) wireError(ctx context.Context, what string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%w: %s: %w", ErrConnection, what, ctxErr)
	}
	if d, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(d) {
		// The conn deadline can fire a hair before the context's timer.
		return fmt.Errorf("%w: %s: %w", ErrConnection, what, context.DeadlineExceeded)
	}
	if errors.Is(err, net.ErrClosed) && c.isClosed() {
		return fmt.Errorf("%w: %s: client closed", ErrConnection, what)
	}
	return fmt.Errorf("%w: %s: %w", ErrConnection, what, err)
}

// describe summarizes an unexpected message without echoing data that
// might be sensitive.
func describe(m *protocol.Message) string {
	if m.Event != "" {
		return fmt.Sprintf("event %q", m.Event)
	}
	return fmt.Sprintf("a response (status %d)", m.Status)
}
