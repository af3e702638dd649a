package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authline/authline/server/store"
	"github.com/authline/authline/server/store/sqlite"
)

// runCmd runs authlined in-process and returns its exit code and output.
func runCmd(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(args, Streams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	return code, out.String(), errOut.String()
}

func TestCmdUserCommands(t *testing.T) {
	db := filepath.Join(t.TempDir(), "u.db")
	steps := []struct {
		stdin    string
		args     []string
		code     int
		out, err string
	}{
		{"kitten-orbit-7\n", []string{"user", "add", "Root", "--role", "admin", "--password-stdin", "--bcrypt-cost", "4", "--db", db}, 0, "added root (role admin)", "user added"},
		{"kitten-orbit-7\n", []string{"user", "add", "root", "--password-stdin", "--bcrypt-cost", "4", "--db", db}, 1, "", "already exists"},
		{"password1\n", []string{"user", "add", "weak", "--password-stdin", "--bcrypt-cost", "4", "--db", db}, 2, "", "too common"},
		{"weakling-pass\n", []string{"user", "add", "weakling", "--password-stdin", "--bcrypt-cost", "4", "--db", db}, 2, "", "contain the username"},
		{"short\n", []string{"user", "add", "shorty", "--password-stdin", "--db", db}, 2, "", "at least 8"},
		{"", []string{"user", "add", "nopass", "--db", db}, 2, "", "--password-stdin"},
		{"kitten-orbit-8\n", []string{"user", "add", "bob", "--role", "king", "--password-stdin", "--db", db}, 2, "", "--role"},
		{"kitten-orbit-8\n", []string{"user", "add", "bob", "--password-stdin", "--bcrypt-cost", "4", "--db", db}, 0, "added bob (role user)", ""},
		{"", []string{"user", "list", "--db", db}, 0, "bob       user", ""},
		{"", []string{"user", "set-role", "root", "user", "--db", db}, 1, "", "last enabled admin"},
		{"", []string{"user", "delete", "root", "--db", db}, 1, "", "last enabled admin"},
		{"", []string{"user", "set-role", "BOB", "admin", "--db", db}, 0, "bob is now admin", "role changed"},
		{"", []string{"user", "set-role", "bob", "king", "--db", db}, 2, "", "ROLE"},
		{"", []string{"user", "set-role", "ghost", "admin", "--db", db}, 1, "", "no user ghost"},
		{"", []string{"user", "unlock", "bob", "--db", db}, 0, "unlocked bob (1 failed-login counters cleared)", "user unlocked"},
		{"", []string{"user", "delete", "bob", "--db", db}, 0, "deleted bob", "user deleted"},
		{"", []string{"user", "delete", "bob", "--db", db}, 1, "", "no user bob"},
		{"", []string{"user", "frobnicate", "--db", db}, 2, "", ""},
		{"", []string{"version"}, 0, "authlined " + version, ""},
	}
	for _, s := range steps {
		if len(s.args) > 1 && s.args[1] == "unlock" {
			// A counter to clear, as a throttled LOGIN would leave.
			st, err := sqlite.Open(context.Background(), db)
			if err != nil {
				t.Fatal(err)
			}
			st.AddLoginFailure(context.Background(), store.FailureKey{Username: "bob", IP: "192.0.2.1"}, time.Now(), time.Hour)
			st.Close()
		}
		code, out, errOut := runCmd(t, s.stdin, s.args...)
		if code != s.code || !strings.Contains(out, s.out) || !strings.Contains(errOut, s.err) {
			t.Errorf("authlined %s: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				strings.Join(s.args, " "), code, out, errOut, s.code, s.out, s.err)
		}
	}
}

func TestCmdEnvironment(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AUTHLINE_DB", filepath.Join(dir, "env.db"))
	if code, _, errOut := runCmd(t, "kitten-orbit-9\n", "user", "add", "envy", "--password-stdin", "--bcrypt-cost", "4"); code != 0 {
		t.Fatalf("user add with AUTHLINE_DB: exit %d: %s", code, errOut)
	}
	if _, out, _ := runCmd(t, "", "user", "list"); !strings.Contains(out, "envy") {
		t.Fatalf("AUTHLINE_DB not used: %q", out)
	}
	// A flag wins over the environment.
	other := filepath.Join(dir, "flag.db")
	if _, out, _ := runCmd(t, "", "user", "list", "--db", other); strings.Contains(out, "envy") {
		t.Fatalf("--db did not win over AUTHLINE_DB: %q", out)
	}
	t.Setenv("AUTHLINE_BCRYPT_COST", "not-a-number")
	if code, _, errOut := runCmd(t, "kitten-orbit-9\n", "user", "add", "envy2", "--password-stdin"); code != 2 || !strings.Contains(errOut, "AUTHLINE_BCRYPT_COST") {
		t.Fatalf("bad env value: exit %d, %q", code, errOut)
	}
}

func TestCmdIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7411":    true,
		"127.9.9.9:1":       true,
		"[::1]:7411":        true,
		"localhost:7411":    true,
		"0.0.0.0:7411":      false,
		":7411":             false,
		"[::]:7411":         false,
		"192.0.2.10:7411":   false,
		"no-port":           false,
		"example.invalid:1": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestCmdServeRefusesBadFlags(t *testing.T) {
	db := filepath.Join(t.TempDir(), "s.db")
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"serve", "--listen", "0.0.0.0:0", "--db", db}, "--insecure-plaintext"},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--tls-cert", "x.pem", "--db", db}, "go together"},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--log-format", "xml", "--db", db}, "--log-format"},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--bcrypt-cost", "99", "--db", db}, "bcrypt cost"},
	} {
		code, _, errOut := runCmd(t, "", c.args...)
		if code != 2 || !strings.Contains(errOut, c.err) {
			t.Errorf("authlined %s: exit %d, stderr %q; want exit 2 mentioning %q", strings.Join(c.args, " "), code, errOut, c.err)
		}
	}
}

func TestCmdMissingDatabase(t *testing.T) {
	db := filepath.Join(t.TempDir(), "typo.db")
	for _, args := range [][]string{{"user", "list"}, {"user", "delete", "bob"}, {"user", "set-role", "bob", "admin"}, {"user", "unlock", "bob"}} {
		code, _, errOut := runCmd(t, "", append(args, "--db", db)...)
		if code != 1 || !strings.Contains(errOut, "no database at") {
			t.Errorf("authlined %v on a missing db: exit %d, %q", args, code, errOut)
		}
	}
	if _, err := os.Stat(db); err == nil {
		t.Fatal("a user command created the mistyped database")
	}
	if code, _, errOut := runCmd(t, "", "user", "add", "Bad Name", "--db", db); code != 2 || strings.Contains(errOut, "bad_request") {
		t.Fatalf("bad name: exit %d, %q (the wire code must not show)", code, errOut)
	}
}
