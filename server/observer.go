package server

import "time"

// Observer is told what a Server does, so that it can be measured
// (server/metrics implements it with Prometheus). Set Server.Observer
// before Serve; nil observes nothing and costs nothing.
//
// The methods are called on the connection goroutines, some of them once
// per request: they must be safe for concurrent use, must not block, and
// should not allocate. The strings they get come from a small fixed set
// (the protocol's command names, the Limit* constants), never from what a
// client sent, so they are safe to use as metric labels.
type Observer interface {
	// ConnOpened: a connection was admitted.
	ConnOpened()
	// ConnClosed: an admitted connection ended.
	ConnClosed()
	// ConnRejected: a connection was refused with 503 because of a
	// connection limit, LimitMaxConns or LimitMaxConnsPerIP.
	ConnRejected(limit string)
	// Request: a request line was answered. cmd is the canonical command
	// name (protocol.CmdPing ...), or "" when the line named no command
	// the protocol knows; status is the status of the response written;
	// d is the time from parsing the line to the answer being buffered.
	Request(cmd string, status int, d time.Duration)
	// LimitHit: a connection was closed because it reached a limit:
	// LimitLineTooLong, LimitIdleTimeout, LimitLineTimeout or
	// LimitWriteTimeout.
	LimitHit(limit string)
}

// The limits an Observer is told about.
const (
	LimitMaxConns      = "max_conns"
	LimitMaxConnsPerIP = "max_conns_per_ip"
	LimitLineTooLong   = "line_too_long"
	LimitIdleTimeout   = "idle_timeout"
	LimitLineTimeout   = "line_timeout"
	LimitWriteTimeout  = "write_timeout"
)

// ObservedLimits lists every limit an Observer can be told about.
var ObservedLimits = []string{
	LimitMaxConns, LimitMaxConnsPerIP, LimitLineTooLong, LimitIdleTimeout, LimitLineTimeout, LimitWriteTimeout,
}

// clockBase anchors monoNow.
var clockBase = time.Now()

// monoNow reads the monotonic clock only (time.Since of a time that has a
// monotonic reading does not read the wall clock), which costs less than
// time.Now on the request path.
func monoNow() time.Duration { return time.Since(clockBase) }
