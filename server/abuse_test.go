package server_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server/auth"
	"github.com/authline/authline/server/servertest"
)

// TestAbuse throws hostile traffic at one live server at once — huge
// lines, random bytes, crafted tokens, HTTP, half-open and abandoned
// connections, floods past the connection limits, password guessing — and
// then checks that it still answers and that no registered user was lost.
// Goroutine leaks are caught by goleak in TestMain.
func TestAbuse(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{
		MaxConns:      64,
		MaxConnsPerIP: 48,
		LineTimeout:   500 * time.Millisecond,
		IdleTimeout:   2 * time.Second,
		WriteTimeout:  time.Second,
		IPRateLimit:   &auth.IPRateLimit{PerSecond: 50, Burst: 50},
	})
	const users = 20
	w := openWire(t, srv.Addr)
	for i := range users {
		w.expect(fmt.Sprintf("REGISTER keeper%02d kitten-orbit-%02d", i, i), 201, "")
	}
	w.nc.Close()

	attacks := map[string]func(rng *rand.Rand) error{
		"1 MiB line": func(*rand.Rand) error {
			nc, err := dialRaw(srv.Addr)
			if err != nil {
				return err
			}
			defer nc.Close()
			go nc.Write([]byte(strings.Repeat("A", 1<<20) + "\n"))
			_, err = io.Copy(io.Discard, nc) // the server answers 413 and closes
			return err
		},
		"random bytes": func(rng *rand.Rand) error {
			nc, err := dialRaw(srv.Addr)
			if err != nil {
				return err
			}
			defer nc.Close()
			b := make([]byte, 64<<10)
			for i := range b {
				b[i] = byte(rng.UintN(256))
			}
			nc.Write(b)
			return nil
		},
		"crafted tokens": func(rng *rand.Rand) error {
			nc, err := dialRaw(srv.Addr)
			if err != nil {
				return err
			}
			defer nc.Close()
			for _, tok := range []string{"eyJhbGciOiJub25lIn0.eyJzdWIiOiJyb290In0.", "a.b.c", strings.Repeat("x.", 1000), "...."} {
				fmt.Fprintf(nc, "GET admin %s\n", tok)
			}
			return nil
		},
		"http": func(*rand.Rand) error {
			nc, err := dialRaw(srv.Addr)
			if err != nil {
				return err
			}
			defer nc.Close()
			io.WriteString(nc, "POST / HTTP/1.1\r\nHost: x\r\n\r\nREGISTER mallory kitten-orbit-99\r\n")
			return nil
		},
		"half-open": func(*rand.Rand) error {
			nc, err := dialRaw(srv.Addr)
			if err != nil {
				return err
			}
			io.WriteString(nc, "LOGIN keeper00 kitt") // never finished, never closed by us
			nc.(*net.TCPConn).CloseWrite()
			time.Sleep(100 * time.Millisecond)
			return nc.Close()
		},
		"abandoned": func(*rand.Rand) error {
			nc, err := dialRaw(srv.Addr)
			if err != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond)
			return nc.Close()
		},
		"guessing": func(rng *rand.Rand) error {
			nc, err := dialRaw(srv.Addr)
			if err != nil {
				return err
			}
			defer nc.Close()
			for range 20 {
				fmt.Fprintf(nc, "LOGIN keeper%02d guess-%d\n", rng.IntN(users), rng.Int())
			}
			return nil
		},
		"flood past the limits": func(*rand.Rand) error {
			var conns []net.Conn
			for range 80 {
				if nc, err := dialRaw(srv.Addr); err == nil {
					conns = append(conns, nc)
				}
			}
			time.Sleep(100 * time.Millisecond)
			for _, nc := range conns {
				nc.Close()
			}
			return nil
		},
		"pipelined flood without reading": func(*rand.Rand) error {
			nc, err := dialRaw(srv.Addr)
			if err != nil {
				return err
			}
			defer nc.Close()
			nc.SetWriteDeadline(time.Now().Add(3 * time.Second))
			for range 200 {
				if _, err := io.WriteString(nc, strings.Repeat("PING\n", 500)); err != nil {
					break
				}
			}
			return nil
		},
	}

	var wg sync.WaitGroup
	for name, attack := range attacks {
		for i := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(i), 42))
				if err := attack(rng); err != nil && !isExpectedNetErr(err) {
					t.Errorf("%s: %v", name, err)
				}
			}()
		}
	}
	wg.Wait()

	// Everything hostile is cut off in time; then the server serves as
	// before and has every user.
	waitFor(t, func() bool { return srv.Server.NumConns() == 0 })
	w = openWire(t, srv.Addr)
	w.expect("PING", 200, "")
	ctx := context.Background()
	for i := range users {
		name := fmt.Sprintf("keeper%02d", i)
		if _, err := srv.Store.GetUser(ctx, name); err != nil {
			t.Errorf("user %s lost: %v", name, err)
		}
	}
	if _, err := srv.Store.GetUser(ctx, "mallory"); err == nil {
		t.Error("the HTTP body's REGISTER ran")
	}
	// A user nobody guessed at logs in normally.
	srv.Service.Unlock(ctx, "keeper05")
	w.expect("LOGIN keeper05 kitten-orbit-05", 200, "")
	w.expect("GET protected", 200, "")
	if m := w.do("GET admin"); m.Error != protocol.CodeForbidden {
		t.Fatalf("GET admin: %+v", m)
	}
}

func dialRaw(addr string) (net.Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(15 * time.Second))
	return nc, nil
}

// isExpectedNetErr: resets and broken pipes are what abuse earns.
func isExpectedNetErr(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "reset by peer") || strings.Contains(msg, "broken pipe")
}
