package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authline/authline/server/auth"
	"github.com/authline/authline/server/servertest"
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
		{[]string{"serve", "--listen", "127.0.0.1:0", "--token-alg", "RS256", "--db", db}, "--token-alg"},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--token-alg", "none", "--db", db}, "--token-alg"},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--token-ttl", "0s", "--db", db}, "--token-ttl"},
	} {
		code, _, errOut := runCmd(t, "", c.args...)
		if code != 2 || !strings.Contains(errOut, c.err) {
			t.Errorf("authlined %s: exit %d, stderr %q; want exit 2 mentioning %q", strings.Join(c.args, " "), code, errOut, c.err)
		}
	}
}

func TestCmdMissingDatabase(t *testing.T) {
	db := filepath.Join(t.TempDir(), "typo.db")
	for _, args := range [][]string{{"user", "list"}, {"user", "delete", "bob"}, {"user", "set-role", "bob", "admin"}, {"user", "unlock", "bob"},
		{"keys", "list"}, {"keys", "rotate"}, {"keys", "retire", "x"}, {"keys", "export"}} {
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

var rotatedKID = regexp.MustCompile(`^added (HS256|EdDSA) key ([A-Za-z0-9_-]{16}):`)

// rotated returns the alg and kid that `keys rotate` reported.
func rotated(t *testing.T, out string) (alg, kid string) {
	t.Helper()
	m := rotatedKID.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("keys rotate printed %q", out)
	}
	return m[1], m[2]
}

// listedKeys returns the rows of `keys list`: kid → [alg, status].
func listedKeys(t *testing.T, out string) map[string][2]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || strings.Join(strings.Fields(lines[0]), " ") != "KID ALG CREATED STATUS" {
		t.Fatalf("keys list: no header:\n%s", out)
	}
	rows := map[string][2]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 4 {
			t.Fatalf("keys list: row %q", l)
		}
		if _, err := time.Parse(time.RFC3339, f[2]); err != nil {
			t.Fatalf("keys list: CREATED %q: %v", f[2], err)
		}
		rows[f[0]] = [2]string{f[1], f[3]}
	}
	return rows
}

