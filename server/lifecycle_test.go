package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server"
	"github.com/authline/authline/server/servertest"
)

// faultyBackend wraps the real backend to panic or block on demand.
type faultyBackend struct {
	server.Backend
	panicOn   string        // resource name whose GET panics
	panicUser string        // username whose LOGIN panics
	loginGate chan struct{} // when set, LOGIN waits for it to close
	loginIn   chan struct{} // signalled when a LOGIN starts waiting
}

func (f *faultyBackend) Resource(ctx context.Context, id *server.Identity, name string) (string, error) {
	if name == f.panicOn {
		panic("boom: test panic")
	}
	return f.Backend.Resource(ctx, id, name)
}

func (f *faultyBackend) Login(ctx context.Context, p server.Peer, u, pw string) (server.Identity, error) {
	if u == f.panicUser && u != "" {
		panic("boom: test panic in LOGIN")
	}
	if f.loginGate != nil {
		f.loginIn <- struct{}{}
		<-f.loginGate
	}
	return f.Backend.Login(ctx, p, u, pw)
}

func TestPanicAnswers500AndServerSurvives(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	srv := servertest.Start(t, servertest.Options{
		Logger:      logger,
		WrapBackend: func(b server.Backend) server.Backend { return &faultyBackend{Backend: b, panicOn: "protected"} },
	})
	w := openWire(t, srv.Addr)
	m := w.expect(`{"id":5,"cmd":"GET","resource":"protected"}`, 500, protocol.CodeInternal)
	if string(m.ID) != "5" || strings.Contains(m.Message, "boom") {
		t.Fatalf("500 response: %+v", m)
	}
	w.expect("PING", 200, "")
	openWire(t, srv.Addr).expect("PING", 200, "")
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "panic") {
		t.Fatalf("panic not logged: %s", logs.String())
	}
}

