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
// calls f again each time the runtime's poller says the socket is
// readable, so a buffer is taken only for the read itself. The read
// deadline and Close wake it as they wake any read.
func (c *conn) readWhenReadable() (int, error) {
	var n int
	var rerr error
	err := c.raw.Read(func(fd uintptr) bool {
		chunk := chunkPool.Get().(*[readBufferSize]byte)
		for {
			n, rerr = syscall.Read(int(fd), chunk[:])
			if rerr != syscall.EINTR {
				break
			}
		}
		if rerr == syscall.EAGAIN {
			chunkPool.Put(chunk)
			return false // not readable yet: wait for the poller
		}
		if n > 0 {
			c.chunk, c.pending = chunk, chunk[:n]
		} else {
			chunkPool.Put(chunk)
		}
		return true
	})
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
