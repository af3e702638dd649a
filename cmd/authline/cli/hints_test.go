package cli

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/authline/authline/server/auth"
	"github.com/authline/authline/server/servertest"
)

// TestErrorHints: in text mode a common failure is one "error: ..." line
// and one line saying what to do next, on stderr, and nothing on stdout.
func TestErrorHints(t *testing.T) {
	var clk clock
	srv := startServer(t, clk.options())
	s := "--server=" + srv.Addr
	limited := servertest.Start(t, servertest.Options{IPRateLimit: &auth.IPRateLimit{PerSecond: 0.001, Burst: 1}})
	limited.AddUser(t, "alice", "alice-password", "user")
	closed := closedAddr(t)

	silent := silentAddr(t)

	login := func(t *testing.T, user, pw string) {
		t.Helper()
		wantCode(t, run(t, pw+"\n", s, "login", user, "--password-stdin"), 0)
	}
	tests := []struct {
		name      string
		setup     func(t *testing.T)
		in        string
		args      []string
		code      int
		errorLine string // prefix of the first line
		hintLine  string // the second line, exactly
	}{
		{"not logged in", nil, "", []string{s, "get", "protected"}, 1,
			"error: not logged in to " + srv.Addr, "hint: run authline login"},
		{"connection refused", nil, "", []string{"--server", closed, "ping"}, 3,
			"error: connection error: ", "hint: is authlined running at " + closed + "? (set --server or AUTHLINE_SERVER)"},
		{"connection refused, logged in", func(t *testing.T) {
			login(t, "alice", "alice-password")
			c := readCredentials(t)
			c.Servers[closed] = c.Servers[srv.Addr]
			writeCredentials(t, c)
		}, "", []string{"--server", closed, "get", "protected"}, 3,
			"error: connection error: ", "hint: is authlined running at " + closed + "? (set --server or AUTHLINE_SERVER)"},
		{"timeout", nil, "", []string{"--server", silent, "--timeout", "200ms", "ping"}, 3,
			"error: connection error: ", "hint: the server at " + silent + " did not answer within --timeout 200ms; is it overloaded, or is this the right address?"},
		{"forbidden", func(t *testing.T) { login(t, "alice", "alice-password") }, "", []string{s, "get", "admin"}, 1,
			"error: the admin resource requires the admin role (forbidden)", "hint: this needs the admin role: log in as an admin with authline login"},
		{"forbidden admin command", func(t *testing.T) { login(t, "alice", "alice-password") }, "", []string{s, "admin", "users"}, 1,
			"error: admin commands require the admin role (forbidden)", "hint: this needs the admin role: log in as an admin with authline login"},
		{"wrong password", nil, "wrong-password\n", []string{s, "login", "alice", "--password-stdin"}, 1,
			"error: invalid username or password (invalid_credentials)", "hint: check the username and the password"},
		{"username taken", nil, "some-password-9\n", []string{s, "register", "alice", "--password-stdin"}, 1,
			"error: username is already taken (conflict)", "hint: pick another username, or log in with authline login"},
		{"rate limited", func(t *testing.T) {
			wantCode(t, run(t, "alice-password\n", "--server", limited.Addr, "login", "alice", "--password-stdin"), 0)
		}, "alice-password\n", []string{"--server", limited.Addr, "login", "alice", "--password-stdin"}, 1,
			"error: too many login and register attempts from your address; slow down (rate_limited)", "hint: too many attempts: wait 17 minutes, then try again"}, // the rate above: 1 per 1000s
		{"token revoked", func(t *testing.T) {
			login(t, "alice", "alice-password")
			saved := readCredentials(t)
			wantCode(t, run(t, "", s, "logout"), 0)
			writeCredentials(t, saved)
		}, "", []string{s, "whoami"}, 1,
			"error: token has been revoked (invalid_token)", "hint: run authline login"},
		{"token expired, refresh refused", func(t *testing.T) {
			login(t, "alice", "alice-password")
			clk.advance(8 * 24 * time.Hour) // past the refresh token's 7 days
		}, "", []string{s, "get", "protected"}, 1,
			"error: token expired and the server refused to renew it: ", "hint: token expired: run authline login"},
		{"token expired, no refresh token", func(t *testing.T) {
			login(t, "alice", "alice-password")
			c := readCredentials(t)
			l := c.Servers[srv.Addr]
			l.RefreshToken, l.RefreshExpiresAt = "", time.Time{}
			c.Servers[srv.Addr] = l
			writeCredentials(t, c)
			clk.advance(2 * time.Hour) // past the access token's hour
		}, "", []string{s, "whoami"}, 1,
			"error: token expired and there is no refresh token to renew it", "hint: token expired: run authline login"},
		{"unknown command", nil, "", []string{"frobnicate"}, 2,
			`error: unknown command "frobnicate" for "authline"`, "Run 'authline --help' for usage."},
		{"password on the command line", nil, "", []string{s, "login", "alice", "--password", "alice-password"}, 2,
			"error: unknown flag: --password", "hint: passwords are never taken from flags: use the prompt, or pipe the password to --password-stdin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			if tt.setup != nil {
				tt.setup(t)
			}
			r := run(t, tt.in, tt.args...)
			wantCode(t, r, tt.code)
			lines := strings.Split(strings.TrimSuffix(r.err, "\n"), "\n")
			if r.out != "" || !strings.HasSuffix(r.err, "\n") || !strings.HasPrefix(lines[0], tt.errorLine) || len(lines) < 2 || lines[1] != tt.hintLine {
				t.Fatalf("stdout %q\nstderr %q\nwant %q... then %q", r.out, r.err, tt.errorLine, tt.hintLine)
			}
			// (Usage errors end with a pointer to --help on a line more.)
			if tt.code != exitUsage && len(lines) != 2 {
				t.Fatalf("stderr has %d lines, want an error line and a hint:\n%s", len(lines), r.err)
			}
		})
	}
}

