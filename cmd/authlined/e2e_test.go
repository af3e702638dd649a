package main

// End-to-end tests of the built binaries: authlined runs as a real process
// (and the authline client too, when it builds), spoken to over TCP and TLS.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/authline/authline/server/servertest"
)

const (
	e2eStartTimeout = 20 * time.Second // until "listening"
	e2eStopTimeout  = 10 * time.Second // from SIGTERM to exit
	e2eRunTimeout   = 30 * time.Second // a command that should end by itself
	e2eReadTimeout  = 10 * time.Second
)

// e2eBins are the binaries built for one test run.
type e2eBins struct {
	authlined string
	authline  string // empty when the client cannot be built
	noClient  string // why authline is missing
}

// TestE2E builds the binaries once and runs the end-to-end tests on them
// as parallel subtests, so that the temporary directory of the binaries
// outlives them all.
func TestE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end tests build and run the binaries; skipped with -short")
	}
	bins := e2eBuild(t)
	tests := []struct {
		name string
		fn   func(*testing.T, e2eBins)
	}{
		{"Durability", testE2EDurability},
		{"KeyFile", testE2EKeyFile},
		{"UserCommands", testE2EUserCommands},
		{"PlaintextRefused", testE2EPlaintextRefused},
		{"TLS", testE2ETLS},
		{"Environment", testE2EEnvironment},
		{"SIGTERM", testE2ESIGTERM},
		{"Scheduling", testE2EScheduling},
		{"Metrics", testE2EMetrics},
		{"ClientDemo", testE2EClientDemo},
		{"Keys", testE2EKeys},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, bins)
		})
	}
}

// --- building ---

func e2eGoTool(t *testing.T) string {
	t.Helper()
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("cannot find the go command to build the binaries (no $GOROOT/bin/go, none in PATH): %v", err)
	}
	return p
}

func e2eBuild(t *testing.T) e2eBins {
	t.Helper()
	goTool := e2eGoTool(t)
	dir := t.TempDir()
	build := func(name string) (string, error) {
		out := filepath.Join(dir, name)
		args := []string{"build", "-o", out}
		if e2eRace {
			args = append(args, "-race")
		}
		cmd := exec.Command(goTool, append(args, "github.com/authline/authline/cmd/"+name)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %v\n%s", name, err, b)
		}
		return out, nil
	}
	var (
		bins      e2eBins
		serverErr error
		wg        sync.WaitGroup
	)
	wg.Go(func() { bins.authlined, serverErr = build("authlined") })
	if _, err := os.Stat("../authline/main.go"); err != nil {
		bins.noClient = "the client cmd/authline is not there yet (no cmd/authline/main.go)"
	} else {
		wg.Go(func() {
			var err error
			if bins.authline, err = build("authline"); err != nil {
				bins.noClient = "the client cmd/authline does not build yet: " + err.Error()
			}
		})
	}
	wg.Wait()
	if serverErr != nil {
		t.Fatal(serverErr)
	}
	return bins
}

// --- processes ---

// e2eEnv is the test's environment without any AUTHLINE_ variable, plus
// extra ("NAME=value").
func e2eEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AUTHLINE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// e2eOutput collects a process's output; it is safe for concurrent use.
type e2eOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *e2eOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *e2eOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// e2eServer is a running authlined process.
type e2eServer struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *e2eOutput
	exited chan struct{} // closed when the process has exited
	err    error         // cmd.Wait's result, once exited is closed
	addr   string        // from the "listening" log line
}

var e2eListening = regexp.MustCompile(`msg=listening addr=(\S+)`)

// e2eStart starts authlined with args and waits for it to listen.
func e2eStart(t *testing.T, bin string, env []string, args ...string) *e2eServer {
	t.Helper()
	s := &e2eServer{t: t, stderr: &e2eOutput{}, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = env
	if env == nil {
		s.cmd.Env = e2eEnv()
	}
	s.cmd.Stdout = s.stderr
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start authlined: %v", err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("authlined %s output:\n%s", strings.Join(args, " "), s.stderr.String())
		}
	})
	deadline := time.Now().Add(e2eStartTimeout)
	for {
		if m := e2eListening.FindStringSubmatch(s.stderr.String()); m != nil {
			s.addr = m[1]
			return s
		}
		select {
		case <-s.exited:
			t.Fatalf("authlined %s exited before listening (%v):\n%s", strings.Join(args, " "), s.err, s.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("authlined %s did not log \"listening\" within %v:\n%s", strings.Join(args, " "), e2eStartTimeout, s.stderr.String())
		}
	}
}

