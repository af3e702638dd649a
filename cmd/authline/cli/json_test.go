package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/authline/authline/server/servertest"
)

// TestJSONEveryCommand runs every command (but bench, tested on its own)
// with --output json, in order, successes and failures alike: each prints
// exactly one JSON object on stdout and nothing on stderr, with the
// documented fields.
func TestJSONEveryCommand(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	srv.AddUser(t, "bob", "kitten-orbit-42", "user")
	s := "--server=" + srv.Addr
	closed := "--server=" + closedAddr(t)
	const pw = "c-a-r-o-l-password"

	// A value of present means "any value"; of absent, "no such field".
	present, absent := &struct{}{}, &struct{ x int }{}
	isTime := func(v any) bool {
		str, _ := v.(string)
		_, err := time.Parse(time.RFC3339, str)
		return err == nil
	}

	steps := []struct {
		name string
		in   string
		args []string
		code int
		want map[string]any
	}{
		{"ping", "", []string{s, "ping"}, 0,
			map[string]any{"pong": true, "server": "authlined", "version": present}},
		{"version", "", []string{"version"}, 0,
			map[string]any{"version": version}},
		{"register", pw + "\n", []string{s, "register", "carol", "--password-stdin"}, 0,
			map[string]any{"username": "carol", "role": "user"}},
		{"register taken", pw + "\n", []string{s, "register", "carol", "--password-stdin"}, 1,
			map[string]any{"ok": false, "status": 409.0, "error": "conflict", "message": present, "hint": present}},
		{"get, not logged in", "", []string{s, "get", "protected"}, 1,
			map[string]any{"ok": false, "status": absent, "error": "not_logged_in", "message": "not logged in to " + srv.Addr, "hint": "run authline login"}},
		{"whoami, not logged in", "", []string{s, "whoami"}, 1,
			map[string]any{"ok": false, "error": "not_logged_in"}},
		{"logout, not logged in", "", []string{s, "logout"}, 1,
			map[string]any{"ok": false, "error": "not_logged_in"}},
		{"passwd, not logged in", "", []string{s, "passwd", "--password-stdin"}, 1,
			map[string]any{"ok": false, "error": "not_logged_in"}},
		{"admin, not logged in", "", []string{s, "admin", "users"}, 1,
			map[string]any{"ok": false, "error": "not_logged_in"}},
		{"status, not logged in", "", []string{s, "status"}, 1,
			map[string]any{"ok": false, "error": "not_logged_in", "servers": []any{}}},
		{"login, wrong password", "wrong-password\n", []string{s, "login", "carol", "--password-stdin"}, 1,
			map[string]any{"ok": false, "status": 401.0, "error": "invalid_credentials", "hint": "check the username and the password"}},
		{"login", pw + "\n", []string{s, "login", "carol", "--password-stdin"}, 0,
			map[string]any{"username": "carol", "role": "user", "mode": "token", "token_type": "Bearer",
				"expires_at": isTime, "expires_in": present, "refresh_expires_at": isTime, "saved_to": present,
				"token": absent, "refresh_token": absent}},
		{"get", "", []string{s, "get", "protected"}, 0,
			map[string]any{"resource": "protected", "username": "carol", "role": "user", "content": "Hello carol, this is protected content."}},
		{"get admin, forbidden", "", []string{s, "get", "admin"}, 1,
			map[string]any{"ok": false, "status": 403.0, "error": "forbidden", "hint": "this needs the admin role: log in as an admin with authline login"}},
		{"get unknown", "", []string{s, "get", "nothing"}, 1,
			map[string]any{"ok": false, "status": 404.0, "error": "not_found"}},
		{"whoami", "", []string{s, "whoami"}, 0,
			map[string]any{"username": "carol", "role": "user", "auth": "token"}},
		{"status", "", []string{s, "status"}, 0,
			map[string]any{"ok": true, "servers": present}},
		{"passwd", pw + "\n" + newPassword + "\n", []string{s, "passwd", "--password-stdin"}, 0,
			map[string]any{"password_changed": true, "username": "carol", "expires_at": isTime, "token": absent}},
		{"admin, forbidden", "", []string{s, "admin", "users"}, 1,
			map[string]any{"ok": false, "status": 403.0, "error": "forbidden"}},
		{"logout", "", []string{s, "logout"}, 0,
			map[string]any{"logged_out": true, "username": "carol", "revoked": true}},
		{"login root", "root-password\n", []string{s, "login", "root", "--password-stdin"}, 0,
			map[string]any{"username": "root", "role": "admin"}},
		{"get admin", "", []string{s, "get", "admin"}, 0,
			map[string]any{"resource": "admin", "role": "admin", "content": present}},
		{"admin users", "", []string{s, "admin", "users"}, 0,
			map[string]any{"users": present}},
		{"admin user", "", []string{s, "admin", "user", "carol"}, 0,
			map[string]any{"username": "carol", "role": "user", "disabled": false, "throttled": false, "created_at": isTime}},
		{"admin set-role", "", []string{s, "admin", "set-role", "carol", "admin"}, 0,
			map[string]any{"username": "carol", "role": "admin"}},
		{"admin set-role, bad role", "", []string{s, "admin", "set-role", "carol", "boss"}, 2,
			map[string]any{"ok": false, "error": "usage", "message": `role must be user or admin, not "boss"`}},
		{"admin disable", "", []string{s, "admin", "disable", "carol"}, 0,
			map[string]any{"username": "carol", "disabled": true}},
		{"admin enable", "", []string{s, "admin", "enable", "carol"}, 0,
			map[string]any{"username": "carol", "disabled": false}},
		{"admin unlock", "", []string{s, "admin", "unlock", "carol"}, 0,
			map[string]any{"username": "carol"}},
		{"admin revoke", "", []string{s, "admin", "revoke", "carol"}, 0,
			map[string]any{"username": "carol"}},
		{"admin delete, not confirmed", "", []string{s, "admin", "delete", "carol"}, 2,
			map[string]any{"ok": false, "error": "usage"}},
		{"admin delete", "", []string{s, "admin", "delete", "carol", "--yes"}, 0,
			map[string]any{"username": "carol", "role": "admin"}},
		{"admin user, gone", "", []string{s, "admin", "user", "carol"}, 1,
			map[string]any{"ok": false, "status": 404.0, "error": "not_found"}},
		{"demo", "", []string{s, "demo"}, 0,
			map[string]any{"ok": true, "passed": 10.0, "failed": 0.0, "steps": present}},
		{"usage: missing argument", "", []string{s, "get"}, 2,
			map[string]any{"ok": false, "error": "usage", "hint": "run 'authline get --help' for usage"}},
		{"usage: unknown command", "", []string{"frobnicate"}, 2,
			map[string]any{"ok": false, "error": "usage", "message": present}},
		{"usage: unknown flag", "", []string{"ping", "--bogus"}, 2,
			map[string]any{"ok": false, "error": "usage", "message": "unknown flag: --bogus"}},
		{"cannot connect", "", []string{closed, "ping"}, 3,
			map[string]any{"ok": false, "error": "connection_failed", "hint": present}},
		{"cannot connect: status", "", []string{closed, "status"}, 1,
			map[string]any{"ok": false, "error": "not_logged_in"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			r := run(t, st.in, append([]string{"--output", "json"}, st.args...)...)
			wantCode(t, r, st.code)
			if r.err != "" {
				t.Fatalf("stderr %q, want nothing in JSON mode", r.err)
			}
			m := decodeJSON(t, r.out)
			for k, v := range st.want {
				got, ok := m[k]
				switch v := v.(type) {
				case *struct{}:
					if !ok {
						t.Errorf("no field %s in %v", k, m)
					}
				case *struct{ x int }:
					if ok {
						t.Errorf("field %s present in %v", k, m)
					}
				case func(any) bool:
					if !v(got) {
						t.Errorf("%s = %#v, not of the documented form", k, got)
					}
				case []any:
					if a, isArr := got.([]any); !isArr || len(a) != len(v) {
						t.Errorf("%s = %#v, want %#v", k, got, v)
					}
				default:
					if got != v {
						t.Errorf("%s = %#v, want %#v (in %v)", k, got, v, m)
					}
				}
			}
			if st.code != 0 {
				if _, ok := m["message"].(string); !ok || m["ok"] != false {
					t.Errorf("failure without ok:false and a message: %v", m)
				}
			}
		})
	}
}

// TestJSONShell: the shell prints one JSON object per command in JSON
// mode, for local errors too.
func TestJSONShell(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	r := run(t, "frobnicate\nget\nlogin alice\nalice-password\nwhoami\nquit\n", "--server", srv.Addr, "-o", "json", "shell")
	wantCode(t, r, 0)
	lines := strings.Split(strings.TrimSuffix(r.out, "\n"), "\n")
	if len(lines) != 4 || r.err != "" {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", r.out, r.err)
	}
	for i, want := range []map[string]any{
		{"ok": false, "error": "usage", "message": `unknown command "frobnicate"; type help for the list`},
		{"ok": false, "error": "usage", "message": "usage: get RESOURCE"},
		{"username": "alice", "mode": "session"},
		{"username": "alice", "auth": "session"},
	} {
		m := decodeJSON(t, lines[i])
		for k, v := range want {
			if m[k] != v {
				t.Errorf("line %d: %s = %#v, want %#v (in %v)", i+1, k, m[k], v, m)
			}
		}
	}
}
