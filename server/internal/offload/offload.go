// Package offload runs a function on a goroutine of its own and waits for
// it, raising a panic of the function on the caller together with the
// stack where it happened. The server runs its deep commands this way, so
// that the connection's goroutine keeps a small stack, and auth its bcrypt
// hashes, on threads whose priority it lowers.
package offload

import (
	"fmt"
	"runtime/debug"
)

// Panic is what Run raises when its function panicked.
type Panic struct {
	Value any    // what the function panicked with
	Stack []byte // the stack of the goroutine that panicked
}

func (p *Panic) String() string { return fmt.Sprint(p.Value) }

// Run calls fn on a new goroutine and returns when fn has returned. If fn
// panics, Run panics on the caller's goroutine with a *Panic. A *Panic
// that fn raises, from a Run nested in it, passes on unchanged, so the
// stack is the innermost one: where the panic happened.
func Run(fn func()) {
	var caught *Panic
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if p, ok := v.(*Panic); ok {
				caught = p
			} else {
				caught = &Panic{Value: v, Stack: debug.Stack()}
			}
		}()
		fn()
	}()
	<-done
	if caught != nil {
		panic(caught)
	}
}
