package cli

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/authline/authline/server/servertest"
)

// adminServer starts a server with alice, root and a few more users, and
// logs the CLI in as root.
func adminServer(t *testing.T) (srv *servertest.Server, s string) {
	t.Helper()
	srv = startServer(t, servertest.Options{})
	for _, name := range []string{"bob", "carol", "dave"} {
		srv.AddUser(t, name, "kitten-orbit-42", "user")
	}
	s = "--server=" + srv.Addr
	wantCode(t, run(t, "root-password\n", s, "login", "root", "--password-stdin"), 0)
	return srv, s
}

var (
	timeText = `\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`
	tableRow = regexp.MustCompile(`^(\S+) +(user|admin) +(yes|no) +(never|` + timeText + `) +(` + timeText + `)$`)
)

func TestAdminUsers(t *testing.T) {
	_, s := adminServer(t)

	r := run(t, "", s, "admin", "users")
	wantCode(t, r, 0)
	lines := strings.Split(strings.TrimSuffix(r.out, "\n"), "\n")
	if !regexp.MustCompile(`^USERNAME +ROLE +DISABLED +LAST LOGIN +CREATED$`).MatchString(lines[0]) {
		t.Fatalf("header %q", lines[0])
	}
	var names []string
	for _, line := range lines[1:] {
		m := tableRow.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("row %q does not match the table\n%s", line, r.out)
		}
		names = append(names, m[1])
		if m[1] == "root" && (m[2] != "admin" || m[4] == "never") {
			t.Fatalf("root row %q: want admin with a last login", line)
		}
		if m[1] == "bob" && (m[2] != "user" || m[3] != "no" || m[4] != "never") {
			t.Fatalf("bob row %q", line)
		}
	}
	if fmt.Sprint(names) != "[alice bob carol dave root]" {
		t.Fatalf("users %v", names)
	}
	// Columns line up: every row's ROLE starts where the header's does.
	col := strings.Index(lines[0], "ROLE")
	for _, line := range lines[1:] {
		if line[col-1] != ' ' || line[col] == ' ' {
			t.Fatalf("misaligned table:\n%s", r.out)
		}
	}

	// One page, with the way to the next on stderr.
	r = run(t, "", s, "admin", "users", "--limit", "2")
	wantCode(t, r, 0)
	if n := strings.Count(r.out, "\n"); n != 3 {
		t.Fatalf("--limit 2 printed %d lines:\n%s", n, r.out)
	}
	if r.err != "more accounts: authline admin users --limit 2 --after bob (or --all-pages)\n" {
		t.Fatalf("stderr %q", r.err)
	}
	r = run(t, "", s, "admin", "users", "--limit", "2", "--after", "bob")
	wantCode(t, r, 0)
	if !strings.Contains(r.out, "\ncarol ") || !strings.Contains(r.out, "\ndave ") || strings.Contains(r.out, "bob") {
		t.Fatalf("second page:\n%s", r.out)
	}

	// JSON: one page as the server sent it, or every page in one object.
	r = run(t, "", s, "-o", "json", "admin", "users", "--limit", "2")
	wantCode(t, r, 0)
	m := decodeJSON(t, r.out)
	if m["next"] != "bob" || len(m["users"].([]any)) != 2 || r.err != "" {
		t.Fatalf("JSON page: %v, stderr %q", m, r.err)
	}
	r = run(t, "", s, "-o", "json", "admin", "users", "--limit", "2", "--all-pages")
	wantCode(t, r, 0)
	m = decodeJSON(t, r.out)
	users := m["users"].([]any)
	if _, ok := m["next"]; ok || len(users) != 5 {
		t.Fatalf("all pages: %v", m)
	}
	if u := users[0].(map[string]any); u["username"] != "alice" || u["role"] != "user" || u["disabled"] != false || u["created_at"] == nil {
		t.Fatalf("first user: %v", u)
	}
	r = run(t, "", s, "admin", "users", "--all-pages", "--limit", "1")
	wantCode(t, r, 0)
	if n := strings.Count(r.out, "\n"); n != 6 || r.err != "" {
		t.Fatalf("text --all-pages: stdout\n%sstderr %q", r.out, r.err)
	}

	for _, args := range [][]string{{"--limit", "0"}, {"--limit", "1001"}, {"--limit", "-1"}, {"extra"}} {
		if args[0] == "--limit" && args[1] == "0" {
			continue // 0 is the server's default
		}
		r := run(t, "", append([]string{s, "admin", "users"}, args...)...)
		wantCode(t, r, 2)
	}
}

