package cli

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/authline/authline/server/servertest"
)

// TestTokenFlow walks register, login, get, whoami and logout with the
// saved credentials, checking output and the credentials file after each
// step.
func TestTokenFlow(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	s := "--server=" + srv.Addr

	steps := []struct {
		name    string
		in      string
		args    []string
		code    int
		out     string // exact stdout, when set
		outPart string // substring of stdout, when set
		errPart string // substring of stderr, when set
	}{
		{"register", "b-o-b-password\n", []string{s, "register", "bob", "--password-stdin"}, 0,
			"registered bob (role user)\n", "", ""},
		{"register duplicate", "b-o-b-password\n", []string{s, "register", "bob", "--password-stdin"}, 1,
			"", "", "error: username is already taken (conflict)\n"},
		{"get before login", "", []string{s, "get", "protected"}, 1,
			"", "", "error: not logged in to " + srv.Addr + "\nhint: run authline login\n"},
		{"login wrong password", "nope-nope\n", []string{s, "login", "bob", "--password-stdin"}, 1,
			"", "", "(invalid_credentials)"},
		{"login", "b-o-b-password\r\n", []string{s, "login", "bob", "--password-stdin"}, 0,
			"", "logged in as bob (role user); token saved, expires 20", ""},
		{"get protected", "", []string{s, "get", "protected"}, 0,
			"Hello bob, this is protected content.\n", "", ""},
		{"get admin", "", []string{s, "get", "admin"}, 1,
			"", "", "error: the admin resource requires the admin role (forbidden)\n"},
		{"get unknown", "", []string{s, "get", "secrets"}, 1,
			"", "", "(not_found)"},
		{"whoami", "", []string{s, "whoami"}, 0,
			"bob (role user, auth token)\n", "", ""},
		{"logout", "", []string{s, "logout"}, 0,
			"logged out bob; token revoked and removed\n", "", ""},
		{"get after logout", "", []string{s, "get", "protected"}, 1,
			"", "", "not logged in"},
		{"logout again", "", []string{s, "logout"}, 1,
			"", "", "not logged in"},
	}
	for _, st := range steps {
		r := run(t, st.in, st.args...)
		if r.code != st.code {
			t.Fatalf("%s: exit %d, want %d\nstdout:\n%sstderr:\n%s", st.name, r.code, st.code, r.out, r.err)
		}
		if st.out != "" && r.out != st.out {
			t.Fatalf("%s: stdout %q, want %q", st.name, r.out, st.out)
		}
		if st.outPart != "" && !strings.Contains(r.out, st.outPart) {
			t.Fatalf("%s: stdout %q does not contain %q", st.name, r.out, st.outPart)
		}
		if st.errPart != "" && !strings.Contains(r.err, st.errPart) {
			t.Fatalf("%s: stderr %q does not contain %q", st.name, r.err, st.errPart)
		}
		if st.code == 0 && r.err != "" {
			t.Fatalf("%s: unexpected stderr %q", st.name, r.err)
		}
		if st.code != 0 && r.out != "" {
			t.Fatalf("%s: failure printed %q on stdout", st.name, r.out)
		}

		if st.name == "login" {
			checkCredentialsFile(t, srv.Addr, "bob")
		}
		if st.name == "logout" {
			if c := readCredentials(t); len(c.Servers) != 0 {
				t.Fatalf("logout left %v in the credentials file", c.Servers)
			}
		}
	}
}

// checkCredentialsFile checks the file saved by login: private, keyed by
// server, and holding a token the server accepts.
func checkCredentialsFile(t *testing.T, addr, user string) {
	t.Helper()
	dir := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "authline")
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "credentials.json"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Fatalf("%s has mode %v, want %v", path, got, want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("%s holds %d files, want only credentials.json (temporary files left?)", dir, len(entries))
	}
	c := readCredentials(t)
	saved, ok := c.Servers[addr]
	if !ok || len(c.Servers) != 1 {
		t.Fatalf("credentials servers = %v, want one entry for %s", c.Servers, addr)
	}
	if saved.Username != user || strings.Count(saved.Token, ".") != 2 {
		t.Fatalf("saved login = %+v", saved)
	}
	if d := time.Until(saved.ExpiresAt); d <= 0 || d > 31*time.Minute {
		t.Fatalf("saved expires_at %v is not within the 30m TTL", saved.ExpiresAt)
	}
	if saved.RefreshToken == "" || saved.RefreshToken == saved.Token {
		t.Fatalf("no refresh token saved: %+v", saved)
	}
	if d := time.Until(saved.RefreshExpiresAt); d < 6*24*time.Hour || d > 7*24*time.Hour+time.Minute {
		t.Fatalf("saved refresh_expires_at %v is not about 7 days away", saved.RefreshExpiresAt)
	}
}

