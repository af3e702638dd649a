package cli

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server/servertest"
)

const newPassword = "velvet-canyon-93"

func TestPasswd(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	s := "--server=" + srv.Addr

	// Not logged in: said before any password is asked for.
	r := runIO(t, terminal("", "x", "y", "z"), s, "passwd")
	wantCode(t, r, 1)
	if r.err != "error: not logged in to "+srv.Addr+"\nhint: run authline login\n" {
		t.Fatalf("stderr %q", r.err)
	}

	wantCode(t, run(t, "alice-password\n", s, "login", "alice", "--password-stdin"), 0)
	before := readCredentials(t).Servers[srv.Addr]

	refusals := []struct {
		name    string
		in      string
		code    int
		errPart string
	}{
		{"wrong old password", "wrong-password\n" + newPassword + "\n", 1, "(invalid_credentials)\n"},
		{"new password refused by policy", "alice-password\nshort\n", 1, "(bad_request)\n"},
		{"one line only", "alice-password\n", 2, "--password-stdin needs two lines"},
		{"nothing", "", 2, "--password-stdin needs two lines"},
	}
	for _, tt := range refusals {
		r := run(t, tt.in, s, "passwd", "--password-stdin")
		if r.code != tt.code || !strings.Contains(r.err, tt.errPart) || r.out != "" {
			t.Fatalf("%s: exit %d stdout %q stderr %q; want exit %d and %q", tt.name, r.code, r.out, r.err, tt.code, tt.errPart)
		}
		if strings.Contains(r.err, "hint: run authline login") {
			t.Fatalf("%s: a wrong password is not a reason to log in again: %q", tt.name, r.err)
		}
	}
	if readCredentials(t).Servers[srv.Addr] != before {
		t.Fatal("a refused passwd changed the saved login")
	}

	// Another device's token, to see it stop working.
	other, err := loginToken(srv.Addr, "alice", "alice-password")
	if err != nil {
		t.Fatal(err)
	}

	r = run(t, "alice-password\n"+newPassword+"\n", s, "passwd", "--password-stdin")
	wantCode(t, r, 0)
	if !strings.HasPrefix(r.out, "password of alice changed; other sessions and tokens ended; new token saved, expires 20") || r.err != "" {
		t.Fatalf("stdout %q stderr %q", r.out, r.err)
	}
	after := readCredentials(t).Servers[srv.Addr]
	if after.Username != "alice" || after.Token == before.Token || after.RefreshToken == "" || after.RefreshToken == before.RefreshToken {
		t.Fatalf("saved login after passwd: %+v", after)
	}
	checkCredentialsPrivate(t)

	// The saved new pair works; the old token, the old refresh token and
	// the other device's token do not.
	r = run(t, "", s, "whoami")
	wantCode(t, r, 0)
	if !tokenWorks(t, srv.Addr, after.Token) || tokenWorks(t, srv.Addr, before.Token) || tokenWorks(t, srv.Addr, other) {
		t.Fatal("tokens after passwd: want only the new one to work")
	}
	writeCredentials(t, credentials{Servers: map[string]savedLogin{srv.Addr: before}})
	r = run(t, "", s, "whoami")
	wantCode(t, r, 1)
	if !strings.Contains(r.err, "(invalid_token)\nhint: run authline login\n") {
		t.Fatalf("old token: stderr %q", r.err)
	}
	writeCredentials(t, credentials{Servers: map[string]savedLogin{srv.Addr: after}})

	// The new password logs in; the old one does not.
	wantCode(t, run(t, "alice-password\n", s, "login", "alice", "--password-stdin"), 1)
	wantCode(t, run(t, newPassword+"\n", s, "login", "alice", "--password-stdin"), 0)
}

