package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server/internal/offload"
)

const (
	readBufferSize = 4 << 10
	// idleReadSize is what an idle connection reads into while it holds no
	// read buffer: enough for a request line with a token.
	idleReadSize = 512
	// maxKeptOut is the largest response buffer kept while idle; a bigger
	// one (a long USERS page) is left to the garbage collector.
	maxKeptOut = 16 << 10
	// flushThreshold bounds the responses a pipelining client can make the
	// server hold before they are written out.
	flushThreshold = 16 << 10
)

var errLineTooLong = errors.New("line too long")

// renewAfter is how long, in nanoseconds, a connection waits idle before
// it is renewed (see conn.renew); zero or less: never. A variable so that
// tests can shorten it.
var renewAfter atomic.Int64

func init() { renewAfter.Store(int64(time.Second)) }

// conn is one client connection, served by one goroutine.
type conn struct {
	srv  *Server
	nc   net.Conn
	peer Peer
	// r and out belong to bufs, which the connection holds only while it
	// has work: an idle connection gives them back to bufferPool and waits
	// holding no buffer (see waitIdle), so 10,000 idle clients do not hold
	// 10,000 read buffers.
	bufs *connBuffers
	r    *bufio.Reader
	out  []byte // responses not yet written
	line []byte // accumulates a line longer than the read buffer

	// What an idle wait read, not yet handed to r: in a pooled chunk on a
	// plain TCP connection (raw, see readWhenReadable), else in idleBuf.
	raw       syscall.RawConn
	readRawFn func(fd uintptr) bool // c.readRaw, made once
	rawN      int                   // what readRaw read
	rawErr    error
	chunk     *[readBufferSize]byte
	idleBuf   *[idleReadSize]byte
	pending   []byte

	// mu orders the shutdown check before a read against Shutdown's
	// interrupt, so a connection cannot block in a read Shutdown missed.
	mu sync.Mutex

	session *Identity // set by a session-mode LOGIN
	// recheck asks the connection's goroutine to re-validate its session:
	// the user changed elsewhere (see Server.userChanged).
	recheck atomic.Bool
	idle    bool // blocked waiting for a request to start; under mu
	// idleSince is when the current idle wait began; renewing, that its
	// deadline is the renewal's, not the idle timeout's (see renew); fresh,
	// that this goroutine was started by renew and has served no request.
	// Only serve's goroutine uses them.
	idleSince time.Time
	renewing  bool
	fresh     bool
	// readDeadline is the read deadline last set (zero: none); under mu.
	readDeadline time.Time
	// writeDeadline is the write deadline last set; only serve's goroutine
	// writes (reject sets its own).
	writeDeadline time.Time
	// authenticated is set once the connection logged in or showed a
	// valid token; it lifts the pre-authentication line limit.
	authenticated bool
	rejected      bool // over a connection limit: answered 503 and closed
	status        int  // status of the last response buffered, for the Observer
	saidBye       bool // a bye event went out: close in order (lingerClose)

	// parser remembers the connection's last token across requests.
	parser protocol.Parser
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{srv: s, nc: nc, raw: rawConnOf(nc)}
	switch a := nc.RemoteAddr().(type) {
	case *net.TCPAddr: // TLS connections too
		// Unmapped, as the address's String form has it: an IPv4 client of
		// a dual-stack listener is counted and logged as IPv4.
		ap := a.AddrPort()
		c.peer.Addr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			c.peer.Addr = ap
		}
	}
	return c
}

func (c *conn) log() *slog.Logger { return c.srv.Logger }

// connBuffers are what a connection needs only while it handles
// requests: the read and response buffers, and the request and response
// data, kept here rather than allocated per request (a request passed by
// pointer through interfaces would escape to the heap).
type connBuffers struct {
	r   bufio.Reader
	out []byte

	req           protocol.Request
	tokenIdentity Identity // the identity of the current request's token

	userData     protocol.UserData
	loginData    protocol.LoginData
	resourceData protocol.ResourceData
	whoamiData   protocol.WhoAmIData
}

var bufferPool = sync.Pool{New: func() any {
	return &connBuffers{r: *bufio.NewReaderSize(nil, readBufferSize)}
}}

