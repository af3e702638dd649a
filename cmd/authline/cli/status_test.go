package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/authline/authline/server/servertest"
)

func TestStatusNotLoggedIn(t *testing.T) {
	srv := startServer(t, servertest.Options{})

	r := run(t, "", "status")
	wantCode(t, r, 1)
	if r.out != "" || r.err != "error: not logged in to any server\nhint: run authline login\n" {
		t.Fatalf("stdout %q stderr %q", r.out, r.err)
	}
	r = run(t, "", "-o", "json", "status")
	wantCode(t, r, 1)
	m := decodeJSON(t, r.out)
	if m["ok"] != false || m["error"] != "not_logged_in" || m["hint"] != "run authline login" || r.err != "" {
		t.Fatalf("JSON %v, stderr %q", m, r.err)
	}
	if servers, ok := m["servers"].([]any); !ok || len(servers) != 0 {
		t.Fatalf("servers = %#v, want []", m["servers"])
	}

	// Logged in elsewhere, but not to --server.
	wantCode(t, run(t, "alice-password\n", "--server", srv.Addr, "login", "alice", "--password-stdin"), 0)
	other := closedAddr(t)
	r = run(t, "", "--server", other, "status")
	wantCode(t, r, 1)
	if r.err != "error: not logged in to "+other+"\nhint: run authline login\n" {
		t.Fatalf("stderr %q", r.err)
	}
}

// statusOutput is the JSON output of status, decoded.
type statusOutput struct {
	OK      bool          `json:"ok"`
	Servers []statusLogin `json:"servers"`
}

func runStatusJSON(t *testing.T, code int, args ...string) statusOutput {
	t.Helper()
	r := run(t, "", append([]string{"-o", "json", "status"}, args...)...)
	wantCode(t, r, code)
	decodeJSON(t, r.out) // exactly one object
	var out statusOutput
	if err := json.Unmarshal([]byte(r.out), &out); err != nil {
		t.Fatal(err)
	}
	if r.err != "" {
		t.Fatalf("stderr %q in JSON mode", r.err)
	}
	return out
}

func TestStatus(t *testing.T) {
	one := startServer(t, servertest.Options{})
	two := servertest.Start(t, servertest.Options{})
	two.AddUser(t, "root", "root-password", "admin")
	down := closedAddr(t)

	// alice on one: valid. root on two: revoked behind the CLI's back.
	// bob on a server that is gone: unreachable.
	wantCode(t, run(t, "alice-password\n", "--server", one.Addr, "login", "alice", "--password-stdin"), 0)
	wantCode(t, run(t, "root-password\n", "--server", two.Addr, "login", "root", "--password-stdin"), 0)
	creds := readCredentials(t)
	wantCode(t, run(t, "", "--server", two.Addr, "logout"), 0)
	gone := creds.Servers[one.Addr]
	gone.Username = "bob"
	creds.Servers[down] = gone
	writeCredentials(t, creds)

	out := runStatusJSON(t, 1, "--timeout", "2s")
	if out.OK || len(out.Servers) != 3 {
		t.Fatalf("status: %+v", out)
	}
	byServer := map[string]statusLogin{}
	for i, l := range out.Servers {
		byServer[l.Server] = l
		if i > 0 && out.Servers[i-1].Server >= l.Server {
			t.Errorf("servers not in order: %s before %s", out.Servers[i-1].Server, l.Server)
		}
	}
	a, b, c := byServer[one.Addr], byServer[two.Addr], byServer[down]
	if a.State != "valid" || !a.Valid || a.Username != "alice" || a.Role != "user" || a.Renewed || a.Error != "" ||
		time.Until(a.ExpiresAt) <= 0 || time.Until(a.RefreshExpiresAt) < 24*time.Hour {
		t.Errorf("valid login: %+v", a)
	}
	if b.State != "invalid" || b.Valid || b.Username != "root" || b.Error != "invalid_token" ||
		!strings.Contains(b.Hint, "run authline login root --server "+two.Addr) {
		t.Errorf("revoked login: %+v", b)
	}
	if c.State != "unreachable" || c.Valid || c.Username != "bob" || c.Error != "connection_failed" ||
		!strings.Contains(c.Hint, "is authlined running at "+down) {
		t.Errorf("unreachable login: %+v", c)
	}

	// The same in text, like gh auth status.
	r := run(t, "", "status", "--timeout", "2s")
	wantCode(t, r, 1)
	for _, want := range []string{
		one.Addr + "\n  ✓ Logged in as alice (role user); the server accepts the token\n  - Access token expires ",
		"  - Refresh token expires ",
		two.Addr + "\n  X Saved login of root is no longer accepted: ",
		"(invalid_token)\n",
		down + "\n  ! Saved login of bob; server unreachable: ",
		"  - hint: is authlined running at " + down,
	} {
		if !strings.Contains(r.out, want) {
			t.Errorf("status text lacks %q:\n%s", want, r.out)
		}
	}
	if r.err != "" {
		t.Errorf("stderr %q", r.err)
	}

	// --server shows that server only; all valid: exit 0.
	out = runStatusJSON(t, 0, "--server", one.Addr)
	if !out.OK || len(out.Servers) != 1 || out.Servers[0].Server != one.Addr || !out.Servers[0].Valid {
		t.Fatalf("status --server: %+v", out)
	}
	r = run(t, "", "--server", one.Addr, "status")
	wantCode(t, r, 0)
	if strings.Count(r.out, "\n") != 4 || !strings.HasPrefix(r.out, one.Addr+"\n  ✓ ") {
		t.Fatalf("status --server text:\n%s", r.out)
	}
}

