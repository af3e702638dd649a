// Package client is a Go client for authline servers: it speaks the
// newline-delimited JSON protocol of package protocol over TCP or TLS.
//
// Errors fall into two classes that callers can tell apart:
//
//   - the request could not be carried out on the wire (dial failure, broken
//     or closed connection, timeout, server shutting down, garbled reply):
//     errors.Is(err, ErrConnection) is true and the Client is unusable;
//   - the server answered and refused: the error is a *protocol.Error
//     (errors.As) with the wire Code and Status, and the Client stays usable.
//
// The server may send events at any time, not only in reply to a request
// (session_ended when the connection's session was ended from elsewhere).
// A Client therefore reads the connection continuously in a goroutine of
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
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authline/authline/protocol"
)

// ErrConnection is wrapped by every error that means the client could not
// talk to the server: it could not connect, the connection broke or timed
// out, or the server closed it. After such an error (other than from Dial)
// the Client is closed.
var ErrConnection = errors.New("connection error")

// ErrProtocol is wrapped (together with ErrConnection) when the server sent
// something that is not valid protocol v1: a bad greeting, a line that is
// not JSON, or a response to another request.
var ErrProtocol = errors.New("protocol violation")

// Event names of protocol v1.
const (
	EventHello        = "hello"
	EventBye          = "bye"
	EventSessionEnded = "session_ended"
)

// maxLine bounds a server line; real responses are a few hundred bytes, a
// full page of USERS a few hundred KB, so anything near this is a
// misbehaving peer rather than data to keep.
const maxLine = 1 << 20

// Options configure Dial. The zero value (or nil) dials plaintext TCP with
// no timeout besides the context's.
type Options struct {
	// TLSConfig, when set, makes Dial use TLS with this configuration;
	// nil means plaintext.
	TLSConfig *tls.Config
	// DialTimeout bounds connecting and reading the greeting; zero means
	// only the context's deadline applies.
	DialTimeout time.Duration
	// OnEvent, when set, is called with every event the server sends after
	// its greeting (session_ended, bye, and events unknown to this
	// package), in the order they arrive and before any response that
	// follows them. It is called from the Client's reading goroutine: it
	// must return quickly (hand the event over to a channel, say) and must
	// not make requests on the Client, which would wait for that very
	// goroutine. It may call Close.
	OnEvent func(protocol.Message)
}

// Client is a connection to an authline server. It is safe for concurrent
// use; requests are sent one at a time, in the order they acquire the
// connection.
type Client struct {
	conn    net.Conn
	name    string
	version string
	onEvent func(protocol.Message)

	closed    atomic.Bool
	closeOnce sync.Once
	closing   chan struct{} // closed by Close

	// The reading goroutine hands responses over on resp (unbuffered, so
	// a response is never left behind when it stops) and closes
	// readerDone when it stops, after setting readErr or byeReason.
	resp       chan *protocol.Message
	readerDone chan struct{}
	readErr    error
	byeReason  string
	inEvent    atomic.Bool // the reader is inside OnEvent

	sessionEnded atomic.Pointer[string]

	// turn serializes round trips and guards nextID. It is a channel
	// rather than a mutex so that waiting for it honours the caller's
	// context.
	turn   chan struct{}
	nextID uint64
}

// Dial connects to the authline server at addr ("host:port") and reads its
// greeting. Failures wrap ErrConnection.
func Dial(ctx context.Context, addr string, opts *Options) (*Client, error) {
	if opts == nil {
		opts = &Options{}
	}
	if opts.DialTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.DialTimeout)
		defer cancel()
	}

	var (
		conn net.Conn
		err  error
	)
	netDialer := &net.Dialer{}
	if opts.TLSConfig != nil {
		// tls.Dialer fills in ServerName from addr when the config has none.
		d := &tls.Dialer{NetDialer: netDialer, Config: opts.TLSConfig}
		conn, err = d.DialContext(ctx, "tcp", addr)
	} else {
		conn, err = netDialer.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConnection, err)
	}

	c := &Client{
		conn:       conn,
		onEvent:    opts.OnEvent,
		closing:    make(chan struct{}),
		resp:       make(chan *protocol.Message),
		readerDone: make(chan struct{}),
		turn:       make(chan struct{}, 1),
	}
	lines := bufio.NewScanner(conn)
	lines.Buffer(make([]byte, 0, 4096), maxLine)
	if err := c.readHello(ctx, lines); err != nil {
		conn.Close()
		return nil, err
	}
	go c.readLoop(lines)
	return c, nil
}

func (c *Client) readHello(ctx context.Context, lines *bufio.Scanner) error {
	stop := c.watch(ctx, c.conn.SetDeadline)
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
	c.conn.SetDeadline(time.Time{})
	if msg.Event != EventHello {
		return fmt.Errorf("%w: %w: expected a hello greeting, got %s", ErrConnection, ErrProtocol, describe(msg))
	}
	if msg.Proto != protocol.Proto {
		return fmt.Errorf("%w: %w: server speaks protocol %d, this client speaks %d",
			ErrConnection, ErrProtocol, msg.Proto, protocol.Proto)
	}
	c.name, c.version = msg.Server, msg.Version
	return nil
}