// takeBuffers gives the connection its buffers; the read buffer first
// hands out what an idle read left in pending.
func (c *conn) takeBuffers() {
	if c.bufs != nil {
		return
	}
	c.bufs = bufferPool.Get().(*connBuffers)
	c.bufs.r.Reset(c)
	c.r, c.out = &c.bufs.r, c.bufs.out[:0]
}

// releaseBuffers gives the buffers back while the connection is idle; the
// read buffer must be empty and the responses written.
func (c *conn) releaseBuffers() {
	if c.bufs == nil {
		return
	}
	if cap(c.out) <= maxKeptOut {
		c.bufs.out = c.out[:0]
	} else {
		c.bufs.out = nil
	}
	c.bufs.r.Reset(nil)
	// The data may hold tokens and user names: keep none of it in the pool.
	c.bufs.req, c.bufs.tokenIdentity = protocol.Request{}, Identity{}
	c.bufs.userData, c.bufs.loginData = protocol.UserData{}, protocol.LoginData{}
	c.bufs.resourceData, c.bufs.whoamiData = protocol.ResourceData{}, protocol.WhoAmIData{}
	bufferPool.Put(c.bufs)
	c.bufs, c.r, c.out = nil, nil, nil
	c.line = nil        // only ever used by lines longer than the read buffer
	if c.chunk != nil { // only when closing with unread input
		chunkPool.Put(c.chunk)
		c.chunk, c.pending = nil, nil
	}
}

// chunkPool holds the buffers that idle TCP connections read into when
// they wake up (readWhenReadable).
var chunkPool = sync.Pool{New: func() any { return new([readBufferSize]byte) }}

// Read is the read buffer's source: first what an idle read left in
// pending, then the network.
func (c *conn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		if len(c.pending) == 0 && c.chunk != nil {
			chunkPool.Put(c.chunk)
			c.chunk = nil
		}
		return n, nil
	}
	return c.nc.Read(p)
}