// kill ends the process at once (SIGKILL) and waits for it.
func (s *e2eServer) kill() {
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// stop sends SIGTERM and waits for the process to stop.
func (s *e2eServer) stop() {
	s.t.Helper()
	s.terminate()
	s.waitStopped()
}

// terminate sends SIGTERM.
func (s *e2eServer) terminate() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("SIGTERM: %v", err)
	}
}

// waitStopped checks that the process logs "stopped" and exits 0 in time.
func (s *e2eServer) waitStopped() {
	s.t.Helper()
	select {
	case <-s.exited:
	case <-time.After(e2eStopTimeout):
		s.t.Fatalf("authlined did not exit within %v of SIGTERM:\n%s", e2eStopTimeout, s.stderr.String())
	}
	if s.err != nil {
		s.t.Fatalf("authlined exited with %v after SIGTERM, want exit status 0:\n%s", s.err, s.stderr.String())
	}
	if !regexp.MustCompile(`msg=stopped\b`).MatchString(s.stderr.String()) {
		s.t.Fatalf("authlined did not log \"stopped\":\n%s", s.stderr.String())
	}
}

// e2eResult is the outcome of a command that ends by itself.
type e2eResult struct {
	stdout, stderr string
	code           int
}

// e2eRun runs bin with stdin and env (nil: e2eEnv()) and waits for it.
func e2eRun(t *testing.T, bin, stdin string, env []string, args ...string) e2eResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eRunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	if env == nil {
		cmd.Env = e2eEnv()
	}
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s did not end within %v:\n%s%s", filepath.Base(bin), strings.Join(args, " "), e2eRunTimeout, stdout.String(), stderr.String())
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %s: %v", bin, err)
	}
	return e2eResult{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// wantCode checks a command's exit code.
func (r e2eResult) wantCode(t *testing.T, code int, what string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", what, r.code, code, r.stdout, r.stderr)
	}
}

// --- the wire ---

type e2eConn struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

// e2eDial connects over TCP and reads the greeting.
func e2eDial(t *testing.T, addr string) *e2eConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, e2eReadTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return e2eGreet(t, nc)
}

// e2eGreet takes over a connection and checks the greeting.
func e2eGreet(t *testing.T, nc net.Conn) *e2eConn {
	t.Helper()
	t.Cleanup(func() { nc.Close() })
	c := &e2eConn{t: t, nc: nc, r: bufio.NewReader(nc)}
	if m := c.recv(); m["event"] != "hello" || m["server"] != "authlined" || m["proto"] != 1.0 {
		t.Fatalf("greeting: %v", m)
	}
	return c
}

func (c *e2eConn) recv() map[string]any {
	c.t.Helper()
	return servertest.ReadJSON[map[string]any](c.t, c.nc, c.r, time.Now().Add(e2eReadTimeout))
}

// do sends a request, a JSON object given as a map or an inline line as a
// string, and returns the response.
func (c *e2eConn) do(req any) map[string]any {
	c.t.Helper()
	line, ok := req.(string)
	if !ok {
		b, err := json.Marshal(req)
		if err != nil {
			c.t.Fatal(err)
		}
		line = string(b)
	}
	if _, err := c.nc.Write([]byte(line + "\n")); err != nil {
		c.t.Fatalf("send: %v", err)
	}
	return c.recv()
}

// expect sends a request and checks the status and the error code ("" for
// success).
func (c *e2eConn) expect(req any, status int, code string) map[string]any {
	c.t.Helper()
	m := c.do(req)
	gotCode, _ := m["error"].(string)
	if m["status"] != float64(status) || gotCode != code {
		c.t.Fatalf("%v: got %v, want status %d %s", req, m, status, code)
	}
	return m
}

// token logs in in token mode and returns the token.
func (c *e2eConn) token(user, pass string) string {
	c.t.Helper()
	m := c.expect(map[string]any{"cmd": "LOGIN", "username": user, "password": pass, "mode": "token"}, 200, "")
	data, _ := m["data"].(map[string]any)
	tok, _ := data["token"].(string)
	if tok == "" {
		c.t.Fatalf("no token in %v", m)
	}
	return tok
}