func TestAdminUserCommands(t *testing.T) {
	_, s := adminServer(t)
	userLines := regexp.MustCompile(`^username: +(\S+)\nrole: +(\S+)\ndisabled: +(yes|no)\nthrottled: +(yes|no)[^\n]*\nlast login: +(never|` + timeText + `)\ncreated: +` + timeText + `\n$`)

	tests := []struct {
		args     []string
		summary  string // first line of text output
		role     string
		disabled string
	}{
		{[]string{"user", "bob"}, "", "user", "no"},
		{[]string{"set-role", "bob", "admin"}, "role of bob set to admin", "admin", "no"},
		{[]string{"set-role", "bob", "user"}, "role of bob set to user", "user", "no"},
		{[]string{"disable", "bob"}, "disabled bob", "user", "yes"},
		{[]string{"enable", "bob"}, "enabled bob", "user", "no"},
		{[]string{"unlock", "bob"}, "unlocked bob", "user", "no"},
		{[]string{"revoke", "bob"}, "revoked every session and token of bob", "user", "no"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := run(t, "", append([]string{s, "admin"}, tt.args...)...)
			wantCode(t, r, 0)
			out := r.out
			if tt.summary != "" {
				first, rest, _ := strings.Cut(out, "\n")
				if first != tt.summary {
					t.Fatalf("summary %q, want %q", first, tt.summary)
				}
				out = rest
			}
			m := userLines.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("text output:\n%s", r.out)
			}
			if m[1] != "bob" || m[2] != tt.role || m[3] != tt.disabled {
				t.Fatalf("text output:\n%s", r.out)
			}
			// key: value lines line up.
			if vals := regexp.MustCompile(`(?m)^[a-z ]+: +`).FindAllString(out, -1); len(vals) != 6 || len(vals[0]) != len(vals[5]) {
				t.Fatalf("misaligned:\n%s", out)
			}

			r = run(t, "", append([]string{s, "-o", "json", "admin"}, tt.args...)...)
			wantCode(t, r, 0)
			j := decodeJSON(t, r.out)
			if j["username"] != "bob" || j["role"] != tt.role || j["disabled"] != (tt.disabled == "yes") || j["throttled"] != false || j["created_at"] == nil {
				t.Fatalf("JSON: %v", j)
			}
		})
	}

	// Refusals: unknown user, last admin, bad arguments.
	refusals := []struct {
		args    []string
		code    int
		errPart string
	}{
		{[]string{"user", "nobody"}, 1, "(not_found)"},
		{[]string{"disable", "nobody"}, 1, "(not_found)"},
		{[]string{"set-role", "root", "user"}, 1, "(conflict)"},
		{[]string{"disable", "root"}, 1, "(conflict)"},
		{[]string{"delete", "root", "--yes"}, 1, "(conflict)"},
		{[]string{"set-role", "bob", "superuser"}, 2, "role must be user or admin"},
		{[]string{"set-role", "bob"}, 2, "accepts 2 arg(s)"},
		{[]string{"user"}, 2, "accepts 1 arg(s)"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
	}
	for _, tt := range refusals {
		r := run(t, "", append([]string{s, "admin"}, tt.args...)...)
		if r.code != tt.code || !strings.Contains(r.err, tt.errPart) {
			t.Fatalf("%v: exit %d stderr %q; want %d and %q", tt.args, r.code, r.err, tt.code, tt.errPart)
		}
	}
}

