package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/authline/authline/server/servertest"
)

func TestDemo(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	r := run(t, "root-password\n", "--server", srv.Addr, "demo", "--admin-user", "root", "--admin-password-stdin")
	wantCode(t, r, 0)

	lines := strings.Split(strings.TrimSuffix(r.out, "\n"), "\n")
	if len(lines) != 14 {
		t.Fatalf("want a header, 12 steps and a summary:\n%s", r.out)
	}
	m := regexp.MustCompile(`^demo against \S+ \(authlined \S+\) as (demo-[0-9a-f]{8})$`).FindStringSubmatch(lines[0])
	if m == nil {
		t.Fatalf("header %q", lines[0])
	}
	user := m[1]
	want := []struct{ step, outcome string }{
		{"register " + user, "expected 201, got 201"},
		{"register " + user + " again", "expected 409, got 409 conflict"},
		{"login " + user + " (token mode)", "expected 200, got 200"},
		{"get protected with the token", "expected 200, got 200"},
		{"get admin with the token (role user)", "expected 403, got 403 forbidden"},
		{"login " + user + " with a wrong password", "expected 401, got 401 invalid_credentials"},
		{"get protected without a token", "expected 401, got 401 unauthenticated"},
		{"get protected with a garbage token", "expected 401, got 401 invalid_token"},
		{"logout (revoke the token)", "expected 200, got 200"},
		{"get protected with the revoked token", "expected 401, got 401 invalid_token"},
		{"login root (token mode)", "expected 200, got 200"},
		{"get admin with the admin's token", "expected 200, got 200"},
	}
	for i, w := range want {
		line := lines[i+1]
		if !strings.HasPrefix(line, "✓") || !strings.Contains(line, w.step) || !strings.HasSuffix(line, w.outcome) {
			t.Errorf("step %d: %q, want ✓ %s ... %s", i+1, line, w.step, w.outcome)
		}
	}
	if lines[13] != "all 12 steps passed" {
		t.Fatalf("summary %q", lines[13])
	}
	// demo leaves the saved credentials alone.
	if _, err := os.Stat(filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "authline")); !os.IsNotExist(err) {
		t.Fatalf("demo touched the config directory (stat: %v)", err)
	}
}

func TestDemoJSONWithoutAdmin(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	r := run(t, "", "--server", srv.Addr, "-o", "json", "demo")
	wantCode(t, r, 0)
	m := decodeJSON(t, r.out)
	steps, _ := m["steps"].([]any)
	if m["ok"] != true || m["passed"] != 10.0 || m["failed"] != 0.0 || len(steps) != 10 {
		t.Fatalf("demo result: %v", m)
	}
	for _, s := range steps {
		if s.(map[string]any)["ok"] != true {
			t.Fatalf("step failed: %v", s)
		}
	}
}

func TestDemoFailure(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	// A wrong admin password makes the two admin steps fail.
	r := run(t, "not-root-password\n", "--server", srv.Addr, "demo", "--admin-user", "root", "--admin-password-stdin")
	wantCode(t, r, 1)
	if strings.Count(r.out, "✓") != 10 || strings.Count(r.out, "\nFAIL") != 2 {
		t.Fatalf("stdout:\n%s", r.out)
	}
	if !strings.Contains(r.out, "expected 200, got 401 invalid_credentials") || !strings.HasSuffix(r.out, "2 of 12 steps FAILED\n") {
		t.Fatalf("stdout:\n%s", r.out)
	}

	// The admin password needs a source.
	r = run(t, "", "--server", srv.Addr, "demo", "--admin-user", "root")
	wantCode(t, r, 2)
	r = run(t, "x\n", "--server", srv.Addr, "demo", "--admin-password-stdin")
	wantCode(t, r, 2)
}