// TestPanicInDeepCommand: LOGIN runs on a goroutine of its own (conn.deep);
// a panic there is answered like any other, with the stack of where it
// happened in the log, and the server goes on.
func TestPanicInDeepCommand(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	srv := servertest.Start(t, servertest.Options{
		Logger:      logger,
		WrapBackend: func(b server.Backend) server.Backend { return &faultyBackend{Backend: b, panicUser: "crash"} },
	})
	srv.AddUser(t, "calm", "kitten-orbit-42", "user")
	w := openWire(t, srv.Addr)
	m := w.expect(`{"id":"x","cmd":"LOGIN","username":"crash","password":"kitten-orbit-42"}`, 500, protocol.CodeInternal)
	if string(m.ID) != `"x"` || strings.Contains(m.Message, "boom") {
		t.Fatalf("500 response: %+v", m)
	}
	w.expect("LOGIN calm kitten-orbit-42", 200, "")
	w.expect("GET protected", 200, "")
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "boom: test panic in LOGIN") || !strings.Contains(logs.String(), "faultyBackend).Login") {
		t.Fatalf("panic or its stack not logged: %s", logs.String())
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestShutdownByesIdleConnections(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	w := openWire(t, srv.Addr)
	w.expect("PING", 200, "")
	srv.Stop(t)
	if m := w.recv(); m.Event != "bye" || m.Reason != protocol.ByeShutdown {
		t.Fatalf("got %+v, want bye shutdown", m)
	}
	w.expectClosed()
	if _, err := net.DialTimeout("tcp", srv.Addr, time.Second); err == nil {
		t.Fatal("listener still accepts after shutdown")
	}
}

func TestShutdownFinishesRequestsInFlight(t *testing.T) {
	fb := &faultyBackend{loginGate: make(chan struct{}), loginIn: make(chan struct{}, 1)}
	srv := servertest.Start(t, servertest.Options{
		WrapBackend: func(b server.Backend) server.Backend { fb.Backend = b; return fb },
	})
	srv.AddUser(t, "lena", "s3cretpass", "user")
	w := openWire(t, srv.Addr)
	w.send("LOGIN lena s3cretpass")
	<-fb.loginIn

	done := make(chan error, 1)
	go func() { done <- srv.Server.Shutdown(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v while a request was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(fb.loginGate)
	if m := w.recv(); !m.OK || m.Message != "logged in" {
		t.Fatalf("in-flight LOGIN: %+v", m)
	}
	if m := w.recv(); m.Event != "bye" || m.Reason != protocol.ByeShutdown {
		t.Fatalf("got %+v, want bye shutdown", m)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestShutdownDeadlineClosesConnections(t *testing.T) {
	fb := &faultyBackend{loginGate: make(chan struct{}), loginIn: make(chan struct{}, 1)}
	srv := servertest.Start(t, servertest.Options{
		WrapBackend: func(b server.Backend) server.Backend { fb.Backend = b; return fb },
	})
	w := openWire(t, srv.Addr)
	w.send("LOGIN lena s3cretpass")
	<-fb.loginIn
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	// The stuck request is let go only after the deadline passed, so the
	// forced close is what ends Shutdown.
	time.AfterFunc(300*time.Millisecond, func() { close(fb.loginGate) })
	if err := srv.Server.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
}

func TestIdleTimeout(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{IdleTimeout: 150 * time.Millisecond})
	w := openWire(t, srv.Addr)
	w.expect("PING", 200, "")
	start := time.Now()
	if m := w.recv(); m.Event != "bye" || m.Reason != "idle_timeout" {
		t.Fatalf("got %+v, want bye idle_timeout", m)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", d)
	}
	w.expectClosed()
}

func TestStoreUnavailableAnswers503(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	w := openWire(t, srv.Addr)
	w.expect("REGISTER mona s3cretpass", 201, "")
	w.expect("LOGIN mona s3cretpass", 200, "")
	srv.Store.Close()
	w.expect("REGISTER nina s3cretpass", 503, protocol.CodeUnavailable)
	w.expect("LOGIN mona s3cretpass", 503, protocol.CodeUnavailable)
	// A session needs no store.
	w.expect("GET protected", 200, "")
	w.expect("PING", 200, "")
}

func TestTLS(t *testing.T) {
	tc := servertest.NewCert(t)
	cert, pool := tc.TLS, tc.Pool
	srv := servertest.Start(t, servertest.Options{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})
	nc, err := tls.Dial("tcp", srv.Addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	w := startWire(t, nc)
	w.expect("REGISTER olga s3cretpass", 201, "")
	w.expect("LOGIN olga s3cretpass", 200, "")
	w.expect("GET protected", 200, "")

	// A client that does not trust the certificate fails the handshake.
	if _, err := tls.Dial("tcp", srv.Addr, &tls.Config{ServerName: "127.0.0.1"}); err == nil {
		t.Fatal("TLS dial without the CA succeeded")
	}
}

func TestManyConcurrentClients(t *testing.T) {
	// A hash queue as long as the client count: here every REGISTER must
	// wait its turn, not be refused.
	srv := servertest.Start(t, servertest.Options{HashQueue: 100})
	const clients = 50
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- runClient(srv.Addr, fmt.Sprintf("user%03d", i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	users, err := srv.Store.ListUsers(context.Background())
	if err != nil || len(users) != clients {
		t.Fatalf("%d users in store (err %v), want %d", len(users), err, clients)
	}
}

// runClient registers, logs in and reads a resource; it returns errors
// instead of failing so it can run outside the test goroutine.
func runClient(addr, name string) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(nc, "REGISTER %s s3cretpass\nLOGIN %s s3cretpass\nGET protected\nQUIT\n", name, name)
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 4096)
	for {
		n, err := nc.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			break
		}
	}
	lines := strings.Split(strings.TrimSpace(string(buf)), "\n")
	want := []string{`"event":"hello"`, `"status":201`, `"status":200`, `"content":"Hello ` + name, `"message":"bye"`, `"reason":"quit"`}
	if len(lines) != len(want) {
		return fmt.Errorf("%s: got %d lines: %q", name, len(lines), lines)
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			return fmt.Errorf("%s: line %d %q lacks %s", name, i, lines[i], w)
		}
	}
	return nil
}