// readLoop reads every line after the greeting until the connection ends:
// events go to OnEvent, responses to the waiting request. Whatever ends it
// (bye, end of stream, read error, undecodable line) closes the Client.
func (c *Client) readLoop(lines *bufio.Scanner) {
	// readerDone closes before the connection does, so a request whose
	// write fails on the closed connection finds the reason already set.
	defer func() {
		close(c.readerDone)
		c.shutdown()
	}()
	for {
		msg, err := readMessage(lines)
		if err != nil {
			c.readErr = err
			return
		}
		if msg.Event != "" {
			if msg.Event == EventSessionEnded {
				reason := msg.Reason
				c.sessionEnded.Store(&reason)
			}
			if c.onEvent != nil {
				c.inEvent.Store(true)
				c.onEvent(*msg)
				c.inEvent.Store(false)
			}
			if msg.Event == EventBye {
				c.byeReason = msg.Reason
				if c.byeReason == "" {
					c.byeReason = "no reason given"
				}
				return
			}
			continue // informational events need no answer
		}
		select {
		case c.resp <- msg:
		case <-c.closing:
			c.readErr = net.ErrClosed
			return
		}
	}
}

// Server returns the server name and version from the greeting.
func (c *Client) Server() (name, version string) { return c.name, c.version }

// SessionEnded returns the reason of the last session_ended event the
// server sent on this connection ("logout_all", "password_changed",
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
// whatever happens.
func (c *Client) Quit(ctx context.Context) error {
	defer c.Close()
	if err := c.roundTrip(ctx, &request{Cmd: protocol.CmdQuit}, nil); err != nil {
		return err
	}
	// The bye follows the answer, and the reading goroutine stops on it.
	// Not seeing it is not worth failing over: we are leaving either way.
	select {
	case <-c.readerDone:
	case <-ctx.Done():
	}
	return nil
}

// Close closes the connection without saying goodbye. It may be called
// concurrently with a request, which then fails with ErrConnection.
func (c *Client) Close() error {
	err := c.shutdown()
	if !c.inEvent.Load() { // OnEvent calling Close must not wait for itself
		<-c.readerDone
	}
	return err
}

// shutdown closes the connection once; the reading goroutine then stops.
func (c *Client) shutdown() error {
	var err error
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		close(c.closing)
		err = c.conn.Close()
	})
	return err
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

// call makes a round trip whose response data decodes into a T.
func call[T any](ctx context.Context, c *Client, req *request) (*T, error) {
	var d T
	if err := c.roundTrip(ctx, req, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// roundTrip sends req and waits for its response, decoding the data into
// out (when non-nil). Error responses come back as *protocol.Error;
// anything that leaves the stream in an unknown state closes the Client
// and wraps ErrConnection.
func (c *Client) roundTrip(ctx context.Context, req *request, out any) error {
	if err := c.acquire(ctx); err != nil {
		return err // nothing was sent: the connection is still good
	}
	defer c.release()
	select {
	case <-c.readerDone:
		return c.readerError(ctx, req.Cmd)
	default:
	}
	if c.closed.Load() {
		return fmt.Errorf("%w: %s: %w", ErrConnection, req.Cmd, net.ErrClosed)
	}

	c.nextID++
	req.ID = c.nextID
	line, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding %s request: %w", req.Cmd, err)
	}
	line = append(line, '\n')

	msg, err := c.exchange(ctx, req, line)
	if err != nil {
		// A timeout or a half-written line leaves the stream out of step
		// with our ids, so the connection cannot be reused.
		c.shutdown()
		return err
	}
	if perr := msg.Err(); perr != nil {
		return perr
	}
	if out != nil && len(msg.Data) > 0 {
		if err := json.Unmarshal(msg.Data, out); err != nil {
			c.shutdown()
			return fmt.Errorf("%w: %w: %s response data: %v", ErrConnection, ErrProtocol, req.Cmd, err)
		}
	}
	return nil
}

// exchange writes one request line and waits for the reading goroutine to
// hand over its response. Every error it returns wraps ErrConnection.
func (c *Client) exchange(ctx context.Context, req *request, line []byte) (*protocol.Message, error) {
	// Only writes get the conn deadline: a read deadline would stop the
	// reading goroutine, which outlives this request.
	stop := c.watch(ctx, c.conn.SetWriteDeadline)
	_, err := c.conn.Write(line)
	stop()
	if err != nil {
		select {
		case <-c.readerDone: // the server said bye, or the stream ended: say why
			return nil, c.readerError(ctx, req.Cmd)
		default:
		}
		return nil, c.wireError(ctx, req.Cmd, err)
	}
	var msg *protocol.Message
	select {
	case msg = <-c.resp:
	case <-c.readerDone:
		return nil, c.readerError(ctx, req.Cmd)
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %s: %w", ErrConnection, req.Cmd, ctx.Err())
	}
	want := strconv.FormatUint(req.ID, 10)
	switch {
	case string(msg.ID) == want:
		return msg, nil
	case len(msg.ID) == 0 && !msg.OK:
		// The server could not read our line far enough to find the id
		// (e.g. line_too_long); the error is still ours.
		return msg, nil
	default:
		return nil, fmt.Errorf("%w: %w: %s: response id %s, want %s", ErrConnection, ErrProtocol, req.Cmd, msg.ID, want)
	}
}

// readerError explains why the reading goroutine stopped, for a request
// that was waiting or about to be sent. Call it only after readerDone.
func (c *Client) readerError(ctx context.Context, what string) error {
	if c.byeReason != "" {
		return fmt.Errorf("%w: %s: server closed the connection (%s)", ErrConnection, what, c.byeReason)
	}
	if errors.Is(c.readErr, ErrConnection) {
		return c.readErr // a protocol violation, classified already
	}
	return c.wireError(ctx, what, c.readErr)
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

// watch applies ctx to the connection through setDeadline (the read and
// write deadline, or the write deadline only) for one operation: its
// deadline becomes the conn deadline (none when ctx has none), and
// cancelling ctx interrupts blocked I/O. The returned stop must be called
// once the operation is over.
func (c *Client) watch(ctx context.Context, setDeadline func(time.Time) error) (stop func()) {
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
	if c.closed.Load() && errors.Is(err, net.ErrClosed) {
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
