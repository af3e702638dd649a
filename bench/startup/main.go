// Command startup measures how long a server takes from being started to
// accepting a connection and greeting it: for each run it picks a free
// loopback port, starts the command with {addr} in its arguments replaced
// by that address, tries to connect every millisecond, and stops the clock
// when a connection succeeds and the first line (authline's hello) has
// been read. Then it stops the server (SIGTERM) and starts the next run.
//
//	go run ./bench/startup --runs 5 -- authlined serve --db /tmp/a.db --listen {addr}
//
// It prints every run and the median, or with --json one object:
//
//	{"runs_ms":[...],"median_ms":...,"min_ms":...,"max_ms":...}
//
// The clock starts just before the process is started (fork and exec
// included) and stops when the greeting line has been read.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

type options struct {
	Runs    int
	Timeout time.Duration // bound on one run's start
	Poll    time.Duration // between two connection attempts
	Log     string        // file for the command's stderr and stdout ("" discards)
	Command []string      // with {addr}
}

type result struct {
	RunsMS   []float64 `json:"runs_ms"`
	MedianMS float64   `json:"median_ms"`
	MinMS    float64   `json:"min_ms"`
	MaxMS    float64   `json:"max_ms"`
}

func main() {
	var o options
	asJSON := flag.Bool("json", false, "print one JSON object")
	flag.IntVar(&o.Runs, "runs", 5, "number of runs")
	flag.DurationVar(&o.Timeout, "timeout", 30*time.Second, "longest wait for one start")
	flag.DurationVar(&o.Poll, "poll", time.Millisecond, "time between two connection attempts")
	flag.StringVar(&o.Log, "log", "", "append the command's output to this file (default: discard it)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: startup [flags] -- command args... (with {addr} for the address to listen on)")
		flag.PrintDefaults()
	}
	flag.Parse()
	o.Command = flag.Args()
	res, err := measure(context.Background(), o, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "startup:", err)
		os.Exit(1)
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(res)
		return
	}
	fmt.Printf("median %.1f ms (min %.1f, max %.1f) over %d runs\n", res.MedianMS, res.MinMS, res.MaxMS, len(res.RunsMS))
}

// measure runs the command o.Runs times, reporting each run on progress.
func measure(ctx context.Context, o options, progress io.Writer) (result, error) {
	var res result
	if len(o.Command) == 0 || !slices.ContainsFunc(o.Command, func(a string) bool { return strings.Contains(a, "{addr}") }) {
		return res, errors.New("give the command after --, with {addr} where the listen address goes")
	}
	if o.Runs < 1 {
		return res, errors.New("--runs must be at least 1")
	}
	var logw io.Writer
	if o.Log != "" {
		f, err := os.OpenFile(o.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return res, err
		}
		defer f.Close()
		logw = f
	}
	for i := range o.Runs {
		d, err := once(ctx, o, logw)
		if err != nil {
			return res, fmt.Errorf("run %d: %w", i+1, err)
		}
		ms := float64(d.Microseconds()) / 1000
		res.RunsMS = append(res.RunsMS, ms)
		if progress != nil {
			fmt.Fprintf(progress, "run %d: %.1f ms\n", i+1, ms)
		}
	}
	sorted := slices.Sorted(slices.Values(res.RunsMS))
	n := len(sorted)
	res.MinMS, res.MaxMS = sorted[0], sorted[n-1]
	res.MedianMS = sorted[n/2]
	if n%2 == 0 {
		res.MedianMS = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return res, nil
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// once starts the command, waits for its greeting and stops it.
func once(ctx context.Context, o options, logw io.Writer) (time.Duration, error) {
	addr, err := freeAddr()
	if err != nil {
		return 0, err
	}
	args := make([]string, len(o.Command))
	for i, a := range o.Command {
		args[i] = strings.ReplaceAll(a, "{addr}", addr)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logw, logw
	exited := make(chan error, 1)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	go func() { exited <- cmd.Wait() }()
	defer stop(cmd, exited)

	deadline := start.Add(o.Timeout)
	poll := time.NewTicker(o.Poll)
	defer poll.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, o.Timeout)
		if err == nil {
			c.SetReadDeadline(deadline)
			_, err = bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err != nil {
				return 0, fmt.Errorf("reading the greeting: %w", err)
			}
			return time.Since(start), nil
		}
		select {
		case err := <-exited:
			exited <- err // for stop
			return 0, fmt.Errorf("the command exited before accepting a connection: %v", err)
		case <-ctx.Done():
			return 0, ctx.Err()
		case now := <-poll.C:
			if now.After(deadline) {
				return 0, fmt.Errorf("no connection accepted in %s", o.Timeout)
			}
		}
	}
}

// stop ends the command with SIGTERM, then SIGKILL after 10 seconds.
func stop(cmd *exec.Cmd, exited chan error) {
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}