func TestPasswdTerminal(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	s := "--server=" + srv.Addr
	wantCode(t, run(t, "alice-password\n", s, "login", "alice", "--password-stdin"), 0)

	// Without a terminal or --password-stdin: usage error.
	r := run(t, "", s, "passwd")
	wantCode(t, r, 2)
	if !strings.Contains(r.err, "--password-stdin") {
		t.Fatalf("stderr %q", r.err)
	}

	// The new password typed twice must match.
	r = runIO(t, terminal("", "alice-password", newPassword, "something-else-7"), s, "passwd")
	wantCode(t, r, 2)
	if !strings.Contains(r.err, "the passwords do not match") {
		t.Fatalf("stderr %q", r.err)
	}

	r = runIO(t, terminal("", "alice-password", newPassword, newPassword), s, "-o", "json", "passwd")
	wantCode(t, r, 0)
	if r.err != "Current password: \nNew password: \nRepeat password: \n" {
		t.Fatalf("prompts %q", r.err)
	}
	m := decodeJSON(t, r.out)
	if m["password_changed"] != true || m["username"] != "alice" || m["mode"] != "token" || m["saved_to"] == nil {
		t.Fatalf("JSON: %v", m)
	}
	for _, k := range []string{"token", "refresh_token"} {
		if _, ok := m[k]; ok {
			t.Fatalf("JSON output holds the %s: %v", k, m)
		}
	}
	wantCode(t, run(t, "", s, "whoami"), 0)
}

func TestPasswdRefreshesFirst(t *testing.T) {
	// passwd with an expired access token renews it, then changes the
	// password, then saves the pair PASSWD returned.
	var clk clock
	srv := startServer(t, clk.options())
	s := "--server=" + srv.Addr
	wantCode(t, run(t, "alice-password\n", s, "login", "alice", "--password-stdin"), 0)
	clk.advance(2 * time.Hour)
	wantCode(t, run(t, "alice-password\n"+newPassword+"\n", s, "passwd", "--password-stdin"), 0)
	wantCode(t, run(t, "", s, "whoami"), 0)
}

func TestLogoutAll(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	s := "--server=" + srv.Addr
	wantCode(t, run(t, "alice-password\n", s, "login", "alice", "--password-stdin"), 0)
	other, err := loginToken(srv.Addr, "alice", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	rootToken, err := loginToken(srv.Addr, "root", "root-password")
	if err != nil {
		t.Fatal(err)
	}

	r := run(t, "", s, "logout", "--all")
	wantCode(t, r, 0)
	if r.out != "logged out alice everywhere: every session and token ended; token removed\n" {
		t.Fatalf("stdout %q", r.out)
	}
	if c := readCredentials(t); len(c.Servers) != 0 {
		t.Fatalf("logout --all kept %+v", c.Servers)
	}
	if tokenWorks(t, srv.Addr, other) {
		t.Fatal("another token of alice survived logout --all")
	}
	if !tokenWorks(t, srv.Addr, rootToken) {
		t.Fatal("logout --all ended another user's token")
	}

	// JSON, and a saved token that no longer works: nothing can be ended,
	// exit 1, and the useless token is forgotten.
	wantCode(t, run(t, "alice-password\n", s, "login", "alice", "--password-stdin"), 0)
	r = run(t, "", s, "-o", "json", "logout", "--all")
	wantCode(t, r, 0)
	if m := decodeJSON(t, r.out); m["logged_out"] != true || m["all"] != true || m["revoked"] != true || m["username"] != "alice" {
		t.Fatalf("JSON: %v", m)
	}
	wantCode(t, run(t, "alice-password\n", s, "login", "alice", "--password-stdin"), 0)
	saved := readCredentials(t)
	wantCode(t, run(t, "", s, "logout", "--all"), 0)
	writeCredentials(t, saved)
	r = run(t, "", s, "logout", "--all")
	wantCode(t, r, 1)
	if !strings.Contains(r.err, "could not log alice out everywhere") || !strings.Contains(r.err, "hint: run authline login, then authline logout --all") {
		t.Fatalf("stderr %q", r.err)
	}
	if c := readCredentials(t); len(c.Servers) != 0 {
		t.Fatalf("useless token kept: %+v", c.Servers)
	}
}

// loginToken logs in in token mode with the client library, as another
// device would.
func loginToken(addr, user, password string) (string, error) {
	c, err := client.Dial(context.Background(), addr, nil)
	if err != nil {
		return "", err
	}
	defer c.Close()
	l, err := c.Login(context.Background(), user, password, protocol.ModeToken)
	if err != nil {
		return "", err
	}
	return l.Token, nil
}

// tokenWorks reports whether the server accepts token.
func tokenWorks(t *testing.T, addr, token string) bool {
	t.Helper()
	c, err := client.Dial(context.Background(), addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.WhoAmI(context.Background(), token)
	var pe *protocol.Error
	if err != nil && !errors.As(err, &pe) {
		t.Fatal(err)
	}
	return err == nil
}
