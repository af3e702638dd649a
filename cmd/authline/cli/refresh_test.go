package cli

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authline/authline/server/servertest"
)

// TestTransparentRefresh: commands renew an expired access token with the
// saved refresh token, save the rotated pair, and go on.
func TestTransparentRefresh(t *testing.T) {
	var clk clock
	srv := startServer(t, clk.options())
	s := "--server=" + srv.Addr
	wantCode(t, run(t, "alice-password\n", s, "login", "alice", "--password-stdin"), 0)
	first := readCredentials(t).Servers[srv.Addr]

	// The server's clock says the token expired (the CLI's does not):
	// refused with token_expired, renewed, retried.
	clk.advance(2 * time.Hour)
	r := run(t, "", s, "whoami")
	wantCode(t, r, 0)
	if r.out != "alice (role user, auth token)\n" || r.err != "" {
		t.Fatalf("whoami after expiry: stdout %q stderr %q", r.out, r.err)
	}
	second := readCredentials(t).Servers[srv.Addr]
	if second.Username != "alice" || second.Token == first.Token || second.RefreshToken == first.RefreshToken || second.RefreshToken == "" {
		t.Fatalf("credentials not rotated: before %+v after %+v", first, second)
	}
	if !second.ExpiresAt.After(first.ExpiresAt) || second.RefreshExpiresAt.IsZero() {
		t.Fatalf("rotated expiries: %+v", second)
	}
	checkCredentialsPrivate(t)

	// The saved pair is used as is while valid.
	r = run(t, "", s, "get", "protected")
	wantCode(t, r, 0)
	if c := readCredentials(t).Servers[srv.Addr]; c != second {
		t.Fatalf("a valid token was renewed: %+v", c)
	}

	// The CLI's clock says the token expired (expires_at passed): renewed
	// before the request is sent.
	expired := second
	expired.ExpiresAt = time.Now().Add(-time.Minute)
	writeCredentials(t, credentials{Servers: map[string]savedLogin{srv.Addr: expired}})
	r = run(t, "", s, "-o", "json", "get", "protected")
	wantCode(t, r, 0)
	if m := decodeJSON(t, r.out); m["username"] != "alice" {
		t.Fatalf("get: %v", m)
	}
	third := readCredentials(t).Servers[srv.Addr]
	if third.Token == second.Token || third.RefreshToken == second.RefreshToken {
		t.Fatalf("expires_at in the past did not renew: %+v", third)
	}

	// A retired refresh token is taken for theft: the whole family ends,
	// and with it the login.
	stolen := second
	stolen.ExpiresAt = time.Now().Add(-time.Minute)
	writeCredentials(t, credentials{Servers: map[string]savedLogin{srv.Addr: stolen}})
	r = run(t, "", s, "whoami")
	wantCode(t, r, 1)
	if !strings.Contains(r.err, "error: token expired and the server refused to renew it: ") ||
		!strings.HasSuffix(r.err, "(invalid_token)\nhint: token expired: run authline login\n") {
		t.Fatalf("stderr %q", r.err)
	}
	third.ExpiresAt = time.Now().Add(-time.Minute)
	writeCredentials(t, credentials{Servers: map[string]savedLogin{srv.Addr: third}})
	wantCode(t, run(t, "", s, "whoami"), 1)

	// In JSON mode the refusal is the JSON error object.
	r = run(t, "", s, "-o", "json", "whoami")
	wantCode(t, r, 1)
	if m := decodeJSON(t, r.out); m["ok"] != false || m["status"] != 401.0 || m["error"] != "invalid_token" {
		t.Fatalf("JSON refusal: %v", m)
	}
}

func TestRefreshWithoutRefreshToken(t *testing.T) {
	// Files written before refresh tokens existed: an expired access token
	// means a new login.
	var clk clock
	srv := startServer(t, clk.options())
	s := "--server=" + srv.Addr
	wantCode(t, run(t, "alice-password\n", s, "login", "alice", "--password-stdin"), 0)
	old := readCredentials(t).Servers[srv.Addr]
	old.RefreshToken, old.RefreshExpiresAt = "", time.Time{}
	writeCredentials(t, credentials{Servers: map[string]savedLogin{srv.Addr: old}})

	wantCode(t, run(t, "", s, "whoami"), 0) // still valid: works
	clk.advance(2 * time.Hour)
	r := run(t, "", s, "whoami")
	wantCode(t, r, 1)
	if r.err != "error: token expired and there is no refresh token to renew it\nhint: token expired: run authline login\n" {
		t.Fatalf("stderr %q", r.err)
	}
}

// TestConcurrentRefresh runs commands in parallel on an expired token:
// the credentials lock lets one renew and the others use its pair, since a
// second use of the refresh token would end the login.
func TestConcurrentRefresh(t *testing.T) {
	var clk clock
	srv := startServer(t, clk.options())
	s := "--server=" + srv.Addr
	wantCode(t, run(t, "alice-password\n", s, "login", "alice", "--password-stdin"), 0)
	saved := readCredentials(t).Servers[srv.Addr]
	saved.ExpiresAt = time.Now().Add(-time.Minute)
	writeCredentials(t, credentials{Servers: map[string]savedLogin{srv.Addr: saved}})

	const n = 6
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var out, errOut strings.Builder
			code := Main([]string{s, "whoami"}, &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
			results[i] = result{out.String(), errOut.String(), code}
		})
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 || r.out != "alice (role user, auth token)\n" {
			t.Fatalf("run %d: exit %d stdout %q stderr %q", i, r.code, r.out, r.err)
		}
	}
	if c := readCredentials(t).Servers[srv.Addr]; c.RefreshToken == saved.RefreshToken {
		t.Fatal("the pair was not renewed")
	}
	wantCode(t, run(t, "", s, "whoami"), 0)
	checkCredentialsPrivate(t)
}

func TestStaleCredentialsLock(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	s := "--server=" + srv.Addr
	// A lock left by a crashed process is broken once it is old.
	path, err := credentialsPath()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".lock", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path+".lock", old, old); err != nil {
		t.Fatal(err)
	}
	wantCode(t, run(t, "alice-password\n", s, "login", "alice", "--password-stdin"), 0)
	checkCredentialsPrivate(t)
}

// checkCredentialsPrivate checks the file's mode and that no temporary or
// lock file was left next to it.
func checkCredentialsPrivate(t *testing.T) {
	t.Helper()
	dir := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "authline")
	fi, err := os.Stat(filepath.Join(dir, "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials.json has mode %v", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("%s holds %v, want only credentials.json", dir, names)
	}
}