func TestStatusRenewsAndExpires(t *testing.T) {
	var clk clock
	srv := startServer(t, clk.options())
	s := "--server=" + srv.Addr
	wantCode(t, run(t, "alice-password\n", s, "login", "alice", "--password-stdin"), 0)
	before := readCredentials(t).Servers[srv.Addr]

	// The access token expired: renewed with the refresh token, as other
	// commands do, and said so.
	clk.advance(2 * time.Hour)
	out := runStatusJSON(t, 0, s)
	l := out.Servers[0]
	if !l.Valid || !l.Renewed || l.State != "valid" {
		t.Fatalf("status after expiry: %+v", l)
	}
	after := readCredentials(t).Servers[srv.Addr]
	if after.Token == before.Token || !l.ExpiresAt.Equal(after.ExpiresAt) {
		t.Fatalf("renewed pair not saved or not shown: saved %+v, shown %+v", after, l)
	}
	clk.advance(2 * time.Hour)
	r := run(t, "", s, "status")
	wantCode(t, r, 0)
	if !strings.Contains(r.out, "  - Access token had expired: renewed with the refresh token and saved\n") {
		t.Fatalf("status text:\n%s", r.out)
	}

	// The refresh token expired too: only a new login helps.
	clk.advance(8 * 24 * time.Hour)
	out = runStatusJSON(t, 1, s)
	l = out.Servers[0]
	if l.Valid || l.State != "expired" || l.Hint != "token expired: run authline login alice" || l.Error == "" {
		t.Fatalf("status after the refresh token expired: %+v", l)
	}
	r = run(t, "", s, "status")
	wantCode(t, r, 1)
	if !strings.Contains(r.out, "  X Saved login of alice is no longer accepted: token expired") ||
		!strings.Contains(r.out, "  - hint: token expired: run authline login alice\n") {
		t.Fatalf("status text:\n%s", r.out)
	}
}

func TestRoughDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		45 * time.Second:                               "45s",
		14*time.Minute + 59*time.Second:                "15m",
		2 * time.Hour:                                  "2h",
		2*time.Hour + 5*time.Minute:                    "2h5m",
		7*24*time.Hour - time.Second:                   "7d",
		6*24*time.Hour + 23*time.Hour:                  "6d23h",
		6*24*time.Hour + 23*time.Hour + 40*time.Minute: "7d",
	} {
		if got := roughDuration(d); got != want {
			t.Errorf("roughDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
