package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/authline/authline/server/store"
	"github.com/authline/authline/server/store/storetest"
)

// Close must release every connection and goroutine of the pool.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openTest(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTest(t, filepath.Join(t.TempDir(), "authline.db"))
	})
}

// rawDB opens path without Store, for poking at the file behind its back.
func rawDB(t *testing.T, path, query string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?"+query)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authline.db")
	exp := time.Now().Add(time.Hour)
	want := store.User{Username: "alice", PasswordHash: []byte("$2a$10$x\x00y"), Role: store.RoleAdmin, CreatedAt: time.Unix(1700000000, 0)}

	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(t.Context(), "jti-1", exp); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, path) // migrations already applied: must be a no-op
	got, err := s.GetUser(t.Context(), "alice")
	if err != nil {
		t.Fatalf("GetUser after reopen: %v", err)
	}
	if got.Username != want.Username || string(got.PasswordHash) != string(want.PasswordHash) ||
		got.Role != want.Role || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("GetUser after reopen = %+v, want %+v", got, want)
	}
	if revoked, err := s.IsRevoked(t.Context(), "jti-1"); err != nil || !revoked {
		t.Errorf("IsRevoked after reopen = %v, %v; want true", revoked, err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	if err := s.db.QueryRowContext(t.Context(), "PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != len(ms) || v < 1 {
		t.Errorf("user_version = %d, want %d (one per migration)", v, len(ms))
	}
}

// oldDB creates a database at path with the schema of the first version
// migrations, by applying only those, as an older authline left it.
func oldDB(t *testing.T, path string, version int) *sql.DB {
	t.Helper()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path, "")
	for _, m := range ms[:version] {
		if _, err := db.ExecContext(t.Context(), m.sql); err != nil {
			t.Fatalf("migration %s: %v", m.name, err)
		}
	}
	if _, err := db.ExecContext(t.Context(), fmt.Sprintf("PRAGMA user_version = %d", version)); err != nil {
		t.Fatal(err)
	}
	return db
}

// A database written before 0003 opens, migrates in place and keeps its
// data; its users get the defaults of the new columns.
func TestMigrateFrom2(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "authline.db")
	db := oldDB(t, path, 2)
	if _, err := db.ExecContext(ctx, `INSERT INTO users (username, password_hash, role, created_at)
		VALUES ('alice', x'00ff', 'admin', 1700000000)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO revoked_tokens VALUES ('jti-1', ?)`, time.Now().Add(time.Hour).Unix()); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openTest(t, path)
	var v int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if ms, _ := migrations(); v != len(ms) {
		t.Errorf("user_version = %d, want %d", v, len(ms))
	}
	want := store.User{Username: "alice", PasswordHash: []byte{0x00, 0xff}, Role: store.RoleAdmin,
		CreatedAt: time.Unix(1700000000, 0).UTC(), Generation: 1}
	got, err := s.GetUser(ctx, "alice")
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if got.Username != want.Username || string(got.PasswordHash) != string(want.PasswordHash) || got.Role != want.Role ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.LastLogin.IsZero() || got.Disabled || got.Generation != 1 {
		t.Errorf("GetUser after migration = %+v, want %+v", got, want)
	}
	if revoked, err := s.IsRevoked(ctx, "jti-1"); err != nil || !revoked {
		t.Errorf("IsRevoked after migration = %v, %v; want true", revoked, err)
	}

	// The new columns and tables work on the migrated database.
	if gen, err := s.BumpGeneration(ctx, "alice", "test"); err != nil || gen != 2 {
		t.Errorf("BumpGeneration = %d, %v; want 2", gen, err)
	}
	if err := s.SetDisabled(ctx, "alice", true); !errors.Is(err, store.ErrLastAdmin) {
		t.Errorf("SetDisabled(last admin) = %v, want ErrLastAdmin", err)
	}
	rt := store.RefreshToken{Hash: []byte("h"), Family: "f", Username: "alice", Generation: 2, ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.CreateRefreshToken(ctx, rt); err != nil {
		t.Fatalf("CreateRefreshToken: %v", err)
	}
	if _, err := s.UseRefreshToken(ctx, rt.Hash, time.Now()); err != nil {
		t.Errorf("UseRefreshToken: %v", err)
	}
	if cs, err := s.Changes(ctx, 0, 10); err != nil || len(cs) != 1 || cs[0].Seq != 1 {
		t.Errorf("Changes = %+v, %v; want the one change, seq 1", cs, err)
	}
}

func TestSchemaTooNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authline.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path, "")
	if _, err := db.Exec("PRAGMA user_version = 9999"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err = Open(t.Context(), path)
	if err == nil {
		s.Close()
		t.Fatal("Open(newer schema) succeeded")
	}
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("Open(newer schema) = %v, want ErrSchemaTooNew", err)
	}
	t.Logf("error reads: %v", err)
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authline.db")
	s := openTest(t, path)
	// A write creates the WAL, which holds the hashes too until checkpoint.
	if err := s.CreateUser(t.Context(), store.User{Username: "alice", PasswordHash: []byte("h"), Role: store.RoleUser}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s: mode %o, want 600", filepath.Base(p), m)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte("this is not an SQLite database, not even close to one......"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		wantErr    error // nil: any error
		noFile     bool  // the path must not have been created
	}{
		{"missing parent", filepath.Join(dir, "nope", "authline.db"), fs.ErrNotExist, true},
		{"parent is a file", filepath.Join(file, "authline.db"), nil, true},
		{"empty path", "", nil, false},
		{"not a database", garbage, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.path)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Open = %v, want %v", err, tc.wantErr)
			}
			if _, statErr := os.Stat(tc.path); tc.noFile && statErr == nil {
				t.Errorf("Open created %s", tc.path)
			}
		})
	}
}

// The DSN pragmas are per connection; check that each pooled connection
// has them, not only the first.
func TestPragmasOnEveryConnection(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "authline.db"))
	ctx := t.Context()
	const n = 4
	conns := make([]*sql.Conn, n)
	for i := range conns { // held at once, so each is a distinct connection
		c, err := s.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	for i, c := range conns {
		for _, p := range []struct{ pragma, want string }{
			{"busy_timeout", "5000"},
			{"journal_mode", "wal"},
			{"synchronous", "2"}, // FULL
			{"foreign_keys", "1"},
		} {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != p.want {
				t.Errorf("conn %d: %s = %s, want %s", i, p.pragma, got, p.want)
			}
		}
	}
}

// Two processes starting on a new database at once: the migration
// transaction serialises them, and both come up. Turning the new file to WAL
// fails at once with SQLITE_BUSY now and then when another opener holds the
// lock, so the race is run many times over.
func TestConcurrentOpen(t *testing.T) {
	for round := range 40 {
		path := filepath.Join(t.TempDir(), "authline.db")
		var wg sync.WaitGroup
		stores := make([]*Store, 8)
		errs := make([]error, len(stores))
		for i := range stores {
			wg.Go(func() { stores[i], errs[i] = Open(t.Context(), path) })
		}
		wg.Wait()
		for i := range stores {
			if errs[i] != nil {
				t.Errorf("round %d: Open #%d: %v", round, i, errs[i])
			}
		}
		if !t.Failed() {
			if err := stores[0].CreateUser(t.Context(), store.User{Username: "alice", PasswordHash: []byte("h"), Role: store.RoleUser}); err != nil {
				t.Errorf("round %d: CreateUser: %v", round, err)
			} else if _, err := stores[len(stores)-1].GetUser(t.Context(), "alice"); err != nil {
				t.Errorf("round %d: GetUser via another Store: %v", round, err)
			}
		}
		for _, s := range stores {
			if s != nil {
				s.Close()
			}
		}
		if t.Failed() {
			return
		}
	}
}

