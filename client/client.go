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

// maxLine bounds a server line; real responses are a few hundred bytes, so
// anything near this is a misbehaving peer rather than data to keep.
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
}

// Client is a connection to an authline server. It is safe for concurrent
// use; requests are sent one at a time, in the order they acquire the
// connection.
type Client struct {
	conn    net.Conn
	name    string
	version string

	closed atomic.Bool

	// turn serializes round trips and guards the fields below. It is a
	// channel rather than a mutex so that waiting for it honours the
	// caller's context.
	turn   chan struct{}
	lines  *bufio.Scanner
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

	c := &Client{conn: conn, turn: make(chan struct{}, 1), lines: bufio.NewScanner(conn)}
	c.lines.Buffer(make([]byte, 0, 4096), maxLine)
	if err := c.readHello(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *Client) readHello(ctx context.Context) error {
	stop := c.watch(ctx)
	msg, err := c.readMessage()
	stop()
	if err != nil {
		if errors.Is(err, ErrConnection) {
			return err
		}
		return c.wireError(ctx, "reading greeting", err)
	}
	if msg.Event != "hello" {
		return fmt.Errorf("%w: %w: expected a hello greeting, got %s", ErrConnection, ErrProtocol, describe(msg))
	}
	if msg.Proto != protocol.Proto {
		return fmt.Errorf("%w: %w: server speaks protocol %d, this client speaks %d",
			ErrConnection, ErrProtocol, msg.Proto, protocol.Proto)
	}
	c.name, c.version = msg.Server, msg.Version
	return nil
}

// Server returns the server name and version from the greeting.
func (c *Client) Server() (name, version string) { return c.name, c.version }

// Register creates an account with the "user" role.
func (c *Client) Register(ctx context.Context, username, password string) (*protocol.UserData, error) {
	var d protocol.UserData
	err := c.roundTrip(ctx, &request{Cmd: protocol.CmdRegister, Username: username, Password: password}, &d)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// Login authenticates. Mode is protocol.ModeSession (the default when
// empty: later requests on this connection are authenticated) or
// protocol.ModeToken (the result carries a bearer token).
func (c *Client) Login(ctx context.Context, username, password, mode string) (*protocol.LoginData, error) {
	if mode == "" {
		mode = protocol.ModeSession
	}
	var d protocol.LoginData
	err := c.roundTrip(ctx, &request{Cmd: protocol.CmdLogin, Username: username, Password: password, Mode: mode}, &d)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// Get fetches a resource (protocol.ResourceProtected or
// protocol.ResourceAdmin). An empty token means the session's login.
func (c *Client) Get(ctx context.Context, resource, token string) (*protocol.ResourceData, error) {
	var d protocol.ResourceData
	err := c.roundTrip(ctx, &request{Cmd: protocol.CmdGet, Resource: resource, Token: token}, &d)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// Logout revokes token, or ends the session when token is empty.
func (c *Client) Logout(ctx context.Context, token string) error {
	return c.roundTrip(ctx, &request{Cmd: protocol.CmdLogout, Token: token}, nil)
}

// WhoAmI reports who the token (or, when empty, the session) belongs to.
func (c *Client) WhoAmI(ctx context.Context, token string) (*protocol.WhoAmIData, error) {
	var d protocol.WhoAmIData
	err := c.roundTrip(ctx, &request{Cmd: protocol.CmdWhoAmI, Token: token}, &d)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// Ping checks that the server answers.
func (c *Client) Ping(ctx context.Context) error {
	return c.roundTrip(ctx, &request{Cmd: protocol.CmdPing}, nil)
}

// Quit says goodbye: it sends QUIT, reads the answer and the server's bye,
// and closes the connection. The Client is closed afterwards whatever
// happens.
func (c *Client) Quit(ctx context.Context) error {
	defer c.Close()
	err := c.roundTrip(ctx, &request{Cmd: protocol.CmdQuit}, nil)
	if err != nil {
		return err
	}

	// The bye follows the answer. Anything else here is not worth failing
	// over: we are leaving either way.
	if c.acquire(ctx) != nil {
		return nil
	}
	defer c.release()
	stop := c.watch(ctx)
	for {
		msg, err := c.readMessage()
		if err != nil || msg.Event == "bye" {
			break
		}
	}
	stop()
	return nil
}

// Close closes the connection without saying goodbye. It may be called
// concurrently with a request, which then fails with ErrConnection.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	return c.conn.Close()
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
	ID       uint64 `json:"id"`
	Cmd      string `json:"cmd"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	Mode     string `json:"mode,omitempty"`
	Resource string `json:"resource,omitempty"`
	Token    string `json:"token,omitempty"`
}

// roundTrip sends req and reads its response, decoding the data into out
// (when non-nil). Error responses come back as *protocol.Error; anything
// that leaves the stream in an unknown state closes the Client and wraps
// ErrConnection.
func (c *Client) roundTrip(ctx context.Context, req *request, out any) error {
	if err := c.acquire(ctx); err != nil {
		return err // nothing was sent: the connection is still good
	}
	defer c.release()
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

	stop := c.watch(ctx)
	msg, err := c.exchange(req, line)
	stop()
	if err != nil {
		// A timeout or a half-read line leaves the stream out of step with
		// our ids, so the connection cannot be reused.
		c.Close()
		if errors.Is(err, ErrConnection) {
			return err // already classified by exchange
		}
		return c.wireError(ctx, req.Cmd, err)
	}

	if perr := msg.Err(); perr != nil {
		return perr
	}
	if out != nil && len(msg.Data) > 0 {
		if err := json.Unmarshal(msg.Data, out); err != nil {
			c.Close()
			return fmt.Errorf("%w: %w: %s response data: %v", ErrConnection, ErrProtocol, req.Cmd, err)
		}
	}
	return nil
}

// exchange writes one request line and reads up to its response, skipping
// events other than bye.
func (c *Client) exchange(req *request, line []byte) (*protocol.Message, error) {
	if _, err := c.conn.Write(line); err != nil {
		return nil, err
	}
	want := strconv.FormatUint(req.ID, 10)
	for {
		msg, err := c.readMessage()
		if err != nil {
			return nil, err
		}
		switch {
		case msg.Event == "bye":
			return nil, fmt.Errorf("%w: %s: server closed the connection (%s)", ErrConnection, req.Cmd, msg.Reason)
		case msg.Event != "":
			continue // informational events need no answer
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
}

// readMessage reads and decodes one line. Decoding failures wrap
// ErrConnection and ErrProtocol; read failures are returned as is for
// wireError to classify.
func (c *Client) readMessage() (*protocol.Message, error) {
	if !c.lines.Scan() {
		if err := c.lines.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("server closed the connection")
	}
	var msg protocol.Message
	if err := json.Unmarshal(c.lines.Bytes(), &msg); err != nil {
		return nil, fmt.Errorf("%w: %w: undecodable line from server: %v", ErrConnection, ErrProtocol, err)
	}
	return &msg, nil
}

// watch applies ctx to the connection for one exchange: its deadline
// becomes the conn deadline (none when ctx has none), and cancelling ctx
// interrupts blocked I/O. The returned stop must be called once the
// exchange is over.
func (c *Client) watch(ctx context.Context) (stop func()) {
	deadline, _ := ctx.Deadline() // zero time clears any previous deadline
	c.conn.SetDeadline(deadline)
	// A deadline in the past wakes up blocked reads and writes at once.
	unwatch := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
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