// serveArgs are the arguments of a test server on db. The tests log in
// and register from one address many times a second, so the per-address
// rate limit is off.
func serveArgs(db string, more ...string) []string {
	return append([]string{"serve", "--listen", "127.0.0.1:0", "--db", db, "--bcrypt-cost", "4", "--ip-auth-rate", "0"}, more...)
}

// --- the tests ---

func testE2EDurability(t *testing.T, bins e2eBins) {
	dir := t.TempDir()
	db := filepath.Join(dir, "a.db")
	srv := e2eStart(t, bins.authlined, nil, serveArgs(db)...)
	c := e2eDial(t, srv.addr)
	const users = 20
	for i := range users {
		c.expect(map[string]any{"id": i, "cmd": "REGISTER", "username": fmt.Sprintf("user%02d", i), "password": fmt.Sprintf("password-%02d", i)}, 201, "")
	}
	kept := c.token("user00", "password-00")
	revoked := c.token("user01", "password-01")
	c.expect("LOGOUT "+revoked, 200, "")
	c.expect("WHOAMI "+revoked, 401, "invalid_token")
	key, err := os.ReadFile(filepath.Join(dir, "a.key"))
	if err != nil {
		t.Fatal(err)
	}

	// No graceful shutdown: every acknowledged write must be on disk.
	srv.kill()
	c.nc.Close()

	srv = e2eStart(t, bins.authlined, nil, serveArgs(db)...)
	c = e2eDial(t, srv.addr)
	for i := range users {
		name := fmt.Sprintf("user%02d", i)
		m := c.expect(fmt.Sprintf("LOGIN %s password-%02d", name, i), 200, "")
		if data, _ := m["data"].(map[string]any); data["username"] != name {
			t.Fatalf("login %s: %v", name, m)
		}
	}
	if again, err := os.ReadFile(filepath.Join(dir, "a.key")); err != nil || !bytes.Equal(again, key) {
		t.Fatalf("the key file changed across the restart (err %v)", err)
	}
	m := c.expect("WHOAMI "+kept, 200, "")
	if data, _ := m["data"].(map[string]any); data["username"] != "user00" || data["auth"] != "token" {
		t.Fatalf("token issued before the restart: %v", m)
	}
	m = c.expect(map[string]any{"cmd": "GET", "resource": "protected", "token": revoked}, 401, "invalid_token")
	if m["message"] != "token has been revoked" {
		t.Fatalf("token revoked before the restart: %v", m)
	}
	srv.stop()
}