func TestCredentialsPerServer(t *testing.T) {
	one := startServer(t, servertest.Options{})
	two := servertest.Start(t, servertest.Options{})
	two.AddUser(t, "root", "root-password", "admin")

	wantCode(t, run(t, "alice-password\n", "--server", one.Addr, "login", "alice", "--password-stdin"), 0)
	t.Setenv("AUTHLINE_SERVER", two.Addr) // the environment names the default server
	wantCode(t, run(t, "root-password\n", "login", "root", "--password-stdin"), 0)

	c := readCredentials(t)
	if c.Servers[one.Addr].Username != "alice" || c.Servers[two.Addr].Username != "root" {
		t.Fatalf("credentials = %+v", c.Servers)
	}
	r := run(t, "", "get", "admin")
	wantCode(t, r, 0)
	if r.out != "Welcome to the admin area, root.\n" {
		t.Fatalf("get admin on the second server: %q", r.out)
	}
	r = run(t, "", "--server", one.Addr, "whoami")
	wantCode(t, r, 0)
	if r.out != "alice (role user, auth token)\n" {
		t.Fatalf("whoami on the first server: %q", r.out)
	}

	wantCode(t, run(t, "", "logout"), 0)
	c = readCredentials(t)
	if _, ok := c.Servers[two.Addr]; ok || c.Servers[one.Addr].Username != "alice" {
		t.Fatalf("logout from one server changed the other: %+v", c.Servers)
	}
}

func TestExpiredAndRevokedTokens(t *testing.T) {
	var clk clock
	srv := startServer(t, clk.options())
	s := "--server=" + srv.Addr

	wantCode(t, run(t, "alice-password\n", s, "login", "alice", "--password-stdin"), 0)
	saved := readCredentials(t)

	// A token revoked behind the CLI's back is refused with advice.
	wantCode(t, run(t, "", s, "logout"), 0)
	writeCredentials(t, saved)
	r := run(t, "", s, "get", "protected")
	wantCode(t, r, 1)
	if !strings.Contains(r.err, "(invalid_token)\nhint: run authline login\n") {
		t.Fatalf("stderr %q lacks the invalid_token error and hint", r.err)
	}
	// logout still forgets it, and says why.
	r = run(t, "", s, "logout")
	wantCode(t, r, 0)
	if r.out != "the token of alice was no longer valid (invalid_token); removed it\n" {
		t.Fatalf("logout of a revoked token: %q", r.out)
	}
	if c := readCredentials(t); len(c.Servers) != 0 {
		t.Fatalf("revoked token kept: %+v", c.Servers)
	}

	// An expired access token is renewed with the refresh token (see
	// TestTransparentRefresh); once the refresh token has expired too, the
	// session is over.
	wantCode(t, run(t, "alice-password\n", s, "login", "alice", "--password-stdin"), 0)
	clk.advance(8 * 24 * time.Hour)
	r = run(t, "", s, "whoami")
	wantCode(t, r, 1)
	if !strings.Contains(r.err, "(invalid_token)\nhint: "+sessionExpiredHint+"\n") || r.out != "" {
		t.Fatalf("stderr %q lacks the refresh refusal and the session expired hint", r.err)
	}
	r = run(t, "", s, "-o", "json", "logout")
	wantCode(t, r, 0)
	m := decodeJSON(t, r.out)
	if m["logged_out"] != true || m["revoked"] != false || m["reason"] != "invalid_token" || m["username"] != "alice" {
		t.Fatalf("logout of an expired token: %v", m)
	}
	if c := readCredentials(t); len(c.Servers) != 0 {
		t.Fatalf("expired token kept: %+v", c.Servers)
	}
}

