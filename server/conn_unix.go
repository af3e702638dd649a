//go:build unix

package server

import (
	"io"
	"net"
	"syscall"
)

// rawConnOf returns the raw connection of a plain TCP connection, for
// readWhenReadable; nil for others (TLS), which wait in an ordinary read.
func rawConnOf(nc net.Conn) syscall.RawConn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// readWhenReadable waits, holding no buffer, until the socket has data,
// then reads it into a pooled chunk and leaves it in c.pending. An
// ordinary read would block holding the buffer it reads into; RawConn.Read
// calls c.readRaw again each time the runtime's poller says the socket is
// readable, so a buffer is taken only for the read itself. The read
// deadline and Close wake it as they wake any read.
func (c *conn) readWhenReadable() (int, error) {
	if c.readRawFn == nil {
		c.readRawFn = c.readRaw // one closure per connection, not per wait
	}
	err := c.raw.Read(c.readRawFn)
	n, rerr := c.rawN, c.rawErr
	c.rawErr = nil
	switch {
	case err != nil: // deadline or closed, as a read would report them
		return 0, err
	case rerr != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Addr: c.nc.RemoteAddr(), Err: rerr}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readRaw is readWhenReadable's RawConn.Read callback: it reads what the
// socket has into a pooled chunk, or reports false (wait) if it has
// nothing, giving the chunk back. The result is left in c.rawN and
// c.rawErr.
func (c *conn) readRaw(fd uintptr) bool {
	chunk := chunkPool.Get().(*[readBufferSize]byte)
	var n int
	var err error
	for {
		n, err = syscall.Read(int(fd), chunk[:])
		if err != syscall.EINTR {
			break
		}
	}
	if err == syscall.EAGAIN {
		chunkPool.Put(chunk)
		return false // not readable yet: wait for the poller
	}
	c.rawN, c.rawErr = max(n, 0), err
	if n > 0 {
		c.chunk, c.pending = chunk, chunk[:n]
	} else {
		chunkPool.Put(chunk)
	}
	return true
}
