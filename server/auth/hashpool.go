package auth

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server/internal/offload"
)

// hashPool bounds the CPU spent on bcrypt: at most workers hashes run at
// once and at most queue more wait; beyond that a LOGIN or REGISTER is
// refused at once with 503 instead of queueing without bound. Each hash
// runs on a low-priority thread of its own (runLowPriority) once its
// caller holds a slot; the pool keeps no goroutines between hashes. Requests that need no hashing (PING, WHOAMI, GET)
// never pass through it.
type hashPool struct {
	slots      chan struct{}
	pending    atomic.Int64 // running + waiting
	maxPending int64
	obs        Observer // nil: none
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
		if p.obs != nil {
			p.obs.LimitHit(LimitHashQueue)
		}
		return errHashBusy
	}
	defer p.pending.Add(-1)
	enqueued := time.Now()
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return protocol.Wrap(protocol.CodeUnavailable, "server shutting down", ctx.Err())
	}
	if p.obs != nil {
		p.obs.HashWait(time.Since(enqueued))
	}
	defer func() { <-p.slots }()
	runLowPriority(fn)
	return nil
}

// runLowPriority runs fn, a bcrypt computation, on a thread of its own at
// the lowest CPU priority (where the OS has one) and waits for it. A hash
// takes hundreds of milliseconds of CPU: at normal priority a flood of
// logins would hold every core, and a GET would wait behind it for the
// scheduler's time slice, tens of milliseconds. At nice 19 the kernel runs
// the fast path's threads first whenever they have work; serve sets
// GOMAXPROCS one above the number of hash workers so that the Go
// scheduler always has a slot for them. A panic in fn is raised again on
// the caller's goroutine, as an *offload.Panic with fn's stack.
func runLowPriority(fn func()) {
	offload.Run(func() {
		// Not unlocked: the thread, whose priority was lowered, exits with
		// the goroutine instead of going back to run other goroutines.
		runtime.LockOSThread()
		lowerThreadPriority()
		fn()
	})
}

// queued returns how many hashes are running or waiting.
func (p *hashPool) queued() int { return int(p.pending.Load()) }

// stats returns how many hashes are running and how many wait for a worker.
func (p *hashPool) stats() (running, waiting int) {
	running = len(p.slots)
	return running, max(p.queued()-running, 0)
}