// waitIdle waits, holding no buffers, for the client to send something.
func (c *conn) waitIdle() error {
	if len(c.pending) > 0 {
		return nil
	}
	c.releaseBuffers()
	var n int
	var err error
	if c.raw != nil {
		n, err = c.readWhenReadable()
	} else {
		// TLS: a read must go through the tls.Conn, into a buffer held
		// while waiting; a small one.
		if c.idleBuf == nil {
			c.idleBuf = new([idleReadSize]byte)
		}
		n, err = c.nc.Read(c.idleBuf[:])
		c.pending = c.idleBuf[:n]
	}
	c.takeBuffers()
	if n > 0 {
		return nil // an error comes again from the next read
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// interrupt wakes the connection from a read so it notices a shutdown.
func (c *conn) interrupt() {
	c.mu.Lock()
	c.setReadDeadline(time.Now())
	c.mu.Unlock()
}

// poke asks the connection to re-validate its session soon, waking it if
// it is waiting for a request.
func (c *conn) poke() {
	c.recheck.Store(true)
	c.mu.Lock()
	if c.idle {
		c.setReadDeadline(time.Now())
	}
	c.mu.Unlock()
}

// armRead sets the read deadline d from now (none if d is zero) and
// whether the connection now waits idle, or reports that the server is
// shutting down. An idle wait longer than renewAfter gets renewAfter
// instead, so that the connection is renewed then (see renew), and a
// renewed one the rest of its idle timeout.
func (c *conn) armRead(d time.Duration, idle bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.idle = idle
	c.renewing = false
	if c.srv.inShutdown.Load() {
		return false
	}
	if idle && c.recheck.Load() {
		// A poke came just before: let the read return at once.
		c.setReadDeadline(time.Now())
		return true
	}
	now := time.Now()
	if idle {
		switch renewAfter := time.Duration(renewAfter.Load()); {
		case c.fresh:
			// Renewed: the rest of the idle timeout that began before.
			if d <= 0 {
				c.setReadDeadline(time.Time{})
			} else {
				c.setReadDeadline(c.idleSince.Add(d))
			}
			return true
		case renewAfter > 0 && (d <= 0 || d > renewAfter):
			c.idleSince, c.renewing, d = now, true, renewAfter
		}
	}
	if d <= 0 {
		c.setReadDeadline(time.Time{})
		return true
	}
	// Moving a deadline costs a runtime timer update per request. Keep the
	// one in force when it is at most d/16 earlier than asked for: the
	// timeout then fires up to 1/16 early, never late.
	want := now.Add(d)
	if ahead := want.Sub(c.readDeadline); c.readDeadline.IsZero() || ahead < 0 || ahead > d/16 {
		c.setReadDeadline(want)
	}
	return true
}

// setReadDeadline sets the connection's read deadline and remembers it;
// c.mu must be held.
func (c *conn) setReadDeadline(t time.Time) {
	c.readDeadline = t
	c.nc.SetReadDeadline(t)
}

// lineBuffered reports whether a complete line is already in the read
// buffer: reading it needs no syscall, so no line deadline either.
func (c *conn) lineBuffered() bool {
	buf, _ := c.r.Peek(c.r.Buffered())
	return bytes.IndexByte(buf, '\n') >= 0 || bytes.IndexByte(c.pending, '\n') >= 0
}

// errTooManyConns is what a connection over a limit gets.
var errTooManyConns = protocol.Errorf(protocol.CodeUnavailable, "too many connections")

// reject answers a connection over a limit and closes it. It runs in its own
// goroutine because a TLS connection's first write is the handshake.
func (c *conn) reject() {
	defer func() {
		c.nc.Close()
		c.srv.trackConn(c, false)
	}()
	lim := c.srv.limits.Load()
	c.log().Warn("connection limit reached; refusing connection", "remote", c.peer.Addr,
		"max_conns", lim.MaxConns, "max_conns_per_ip", lim.MaxConnsPerIP)
	c.nc.SetDeadline(time.Now().Add(time.Second))
	c.respondError(nil, errTooManyConns)
	c.nc.Write(c.out)
}

// serve serves the connection until it ends, or until renew hands it to
// a new goroutine.
func (c *conn) serve() {
	renewed := false
	defer func() {
		if renewed {
			return
		}
		c.releaseBuffers()
		if c.saidBye {
			c.lingerClose()
		}
		c.nc.Close()
		c.setSession(nil)
		c.srv.trackConn(c, false)
	}()
	if !c.fresh {
		c.takeBuffers()
		c.out = protocol.AppendHello(c.out, c.srv.Version)
		if c.flush() != nil {
			return
		}
	}
	renewed = c.serveRequests()
}

// renew hands a connection that has been idle for renewAfter to a new
// goroutine and reports true; the caller's goroutine then ends.
// Serving a request grows a goroutine's stack to 4 KiB, and the runtime
// never shrinks it while the connection waits (it shrinks a stack only
// when under a quarter of it is in use, and the wait in the poller uses
// more); a new goroutine starts with 2 KiB, enough for the wait. For
// 10,000 idle connections that is 20 MB.
func (c *conn) renew() bool {
	c.fresh = true
	go c.serve()
	return true
}

// serveRequests reads and answers requests until the connection is to
// close (false) or was renewed (true).
func (c *conn) serveRequests() (renewed bool) {
	for {
		if c.recheck.Swap(false) {
			c.recheckSession()
		}
		if c.r.Buffered() == 0 {
			// Answer a pipelined batch with one write, once nothing more
			// is waiting to be read.
			if c.flush() != nil {
				return false
			}
		}
		if c.r.Buffered() == 0 {
			// Wait for the next line to start, for at most the idle timeout.
			if !c.armRead(c.srv.limits.Load().IdleTimeout, true) {
				c.bye(protocol.ByeShutdown)
				return false
			}
			if err := c.waitIdle(); err != nil {
				if isTimeout(err) && !c.srv.inShutdown.Load() {
					if c.recheck.Load() {
						continue // woken by poke: re-validate, then wait again
					}
					if c.renewing {
						return c.renew()
					}
				}
				c.readFailed(err, protocol.ByeIdleTimeout)
				return false
			}
			c.fresh = false
		}
		// A started line must be complete within the line timeout.
		if !c.lineBuffered() && !c.armRead(c.srv.limits.Load().LineTimeout, false) {
			c.bye(protocol.ByeShutdown)
			return false
		}
		line, err := c.readLine()
		if err != nil && len(line) == 0 {
			c.readFailed(err, protocol.ByeLineTimeout)
			return false
		}
		if done := c.handleLine(line); done {
			return false
		}
		if err != nil { // a last line without "\n" was answered; now the EOF
			c.flush()
			return false
		}
		if len(c.out) >= flushThreshold && c.flush() != nil {
			return false
		}
	}
}

// readLine returns the next line, terminator included. The slice is valid
// until the next read. At EOF an unterminated last line is returned
// together with io.EOF; after any other error a partial line is dropped.
func (c *conn) readLine() ([]byte, error) {
	max := c.maxLine()
	c.line = c.line[:0]
	for {
		frag, err := c.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Check the limit before keeping more, so a client cannot make
			// the server buffer an endless line. +2 leaves room for "\r\n".
			if len(c.line)+len(frag) > max+2 {
				return nil, errLineTooLong
			}
			c.line = append(c.line, frag...)
			continue
		}
		line := frag
		if len(c.line) > 0 {
			c.line = append(c.line, frag...)
			line = c.line
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if contentLen(line) > max {
			return nil, errLineTooLong
		}
		return line, err
	}
}

// contentLen is the length of a line without its "\n" or "\r\n".
func contentLen(line []byte) int {
	n := len(line)
	if n > 0 && line[n-1] == '\n' {
		n--
		if n > 0 && line[n-1] == '\r' {
			n--
		}
	}
	return n
}

// maxLine is the line limit that applies to the connection now.
func (c *conn) maxLine() int {
	lim := c.srv.limits.Load()
	if c.authenticated {
		return lim.MaxLineBytes
	}
	return lim.MaxLineBytesPreAuth
}

// readFailed ends the connection after a failed read; timeoutReason is the
// bye reason if the read timed out.
func (c *conn) readFailed(err error, timeoutReason string) {
	switch {
	case errors.Is(err, errLineTooLong):
		max := c.maxLine()
		c.log().Warn("limit hit: request line too long; closing", "remote", c.peer.Addr, "max_bytes", max, "authenticated", c.authenticated)
		e := protocol.Errorf(protocol.CodeLineTooLong, "request line longer than %d bytes", max)
		c.respondError(nil, e)
		c.bye(protocol.ByeLineTooLong)
		c.observeLimit(LimitLineTooLong)
	case c.srv.inShutdown.Load():
		c.bye(protocol.ByeShutdown)
	case isTimeout(err):
		c.log().Info("limit hit: connection timed out; closing", "remote", c.peer.Addr, "reason", timeoutReason)
		c.bye(timeoutReason)
		c.observeLimit(timeoutReason) // LimitIdleTimeout or LimitLineTimeout
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		c.flush()
	default:
		c.log().Debug("read failed", "remote", c.peer.Addr, "err", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// bye sends the bye event and flushes; the caller closes the connection.
func (c *conn) bye(reason string) {
	c.out = protocol.AppendBye(c.out, reason)
	c.saidBye = c.flush() == nil
}

// lingerDrain bounds what lingerClose reads and how long it waits.
const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 256 << 10
)

// lingerClose half-closes the connection and discards what the client
// still sends for a moment before the caller closes it. Closing a socket
// with unread input makes the kernel send a reset, which can destroy the
// last responses and the bye event before the client reads them.
func (c *conn) lingerClose() {
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	c.nc.SetReadDeadline(time.Now().Add(lingerTime))
	io.Copy(io.Discard, io.LimitReader(c.nc, lingerBytes))
}

// flush writes out the buffered responses under the write deadline.
func (c *conn) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	if d := c.srv.limits.Load().WriteTimeout; d > 0 {
		// As for reads: keep a deadline at most d/16 earlier than asked.
		want := time.Now().Add(d)
		if ahead := want.Sub(c.writeDeadline); c.writeDeadline.IsZero() || ahead < 0 || ahead > d/16 {
			c.writeDeadline = want
			c.nc.SetWriteDeadline(want)
		}
	}
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	if err != nil {
		c.log().Debug("write failed", "remote", c.peer.Addr, "err", err)
		if isTimeout(err) {
			c.observeLimit(LimitWriteTimeout)
		}
	}
	return err
}

// observeLimit tells the Observer, if any, that a limit was hit.
func (c *conn) observeLimit(limit string) {
	if o := c.srv.Observer; o != nil {
		o.LimitHit(limit)
	}
}

// handleLine answers one request line and reports whether the connection
// must close.
func (c *conn) handleLine(raw []byte) (closeConn bool) {
	line := protocol.TrimLine(raw)
	if len(line) == 0 {
		return false // blank lines carry no request
	}
	if looksLikeHTTP(line) {
		// A web page can make a browser send HTTP here, and the inline
		// form would run what it carries; drop the connection, as Redis
		// does.
		c.log().Warn("security: HTTP request on the authline port, possible cross-protocol attack; closing", "remote", c.peer.Addr)
		c.out = c.out[:0]
		return true
	}
	obs := c.srv.Observer
	var start time.Duration
	if obs != nil {
		start = monoNow()
	}
	// The request lives in connBuffers, not on the heap per line: handlers
	// pass it by pointer through interfaces, which would make it escape.
	var perr *protocol.Error
	c.bufs.req, perr = c.parser.Parse(line)
	if perr != nil {
		c.respondError(c.bufs.req.ID, perr)
		if obs != nil {
			obs.Request(c.bufs.req.Cmd, c.status, monoNow()-start)
		}
		return false
	}
	closeConn = c.dispatch(&c.bufs.req)
	if obs != nil {
		obs.Request(c.bufs.req.Cmd, c.status, monoNow()-start)
	}
	c.bufs.req = protocol.Request{} // hold no password past its request
	return closeConn
}

// maxHTTPVersion bounds the length of an HTTP version that looksLikeHTTP
// recognises ("HTTP/1.1" is 8 bytes).
const maxHTTPVersion = 16

// looksLikeHTTP recognises an HTTP request line ("POST /x HTTP/1.1") or a
// Host header.
func looksLikeHTTP(line []byte) bool {
	if line[0] == '{' {
		return false
	}
	if len(line) >= 5 && protocol.EqualFoldASCII(string(line[:5]), "host:") {
		return true
	}
	// The version ("HTTP/1.1") is short: look for its space near the end
	// only, not back through a long token.
	tail := line[max(0, len(line)-maxHTTPVersion-1):]
	sp := bytes.LastIndexByte(tail, ' ')
	if sp < 0 {
		return false
	}
	sp += len(line) - len(tail)
	return bytes.HasPrefix(line[sp+1:], []byte("HTTP/")) && bytes.IndexByte(line, ' ') < sp
}

func (c *conn) respond(id []byte, status int, msg string, data protocol.Data) {
	c.status = status
	r := protocol.Response{ID: id, Status: status, Message: msg, Data: data}
	c.out = protocol.AppendResponse(c.out, &r)
}

func (c *conn) respondError(id []byte, e *protocol.Error) {
	r := protocol.ErrorResponse(id, e)
	c.status = r.Status
	c.out = protocol.AppendResponse(c.out, &r)
}

// dispatch runs one command. A panic in it is answered with 500 and logged;
// the connection and the server go on.
func (c *conn) dispatch(req *protocol.Request) (closeConn bool) {
	defer func() {
		if p := recover(); p != nil {
			stack := debug.Stack()
			if op, ok := p.(*offload.Panic); ok {
				p, stack = op.Value, op.Stack // the stack where it happened
			}
			c.log().Error("panic while handling request", "remote", c.peer.Addr, "cmd", req.Cmd, "panic", p, "stack", string(stack))
			c.respondError(req.ID, protocol.Errorf(protocol.CodeInternal, "internal error"))
			closeConn = false
		}
	}()
	ctx := c.srv.baseCtx
	switch req.Cmd {
	case protocol.CmdPing:
		c.respond(req.ID, protocol.StatusOK, "pong", nil)
	case protocol.CmdQuit:
		c.respond(req.ID, protocol.StatusOK, "bye", nil)
		c.bye(protocol.ByeQuit)
		return true
	case protocol.CmdRegister:
		c.deep(func() { c.register(ctx, req) })
	case protocol.CmdLogin:
		c.deep(func() { c.login(ctx, req) })
	case protocol.CmdGet:
		c.get(ctx, req)
	case protocol.CmdWhoAmI:
		c.whoami(ctx, req)
	case protocol.CmdLogout:
		c.deep(func() { c.logout(ctx, req) })
	case protocol.CmdRefresh:
		c.deep(func() { c.refresh(ctx, req) })
	case protocol.CmdPasswd:
		c.deep(func() { c.passwd(ctx, req) })
	case protocol.CmdJWKS:
		c.deep(func() { c.jwks(ctx, req) })
	case protocol.CmdUsers, protocol.CmdUser, protocol.CmdSetRole, protocol.CmdDisable,
		protocol.CmdEnable, protocol.CmdDelete, protocol.CmdUnlock, protocol.CmdRevoke:
		c.deep(func() { c.admin(ctx, req) })
	default:
		// ParseRequest only returns known commands; this is a bug.
		c.respondError(req.ID, protocol.Errorf(protocol.CodeInternal, "command %s not implemented", req.Cmd))
	}
	return false
}

// deep runs a command that goes deep into the store, the hash pool and the
// logger on a goroutine of its own, and waits for it. The connection's
// goroutine then keeps the small stack of the fast path (GET, WHOAMI,
// PING), which is what it holds while it sits idle in a read: at 10,000
// idle connections, stacks grown by a LOGIN's store calls would be most of
// the server's memory. These commands take milliseconds (bcrypt, store
// writes); starting a goroutine takes a microsecond.
func (c *conn) deep(fn func()) {
	offload.Run(fn) // a panic is answered by dispatch, on the connection's goroutine
}

// fail answers an error and logs it: internal and unavailable errors with
// their cause, so operators can see it while the client sees none.
func (c *conn) fail(req *protocol.Request, err error) {
	e := protocol.AsError(err)
	switch e.Code {
	case protocol.CodeInternal, protocol.CodeUnavailable:
		c.log().Error("request failed", "remote", c.peer.Addr, "cmd", req.Cmd, "code", e.Code, "err", e.Err)
	}
	c.respondError(req.ID, e)
}

func (c *conn) register(ctx context.Context, req *protocol.Request) {
	id, err := c.srv.Backend.Register(ctx, c.peer, req.Username, req.Password)
	if err != nil {
		c.audit("register failed", req.Username, err)
		c.fail(req, err)
		return
	}
	c.audit("user registered", id.Username, nil)
	c.bufs.userData = protocol.UserData{Username: id.Username, Role: id.Role}
	c.respond(req.ID, protocol.StatusCreated, "user created", &c.bufs.userData)
}

func (c *conn) login(ctx context.Context, req *protocol.Request) {
	id, err := c.srv.Backend.Login(ctx, c.peer, req.Username, req.Password)
	if err != nil {
		event := "login failed"
		if protocol.AsError(err).Code == protocol.CodeRateLimited {
			event = "login throttled"
		}
		c.audit(event, req.Username, err)
		c.fail(req, err)
		return
	}
	if req.Mode == protocol.ModeToken {
		tok, err := c.srv.Backend.IssueToken(ctx, id)
		if err != nil {
			c.fail(req, err)
			return
		}
		c.audit("login succeeded", id.Username, nil, "mode", req.Mode)
		c.respondTokens(req, id, tok, "token issued")
		return
	}
	id.Auth = protocol.AuthSession
	c.setSession(&id)
	c.audit("login succeeded", id.Username, nil, "mode", req.Mode)
	c.bufs.loginData = protocol.LoginData{Username: id.Username, Role: id.Role, Mode: protocol.ModeSession}
	c.respond(req.ID, protocol.StatusOK, "logged in", &c.bufs.loginData)
}

// respondTokens answers with a fresh access and refresh token.
func (c *conn) respondTokens(req *protocol.Request, id Identity, tok IssuedToken, msg string) {
	c.bufs.loginData = protocol.LoginData{
		Username:         id.Username,
		Role:             id.Role,
		Mode:             protocol.ModeToken,
		Token:            tok.Token,
		TokenType:        "Bearer",
		ExpiresAt:        tok.ExpiresAt,
		ExpiresIn:        int64(tok.TTL / time.Second),
		RefreshToken:     tok.RefreshToken,
		RefreshExpiresAt: tok.RefreshExpiresAt,
	}
	c.respond(req.ID, protocol.StatusOK, msg, &c.bufs.loginData)
}

// setSession changes the connection's session and keeps the server's
// index of sessions by user, through which changes reach them.
func (c *conn) setSession(id *Identity) {
	if c.session == nil && id == nil {
		return
	}
	old := ""
	if c.session != nil {
		old = c.session.Username
	}
	c.session = id
	c.authenticated = id != nil
	name := ""
	if id != nil {
		name = id.Username
	}
	if old != name {
		c.srv.trackSession(c, old, name)
	}
}

// recheckSession re-validates the session after its user changed, and
// tells the client with a session_ended event if it is over.
func (c *conn) recheckSession() {
	if c.session == nil {
		return
	}
	id, err := c.srv.Backend.CheckSession(c.srv.baseCtx, *c.session)
	var ended *SessionEndedError
	switch {
	case errors.As(err, &ended):
		c.endSession(ended.Reason)
	case err == nil:
		*c.session = id // the role may have changed
	}
	// Other errors (the store is down): keep the session; the next
	// request checks again.
}

func (c *conn) endSession(reason string) {
	c.audit("session ended", c.session.Username, nil, "reason", reason)
	c.out = protocol.AppendSessionEnded(c.out, reason)
	c.setSession(nil)
}

// identity returns whom the request acts as: the token's user when it
// carries a token (even if the connection has a session), else the
// session's, else nil.
func (c *conn) identity(ctx context.Context, req *protocol.Request) (*Identity, error) {
	if req.Token != "" {
		id, err := c.srv.Backend.VerifyToken(ctx, c.peer, req.Token)
		if err != nil {
			c.audit("token rejected", "", err)
			return nil, err
		}
		c.authenticated = true
		c.bufs.tokenIdentity = id
		return &c.bufs.tokenIdentity, nil
	}
	if c.session == nil {
		return nil, nil
	}
	// Changes to the user apply to the session at once: the role is read
	// afresh and an ended session ends here.
	id, err := c.srv.Backend.CheckSession(ctx, *c.session)
	if err != nil {
		// Only here: errors.As makes its target escape to the heap.
		var ended *SessionEndedError
		if errors.As(err, &ended) {
			c.endSession(ended.Reason)
			return nil, nil
		}
		return nil, err
	}
	*c.session = id
	return c.session, nil
}

func (c *conn) get(ctx context.Context, req *protocol.Request) {
	id, err := c.identity(ctx, req)
	if err != nil {
		c.fail(req, err)
		return
	}
	content, err := c.srv.Backend.Resource(ctx, id, req.Resource)
	if err != nil {
		if e := protocol.AsError(err); e.Code == protocol.CodeForbidden {
			c.audit("access denied", id.Username, err, "resource", req.Resource)
		}
		c.fail(req, err)
		return
	}
	c.bufs.resourceData = protocol.ResourceData{Resource: req.Resource, Username: id.Username, Role: id.Role, Content: content}
	c.respond(req.ID, protocol.StatusOK, "ok", &c.bufs.resourceData)
}

var errNotLoggedIn = protocol.Errorf(protocol.CodeUnauthenticated, "not logged in: LOGIN first or send a token")

// requireIdentity is identity for commands that need a user: it answers
// the error itself (401 without a session or token) and reports false.
func (c *conn) requireIdentity(ctx context.Context, req *protocol.Request) (*Identity, bool) {
	id, err := c.identity(ctx, req)
	if err == nil && id == nil {
		err = errNotLoggedIn
	}
	if err != nil {
		c.fail(req, err)
		return nil, false
	}
	return id, true
}

func (c *conn) whoami(ctx context.Context, req *protocol.Request) {
	id, ok := c.requireIdentity(ctx, req)
	if !ok {
		return
	}
	c.bufs.whoamiData = protocol.WhoAmIData{Username: id.Username, Role: id.Role, Auth: id.Auth}
	c.respond(req.ID, protocol.StatusOK, "ok", &c.bufs.whoamiData)
}

// logout revokes the request's token if it has one (the session, if any,
// stays), else ends the connection's session; with all, see logoutAll.
func (c *conn) logout(ctx context.Context, req *protocol.Request) {
	if req.All {
		c.logoutAll(ctx, req)
		return
	}
	if req.Token != "" {
		id, err := c.identity(ctx, req)
		if err != nil {
			c.fail(req, err)
			return
		}
		if err := c.srv.Backend.RevokeToken(ctx, *id); err != nil {
			c.fail(req, err)
			return
		}
		c.audit("token revoked", id.Username, nil)
		c.respond(req.ID, protocol.StatusOK, "logged out: token revoked", nil)
		return
	}
	if c.session == nil {
		c.fail(req, errNotLoggedIn)
		return
	}
	c.audit("logged out", c.session.Username, nil)
	c.setSession(nil) // back to the pre-authentication line limit too
	c.respond(req.ID, protocol.StatusOK, "logged out", nil)
}

// logoutAll ends every session and token of the caller's user, here and
// on every other connection and instance.
func (c *conn) logoutAll(ctx context.Context, req *protocol.Request) {
	id, ok := c.requireIdentity(ctx, req)
	if !ok {
		return
	}
	name := id.Username
	if err := c.srv.Backend.LogoutAll(ctx, *id); err != nil {
		c.fail(req, err)
		return
	}
	if c.session != nil && c.session.Username == name {
		c.setSession(nil) // this connection's own session ends by its request: no event
	}
	c.audit("logged out everywhere", name, nil)
	c.respond(req.ID, protocol.StatusOK, "logged out everywhere", nil)
}

func (c *conn) refresh(ctx context.Context, req *protocol.Request) {
	id, tok, err := c.srv.Backend.Refresh(ctx, c.peer, req.RefreshToken)
	if err != nil {
		c.audit("refresh rejected", id.Username, err)
		c.fail(req, err)
		return
	}
	c.authenticated = true
	c.audit("token refreshed", id.Username, nil)
	c.respondTokens(req, id, tok, "token refreshed")
}

// passwd changes the caller's password. The session or token it came
// with goes on: a session moves to the new generation, a token caller
// gets a fresh token pair, since its token ended with all the others.
func (c *conn) passwd(ctx context.Context, req *protocol.Request) {
	id, ok := c.requireIdentity(ctx, req)
	if !ok {
		return
	}
	fromSession := id == c.session
	newID, err := c.srv.Backend.Passwd(ctx, c.peer, *id, req.OldPassword, req.NewPassword)
	if err != nil {
		c.audit("password change failed", id.Username, err)
		c.fail(req, err)
		return
	}
	c.audit("password changed", newID.Username, nil)
	if fromSession {
		*c.session = newID
		c.bufs.loginData = protocol.LoginData{Username: newID.Username, Role: newID.Role, Mode: protocol.ModeSession}
		c.respond(req.ID, protocol.StatusOK, "password changed", &c.bufs.loginData)
		return
	}
	tok, err := c.srv.Backend.IssueToken(ctx, newID)
	if err != nil {
		c.fail(req, err)
		return
	}
	c.respondTokens(req, newID, tok, "password changed")
}

// jwks answers the public keys of the server's tokens. It needs no
// authentication and changes nothing about the connection.
func (c *conn) jwks(ctx context.Context, req *protocol.Request) {
	data, err := c.srv.Backend.JWKS(ctx)
	if err != nil {
		c.fail(req, err)
		return
	}
	c.respond(req.ID, protocol.StatusOK, "ok", data)
}

func (c *conn) admin(ctx context.Context, req *protocol.Request) {
	id, err := c.identity(ctx, req)
	if err != nil {
		c.fail(req, err)
		return
	}
	data, msg, err := c.srv.Backend.Admin(ctx, id, req)
	actor := ""
	if id != nil {
		actor = id.Username
	}
	if req.Cmd != protocol.CmdUsers && req.Cmd != protocol.CmdUser || err != nil {
		c.audit("admin "+strings.ToLower(req.Cmd), actor, err, "target", req.Username)
	}
	if err != nil {
		c.fail(req, err)
		return
	}
	c.respond(req.ID, protocol.StatusOK, msg, data)
}

// audit logs an authentication event. It takes only a username, never a
// password or a token, so neither can reach the log.
func (c *conn) audit(event, username string, err error, attrs ...any) {
	args := make([]any, 0, 6+len(attrs))
	args = append(args, "remote", c.peer.Addr)
	if username != "" {
		args = append(args, "user", username)
	}
	level := slog.LevelInfo
	if err != nil {
		e := protocol.AsError(err)
		args = append(args, "code", e.Code, "reason", e.Message)
		if e.Err != nil && e.Code != protocol.CodeInternal {
			args = append(args, "cause", e.Err.Error())
		}
		level = slog.LevelWarn
	}
	args = append(args, attrs...)
	c.log().Log(context.Background(), level, event, args...)
}