func testE2EKeyFile(t *testing.T, bins e2eBins) {
	dir := t.TempDir()
	db := filepath.Join(dir, "a.db")
	keyFile := filepath.Join(dir, "a.key")
	srv := e2eStart(t, bins.authlined, nil, serveArgs(db)...)
	info, err := os.Stat(keyFile)
	if err != nil {
		t.Fatalf("no key file beside the database: %v", err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key file mode %v, want 0600", perm)
	}
	srv.stop()

	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	r := e2eRun(t, bins.authlined, "", nil, serveArgs(db)...)
	if r.code == 0 {
		t.Fatalf("serve with a key file of mode 0644 exited 0:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, keyFile) || !strings.Contains(r.stderr, "chmod 600") || strings.Contains(r.stderr, "msg=listening") {
		t.Fatalf("serve with a key file of mode 0644: want a message naming the file and chmod 600, and no listening:\n%s", r.stderr)
	}

	// Restored to 0600, the same key is used again.
	if err := os.Chmod(keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	srv = e2eStart(t, bins.authlined, nil, serveArgs(db)...)
	srv.stop()
}

func testE2EUserCommands(t *testing.T, bins e2eBins) {
	dir := t.TempDir()
	db := filepath.Join(dir, "u.db")
	run := func(stdin string, args ...string) e2eResult {
		t.Helper()
		return e2eRun(t, bins.authlined, stdin, nil, append(args, "--db", db)...)
	}
	// listed returns the role of each user in `user list`.
	listed := func() map[string]string {
		t.Helper()
		r := run("", "user", "list")
		r.wantCode(t, 0, "user list")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) == 0 || !strings.HasPrefix(lines[0], "USERNAME") {
			t.Fatalf("user list: no header:\n%s", r.stdout)
		}
		roles := map[string]string{}
		for _, l := range lines[1:] {
			if f := strings.Fields(l); len(f) >= 2 {
				roles[f[0]] = f[1]
			}
		}
		return roles
	}

	r := run("teal-kettle-41\n", "user", "add", "admin1", "--role", "admin", "--password-stdin", "--bcrypt-cost", "4")
	r.wantCode(t, 0, "user add admin1 --role admin")
	if !strings.Contains(r.stdout, "admin1") {
		t.Fatalf("user add: %q", r.stdout)
	}
	run("amber-violin-52\n", "user", "add", "Bob", "--password-stdin", "--bcrypt-cost", "4").wantCode(t, 0, "user add Bob")
	if roles := listed(); roles["admin1"] != "admin" || roles["bob"] != "user" || len(roles) != 2 {
		t.Fatalf("user list: %v, want admin1 admin and bob user", roles)
	}

	run("", "user", "set-role", "bob", "admin").wantCode(t, 0, "user set-role bob admin")
	if roles := listed(); roles["bob"] != "admin" {
		t.Fatalf("after set-role: %v", roles)
	}
	run("", "user", "set-role", "bob", "superuser").wantCode(t, 2, "user set-role with a wrong role")
	run("olive-harbor-63\n", "user", "add", "carol", "--role", "superuser", "--password-stdin", "--bcrypt-cost", "4").wantCode(t, 2, "user add with a wrong role")
	run("short\n", "user", "add", "carol", "--password-stdin", "--bcrypt-cost", "4").wantCode(t, 2, "user add with a short password")
	run("cobalt-meadow-74\n", "user", "add", "admin1", "--password-stdin", "--bcrypt-cost", "4").wantCode(t, 1, "user add of an existing user")
	run("", "user", "set-role", "nobody", "admin").wantCode(t, 1, "user set-role of a missing user")
	run("", "user", "delete", "bob").wantCode(t, 0, "user delete bob")
	run("", "user", "delete", "bob").wantCode(t, 1, "user delete of a missing user")
	if roles := listed(); len(roles) != 1 || roles["admin1"] != "admin" {
		t.Fatalf("user list after the changes: %v, want only admin1 (admin)", roles)
	}

	srv := e2eStart(t, bins.authlined, nil, serveArgs(db)...)
	c := e2eDial(t, srv.addr)
	c.expect("LOGIN admin1 teal-kettle-41", 200, "")
	m := c.expect("GET admin", 200, "")
	if data, _ := m["data"].(map[string]any); data["username"] != "admin1" || data["role"] != "admin" {
		t.Fatalf("GET admin: %v", m)
	}
	c.expect("LOGIN bob amber-violin-52", 401, "invalid_credentials")
	// The user commands work beside a running server.
	run("silver-anchor-85\n", "user", "add", "late", "--password-stdin", "--bcrypt-cost", "4").wantCode(t, 0, "user add while serving")
	tok := c.token("late", "silver-anchor-85")
	run("", "user", "set-role", "late", "admin").wantCode(t, 0, "user set-role while serving")
	// The running server learns of the change through the store's change
	// feed, within its --sync-interval (250ms by default).
	deadline := time.Now().Add(5 * time.Second)
	for c.do("GET admin " + tok)["status"] != float64(200) {
		if time.Now().After(deadline) {
			t.Fatal("the role change made by `authlined user set-role` did not reach the running server within 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	srv.stop()
}

func testE2EPlaintextRefused(t *testing.T, bins e2eBins) {
	dir := t.TempDir()
	db := filepath.Join(dir, "a.db")
	for _, addr := range []string{"0.0.0.0:0", ":0"} {
		r := e2eRun(t, bins.authlined, "", nil, "serve", "--listen", addr, "--db", db, "--bcrypt-cost", "4")
		r.wantCode(t, 2, "serve --listen "+addr+" without TLS")
		if !strings.Contains(r.stderr, "--insecure-plaintext") {
			t.Fatalf("serve --listen %s: the message should mention --insecure-plaintext:\n%s", addr, r.stderr)
		}
	}
	srv := e2eStart(t, bins.authlined, nil, "serve", "--listen", "0.0.0.0:0", "--insecure-plaintext", "--db", db, "--bcrypt-cost", "4")
	_, port, err := net.SplitHostPort(srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	c := e2eDial(t, net.JoinHostPort("127.0.0.1", port))
	c.expect("PING", 200, "")
	srv.stop()
}

// e2eCert writes a new self-signed certificate for 127.0.0.1 and its key as
// PEM files in dir, and returns their paths and a pool that trusts it.
func e2eCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	c := servertest.NewCert(t)
	certFile, keyFile = c.WriteFiles(t, dir)
	return certFile, keyFile, c.Pool
}

func testE2ETLS(t *testing.T, bins e2eBins) {
	dir := t.TempDir()
	db := filepath.Join(dir, "a.db")
	certFile, keyFile, pool := e2eCert(t, dir)

	e2eRun(t, bins.authlined, "", nil, serveArgs(db, "--tls-cert", certFile)...).wantCode(t, 2, "serve with --tls-cert but no --tls-key")

	srv := e2eStart(t, bins.authlined, nil, serveArgs(db, "--tls-cert", certFile, "--tls-key", keyFile)...)
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: e2eReadTimeout}, Config: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	nc, err := dialer.DialContext(context.Background(), "tcp", srv.addr)
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	c := e2eGreet(t, nc)
	c.expect(map[string]any{"id": "tls", "cmd": "PING"}, 200, "")
	c.expect("REGISTER tlsuser tls-password", 201, "")
	c.expect("LOGIN tlsuser tls-password", 200, "")

	// A plaintext client gets no greeting, whatever it sends.
	raw, err := net.DialTimeout("tcp", srv.addr, e2eReadTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(2 * time.Second))
	raw.Write([]byte("PING\n"))
	var got bytes.Buffer
	got.ReadFrom(raw) // until EOF, reset or the deadline
	if bytes.Contains(got.Bytes(), []byte(`"event"`)) || bytes.Contains(got.Bytes(), []byte("pong")) {
		t.Fatalf("a plaintext client on the TLS port received %q", got.Bytes())
	}
	// The TLS connection is unaffected.
	c.expect("WHOAMI", 200, "")
	srv.stop()
}

func testE2EEnvironment(t *testing.T, bins e2eBins) {
	dir := t.TempDir()
	envDB := filepath.Join(dir, "env.db")
	flagDB := filepath.Join(dir, "flag.db")

	// Everything from the environment.
	env := e2eEnv("AUTHLINE_LISTEN=127.0.0.1:0", "AUTHLINE_DB="+envDB, "AUTHLINE_BCRYPT_COST=4")
	srv := e2eStart(t, bins.authlined, env, "serve")
	if !strings.Contains(srv.stderr.String(), "db="+envDB) {
		t.Fatalf("AUTHLINE_DB not used:\n%s", srv.stderr.String())
	}
	c := e2eDial(t, srv.addr)
	c.expect("REGISTER envuser env-password", 201, "")
	srv.stop()
	if _, err := os.Stat(filepath.Join(dir, "env.key")); err != nil {
		t.Fatalf("no key beside AUTHLINE_DB: %v", err)
	}
	// The user commands read the environment too.
	r := e2eRun(t, bins.authlined, "", env, "user", "list")
	r.wantCode(t, 0, "user list with AUTHLINE_DB")
	if !strings.Contains(r.stdout, "envuser") {
		t.Fatalf("user list with AUTHLINE_DB=%s:\n%s", envDB, r.stdout)
	}

	// Flags win over the environment: from the environment, this listen
	// address would be refused (plaintext, not loopback).
	env = e2eEnv("AUTHLINE_LISTEN=0.0.0.0:0", "AUTHLINE_DB="+envDB, "AUTHLINE_BCRYPT_COST=4")
	srv = e2eStart(t, bins.authlined, env, "serve", "--listen", "127.0.0.1:0", "--db", flagDB)
	if !strings.HasPrefix(srv.addr, "127.0.0.1:") || !strings.Contains(srv.stderr.String(), "db="+flagDB) {
		t.Fatalf("flags did not win over AUTHLINE_LISTEN and AUTHLINE_DB:\n%s", srv.stderr.String())
	}
	c = e2eDial(t, srv.addr)
	c.expect("LOGIN envuser env-password", 401, "invalid_credentials") // not env.db
	srv.stop()
	if _, err := os.Stat(flagDB); err != nil {
		t.Fatalf("--db not used: %v", err)
	}

	// A bad value in the environment is a usage error that names it.
	r = e2eRun(t, bins.authlined, "", e2eEnv("AUTHLINE_LISTEN=127.0.0.1:0", "AUTHLINE_DB="+envDB, "AUTHLINE_BCRYPT_COST=lots"), "serve")
	r.wantCode(t, 2, "serve with AUTHLINE_BCRYPT_COST=lots")
	if !strings.Contains(r.stderr, "AUTHLINE_BCRYPT_COST") {
		t.Fatalf("the message should name AUTHLINE_BCRYPT_COST:\n%s", r.stderr)
	}
}

func testE2ESIGTERM(t *testing.T, bins e2eBins) {
	db := filepath.Join(t.TempDir(), "a.db")
	srv := e2eStart(t, bins.authlined, nil, serveArgs(db)...)
	idle := e2eDial(t, srv.addr)
	busy := e2eDial(t, srv.addr)
	busy.expect("REGISTER termuser term-password", 201, "")
	busy.expect("LOGIN termuser term-password", 200, "")
	srv.terminate()
	for name, c := range map[string]*e2eConn{"idle": idle, "logged-in": busy} {
		if m := c.recv(); m["event"] != "bye" || m["reason"] != "shutdown" {
			t.Fatalf("%s connection: got %v, want the bye event with reason shutdown", name, m)
		}
		c.nc.SetReadDeadline(time.Now().Add(e2eStopTimeout))
		if b, err := c.r.ReadByte(); err == nil {
			t.Fatalf("%s connection: byte %q after bye, want the close", name, b)
		}
	}
	srv.waitStopped()
	// New connections are refused once it is gone.
	if nc, err := net.DialTimeout("tcp", srv.addr, time.Second); err == nil {
		nc.Close()
		t.Fatalf("%s still accepts connections after the shutdown", srv.addr)
	}
}

// testE2EScheduling: serve gives the Go scheduler one slot more than hash
// workers, so that GETs are not queued behind a login flood, unless the
// environment sets GOMAXPROCS.
func testE2EScheduling(t *testing.T, bins e2eBins) {
	gomaxprocs := regexp.MustCompile(`hash_workers=(\d+) gomaxprocs=(\d+)`)
	for _, tc := range []struct {
		name    string
		env     []string
		workers string
		check   func(workers, procs int) bool
	}{
		{"default", nil, "3", func(w, p int) bool { return p >= w+1 }},
		{"GOMAXPROCS set", []string{"GOMAXPROCS=1"}, "3", func(w, p int) bool { return p == 1 }},
	} {
		db := filepath.Join(t.TempDir(), "a.db")
		srv := e2eStart(t, bins.authlined, e2eEnv(tc.env...), serveArgs(db, "--hash-workers", tc.workers)...)
		m := gomaxprocs.FindStringSubmatch(srv.stderr.String())
		if m == nil {
			t.Fatalf("%s: the listening line names no hash_workers and gomaxprocs:\n%s", tc.name, srv.stderr.String())
		}
		w, _ := strconv.Atoi(m[1])
		p, _ := strconv.Atoi(m[2])
		if !tc.check(w, p) {
			t.Fatalf("%s: hash_workers=%d gomaxprocs=%d", tc.name, w, p)
		}
		srv.stop()
	}
}

// testE2EKeys: a server signing EdDSA tokens publishes its public key
// with JWKS, and `authlined keys rotate` run against its database while it
// serves switches new tokens to the new key without a restart.
func testE2EKeys(t *testing.T, bins e2eBins) {
	dir := t.TempDir()
	db := filepath.Join(dir, "k.db")
	srv := e2eStart(t, bins.authlined, nil, serveArgs(db, "--token-alg", "EdDSA", "--sync-interval", "50ms")...)
	c := e2eDial(t, srv.addr)
	c.expect("REGISTER keyuser key-password-1", 201, "")
	old := c.token("keyuser", "key-password-1")
	oldKID := e2eKID(t, old)
	if !strings.Contains(srv.stderr.String(), "token_alg=EdDSA kid="+oldKID) {
		t.Fatalf("the listening line does not name the signing key %s:\n%s", oldKID, srv.stderr.String())
	}
	jwks := func() []string {
		t.Helper()
		data, _ := c.expect("JWKS", 200, "")["data"].(map[string]any)
		keys, _ := data["keys"].([]any)
		var kids []string
		for _, k := range keys {
			m, _ := k.(map[string]any)
			if m["kty"] != "OKP" || m["crv"] != "Ed25519" || m["alg"] != "EdDSA" {
				t.Fatalf("JWKS key %v", m)
			}
			kids = append(kids, fmt.Sprint(m["kid"]))
		}
		return kids
	}
	if kids := jwks(); len(kids) != 1 || kids[0] != oldKID {
		t.Fatalf("JWKS kids %v, want [%s]", kids, oldKID)
	}

	r := e2eRun(t, bins.authlined, "", nil, "keys", "rotate", "--token-alg", "EdDSA", "--db", db)
	r.wantCode(t, 0, "keys rotate while serving")
	m := regexp.MustCompile(`^added EdDSA key (\S+):`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("keys rotate printed %q", r.stdout)
	}
	newKID := m[1]
	deadline := time.Now().Add(e2eReadTimeout)
	for e2eKID(t, c.token("keyuser", "key-password-1")) != newKID {
		if time.Now().After(deadline) {
			t.Fatalf("new tokens do not carry the rotated key's kid %s within %v", newKID, e2eReadTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.expect("GET protected "+old, 200, "") // the old key still verifies
	if kids := jwks(); len(kids) != 2 || kids[0] != oldKID || kids[1] != newKID {
		t.Fatalf("JWKS kids %v, want [%s %s]", kids, oldKID, newKID)
	}
	r = e2eRun(t, bins.authlined, "", nil, "keys", "export", "--db", db)
	r.wantCode(t, 0, "keys export")
	if !strings.Contains(r.stdout, oldKID) || !strings.Contains(r.stdout, newKID) || !json.Valid([]byte(r.stdout)) {
		t.Fatalf("keys export:\n%s", r.stdout)
	}
	srv.stop()
}

// e2eKID is the kid header of a token.
func e2eKID(t *testing.T, token string) string {
	t.Helper()
	seg, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil || h.Kid == "" {
		t.Fatalf("token header %s: %v", b, err)
	}
	return h.Kid
}

var e2eDemoSummary = regexp.MustCompile(`(?m)^all (\d+) steps passed$`)

func testE2EClientDemo(t *testing.T, bins e2eBins) {
	if bins.authline == "" {
		t.Skip(bins.noClient)
	}
	dir := t.TempDir()
	// The client may keep credentials under the config directory: keep
	// it in the test's.
	env := e2eEnv("HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	help := e2eRun(t, bins.authline, "", env, "--help")
	help.wantCode(t, 0, "authline --help")
	for _, want := range []string{"--server", "demo"} {
		if !strings.Contains(help.stdout+help.stderr, want) {
			t.Fatalf("authline --help does not mention %s:\n%s%s", want, help.stdout, help.stderr)
		}
	}

	db := filepath.Join(dir, "a.db")
	srv := e2eStart(t, bins.authlined, nil, serveArgs(db)...)
	// demoSteps checks the output: a ✓ line per step and the summary.
	demoSteps := func(r e2eResult) int {
		t.Helper()
		m := e2eDemoSummary.FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("demo: no \"all N steps passed\":\n%s%s", r.stdout, r.stderr)
		}
		n, _ := strconv.Atoi(m[1])
		if got := strings.Count(r.stdout, "\n✓"); got != n || n == 0 {
			t.Fatalf("demo: %d ✓ lines for %d steps:\n%s", got, n, r.stdout)
		}
		if strings.Contains(r.stdout, "FAIL") {
			t.Fatalf("demo:\n%s", r.stdout)
		}
		return n
	}
	r := e2eRun(t, bins.authline, "", env, "--server", srv.addr, "demo")
	r.wantCode(t, 0, "authline demo")
	plain := demoSteps(r)
	for _, want := range []string{"register", "login", "get protected", "get admin", "logout", "revoked"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks a step with %q:\n%s", want, r.stdout)
		}
	}

	e2eRun(t, bins.authlined, "quartz-lantern-96\n", nil, "user", "add", "root", "--role", "admin", "--password-stdin", "--bcrypt-cost", "4", "--db", db).wantCode(t, 0, "user add root")
	r = e2eRun(t, bins.authline, "quartz-lantern-96\n", env, "--server", srv.addr, "demo", "--admin-user", "root", "--admin-password-stdin")
	r.wantCode(t, 0, "authline demo --admin-user root")
	if admin := demoSteps(r); admin <= plain {
		t.Fatalf("demo with an admin ran %d steps, without %d: want the admin steps too:\n%s", admin, plain, r.stdout)
	}
	if !regexp.MustCompile(`(?m)^✓.*admin.*expected 200, got 200$`).MatchString(r.stdout) {
		t.Fatalf("demo with an admin: no successful admin step:\n%s", r.stdout)
	}
	srv.stop()
}
