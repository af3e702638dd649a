package auth

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/authline/authline/server/internal/offload"
)

// TestHashesRunAtLowPriority: bcrypt runs on a thread at the lowest CPU
// priority, so that a login flood leaves the fast path (GET) a CPU; the
// caller's thread keeps its priority.
func TestHashesRunAtLowPriority(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("per-thread priority is set on Linux only")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, err := threadNice()
	if err != nil {
		t.Fatal(err)
	}
	p := newHashPool(2, 0)
	var nice int
	var niceErr error
	if err := p.do(context.Background(), func() { nice, niceErr = threadNice() }); err != nil {
		t.Fatal(err)
	}
	if niceErr != nil || nice != hashNice {
		t.Fatalf("hashing thread niceness %d (%v), want %d", nice, niceErr, hashNice)
	}
	if after, _ := threadNice(); after != before {
		t.Fatalf("the caller's thread niceness went from %d to %d", before, after)
	}
}

// TestHashPanicReachesCaller: a panic while hashing is raised on the
// caller's goroutine (where the server answers it with 500), and the slot
// is given back.
func TestHashPanicReachesCaller(t *testing.T) {
	p := newHashPool(1, 0)
	func() {
		defer func() {
			r, ok := recover().(*offload.Panic)
			if !ok || r.Value != "hash boom" {
				t.Fatalf("recovered %v, want the hash's panic", r)
			}
			// The stack is the hash's, not that of the goroutine waiting for it.
			if !strings.Contains(string(r.Stack), "TestHashPanicReachesCaller.func") {
				t.Fatalf("the panic's stack is not where it happened:\n%s", r.Stack)
			}
		}()
		p.do(context.Background(), func() { panic("hash boom") })
	}()
	ran := false
	if err := p.do(context.Background(), func() { ran = true }); err != nil || !ran {
		t.Fatalf("after a panic the pool's slot is lost: %v", err)
	}
}