// TestSessionExpiredJSON: the same failure as a JSON object.
func TestSessionExpiredJSON(t *testing.T) {
	var clk clock
	srv := startServer(t, clk.options())
	s := "--server=" + srv.Addr
	wantCode(t, run(t, "alice-password\n", s, "login", "alice", "--password-stdin"), 0)
	c := readCredentials(t)
	l := c.Servers[srv.Addr]
	l.RefreshToken, l.RefreshExpiresAt = "", time.Time{}
	c.Servers[srv.Addr] = l
	writeCredentials(t, c)
	clk.advance(2 * time.Hour)

	r := run(t, "", s, "-o", "json", "get", "protected")
	wantCode(t, r, 1)
	m := decodeJSON(t, r.out)
	if m["ok"] != false || m["error"] != "session_expired" || m["hint"] != "token expired: run authline login" || r.err != "" {
		t.Fatalf("JSON %v, stderr %q", m, r.err)
	}
}

// TestRateLimitedJSON: a refusal that says when to try again carries it in
// the JSON object, in seconds, and in the hint.
func TestRateLimitedJSON(t *testing.T) {
	limited := servertest.Start(t, servertest.Options{IPRateLimit: &auth.IPRateLimit{PerSecond: 0.02, Burst: 1}})
	limited.AddUser(t, "alice", "alice-password", "user")
	s := "--server=" + limited.Addr
	wantCode(t, run(t, "alice-password\n", s, "login", "alice", "--password-stdin"), 0)
	r := run(t, "alice-password\n", s, "-o", "json", "login", "alice", "--password-stdin")
	wantCode(t, r, 1)
	m := decodeJSON(t, r.out)
	// One token per 50s: the next one is 49 to 50 seconds away.
	after, _ := m["retry_after"].(float64)
	if m["ok"] != false || m["error"] != "rate_limited" || m["status"] != 429.0 || after < 45 || after > 50 {
		t.Fatalf("JSON %v, stderr %q", m, r.err)
	}
	if want := fmt.Sprintf("too many attempts: wait %d seconds, then try again", int(after)); m["hint"] != want {
		t.Errorf("hint %q, want %q", m["hint"], want)
	}
}

func TestWaitText(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{time.Second, "1 second"},
		{1500 * time.Millisecond, "2 seconds"},
		{59 * time.Second, "59 seconds"},
		{time.Minute, "1 minute"},
		{61 * time.Second, "2 minutes"},
		{1000 * time.Second, "17 minutes"},
	} {
		if got := waitText(tc.d); got != tc.want {
			t.Errorf("waitText(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
