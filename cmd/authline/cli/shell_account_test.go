package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server/servertest"
)

func TestShellAdmin(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	srv.AddUser(t, "henry", "kitten-orbit-42", "user")
	script := strings.Join([]string{
		"login alice",
		"alice-password",
		"admin users", // forbidden: the shell goes on
		"login root",
		"root-password",
		"admin users",
		"admin users 1",
		"admin users 2 alice",
		"admin user alice",
		"admin set-role alice admin",
		"admin set-role alice user",
		"admin disable alice",
		"admin enable alice",
		"admin unlock alice",
		"admin revoke alice",
		"admin delete henry",
		"no", // not a terminal: the next line answers
		"admin delete henry",
		"yes",
		"admin user henry",
		"admin frobnicate x",
		"admin set-role alice boss",
		"admin users many",
		"admin",
		"logout all",
		"whoami",
		"quit",
	}, "\n") + "\n"
	r := run(t, script, "--server", srv.Addr, "shell")
	wantCode(t, r, 0)

	for _, want := range []string{
		"logged in as root (role admin)\nUSERNAME ",
		"\nhenry ",
		"\nalice ",
		"role of alice set to admin\nusername:   alice\nrole:       admin\n",
		"role of alice set to user\n",
		"disabled alice\nusername:   alice\nrole:       user\ndisabled:   yes\n",
		"enabled alice\n", "unlocked alice\n", "revoked every session and token of alice\n",
		"deleted henry (role user)\n",
		"logged out root everywhere: every session and token ended\n",
	} {
		if !strings.Contains(r.out, want) {
			t.Fatalf("stdout lacks %q:\n%s", want, r.out)
		}
	}
	for _, want := range []string{
		"(forbidden)\n",
		"more accounts: admin users 1 alice\n",
		"error: not confirmed: nothing deleted\n",
		"(not_found)\n",
		`error: unknown admin command "frobnicate"; type help for the list` + "\n",
		`error: role must be user or admin, not "boss"` + "\n",
		"error: LIMIT must be a number from 1 to 1000\n",
		"error: usage: admin COMMAND [ARGS]; type help for the list\n",
		"(unauthenticated)\n",
	} {
		if !strings.Contains(r.err, want) {
			t.Fatalf("stderr lacks %q:\n%s", want, r.err)
		}
	}
	if strings.Count(r.err, "more accounts:") != 1 {
		t.Fatalf("next-page hint where there is no next page:\n%s", r.err)
	}
}

func TestShellPasswd(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	script := strings.Join([]string{
		"login alice", "alice-password",
		"passwd", "wrong-password", newPassword, // refused
		"passwd", "alice-password", "short", // refused by policy
		"passwd", "alice-password", newPassword,
		"whoami", // the session that changed the password goes on
		"logout",
		"login alice", "alice-password", // the old password is refused
		"login alice", newPassword,
		"quit",
	}, "\n") + "\n"
	r := run(t, script, "--server", srv.Addr, "shell")
	wantCode(t, r, 0)
	wantOut := strings.Join([]string{
		"logged in as alice (role user)",
		"password of alice changed; other sessions and tokens ended",
		"alice (role user, auth session)",
		"logged out alice",
		"logged in as alice (role user)",
	}, "\n") + "\n"
	if r.out != wantOut {
		t.Fatalf("stdout:\n%s\nwant:\n%s", r.out, wantOut)
	}
	errs := strings.Split(strings.TrimSuffix(r.err, "\n"), "\n")
	if len(errs) != 3 || !strings.HasSuffix(errs[0], "(invalid_credentials)") || !strings.HasSuffix(errs[1], "(bad_request)") || !strings.HasSuffix(errs[2], "(invalid_credentials)") {
		t.Fatalf("stderr:\n%s", r.err)
	}

	// On a terminal: three prompts without echo.
	s := terminal("login alice\npasswd\n", newPassword, newPassword, "third-password-55", "third-password-55")
	r = runIO(t, s, "--server", srv.Addr, "shell")
	wantCode(t, r, 0)
	if !strings.Contains(r.err, "> Current password: \nNew password: \nRepeat password: \n") {
		t.Fatalf("prompts %q", r.err)
	}
	if !strings.Contains(r.out, "password of alice changed") {
		t.Fatalf("stdout %q", r.out)
	}
}

