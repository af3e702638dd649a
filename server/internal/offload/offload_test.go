package offload

import (
	"runtime"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recovered runs fn and returns what it panicked with, or nil.
func recovered(fn func()) (v any) {
	defer func() { v = recover() }()
	fn()
	return nil
}

func TestRun(t *testing.T) {
	ran := false
	Run(func() { ran = true })
	if !ran {
		t.Fatal("Run returned without running fn")
	}
}

//go:noinline
func panicHere() { panic("boom") }

func TestRunRaisesPanicWithItsStack(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func()
	}{
		{"direct", func() { panicHere() }},
		{"nested", func() { Run(func() { Run(panicHere) }) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := recovered(func() { Run(tc.fn) }).(*Panic)
			if !ok {
				t.Fatal("Run did not raise a *Panic")
			}
			if p.Value != "boom" || p.String() != "boom" {
				t.Errorf("Value = %v, want boom", p.Value)
			}
			if !strings.Contains(string(p.Stack), "offload.panicHere") {
				t.Errorf("the stack does not show where the panic happened:\n%s", p.Stack)
			}
		})
	}
}

func TestRunGoexit(t *testing.T) {
	// runtime.Goexit in fn ends fn's goroutine, not the caller's: Run
	// returns as if fn had.
	if v := recovered(func() { Run(runtime.Goexit) }); v != nil {
		t.Fatalf("Run panicked with %v", v)
	}
}
