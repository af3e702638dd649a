//go:build !unix

package server

import (
	"errors"
	"net"
	"syscall"
)

// rawConnOf: elsewhere every connection waits in an ordinary read.
func rawConnOf(net.Conn) syscall.RawConn { return nil }

func (c *conn) readWhenReadable() (int, error) {
	return 0, errors.New("server: readWhenReadable without a raw connection")
}