func TestAdminDelete(t *testing.T) {
	_, s := adminServer(t)

	// Without a terminal --yes is required.
	r := run(t, "y\n", s, "admin", "delete", "bob")
	wantCode(t, r, 2)
	if !strings.Contains(r.err, "pass --yes") {
		t.Fatalf("stderr %q", r.err)
	}
	// On a terminal: asked, and anything but yes keeps the account.
	for _, answer := range []string{"n\n", "\n", "", "yeah\n"} {
		r = runIO(t, terminal(answer), s, "admin", "delete", "bob")
		wantCode(t, r, 1)
		if !strings.HasPrefix(r.err, "Delete account bob for good? [y/N] ") || !strings.Contains(r.err, "not confirmed: nothing deleted") {
			t.Fatalf("answer %q: stderr %q", answer, r.err)
		}
	}
	wantCode(t, run(t, "", s, "admin", "user", "bob"), 0)

	r = runIO(t, terminal("y\n"), s, "admin", "delete", "bob")
	wantCode(t, r, 0)
	if r.out != "deleted bob (role user)\n" {
		t.Fatalf("stdout %q", r.out)
	}
	wantCode(t, run(t, "", s, "admin", "user", "bob"), 1)

	r = run(t, "", s, "-o", "json", "admin", "delete", "carol", "--yes")
	wantCode(t, r, 0)
	if m := decodeJSON(t, r.out); m["username"] != "carol" || m["role"] != "user" || len(m) != 2 {
		t.Fatalf("JSON: %v", m)
	}
	r = runIO(t, terminal(""), s, "admin", "delete", "dave", "-y")
	wantCode(t, r, 0)
	if r.err != "" {
		t.Fatalf("asked despite -y: %q", r.err)
	}
	r = run(t, "", s, "admin", "delete", "dave", "--yes")
	wantCode(t, r, 1)
	if !strings.Contains(r.err, "(not_found)") {
		t.Fatalf("stderr %q", r.err)
	}
}

func TestAdminForbidden(t *testing.T) {
	srv, _ := adminServer(t)
	s := "--server=" + srv.Addr
	wantCode(t, run(t, "alice-password\n", s, "login", "alice", "--password-stdin"), 0)
	for _, args := range [][]string{
		{"users"}, {"users", "--all-pages"}, {"user", "bob"}, {"set-role", "bob", "admin"}, {"disable", "bob"},
		{"enable", "bob"}, {"unlock", "bob"}, {"revoke", "bob"}, {"delete", "bob", "--yes"},
	} {
		r := run(t, "", append([]string{s, "admin"}, args...)...)
		wantCode(t, r, 1)
		if !strings.HasSuffix(r.err, "(forbidden)\nhint: this needs the admin role: log in as an admin with authline login\n") || r.out != "" {
			t.Fatalf("%v: stdout %q stderr %q", args, r.out, r.err)
		}
		r = run(t, "", append([]string{s, "-o", "json", "admin"}, args...)...)
		wantCode(t, r, 1)
		if m := decodeJSON(t, r.out); m["status"] != 403.0 || m["error"] != "forbidden" {
			t.Fatalf("%v JSON: %v", args, m)
		}
	}

	// Not logged in, or cannot connect.
	isolate(t)
	r := run(t, "", s, "admin", "users")
	wantCode(t, r, 1)
	if !strings.Contains(r.err, "not logged in") {
		t.Fatalf("stderr %q", r.err)
	}
	r = run(t, "", s, "admin", "delete", "bob")
	wantCode(t, r, 1) // not logged in comes before the confirmation
	wantCode(t, run(t, "root-password\n", s, "login", "root", "--password-stdin"), 0)
	creds := readCredentials(t)
	creds.Servers[closedAddr(t)] = creds.Servers[srv.Addr]
	for addr := range creds.Servers {
		if addr != srv.Addr {
			writeCredentials(t, creds)
			wantCode(t, run(t, "", "--server", addr, "admin", "users"), 3)
		}
	}
}
