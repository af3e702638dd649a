package servertest

import (
	"bufio"
	"encoding/json"
	"net"
	"testing"
	"time"
)

// ReadJSON reads the next line from r, which reads nc, waiting at most
// until deadline, and decodes it into a T (a protocol.Message, or a
// map[string]any to see the raw fields). The test fails if no line comes
// or it is not JSON.
func ReadJSON[T any](t testing.TB, nc net.Conn, r *bufio.Reader, deadline time.Time) T {
	t.Helper()
	nc.SetReadDeadline(deadline)
	line, err := r.ReadBytes('\n')
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, line)
	}
	var v T
	if err := json.Unmarshal(line, &v); err != nil {
		t.Fatalf("the server sent %q: %v", line, err)
	}
	return v
}
