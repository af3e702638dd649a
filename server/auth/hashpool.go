package auth

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/authline/authline/protocol"
)

// hashPool bounds the CPU spent on bcrypt: at most workers hashes run at
// once and at most queue more wait; beyond that a LOGIN or REGISTER is
// refused at once with 503 instead of queueing without bound. The hashing
// runs on the caller's goroutine once it holds a slot, so the pool owns no
// goroutines of its own. Requests that need no hashing (PING, WHOAMI, GET)
// never pass through it.
type hashPool struct {
	slots      chan struct{}
	pending    atomic.Int64 // running + waiting
	maxPending int64
}

func newHashPool(workers, queue int) *hashPool {
	return &hashPool{slots: make(chan struct{}, workers), maxPending: int64(workers + queue)}
}

var errHashBusy = &protocol.Error{
	Code:       protocol.CodeUnavailable,
	Message:    "server busy: too many logins in progress; try again",
	RetryAfter: time.Second,
}

// do runs fn in a hashing slot.
func (p *hashPool) do(ctx context.Context, fn func()) error {
	if p.pending.Add(1) > p.maxPending {
		p.pending.Add(-1)
		return errHashBusy
	}
	defer p.pending.Add(-1)
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return protocol.Wrap(protocol.CodeUnavailable, "server shutting down", ctx.Err())
	}
	defer func() { <-p.slots }()
	fn()
	return nil
}

// queued returns how many hashes are running or waiting.
func (p *hashPool) queued() int { return int(p.pending.Load()) }
