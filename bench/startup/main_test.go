package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// helperDelay is how long the helper server waits before listening.
const helperDelay = 30 * time.Millisecond

// TestMain doubles as the server that the tests start: with
// STARTUP_TEST_HELPER set, the test binary is that server instead.
func TestMain(m *testing.M) {
	switch os.Getenv("STARTUP_TEST_HELPER") {
	case "serve":
		helperServe()
		return
	case "exit":
		os.Exit(3)
	}
	goleak.VerifyTestMain(m)
}

// helperServe listens on the address after --listen, after helperDelay,
// greets every connection with one line, and exits on SIGTERM.
func helperServe() {
	var addr string
	for i, a := range os.Args {
		if a == "--listen" && i+1 < len(os.Args) {
			addr = os.Args[i+1]
		}
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	time.Sleep(helperDelay)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, `{"event":"hello"}`)
			c.Close()
		}
	}()
	<-stop
	ln.Close()
	os.Exit(0)
}

func TestMeasure(t *testing.T) {
	t.Setenv("STARTUP_TEST_HELPER", "serve")
	var progress strings.Builder
	res, err := measure(context.Background(), options{
		Runs: 3, Timeout: 10 * time.Second, Poll: time.Millisecond,
		Command: []string{os.Args[0], "--listen", "{addr}"},
	}, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.RunsMS) != 3 {
		t.Fatalf("runs = %v, want 3", res.RunsMS)
	}
	for _, ms := range res.RunsMS {
		// The helper waits helperDelay before it listens.
		if ms < float64(helperDelay.Milliseconds()) || ms > 10000 {
			t.Errorf("run took %v ms, want between %v and 10s", ms, helperDelay)
		}
	}
	if res.MinMS > res.MedianMS || res.MedianMS > res.MaxMS {
		t.Errorf("min %v, median %v, max %v: not ordered", res.MinMS, res.MedianMS, res.MaxMS)
	}
	if n := strings.Count(progress.String(), "\n"); n != 3 || !strings.HasPrefix(progress.String(), "run 1: ") {
		t.Errorf("progress = %q, want one line per run", progress.String())
	}
}

func TestMeasureFails(t *testing.T) {
	t.Setenv("STARTUP_TEST_HELPER", "exit")
	for _, tc := range []struct {
		name    string
		command []string
		want    string
	}{
		{"exits", []string{os.Args[0], "--listen", "{addr}"}, "exited before accepting"},
		{"no addr", []string{os.Args[0]}, "{addr}"},
		{"no command", nil, "{addr}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := measure(context.Background(), options{Runs: 1, Timeout: 10 * time.Second, Poll: time.Millisecond, Command: tc.command}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