// syncBuffer is a buffer written by the shell and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitFor waits until the buffer holds s.
func (b *syncBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("waited in vain for %q in:\n%s", s, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// liveShell is a shell running in the background, fed line by line.
type liveShell struct {
	in       *io.PipeWriter
	out, err *syncBuffer
	done     chan struct{}
	code     int
}

// wait waits for the shell to end and returns its exit status.
func (sh *liveShell) wait() int {
	<-sh.done
	return sh.code
}

func startShell(t *testing.T, terminal bool, args ...string) *liveShell {
	t.Helper()
	pr, pw := io.Pipe()
	sh := &liveShell{in: pw, out: &syncBuffer{}, err: &syncBuffer{}, done: make(chan struct{})}
	s := &IOStreams{In: pr, Out: sh.out, ErrOut: sh.err, IsTerminal: terminal}
	if terminal {
		// Typed passwords come from the same input, a line each.
		s.ReadPassword = func() ([]byte, error) {
			line, err := s.ReadLine()
			return []byte(line), err
		}
	}
	go func() {
		defer close(sh.done)
		sh.code = Main(append(args, "shell"), s)
	}()
	t.Cleanup(func() {
		pw.Close() // end of input ends the shell, if the test did not
		sh.wait()
	})
	return sh
}

func (sh *liveShell) send(t *testing.T, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if _, err := io.WriteString(sh.in, l+"\n"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestShellSessionEnded(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	rootToken, err := loginToken(srv.Addr, "root", "root-password")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := client.Dial(context.Background(), srv.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	user := "alice@" + srv.Addr + "> "
	anon := srv.Addr + "> "

	t.Run("terminal", func(t *testing.T) {
		sh := startShell(t, true, "--server", srv.Addr)
		sh.send(t, "login alice", "alice-password")
		sh.err.waitFor(t, user)

		// Ended while the shell waits for input: said at once, and the
		// prompt shows the login is gone.
		if _, err := admin.Revoke(context.Background(), rootToken, "alice"); err != nil {
			t.Fatal(err)
		}
		sh.err.waitFor(t, user+"\nsession ended by the server: revoked\n"+anon)

		sh.send(t, "whoami", "quit")
		if code := sh.wait(); code != 0 {
			t.Fatalf("exit %d", code)
		}
		wantErr := anon + "Password: \n" + user +
			"\nsession ended by the server: revoked\n" + anon +
			"error: not logged in: LOGIN first or send a token (unauthenticated)\n" + anon
		if got := sh.err.String(); got != wantErr {
			t.Fatalf("stderr %q\nwant   %q", got, wantErr)
		}
	})

	t.Run("json", func(t *testing.T) {
		sh := startShell(t, false, "--server", srv.Addr, "-o", "json")
		sh.send(t, "login alice", "alice-password")
		sh.out.waitFor(t, `"username":"alice"`)
		if _, err := admin.Disable(context.Background(), rootToken, "alice"); err != nil {
			t.Fatal(err)
		}
		sh.out.waitFor(t, `{"event":"session_ended","reason":"disabled"}`+"\n")
		if _, err := admin.Enable(context.Background(), rootToken, "alice"); err != nil {
			t.Fatal(err)
		}
		sh.send(t, "whoami", "exit")
		if code := sh.wait(); code != 0 {
			t.Fatalf("exit %d", code)
		}
		lines := strings.Split(strings.TrimSuffix(sh.out.String(), "\n"), "\n")
		if len(lines) != 3 || decodeJSON(t, lines[2])["error"] != string(protocol.CodeUnauthenticated) || sh.err.String() != "" {
			t.Fatalf("stdout:\n%s\nstderr:\n%s", sh.out.String(), sh.err.String())
		}
	})

	t.Run("not a terminal", func(t *testing.T) {
		sh := startShell(t, false, "--server", srv.Addr)
		sh.send(t, "login alice", "alice-password")
		sh.out.waitFor(t, "logged in as alice")
		if _, err := admin.Revoke(context.Background(), rootToken, "alice"); err != nil {
			t.Fatal(err)
		}
		sh.send(t, "whoami", "logout all", "quit")
		if code := sh.wait(); code != 0 {
			t.Fatalf("exit %d", code)
		}
		wantErr := "session ended by the server: revoked\n" +
			"error: not logged in: LOGIN first or send a token (unauthenticated)\n"
		if got := sh.err.String(); !strings.HasPrefix(got, wantErr) {
			t.Fatalf("stderr %q\nwant   %q...", got, wantErr)
		}
	})
}

func TestShellEventBeforeResponse(t *testing.T) {
	// A session_ended that arrives just before a response is shown before
	// that response's output, and the login is forgotten.
	isolate(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		fmt.Fprint(conn, `{"event":"hello","server":"authlined","version":"9.9.9","proto":1}`+"\n")
		r.ReadString('\n') // LOGIN
		fmt.Fprint(conn, `{"id":1,"ok":true,"status":200,"message":"ok","data":{"username":"alice","role":"user","mode":"session"}}`+"\n")
		r.ReadString('\n') // WHOAMI
		fmt.Fprint(conn, `{"event":"session_ended","reason":"password_changed"}`+"\n"+
			`{"id":2,"ok":false,"status":401,"error":"unauthenticated","message":"not logged in"}`+"\n")
		r.ReadString('\n') // QUIT
		fmt.Fprint(conn, `{"id":3,"ok":true,"status":200,"message":"bye"}`+"\n"+`{"event":"bye","reason":"quit"}`+"\n")
		r.ReadString('\n') // until the client hangs up
	}()
	r := runIO(t, terminal("login alice\nwhoami\nquit\n", "alice-password"), "--server", ln.Addr().String(), "shell")
	<-served
	wantCode(t, r, 0)
	user := "alice@" + ln.Addr().String() + "> "
	anon := ln.Addr().String() + "> "
	wantErr := anon + "Password: \n" + user +
		"session ended by the server: password_changed\nerror: not logged in (unauthenticated)\n" + anon
	if r.err != wantErr {
		t.Fatalf("stderr %q\nwant   %q", r.err, wantErr)
	}
}