// While another connection holds the write lock, a write waits for it and
// then gives up with ErrUnavailable once its context's deadline passes.
func TestLockedIsUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authline.db")
	s := openTest(t, path)
	holder, err := rawDB(t, path, "").Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer holder.ExecContext(context.Background(), "ROLLBACK")

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.CreateUser(ctx, store.User{Username: "alice", PasswordHash: []byte("h"), Role: store.RoleUser})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("CreateUser while locked = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("CreateUser took %v, want it to stop at the context deadline", d)
	}
}

// mapErr is fed real driver errors, produced on a bare connection.
func TestMapErr(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authline.db")
	openTest(t, path) // creates the schema
	ctx := t.Context()
	db := rawDB(t, path, "_pragma=busy_timeout(20)")
	insert := func(name, role string, hash any) error {
		_, err := db.ExecContext(ctx, "INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, ?, 0)", name, hash, role)
		return err
	}
	if err := insert("alice", "user", []byte("h")); err != nil {
		t.Fatal(err)
	}

	busy := func() error {
		holder := rawDB(t, path, "")
		c, err := holder.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		defer c.ExecContext(ctx, "ROLLBACK")
		return insert("bob", "user", []byte("h"))
	}

	for _, tc := range []struct {
		name string
		err  error
		want error // nil: none of the store errors
	}{
		{"no rows", db.QueryRowContext(ctx, "SELECT 1 FROM users WHERE username = 'x'").Scan(new(int)), store.ErrNotFound},
		{"unique", insert("alice", "user", []byte("h")), store.ErrConflict},
		{"check", insert("carol", "root", []byte("h")), nil},
		{"not null", insert("dave", "user", nil), nil},
		{"busy", busy(), store.ErrUnavailable},
		{"conn done", sql.ErrConnDone, store.ErrUnavailable},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), store.ErrUnavailable},
		{"syntax", func() error { _, err := db.ExecContext(ctx, "SELEKT"); return err }(), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("the setup produced no error")
			}
			got := mapErr("op", tc.err)
			if !errors.Is(got, tc.err) {
				t.Errorf("mapErr lost the cause: %v", got)
			}
			for _, kind := range []error{store.ErrNotFound, store.ErrConflict, store.ErrUnavailable} {
				if is := errors.Is(got, kind); is != (kind == tc.want) {
					t.Errorf("errors.Is(%v, %v) = %v", got, kind, is)
				}
			}
		})
	}
	if mapErr("op", nil) != nil {
		t.Error("mapErr(nil) != nil")
	}
}

func TestCloseIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authline.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
	// The last connection checkpoints and removes the WAL on close.
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("-wal still there after Close: %v", err)
	}
}

// The DSN is a file: URI; characters that mean something in a URI must
// reach SQLite as part of the file name.
func TestOddPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a b?c#d%41&_pragma=x")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "authline.db")
	for i := range 2 { // the second Open must find the first one's data
		s := openTest(t, path)
		if i == 0 {
			if err := s.CreateUser(t.Context(), store.User{Username: "alice", PasswordHash: []byte("h"), Role: store.RoleUser}); err != nil {
				t.Fatal(err)
			}
		} else if _, err := s.GetUser(t.Context(), "alice"); err != nil {
			t.Errorf("GetUser after reopen: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "authline.db" {
		t.Errorf("files in %q: %v, want only authline.db", dir, entries)
	}
}

// TestAdminQueriesUseRoleIndex: counting the admins and looking for
// another one read the users_role index, not every user.
func TestAdminQueriesUseRoleIndex(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "authline.db"))
	for _, q := range []string{countAdminsSQL, otherAdminSQL} {
		var args []any
		if strings.Contains(q, "?") {
			args = append(args, "alice")
		}
		rows, err := s.db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if p := strings.Join(plan, "; "); !strings.Contains(p, "INDEX users_role") {
			t.Errorf("%s\nplan: %s; want it to use the index users_role", q, p)
		}
	}
}
