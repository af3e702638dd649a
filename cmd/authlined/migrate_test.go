package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authline/authline/server/auth"
	"github.com/authline/authline/server/servertest"
	"github.com/authline/authline/server/store"
	"github.com/authline/authline/server/store/postgres/pgtest"
	"github.com/authline/authline/server/store/sqlite"
	"github.com/authline/authline/server/store/storeopen"
)

// terminalBuffer is a standard error that claims to be a terminal, to get
// migrate's progress bar.
type terminalBuffer struct{ bytes.Buffer }

func (*terminalBuffer) IsTerminal() bool { return true }

// runCmdTerminal is runCmd with a standard error that is a terminal.
func runCmdTerminal(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out bytes.Buffer
	var errOut terminalBuffer
	code := Main(args, Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	return code, out.String(), errOut.String()
}

// summaryRow returns the numbers of kind's row in migrate's summary.
func summaryRow(t *testing.T, out, kind string) []int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + kind + `((?: +\d+)+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q row in the summary:\n%s", kind, out)
	}
	var row []int
	for _, f := range strings.Fields(m[1]) {
		n, _ := strconv.Atoi(f)
		row = append(row, n)
	}
	return row
}

// checkRow checks kind's row: source, copied, updated, skipped, failed
// and, but for a dry run, target.
func checkRow(t *testing.T, out, kind string, want ...int) {
	t.Helper()
	if got := summaryRow(t, out, kind); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("summary row %s = %v, want %v\n%s", kind, got, want, out)
	}
}

// snapshot describes everything migrate copies from st, one line a
// record, in a form that does not depend on the backend; secrets as
// hashes would be, in hex, as it never leaves the test.
func snapshot(t *testing.T, st store.Store, now time.Time) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	users, err := st.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	for _, u := range users {
		fmt.Fprintf(&b, "user %s %x %s created %s login %s disabled %v gen %d\n", u.Username, u.PasswordHash, u.Role,
			ts(u.CreatedAt), ts(u.LastLogin), u.Disabled, u.Generation)
	}
	keys, err := st.AllSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		fmt.Fprintf(&b, "key %s %s %x %x created %s retired %s\n", k.KID, k.Alg, k.Private, k.Public, ts(k.CreatedAt), ts(k.RetiredAt))
	}
	revs, err := st.ListRevocations(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range revs {
		fmt.Fprintf(&b, "revoked %s until %s\n", r.JTI, ts(r.ExpiresAt))
	}
	rts, err := st.ListRefreshTokensAfter(ctx, nil, 1<<20, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range rts {
		fmt.Fprintf(&b, "refresh %x %s %s gen %d expires %s used %s\n", rt.Hash, rt.Family, rt.Username, rt.Generation, ts(rt.ExpiresAt), ts(rt.UsedAt))
	}
	return b.String()
}

func openSQLite(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// snapshotOf opens db, describes it and closes it again.
func snapshotOf(t *testing.T, db string, now time.Time) (snap string, latest int64) {
	t.Helper()
	st, err := storeopen.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	latest, err = st.LatestChange(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return snapshot(t, st, now), latest
}

// tokenPair logs in in token mode and returns the access and refresh
// tokens.
func (c *e2eConn) tokenPair(user, pass string) (access, refresh string) {
	c.t.Helper()
	m := c.expect(map[string]any{"cmd": "LOGIN", "username": user, "password": pass, "mode": "token"}, 200, "")
	data, _ := m["data"].(map[string]any)
	access, _ = data["token"].(string)
	refresh, _ = data["refresh_token"].(string)
	if access == "" || refresh == "" {
		c.t.Fatalf("no token pair in %v", m)
	}
	return access, refresh
}

// TestCmdMigrate copies an SQLite store that a server used into another,
// and serves the copy: what the source accepted, the copy accepts, and
// what it refused, the copy refuses.
func TestCmdMigrate(t *testing.T) {
	ctx := context.Background()
	srcDir, dstDir := t.TempDir(), t.TempDir()
	const pass = "kitten-orbit-5-quarry"

	// The source: a server with EdDSA tokens, on a store that also got
	// the key file's HS256 key.
	srv := servertest.Start(t, servertest.Options{Dir: srcDir, TokenAlg: store.AlgEdDSA, RefreshTTL: time.Hour})
	for _, u := range []struct{ name, role string }{
		{"root", "admin"}, {"alice", "user"}, {"bob", "user"}, {"carol", "user"}, {"dave", "admin"}, {"erin", "user"},
	} {
		srv.AddUser(t, u.name, pass, u.role)
	}
	src := srv.Store
	c := e2eDial(t, srv.Addr)
	aliceTok, aliceRefresh := c.tokenPair("alice", pass)
	bobTok, _ := c.tokenPair("bob", pass)
	c.expect("LOGOUT "+bobTok, 200, "") // a revocation; bob's refresh token goes
	_, used := c.tokenPair("alice", pass)
	next := c.expect("REFRESH "+used, 200, "")["data"].(map[string]any)["refresh_token"].(string)
	c.expect("LOGIN root "+pass, 200, "") // a last login

	// HS256 tokens: one of the key file's key, retired below, and one of
	// a key rotated in since.
	alice, err := src.GetUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	hsToken := func() string {
		keys, err := src.SigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The server's token lifetime (servertest's default): a longer
		// one is refused.
		tokens, err := auth.NewTokensFromKeys(store.AlgHS256, keys, auth.DefaultIssuer, 30*time.Minute, nil)
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := tokens.Issue("alice", "user", alice.Generation)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	hsOld := hsToken()
	oldKID := kidOfToken(t, hsOld)
	if _, err := auth.RotateSigningKey(ctx, src, store.AlgHS256, time.Now()); err != nil {
		t.Fatal(err)
	}
	hsNew := hsToken()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// The source accepts both (the new key once the server has read the
	// change feed).
	c.expect("GET protected "+hsOld, 200, "")
	for deadline := time.Now().Add(10 * time.Second); c.do("GET protected " + hsNew)["ok"] != true; {
		if time.Now().After(deadline) {
			t.Fatal("the source server does not accept a token of the rotated key")
		}
		time.Sleep(10 * time.Millisecond)
	}
	must("retire", src.RetireSigningKey(ctx, oldKID, time.Now()))
	if kidOfToken(t, hsNew) == oldKID {
		t.Fatal("the rotated HS256 key does not sign")
	}
	// Disabled users, an admin among them, and other generations.
	must("disable carol", src.SetDisabled(ctx, "carol", true))
	must("disable dave", src.SetDisabled(ctx, "dave", true))
	if _, err := src.ChangePassword(ctx, "erin", []byte("$2a$04$not-a-real-hash")); err != nil {
		t.Fatal(err)
	}
	// Expired records, which are not copied.
	must("revoke", src.RevokeToken(ctx, "long-expired", time.Now().Add(-time.Hour)))
	must("refresh", src.CreateRefreshToken(ctx, store.RefreshToken{Hash: bytes.Repeat([]byte{7}, 32), Family: "f-old", Username: "alice",
		Generation: alice.Generation, ExpiresAt: time.Now().Add(-time.Minute)}))
	srv.Stop(t)

	now := time.Now()
	srcDB := filepath.Join(srcDir, "authline.db")
	dstDB := filepath.Join(dstDir, "authline.db")
	want, _ := snapshotOf(t, srcDB, now)
	for _, s := range []string{"revoked ", "retired 2", "used 2", "disabled true", "login 2"} {
		if !strings.Contains(want, s) {
			t.Fatalf("the source lacks a %q record:\n%s", s, want)
		}
	}

	// A dry run writes nothing, not even a new file.
	code, out, errOut := runCmd(t, "", "migrate", "--from", "sqlite://"+srcDB, "--to", dstDB, "--dry-run")
	if code != 0 || !strings.Contains(out, "dry run") {
		t.Fatalf("migrate --dry-run: exit %d, %q, %q", code, out, errOut)
	}
	checkRow(t, out, "users", 6, 6, 0, 0, 0)
	if _, err := os.Stat(dstDB); err == nil {
		t.Fatal("migrate --dry-run created the target")
	}

	code, out, errOut = runCmd(t, "", "migrate", "--from", "sqlite://"+srcDB, "--to", dstDB)
	if code != 0 || !strings.Contains(out, "verified") {
		t.Fatalf("migrate: exit %d, %q, %q", code, out, errOut)
	}
	checkRow(t, out, "signing keys", 3, 3, 0, 0, 0, 3)
	checkRow(t, out, "users", 6, 6, 0, 0, 0, 6)
	checkRow(t, out, "revocations", 1, 1, 0, 0, 0, 1)
	checkRow(t, out, "refresh tokens", 3, 3, 0, 0, 0, 3) // alice's two families, one token used
	if strings.Contains(out+errOut, "$2a$") {
		t.Fatalf("migrate printed a password hash:\n%s%s", out, errOut)
	}
	got, latest := snapshotOf(t, dstDB, now)
	if got != want {
		t.Fatalf("the target holds\n%s\nwant\n%s", got, want)
	}

	// Again: nothing to do.
	code, out, errOut = runCmd(t, "", "migrate", "--from", srcDB, "--to", "sqlite://"+dstDB)
	if code != 0 {
		t.Fatalf("migrate again: exit %d, %q, %q", code, out, errOut)
	}
	checkRow(t, out, "signing keys", 3, 0, 0, 3, 0, 3)
	checkRow(t, out, "users", 6, 0, 0, 6, 0, 6)
	checkRow(t, out, "revocations", 1, 0, 0, 1, 0, 1)
	checkRow(t, out, "refresh tokens", 3, 0, 0, 3, 0, 3)
	if got, l := snapshotOf(t, dstDB, now); got != want || l != latest {
		t.Fatalf("migrate again changed the target (change feed at %d, was %d)", l, latest)
	}

	// A user changed in the target is a conflict: reported, left alone,
	// with the user's refresh tokens.
	dst := openSQLite(t, dstDB)
	must("disable alice in the target", dst.SetDisabled(ctx, "alice", true))
	dst.Close()
	conflicted, latest := snapshotOf(t, dstDB, now)
	for _, args := range [][]string{{}, {"--dry-run"}} {
		code, out, errOut = runCmd(t, "", append([]string{"migrate", "--from", srcDB, "--to", dstDB}, args...)...)
		if code != 1 || !strings.Contains(errOut, "alice exists in the target with a different disabled (--overwrite") {
			t.Fatalf("migrate %v with a conflict: exit %d, %q, %q", args, code, out, errOut)
		}
		if got, l := snapshotOf(t, dstDB, now); got != conflicted || l != latest {
			t.Fatalf("migrate %v with a conflict changed the target", args)
		}
	}
	checkRow(t, out, "users", 6, 0, 0, 5, 1)
	checkRow(t, out, "refresh tokens", 3, 0, 0, 0, 3) // all alice's
	code, out, errOut = runCmd(t, "", "migrate", "--from", srcDB, "--to", dstDB, "--overwrite", "--dry-run")
	if code != 0 {
		t.Fatalf("migrate --overwrite --dry-run: exit %d, %q, %q", code, out, errOut)
	}
	checkRow(t, out, "users", 6, 0, 1, 5, 0)
	if got, _ := snapshotOf(t, dstDB, now); got != conflicted {
		t.Fatal("migrate --overwrite --dry-run changed the target")
	}
	code, out, errOut = runCmd(t, "", "migrate", "--from", srcDB, "--to", dstDB, "--overwrite")
	if code != 0 || !strings.Contains(out, "verified") {
		t.Fatalf("migrate --overwrite: exit %d, %q, %q", code, out, errOut)
	}
	checkRow(t, out, "users", 6, 0, 1, 5, 0, 6)
	if got, _ := snapshotOf(t, dstDB, now); got != want {
		t.Fatalf("after --overwrite the target holds\n%s\nwant\n%s", got, want)
	}

	// A server on the target.
	srv2 := servertest.Start(t, servertest.Options{Dir: dstDir, TokenAlg: store.AlgEdDSA, RefreshTTL: time.Hour})
	c2 := e2eDial(t, srv2.Addr)
	c2.expect("GET protected "+aliceTok, 200, "")
	c2.expect("GET protected "+hsNew, 200, "")
	c2.expect("GET protected "+hsOld, 401, "invalid_token")  // its key was retired
	c2.expect("GET protected "+bobTok, 401, "invalid_token") // logged out
	c2.expect("REFRESH "+aliceRefresh, 200, "")
	c2.expect("REFRESH "+used, 401, "invalid_token") // reused: ends the family
	c2.expect("REFRESH "+next, 401, "invalid_token")
	c2.expect("LOGIN root "+pass, 200, "")
	c2.expect("LOGOUT", 200, "")
	if m := c2.do("LOGIN dave " + pass); m["ok"] != false {
		t.Fatalf("a disabled admin logged in on the target: %v", m)
	}
}

func TestCmdMigrateUsage(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "a.db")
	openSQLite(t, db).Close()
	missing := filepath.Join(dir, "missing.db")
	link := filepath.Join(dir, "link.db")
	if err := os.Symlink(db, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"migrate"}, 2, "--from"},
		{[]string{"migrate", "--from", db}, 2, "--to"},
		{[]string{"migrate", "--to", db}, 2, "--from"},
		{[]string{"migrate", "--from", db, "--to", "sqlite://" + db}, 2, "same store"},
		{[]string{"migrate", "--from", db, "--to", link}, 2, "same store"},
		{[]string{"migrate", "--from", "postgres://h/db", "--to", "postgres://h/db"}, 2, "same store"},
		{[]string{"migrate", "--from", db, "--to", missing, "extra"}, 2, ""},
		{[]string{"migrate", "--from", missing, "--to", filepath.Join(dir, "b.db")}, 1, "no source database at"},
		{[]string{"migrate", "--from", db, "--to", filepath.Join(dir, "no-such-dir", "b.db")}, 1, "open target"},
	} {
		code, _, errOut := runCmd(t, "", c.args...)
		if code != c.code || !strings.Contains(errOut, c.err) {
			t.Errorf("authlined %s: exit %d, %q; want %d with %q", strings.Join(c.args, " "), code, errOut, c.code, c.err)
		}
	}
	for _, p := range []string{missing, filepath.Join(dir, "b.db")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("a failed migrate created %s", p)
		}
	}
}

// TestCmdMigratePaging runs migrate with pages of three records against
// a target that holds some of the source's users and refresh tokens, and
// others of its own, all interleaved, and shows progress from five users
// on.
func TestCmdMigratePaging(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srcDB, dstDB := filepath.Join(dir, "src.db"), filepath.Join(dir, "dst.db")
	src, dst := openSQLite(t, srcDB), openSQLite(t, dstDB)
	now := time.Now()
	const users = 23
	for i := range users {
		u := store.User{Username: fmt.Sprintf("u%02d", i*2), PasswordHash: []byte(fmt.Sprint("hash", i)), Role: store.RoleUser,
			CreatedAt: now.Add(-time.Duration(i) * time.Hour), Generation: int64(i + 1)}
		if i%5 == 0 {
			u.Role = store.RoleAdmin
		}
		rt := store.RefreshToken{Hash: []byte{byte(i * 2), 1}, Family: fmt.Sprint("f", i), Username: u.Username,
			Generation: u.Generation, ExpiresAt: now.Add(time.Hour)}
		for _, st := range []store.Store{src, dst} {
			if st == dst && i%3 != 0 {
				continue // the target has every third already
			}
			if err := st.CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
			if err := st.CreateRefreshToken(ctx, rt); err != nil {
				t.Fatal(err)
			}
		}
		// And users and tokens of its own, between the source's.
		if i%4 == 0 {
			own := store.User{Username: fmt.Sprintf("u%02d", i*2+1), PasswordHash: []byte("own"), Role: store.RoleUser, CreatedAt: now}
			if err := dst.CreateUser(ctx, own); err != nil {
				t.Fatal(err)
			}
			if err := dst.CreateRefreshToken(ctx, store.RefreshToken{Hash: []byte{byte(i*2 + 1)}, Family: "own", Username: own.Username,
				Generation: 1, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	src.Close()
	dst.Close()

	run := func(errOut *bytes.Buffer, terminal bool) string {
		t.Helper()
		var out bytes.Buffer
		streams := Streams{In: strings.NewReader(""), Out: &out, ErrOut: errOut}
		if terminal {
			tb := &terminalBuffer{}
			streams.ErrOut = tb
			defer func() { errOut.Write(tb.Bytes()) }()
		}
		o := &migrateOptions{streams: streams, from: srcDB, to: dstDB, pageSize: 3, progressMin: 5, now: func() time.Time { return now }}
		if err := runMigrate(ctx, o); err != nil {
			t.Fatalf("migrate: %v\n%s", err, errOut)
		}
		return out.String()
	}
	var errOut bytes.Buffer
	out := run(&errOut, false)
	const have, own = 8, 6 // of the source's; the target's own
	checkRow(t, out, "users", users, users-have, 0, have, 0, users+own)
	checkRow(t, out, "refresh tokens", users, users-have, 0, have, 0, users+own)
	// Progress, not a terminal: a line every 10%, copying and verifying.
	lines := strings.Split(strings.TrimSuffix(errOut.String(), "\n"), "\n")
	if len(lines) != 20 || lines[0] != "copying users: 10% (3 of 23)" || lines[9] != "copying users: 100% (23 of 23)" ||
		lines[19] != "verifying users: 100% (23 of 23)" {
		t.Fatalf("progress lines:\n%s", errOut.String())
	}

	// On a terminal: a bar on one line, drawn at the first user and when
	// complete (the clock stands still, so no more often).
	errOut.Reset()
	out = run(&errOut, true)
	checkRow(t, out, "users", users, 0, 0, users, 0, users+own)
	bar := errOut.String()
	wantBar := "\rcopying users [#.............................]   4% 1/23" +
		"\rcopying users [##############################] 100% 23/23\n" +
		"\rverifying users [#.............................]   4% 1/23" +
		"\rverifying users [##############################] 100% 23/23\n"
	if bar != wantBar {
		t.Fatalf("progress bar %q, want %q", bar, wantBar)
	}
}

func TestProgressThrottle(t *testing.T) {
	var buf bytes.Buffer
	clock := time.Unix(1000, 0)
	p := &progress{w: &buf, bar: true, label: "x", total: 100, now: func() time.Time {
		clock = clock.Add(10 * time.Millisecond)
		return clock
	}}
	for range 100 {
		p.add(1)
	}
	p.finish()
	// Every tenth call is 100ms after the last drawing: 10, and the
	// final one.
	if n := strings.Count(buf.String(), "\r"); n != 11 {
		t.Fatalf("%d drawings in 100 updates 10ms apart, want 11:\n%q", n, buf.String())
	}
	var nilProgress *progress // a small store's: shows nothing
	nilProgress.add(1)
	nilProgress.finish()
}

// migratePostgresDSN returns a DSN for a fresh schema on the test server,
// dropped when the test ends, with a password that the server (trust
// authentication) ignores and migrate must never print.
func migratePostgresDSN(t *testing.T) string {
	t.Helper()
	_, dsn := pgtest.NewSchema(t)
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		t.Skipf("%s is not a URL (%v): migrate to PostgreSQL not tested", pgtest.DSNEnv, err)
	}
	u.User = url.UserPassword(u.User.Username(), "s3cret-pw")
	return u.String()
}

// TestCmdMigratePostgres copies 2000 users from SQLite into PostgreSQL,
// with the progress bar, and back into SQLite, with progress lines.
func TestCmdMigratePostgres(t *testing.T) {
	pg := migratePostgresDSN(t)
	ctx := context.Background()
	dir := t.TempDir()
	srcDB := filepath.Join(dir, "src.db")
	src := openSQLite(t, srcDB)
	hash, err := auth.HashPassword("kitten-orbit-5-quarry", 4)
	if err != nil {
		t.Fatal(err)
	}
	const users = 2000
	now := time.Now()
	for i := range users {
		u := store.User{Username: fmt.Sprintf("user%04d", i), PasswordHash: hash, Role: store.RoleUser,
			CreatedAt: now.Add(-time.Duration(i) * time.Minute), Generation: auth.NewGeneration(), Disabled: i%7 == 0}
		if i%100 == 0 {
			u.Role = store.RoleAdmin
			u.LastLogin = now
		}
		if err := src.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := auth.PrepareSigningKeys(ctx, src, store.AlgEdDSA, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := src.RevokeToken(ctx, "jti-1", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := src.CreateRefreshToken(ctx, store.RefreshToken{Hash: []byte("h1"), Family: "f1", Username: "user0001",
		Generation: 5, ExpiresAt: now.Add(time.Hour), UsedAt: now}); err != nil {
		t.Fatal(err)
	}
	src.Close()
	want, _ := snapshotOf(t, srcDB, now)

	code, out, errOut := runCmdTerminal(t, "migrate", "--from", "sqlite://"+srcDB, "--to", pg)
	if code != 0 || !strings.Contains(out, "verified") {
		t.Fatalf("migrate to PostgreSQL: exit %d, %q, %q", code, out, errOut)
	}
	checkRow(t, out, "users", users, users, 0, 0, 0, users)
	checkRow(t, out, "signing keys", 1, 1, 0, 0, 0, 1)
	checkRow(t, out, "revocations", 1, 1, 0, 0, 0, 1)
	checkRow(t, out, "refresh tokens", 1, 1, 0, 0, 0, 1)
	if !strings.Contains(errOut, "\rcopying users [") || !strings.Contains(errOut, "] 100% 2000/2000\n") ||
		!strings.Contains(errOut, "\rverifying users [") {
		t.Fatalf("no progress bar on a terminal: %q", errOut)
	}
	if strings.Contains(out+errOut, "s3cret-pw") || !strings.Contains(out, "xxxxx") || strings.Contains(out+errOut, "$2a$") {
		t.Fatalf("migrate printed a secret, or did not redact the DSN:\n%s%s", out, errOut)
	}
	if got, _ := snapshotOf(t, pg, now); got != want {
		t.Fatal("PostgreSQL holds other records than the source")
	}

	// Again, not on a terminal: all skipped.
	code, out, errOut = runCmd(t, "", "migrate", "--from", srcDB, "--to", pg)
	if code != 0 {
		t.Fatalf("migrate to PostgreSQL again: exit %d, %q, %q", code, out, errOut)
	}
	checkRow(t, out, "users", users, 0, 0, users, 0, users)

	// And back, into a new SQLite file: progress lines.
	back := filepath.Join(dir, "back.db")
	code, out, errOut = runCmd(t, "", "migrate", "--from", pg, "--to", back)
	if code != 0 {
		t.Fatalf("migrate from PostgreSQL: exit %d, %q, %q", code, out, errOut)
	}
	checkRow(t, out, "users", users, users, 0, 0, 0, users)
	if !strings.Contains(errOut, "copying users: 10% (200 of 2000)\n") || !strings.Contains(errOut, "verifying users: 100% (2000 of 2000)\n") ||
		strings.Contains(errOut, "\r") {
		t.Fatalf("progress lines: %q", errOut)
	}
	if got, _ := snapshotOf(t, back, now); got != want {
		t.Fatal("the copy back holds other records than the source")
	}
}