func TestCmdKeys(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "k.db")
	// run adds --db, before a "--" if there is one.
	run := func(args ...string) (int, string, string) {
		t.Helper()
		i := slices.Index(args, "--")
		if i < 0 {
			i = len(args)
		}
		return runCmd(t, "", slices.Concat(args[:i], []string{"--db", db}, args[i:])...)
	}
	code, _, errOut := run("keys", "list")
	if code != 1 || !strings.Contains(errOut, "no database at") {
		t.Fatalf("keys list without a database: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(db); err == nil {
		t.Fatal("keys list created the database")
	}
	// The state before the keys moved into the store: a database and a
	// key file that signed tokens.
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	legacy, err := auth.LoadOrCreateKey(filepath.Join(dir, "k.key"))
	if err != nil {
		t.Fatal(err)
	}
	legacyKID := auth.KeyID(legacy)

	code, out, errOut := run("keys", "list")
	if code != 0 || len(listedKeys(t, out)) != 0 || !strings.Contains(errOut, "no signing keys") {
		t.Fatalf("keys list of a store without keys: exit %d, %q, %q", code, out, errOut)
	}
	// The first rotation imports the key file first, so its tokens keep
	// verifying.
	code, out, errOut = run("keys", "rotate")
	if code != 0 || !strings.Contains(errOut, "signing key added") {
		t.Fatalf("keys rotate: exit %d, %q, %q", code, out, errOut)
	}
	_, hs := rotated(t, out)
	_, out, _ = run("keys", "list")
	if rows := listedKeys(t, out); len(rows) != 2 || rows[legacyKID] != [2]string{"HS256", "active"} || rows[hs] != [2]string{"HS256", "current"} {
		t.Fatalf("keys list after a rotation: %v (key file kid %s, new %s)", rows, legacyKID, hs)
	}

	// EdDSA, from the flag and from the environment.
	_, out, _ = run("keys", "rotate", "--token-alg", "eddsa")
	alg, ed1 := rotated(t, out)
	if alg != "EdDSA" {
		t.Fatalf("rotate --token-alg eddsa made %s", alg)
	}
	t.Setenv("AUTHLINE_TOKEN_ALG", "EdDSA")
	_, out, _ = run("keys", "rotate")
	if alg, _ := rotated(t, out); alg != "EdDSA" {
		t.Fatalf("rotate with AUTHLINE_TOKEN_ALG=EdDSA made %s", alg)
	}
	_, ed2 := rotated(t, out)
	_, out, _ = run("keys", "list")
	rows := listedKeys(t, out)
	if len(rows) != 4 || rows[ed2] != [2]string{"EdDSA", "current"} || rows[ed1][1] != "active" || rows[hs][1] != "active" {
		t.Fatalf("keys list with EdDSA: %v", rows)
	}
	_, out, _ = run("keys", "list", "--token-alg", "HS256") // the flag wins
	if rows := listedKeys(t, out); rows[hs][1] != "current" || rows[ed2][1] != "active" {
		t.Fatalf("keys list --token-alg HS256: %v", rows)
	}

	// export: the EdDSA public keys only, oldest first.
	code, out, _ = run("keys", "export")
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal([]byte(out), &set); code != 0 || err != nil || !strings.HasSuffix(out, "}\n") {
		t.Fatalf("keys export: exit %d, %v:\n%s", code, err, out)
	}
	if len(set.Keys) != 2 || set.Keys[0]["kid"] != ed1 || set.Keys[1]["kid"] != ed2 {
		t.Fatalf("keys export: %s, want %s and %s", out, ed1, ed2)
	}
	for _, k := range set.Keys {
		x, err := base64.RawURLEncoding.DecodeString(k["x"])
		if len(k) != 6 || k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["alg"] != "EdDSA" || k["use"] != "sig" || err != nil || len(x) != 32 {
			t.Fatalf("keys export: key %v", k)
		}
	}

	// retire
	steps := []struct {
		args     []string
		code     int
		out, err string
	}{
		// The key file's kid may start with '-': "--" ends the flags.
		{[]string{"keys", "retire", "--", legacyKID}, 0, "retired " + legacyKID, "signing key retired"},
		{[]string{"keys", "retire", "--", legacyKID}, 1, "", "no active signing key " + legacyKID},
		{[]string{"keys", "retire", "nope"}, 1, "", "no active signing key nope"},
		{[]string{"keys", "retire", ed1}, 0, "retired " + ed1, ""},
		{[]string{"keys", "retire", ed2}, 1, "", "rotate"}, // the last EdDSA key, EdDSA from the environment
		{[]string{"keys", "retire", hs, "--token-alg", "HS256"}, 1, "", "keys rotate --token-alg HS256"},
		{[]string{"keys", "retire", hs}, 0, "retired " + hs, ""}, // HS256 is not the configured alg
		{[]string{"keys", "retire"}, 2, "", ""},
		{[]string{"keys", "retire", "a", "b"}, 2, "", ""},
		{[]string{"keys", "rotate", "--token-alg", "RS256"}, 2, "", "--token-alg"},
		{[]string{"keys", "list", "--token-alg", "none"}, 2, "", "--token-alg"},
		{[]string{"keys", "frobnicate"}, 2, "", ""},
	}
	for _, s := range steps {
		code, out, errOut := run(s.args...)
		if code != s.code || !strings.Contains(out, s.out) || !strings.Contains(errOut, s.err) {
			t.Errorf("authlined %s: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				strings.Join(s.args, " "), code, out, errOut, s.code, s.out, s.err)
		}
	}
	_, out, _ = run("keys", "list")
	if rows := listedKeys(t, out); len(rows) != 1 || rows[ed2] != [2]string{"EdDSA", "current"} {
		t.Fatalf("keys list at the end: %v, want only %s", rows, ed2)
	}
	t.Setenv("AUTHLINE_TOKEN_ALG", "HS256")
	code, out, errOut = run("keys", "export")
	if code != 0 || strings.Count(out, `"kid"`) != 1 {
		t.Fatalf("keys export: exit %d, %q %q", code, out, errOut)
	}
	code, out, errOut = run("keys", "list")
	if code != 0 || !strings.Contains(errOut, "no HS256 key") {
		t.Fatalf("keys list without a key of the alg: exit %d, %q, %q", code, out, errOut)
	}
}

// TestCmdKeysDashKID: a kid is base64url, and the key file's may start
// with '-'; new keys' kids never do.
func TestCmdKeysDashKID(t *testing.T) {
	db := filepath.Join(t.TempDir(), "d.db")
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []store.SigningKey{
		{KID: "-dash-kid-000001", Alg: store.AlgHS256, Private: bytes.Repeat([]byte{1}, 32), CreatedAt: time.Now()},
		{KID: "plain-kid-000002", Alg: store.AlgHS256, Private: bytes.Repeat([]byte{2}, 32), CreatedAt: time.Now()},
	} {
		if err := st.AddSigningKey(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	code, _, errOut := runCmd(t, "", "keys", "retire", "-dash-kid-000001", "--db", db)
	if code != 2 || !strings.Contains(errOut, `goes after "--"`) {
		t.Fatalf("keys retire -dash...: exit %d, %q; want 2 with a hint about --", code, errOut)
	}
	if code, out, errOut := runCmd(t, "", "keys", "retire", "--db", db, "--", "-dash-kid-000001"); code != 0 || !strings.Contains(out, "retired -dash-kid-000001") {
		t.Fatalf("keys retire -- -dash...: exit %d, %q, %q", code, out, errOut)
	}
	for range 50 {
		for _, alg := range []string{store.AlgHS256, store.AlgEdDSA} {
			k, err := auth.GenerateSigningKey(alg, time.Now())
			if err != nil || k.KID[0] == '-' || k.KID[0] == '_' {
				t.Fatalf("generated kid %q (%v)", k.KID, err)
			}
		}
	}
}

func TestCmdKeysExportHS256Only(t *testing.T) {
	db := filepath.Join(t.TempDir(), "h.db")
	if code, _, errOut := runCmd(t, "", "keys", "rotate", "--db", db); code != 1 || !strings.Contains(errOut, "no database") {
		t.Fatalf("keys rotate without a database: exit %d, %q", code, errOut)
	}
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	// No key file either: rotate simply adds the first key.
	if code, out, errOut := runCmd(t, "", "keys", "rotate", "--db", db); code != 0 {
		t.Fatalf("keys rotate: exit %d, %q, %q", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(db), "h.key")); err == nil {
		t.Fatal("keys rotate created a key file")
	}
	code, out, errOut := runCmd(t, "", "keys", "export", "--db", db)
	if code != 0 || out != "{\"keys\":[]}\n" || !strings.Contains(errOut, "no EdDSA keys") {
		t.Fatalf("keys export with HS256 only: exit %d, %q, %q", code, out, errOut)
	}
}

// TestCmdKeysWhileServing: `keys rotate` and `keys retire` on the database
// of a running server apply there within its sync interval, no restart.
func TestCmdKeysWhileServing(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{TokenAlg: store.AlgEdDSA})
	srv.AddUser(t, "alice", "kitten-orbit-5-quarry", "user")
	c := e2eDial(t, srv.Addr)
	old := c.token("alice", "kitten-orbit-5-quarry")

	code, out, errOut := runCmd(t, "", "keys", "rotate", "--token-alg", "EdDSA", "--db", srv.DBPath)
	if code != 0 {
		t.Fatalf("keys rotate: exit %d, %q", code, errOut)
	}
	_, kid := rotated(t, out)
	deadline := time.Now().Add(10 * time.Second)
	for kidOfToken(t, c.token("alice", "kitten-orbit-5-quarry")) != kid {
		if time.Now().After(deadline) {
			t.Fatalf("new tokens do not carry the rotated key's kid %s", kid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	jwks := c.expect("JWKS", 200, "")
	if b, _ := json.Marshal(jwks["data"]); strings.Count(string(b), `"kid"`) != 2 || !strings.Contains(string(b), kid) {
		t.Fatalf("JWKS %s, want both EdDSA keys", b)
	}
	c.expect("GET protected "+old, 200, "")

	if code, _, errOut := runCmd(t, "", "keys", "retire", kidOfToken(t, old), "--token-alg", "EdDSA", "--db", srv.DBPath); code != 0 {
		t.Fatalf("keys retire: exit %d, %q", code, errOut)
	}
	for c.do("GET protected " + old)["error"] != "invalid_token" {
		if time.Now().After(deadline) {
			t.Fatal("the retired key's token still works")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kidOfToken is the kid header of a token.
func kidOfToken(t *testing.T, token string) string {
	t.Helper()
	seg, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}