func TestJSONOutput(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	s := "--server=" + srv.Addr

	tests := []struct {
		name string
		in   string
		args []string
		code int
		want map[string]any // fields that must have these values
		not  []string       // fields that must be absent
	}{
		{"register", "c-a-r-o-l-password\n", []string{"register", "carol", "--password-stdin"}, 0,
			map[string]any{"username": "carol", "role": "user"}, nil},
		{"register conflict", "c-a-r-o-l-password\n", []string{"register", "carol", "--password-stdin"}, 1,
			map[string]any{"ok": false, "status": 409.0, "error": "conflict", "message": "username is already taken"}, nil},
		{"login", "root-password\n", []string{"login", "root", "--password-stdin"}, 0,
			map[string]any{"username": "root", "role": "admin", "mode": "token", "token_type": "Bearer"}, []string{"token", "refresh_token"}},
		{"get", "", []string{"get", "admin"}, 0,
			map[string]any{"resource": "admin", "username": "root", "role": "admin", "content": "Welcome to the admin area, root."}, nil},
		{"get unknown", "", []string{"get", "nothing"}, 1,
			map[string]any{"ok": false, "status": 404.0, "error": "not_found"}, nil},
		{"whoami", "", []string{"whoami"}, 0,
			map[string]any{"username": "root", "role": "admin", "auth": "token"}, nil},
		{"ping", "", []string{"ping"}, 0,
			map[string]any{"pong": true, "server": "authlined"}, nil},
		{"logout", "", []string{"logout"}, 0,
			map[string]any{"logged_out": true, "username": "root", "revoked": true}, []string{"reason"}},
		{"version", "", []string{"version"}, 0,
			map[string]any{"version": version}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.in, append([]string{s, "--output", "json"}, tt.args...)...)
			wantCode(t, r, tt.code)
			if r.err != "" {
				t.Fatalf("stderr %q, want nothing in JSON mode", r.err)
			}
			m := decodeJSON(t, r.out)
			for k, v := range tt.want {
				if m[k] != v {
					t.Errorf("%s = %#v, want %#v (in %v)", k, m[k], v, m)
				}
			}
			for _, k := range tt.not {
				if _, ok := m[k]; ok {
					t.Errorf("%s present in %v", k, m)
				}
			}
			if tt.name == "login" {
				exp, err := time.Parse(time.RFC3339, fmt.Sprint(m["expires_at"]))
				if err != nil || time.Until(exp) <= 0 || m["expires_in"].(float64) <= 0 {
					t.Errorf("expiry fields: %v %v", m["expires_at"], m["expires_in"])
				}
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	s := "--server=" + srv.Addr
	closed := "--server=" + closedAddr(t)

	tests := []struct {
		name    string
		in      string
		args    []string
		code    int
		errPart string
	}{
		{"ok", "", []string{s, "ping"}, 0, ""},
		{"refused", "wrong-password\n", []string{s, "login", "alice", "--password-stdin"}, 1, "(invalid_credentials)"},
		{"refused: bad username", "good-password\n", []string{s, "register", "x", "--password-stdin"}, 1, "(bad_request)"},
		{"unknown command", "", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"unknown flag", "", []string{"ping", "--bogus"}, 2, "unknown flag: --bogus"},
		{"missing argument", "", []string{s, "get"}, 2, "accepts 1 arg(s), received 0"},
		{"extra argument", "", []string{s, "whoami", "alice"}, 2, "unknown command"},
		{"bad output", "", []string{"-o", "yaml", s, "ping"}, 2, "--output must be text or json"},
		{"bad ca file", "", []string{"--ca-file", "/nonexistent/ca.pem", s, "ping"}, 2, "--ca-file"},
		{"no terminal, no --password-stdin", "", []string{s, "login", "alice"}, 2, "--password-stdin"},
		{"no terminal, no username", "alice-password\n", []string{s, "login", "--password-stdin"}, 2, "USERNAME"},
		{"empty --password-stdin", "\n", []string{s, "login", "alice", "--password-stdin"}, 2, "no password on standard input"},
		{"cannot connect: ping", "", []string{closed, "ping"}, 3, "connection refused"},
		{"cannot connect: register", "alice-password\n", []string{closed, "register", "alice", "--password-stdin"}, 3, "is authlined running at"},
		{"cannot connect: shell", "", []string{closed, "shell"}, 3, "connection refused"},
		{"cannot connect: demo", "", []string{closed, "demo"}, 3, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.in, tt.args...)
			wantCode(t, r, tt.code)
			if !strings.Contains(r.err, tt.errPart) {
				t.Fatalf("stderr %q does not contain %q", r.err, tt.errPart)
			}
			if tt.code == 2 && !strings.Contains(r.err, "--help' for usage.") {
				t.Fatalf("usage error without a pointer to --help: %q", r.err)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	isolate(t)
	start := time.Now()
	r := run(t, "", "--server", silentAddr(t), "--timeout", "200ms", "ping")
	wantCode(t, r, 3)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("ping took %v despite --timeout 200ms", d)
	}
	if !strings.Contains(r.err, "deadline exceeded") {
		t.Fatalf("stderr %q does not say it timed out", r.err)
	}
}

// TestNoPasswordFlags checks the whole command tree: the only flags about
// passwords say where to read one from, never carry one.
func TestNoPasswordFlags(t *testing.T) {
	isolate(t)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(fl *pflag.Flag) {
			if strings.Contains(fl.Name, "password") && fl.Value.Type() != "bool" {
				t.Errorf("%s has flag --%s of type %s", c.CommandPath(), fl.Name, fl.Value.Type())
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(NewCmdRoot(&Factory{IO: &IOStreams{}}))

	srv := startServer(t, servertest.Options{})
	for _, args := range [][]string{
		{"login", "alice", "--password", "alice-password"},
		{"login", "alice", "--password=alice-password"},
		{"register", "dave", "-p", "d-a-v-e-password"},
		{"login", "alice", "alice-password"},
		{"demo", "--admin-user", "root", "--admin-password", "root-password"},
	} {
		r := run(t, "", append([]string{"--server", srv.Addr}, args...)...)
		wantCode(t, r, 2)
		secret := args[len(args)-1]
		secret = secret[strings.LastIndex(secret, "=")+1:]
		if strings.Contains(r.out+r.err, secret) {
			t.Fatalf("%v: output echoes the password: %q", args, r.err)
		}
	}
	r := run(t, "", "--server", srv.Addr, "login", "alice", "--password", "alice-password")
	if !strings.Contains(r.err, "hint: passwords are never taken from flags") {
		t.Fatalf("no hint about --password-stdin: %q", r.err)
	}
	if _, err := os.Stat(filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "authline")); !os.IsNotExist(err) {
		t.Fatalf("a refused password flag still logged in (stat: %v)", err)
	}
}

func TestPasswordStdinFirstLineOnly(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	// Only the first line is the password; the rest of stdin is ignored.
	r := run(t, "alice-password\r\nsomething else\n", "--server", srv.Addr, "login", "alice", "--password-stdin")
	wantCode(t, r, 0)
	// A password ending in spaces is kept as typed: only the line end goes.
	r = run(t, "spaces-at-end  \n", "--server", srv.Addr, "register", "erin", "--password-stdin")
	wantCode(t, r, 0)
	wantCode(t, run(t, "spaces-at-end\n", "--server", srv.Addr, "login", "erin", "--password-stdin"), 1)
	wantCode(t, run(t, "spaces-at-end  ", "--server", srv.Addr, "login", "erin", "--password-stdin"), 0)
}

func TestTerminalPrompts(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	s := "--server=" + srv.Addr

	// Username and both passwords prompted.
	r := runIO(t, terminal("frank\n", "f-r-a-n-k-password", "f-r-a-n-k-password"), s, "register")
	wantCode(t, r, 0)
	if r.out != "registered frank (role user)\n" {
		t.Fatalf("stdout %q", r.out)
	}
	if !strings.Contains(r.err, "Username: ") || strings.Count(r.err, "assword: ") != 2 {
		t.Fatalf("prompts on stderr: %q", r.err)
	}
	if strings.Contains(r.err, "f-r-a-n-k-password") {
		t.Fatal("password echoed")
	}

	// The two passwords must match.
	r = runIO(t, terminal("", "one-password", "another-password"), s, "register", "grace")
	wantCode(t, r, 2)
	if !strings.Contains(r.err, "the passwords do not match") {
		t.Fatalf("stderr %q", r.err)
	}

	// login asks once.
	r = runIO(t, terminal("", "f-r-a-n-k-password"), s, "login", "frank")
	wantCode(t, r, 0)
	if strings.Count(r.err, "assword: ") != 1 {
		t.Fatalf("prompts: %q", r.err)
	}
	if readCredentials(t).Servers[srv.Addr].Username != "frank" {
		t.Fatal("login through the prompt saved nothing")
	}
}

func TestTLS(t *testing.T) {
	tc := servertest.NewCert(t)
	cert, caPEM := tc.TLS, tc.CertPEM
	srv := startServer(t, servertest.Options{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	s := "--server=" + srv.Addr

	tests := []struct {
		name string
		args []string
		code int
	}{
		{"ca file implies tls", []string{"--ca-file", caFile}, 0},
		{"tls with an unknown CA", []string{"--tls"}, 3},
		{"insecure", []string{"--insecure-skip-verify"}, 0},
		{"plaintext to a TLS server", nil, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, "", append(append([]string{s, "--timeout", "1s"}, tt.args...), "ping")...)
			wantCode(t, r, tt.code)
		})
	}
}

func TestVersion(t *testing.T) {
	isolate(t)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := run(t, "", args...)
		wantCode(t, r, 0)
		if r.out != "authline version "+version+"\n" {
			t.Fatalf("%v: %q", args, r.out)
		}
	}
	r := run(t, "", "--help")
	wantCode(t, r, 0)
	if !strings.Contains(r.out, "3  cannot connect") {
		t.Fatalf("help does not document exit codes:\n%s", r.out)
	}
}
