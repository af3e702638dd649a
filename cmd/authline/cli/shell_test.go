package cli

import (
	"io"
	"strings"
	"testing"

	"github.com/authline/authline/server/servertest"
)

func TestShellScript(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	script := strings.Join([]string{
		"ping",
		"get protected", // not logged in yet
		"login alice",
		"alice-password", // not a terminal: the next line is the password
		"",               // blank lines are skipped
		"whoami",
		"get protected",
		"get admin", // forbidden: the shell goes on
		"frobnicate",
		"get",
		"logout",
		"whoami",
		"register henry",
		"h-e-n-r-y-password",
		"LOGIN henry", // commands are case-insensitive
		"h-e-n-r-y-password",
		"quit",
		"ping", // never read
	}, "\n") + "\n"

	r := run(t, script, "--server", srv.Addr, "shell")
	wantCode(t, r, 0)
	wantOut := strings.Join([]string{
		"pong",
		"logged in as alice (role user)",
		"alice (role user, auth session)",
		"Hello alice, this is protected content.",
		"logged out alice",
		"registered henry (role user)",
		"logged in as henry (role user)",
	}, "\n") + "\n"
	if r.out != wantOut {
		t.Fatalf("stdout:\n%s\nwant:\n%s", r.out, wantOut)
	}
	wantErr := []string{
		"error: authentication required: LOGIN first or send a token (unauthenticated)",
		"error: the admin resource requires the admin role (forbidden)",
		`error: unknown command "frobnicate"; type help for the list`,
		"error: usage: get RESOURCE",
		"error: not logged in: LOGIN first or send a token (unauthenticated)",
	}
	if got := strings.Split(strings.TrimSuffix(r.err, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(wantErr, "\n") {
		t.Fatalf("stderr:\n%s\nwant:\n%s", r.err, strings.Join(wantErr, "\n"))
	}
	if strings.Contains(r.out+r.err, srv.Addr+"> ") {
		t.Fatal("prompt printed although stdin is not a terminal")
	}
	// The shell's logins are session logins: nothing saved.
	if _, _, err := loadCredentials(); err != nil {
		t.Fatal(err)
	}
	if c, _, _ := loadCredentials(); len(c.Servers) != 0 {
		t.Fatalf("shell saved credentials: %v", c.Servers)
	}
}

func TestShellTerminal(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	s := terminal("login alice\nwhoami\nlogout\n", "alice-password") // then EOF (Ctrl-D)
	r := runIO(t, s, "--server", srv.Addr, "shell")
	wantCode(t, r, 0)
	if r.out != "logged in as alice (role user)\nalice (role user, auth session)\nlogged out alice\n" {
		t.Fatalf("stdout %q", r.out)
	}
	user := "alice@" + srv.Addr + "> "
	wantErr := srv.Addr + "> Password: \n" + user + user + srv.Addr + "> \n"
	if r.err != wantErr {
		t.Fatalf("stderr (prompts) %q, want %q", r.err, wantErr)
	}
}

func TestShellJSON(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	r := run(t, "login root\nroot-password\nget admin\nget nothing\nexit\n", "--server", srv.Addr, "-o", "json", "shell")
	wantCode(t, r, 0)
	lines := strings.Split(strings.TrimSuffix(r.out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want one JSON object per command, got:\n%s", r.out)
	}
	login, get, miss := decodeJSON(t, lines[0]), decodeJSON(t, lines[1]), decodeJSON(t, lines[2])
	if login["username"] != "root" || login["mode"] != "session" {
		t.Fatalf("login: %v", login)
	}
	if get["resource"] != "admin" || get["role"] != "admin" {
		t.Fatalf("get: %v", get)
	}
	if miss["ok"] != false || miss["status"] != 404.0 || miss["error"] != "not_found" {
		t.Fatalf("refusal: %v", miss)
	}
}

// stopAfterFirstLine feeds the shell one line, then stops the server
// before handing over the next.
type stopAfterFirstLine struct {
	t     *testing.T
	srv   *servertest.Server
	lines []string
}

func (r *stopAfterFirstLine) Read(p []byte) (int, error) {
	if len(r.lines) == 0 {
		return 0, io.EOF
	}
	if len(r.lines) == 1 {
		r.srv.Stop(r.t)
	}
	n := copy(p, r.lines[0])
	r.lines = r.lines[1:]
	return n, nil
}

func TestShellServerGone(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	in := &stopAfterFirstLine{t: t, srv: srv, lines: []string{"ping\n", "ping\n"}}
	r := runIO(t, &IOStreams{In: in}, "--server", srv.Addr, "shell")
	wantCode(t, r, 3)
	if r.out != "pong\n" || !strings.Contains(r.err, "server closed the connection (shutdown)") {
		t.Fatalf("stdout %q stderr %q", r.out, r.err)
	}
}
