package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/authline/authline/server/store"
	"github.com/authline/authline/server/store/postgres/pgtest"
	"github.com/authline/authline/server/store/storetest"
)

// Close must release every connection and goroutine of the pool.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func randBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// openTest opens dsn and closes the Store when the test ends.
func openTest(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn)
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
	pgtest.BaseDSN(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		_, dsn := pgtest.NewSchema(t)
		return openTest(t, dsn)
	})
}

// version reads the schema version the way migrate does, and checks that
// each migration is recorded once.
func version(t *testing.T, conn *pgx.Conn, schema string) int {
	t.Helper()
	rows, err := conn.Query(t.Context(), "SELECT version FROM "+pgx.Identifier{schema, "schema_migrations"}.Sanitize()+" ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		if v != i+1 {
			t.Fatalf("schema_migrations holds versions %v, want 1..%d once each", vs, len(vs))
		}
	}
	return len(vs)
}

func latestVersion(t *testing.T) int {
	t.Helper()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	return len(ms)
}

func TestReopenKeepsData(t *testing.T) {
	schema, dsn := pgtest.NewSchema(t)
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	want := store.User{Username: "alice", PasswordHash: []byte("$2a$10$x\x00y\xff"), Role: store.RoleAdmin, CreatedAt: time.Unix(1700000000, 0)}
	key := store.SigningKey{KID: "k1", Alg: store.AlgHS256, Private: []byte("\x00secret\xff"), CreatedAt: time.UnixMilli(1700000000123)}

	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "jti-1", exp); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSigningKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, dsn) // migrations already applied: must be a no-op
	got, err := s.GetUser(ctx, "alice")
	if err != nil {
		t.Fatalf("GetUser after reopen: %v", err)
	}
	if got.Username != want.Username || string(got.PasswordHash) != string(want.PasswordHash) ||
		got.Role != want.Role || !got.CreatedAt.Equal(want.CreatedAt) || got.Generation != 1 {
		t.Errorf("GetUser after reopen = %+v, want %+v", got, want)
	}
	if revoked, err := s.IsRevoked(ctx, "jti-1"); err != nil || !revoked {
		t.Errorf("IsRevoked after reopen = %v, %v; want true", revoked, err)
	}
	if keys, err := s.SigningKeys(ctx); err != nil || len(keys) != 1 || string(keys[0].Private) != string(key.Private) {
		t.Errorf("SigningKeys after reopen = %+v, %v; want %+v", keys, err, key)
	}
	if cs, err := s.Changes(ctx, 0, 10); err != nil || len(cs) != 2 {
		t.Errorf("Changes after reopen = %+v, %v; want the revocation and the key", cs, err)
	}
	if v := version(t, pgtest.Connect(t, pgtest.BaseDSN(t)), schema); v != latestVersion(t) || v < 1 {
		t.Errorf("schema version = %d, want %d (one per migration)", v, latestVersion(t))
	}
}

// Instances starting together on a new schema: the advisory lock lets one
// migrate while the others wait, and then they find the schema migrated.
func TestConcurrentOpen(t *testing.T) {
	schema, dsn := pgtest.NewSchema(t)
	ctx := t.Context()
	stores := make([]*Store, 4)
	errs := make([]error, len(stores))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() { <-start; stores[i], errs[i] = Open(ctx, dsn) })
	}
	close(start)
	wg.Wait()
	for i, s := range stores {
		if errs[i] != nil {
			t.Errorf("Open #%d: %v", i, errs[i])
			continue
		}
		defer s.Close()
	}
	if t.Failed() {
		return
	}
	if v := version(t, pgtest.Connect(t, pgtest.BaseDSN(t)), schema); v != latestVersion(t) {
		t.Errorf("schema version = %d, want %d", v, latestVersion(t))
	}
	if err := stores[0].CreateUser(ctx, store.User{Username: "alice", PasswordHash: []byte("h"), Role: store.RoleUser}); err != nil {
		t.Fatal(err)
	}
	for i, s := range stores[1:] {
		if _, err := s.GetUser(ctx, "alice"); err != nil {
			t.Errorf("GetUser via Store #%d: %v", i+1, err)
		}
	}
}

func TestSchemaTooNew(t *testing.T) {
	schema, dsn := pgtest.NewSchema(t)
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	conn := pgtest.Connect(t, pgtest.BaseDSN(t))
	table := pgx.Identifier{schema, "schema_migrations"}.Sanitize()
	if _, err := conn.Exec(t.Context(), "INSERT INTO "+table+" (version, name) VALUES (9999, '9999_future.sql')"); err != nil {
		t.Fatal(err)
	}

	s, err = Open(t.Context(), dsn)
	if err == nil {
		s.Close()
		t.Fatal("Open(newer schema) succeeded")
	}
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("Open(newer schema) = %v, want ErrSchemaTooNew", err)
	}
	if errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open(newer schema) = %v: ErrUnavailable, but retrying cannot help", err)
	}
	t.Logf("error reads: %v", err)
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != latestVersion(t)+1 {
		t.Errorf("schema_migrations has %d rows, %v; want it untouched", n, err)
	}
}

// A schema written by an older authline (here: version 2) migrates in
// place and keeps its data; its users get the defaults of the new columns.
func TestMigrateFrom2(t *testing.T) {
	schema, dsn := pgtest.NewSchema(t)
	ctx := t.Context()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	conn := pgtest.Connect(t, dsn) // search_path is the schema
	if _, err := conn.Exec(ctx, fmt.Sprintf(createVersionTable, "schema_migrations")); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:2] {
		if _, err := conn.Exec(ctx, m.sql); err != nil {
			t.Fatalf("migration %s: %v", m.name, err)
		}
		if _, err := conn.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `INSERT INTO users (username, password_hash, role, created_at)
		VALUES ('alice', '\x00ff'::bytea, 'admin', 1700000000)`); err != nil {
		t.Fatal(err)
	}

	s := openTest(t, dsn)
	if v := version(t, conn, schema); v != len(ms) {
		t.Errorf("schema version = %d, want %d", v, len(ms))
	}
	got, err := s.GetUser(ctx, "alice")
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if string(got.PasswordHash) != "\x00\xff" || got.Role != store.RoleAdmin || !got.CreatedAt.Equal(time.Unix(1700000000, 0)) ||
		!got.LastLogin.IsZero() || got.Disabled || got.Generation != 1 {
		t.Errorf("GetUser after migration = %+v", got)
	}
	if gen, err := s.BumpGeneration(ctx, "alice", "test"); err != nil || gen != 2 {
		t.Errorf("BumpGeneration = %d, %v; want 2", gen, err)
	}
	if err := s.SetDisabled(ctx, "alice", true); !errors.Is(err, store.ErrLastAdmin) {
		t.Errorf("SetDisabled(last admin) = %v, want ErrLastAdmin", err)
	}
	if cs, err := s.Changes(ctx, 0, 10); err != nil || len(cs) != 1 || cs[0].Seq != 1 {
		t.Errorf("Changes = %+v, %v; want the one change, seq 1", cs, err)
	}
}

// Version N must mean the same schema in both backends: the migrations
// come in pairs, with the same names.
func TestMigrationsMatchSQLite(t *testing.T) {
	sqliteFiles, err := filepath.Glob(filepath.Join("..", "sqlite", "migrations", "*.sql"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range sqliteFiles {
		want = append(want, filepath.Base(f))
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.name)
	}
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("postgres migrations = %q, sqlite migrations = %q; want the same", got, want)
	}
}

// Usernames (and kids) must sort by their bytes whatever the database's
// collation; the suite cannot tell on a server whose default collation
// happens to be C.UTF-8, so check the columns.
func TestByteOrderCollation(t *testing.T) {
	schema, dsn := pgtest.NewSchema(t)
	openTest(t, dsn)
	rows, err := pgtest.Connect(t, pgtest.BaseDSN(t)).Query(t.Context(), `SELECT table_name || '.' || column_name, coalesce(collation_name, '')
		FROM information_schema.columns
		WHERE table_schema = $1 AND column_name IN ('username', 'kid') ORDER BY 1`, schema)
	if err != nil {
		t.Fatal(err)
	}
	type column struct{ Name, Collation string }
	cols, err := pgx.CollectRows(rows, pgx.RowToStructByPos[column])
	if err != nil {
		t.Fatal(err)
	}
	if len(cols) < 5 {
		t.Errorf("found %d username and kid columns, want 5 or more: %+v", len(cols), cols)
	}
	for _, c := range cols {
		if c.Collation != "C" {
			t.Errorf("%s: collation %q, want C", c.Name, c.Collation)
		}
	}
}

// Changes become visible in seq order even when many transactions append
// at once, so a follower polling with "after the last seq I saw" misses
// none.
func TestChangeFeedFollower(t *testing.T) {
	_, dsn := pgtest.NewSchema(t)
	s := openTest(t, dsn)
	ctx := t.Context()
	const writers, each = 8, 40
	for i := range writers {
		if err := s.CreateUser(ctx, store.User{Username: fmt.Sprint("u", i), PasswordHash: []byte("h"), Role: store.RoleUser}); err != nil {
			t.Fatal(err)
		}
	}

	var seen []int64
	done := make(chan struct{})
	followed := make(chan error, 1)
	go func() {
		var after int64
		for {
			finished := false
			select {
			case <-done:
				finished = true // one more read sees the last commits
			default:
			}
			cs, err := s.Changes(ctx, after, 1000)
			if err != nil {
				followed <- err
				return
			}
			for _, c := range cs {
				seen = append(seen, c.Seq)
				after = c.Seq
			}
			if finished {
				followed <- nil
				return
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			for j := range each {
				var err error
				if j%2 == 0 {
					_, err = s.BumpGeneration(ctx, fmt.Sprint("u", i), "test")
				} else {
					err = s.RevokeToken(ctx, fmt.Sprint("jti-", i, "-", j), time.Now().Add(time.Hour))
				}
				if err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	if err := <-followed; err != nil {
		t.Fatalf("follower: Changes: %v", err)
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	all, err := s.Changes(ctx, 0, 10*writers*each)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != writers*each {
		t.Fatalf("Changes = %d changes, want %d", len(all), writers*each)
	}
	var want []int64
	for _, c := range all {
		want = append(want, c.Seq)
	}
	if !slices.Equal(seen, want) {
		missed := 0
		for _, seq := range want {
			if !slices.Contains(seen, seq) {
				missed++
			}
		}
		t.Errorf("the follower saw %d changes and missed %d of %d", len(seen), missed, len(want))
	}
}

// Calls racing Close either complete or fail with ErrUnavailable; Close
// waits for those in flight, and every call after it fails with
// ErrUnavailable that keeps the pool's own error.
func TestClosedPool(t *testing.T) {
	_, dsn := pgtest.NewSchema(t)
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() {
			for range 20 {
				_, err := s.AddLoginFailure(ctx, store.FailureKey{Username: "alice"}, time.Now(), time.Minute)
				if err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	time.Sleep(5 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil && !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("call #%d racing Close = %v, want nil or ErrUnavailable", i, err)
		}
	}

	_, err = s.GetUser(ctx, "alice")
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("GetUser after Close = %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "closed pool") {
		t.Errorf("GetUser after Close = %v: lost the pool's error", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// When the server ends the Store's sessions (a restart, a failover, an
// admin's pg_terminate_backend), calls fail with ErrUnavailable, not some
// other error, and the pool then reconnects.
func TestTerminatedSessions(t *testing.T) {
	schema, dsn := pgtest.NewSchema(t)
	s := openTest(t, dsn)
	ctx := t.Context()
	if err := s.CreateUser(ctx, store.User{Username: "alice", PasswordHash: []byte("h"), Role: store.RoleUser}); err != nil {
		t.Fatal(err)
	}
	admin := pgtest.Connect(t, pgtest.BaseDSN(t))
	var killed int
	if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND pid <> pg_backend_pid()`, schema).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("found no session of the Store to end")
	}
	ok := false
	for i := range 10 {
		_, err := s.GetUser(ctx, "alice")
		if err == nil {
			ok = true
			break
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("GetUser #%d after the sessions ended = %v, want nil or ErrUnavailable", i, err)
		}
		t.Logf("GetUser #%d: %v", i, err)
	}
	if !ok {
		t.Error("the Store did not recover from ended sessions")
	}
}

// With several schemas on the search_path, the store lives in the first
// and never takes a later one's tables for its own.
func TestSearchPathFirstSchema(t *testing.T) {
	first, _ := pgtest.NewSchema(t)
	later, laterDSN := pgtest.NewSchema(t)
	ctx := t.Context()
	// A later schema holding a store from the future, and users.
	conn := pgtest.Connect(t, laterDSN)
	if _, err := conn.Exec(ctx, fmt.Sprintf(createVersionTable, "schema_migrations")); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql');
		CREATE TABLE users (username TEXT PRIMARY KEY); INSERT INTO users VALUES ('mallory')`); err != nil {
		t.Fatal(err)
	}

	s := openTest(t, pgtest.WithParams(t, pgtest.BaseDSN(t), map[string]string{"search_path": first + "," + later}))
	if v := version(t, conn, first); v != latestVersion(t) {
		t.Errorf("version of %s = %d, want %d", first, v, latestVersion(t))
	}
	if err := s.CreateUser(ctx, store.User{Username: "alice", PasswordHash: []byte("h"), Role: store.RoleUser}); err != nil {
		t.Fatal(err)
	}
	users, err := s.ListUsers(ctx)
	if err != nil || len(users) != 1 || users[0].Username != "alice" {
		t.Errorf("ListUsers = %+v, %v; want only alice", users, err)
	}
}

func TestNoSchema(t *testing.T) {
	dsn := pgtest.WithParams(t, pgtest.BaseDSN(t), map[string]string{"search_path": "authline_no_such_schema"})
	s, err := Open(t.Context(), dsn)
	if err == nil {
		s.Close()
		t.Fatal("Open with a search_path of no existing schema succeeded")
	}
	if !strings.Contains(err.Error(), "authline_no_such_schema") {
		t.Errorf("Open = %v, want it to name the search_path", err)
	}
}

// Open fails without a server, as ErrUnavailable; no error shows the
// password.
func TestOpenErrors(t *testing.T) {
	const secret = "s3cr3t-pw"
	for _, tc := range []struct {
		name, dsn   string
		unavailable bool
	}{
		{"nobody listening", "postgres://authline:" + secret + "@127.0.0.1:1/authline?connect_timeout=5&sslmode=disable", true},
		{"password in query", "postgres://127.0.0.1:1/authline?password=" + secret + "&sslmode=disable&connect_timeout=5", true},
		{"bad port", "postgres://authline:" + secret + "@127.0.0.1:99999999/authline", false},
		{"bad parameter", "postgres://authline:" + secret + "@127.0.0.1/authline?pool_max_conns=many", false},
		{"key=value", "host=127.0.0.1 port=1 user=authline password=" + secret + " dbname=authline connect_timeout=5 sslmode=disable", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.dsn)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Open = %v: shows the password", err)
			}
			if got := errors.Is(err, store.ErrUnavailable); got != tc.unavailable {
				t.Errorf("Open = %v: ErrUnavailable %v, want %v", err, got, tc.unavailable)
			}
		})
	}
}

// mapErr is fed real errors from a server.
func TestMapErr(t *testing.T) {
	_, dsn := pgtest.NewSchema(t)
	openTest(t, dsn) // creates the schema
	ctx := t.Context()
	conn := pgtest.Connect(t, dsn)
	insert := func(name, role string, hash any) error {
		_, err := conn.Exec(ctx, "INSERT INTO users (username, password_hash, role, created_at) VALUES ($1, $2, $3, 0)", name, hash, role)
		return err
	}
	if err := insert("alice", "user", []byte("h")); err != nil {
		t.Fatal(err)
	}

	// lockTimeout: a row locked by another session, waited for in vain.
	lockTimeout := func() error {
		holder := pgtest.Connect(t, dsn)
		tx, err := holder.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, "SELECT 1 FROM users WHERE username = 'alice' FOR UPDATE"); err != nil {
			t.Fatal(err)
		}
		c := pgtest.Connect(t, pgtest.WithParams(t, dsn, map[string]string{"lock_timeout": "50ms"}))
		_, err = c.Exec(ctx, "UPDATE users SET role = 'admin' WHERE username = 'alice'")
		return err
	}
	// terminated: a session the server ended, used again.
	terminated := func() error {
		victim := pgtest.Connect(t, dsn)
		if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend($1)", victim.PgConn().PID()); err != nil {
			t.Fatal(err)
		}
		var err error
		for range 100 { // until the server has ended it
			if _, err = victim.Exec(ctx, "SELECT 1"); err != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		return err
	}
	connectErr := func(dsn string) error {
		c, err := pgx.Connect(ctx, dsn)
		if err == nil {
			c.Close(ctx)
		}
		return err
	}
	expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()

	for _, tc := range []struct {
		name string
		err  error
		want error // nil: none of the store errors
	}{
		{"no rows", conn.QueryRow(ctx, "SELECT 1 FROM users WHERE username = 'x'").Scan(new(int)), store.ErrNotFound},
		{"unique", insert("alice", "user", []byte("h")), store.ErrConflict},
		{"check", insert("carol", "root", []byte("h")), nil},
		{"not null", insert("dave", "user", nil), nil},
		{"syntax", func() error { _, err := conn.Exec(ctx, "SELEKT"); return err }(), nil},
		{"lock timeout", lockTimeout(), store.ErrUnavailable},
		{"terminated", terminated(), store.ErrUnavailable},
		{"expired context", func() error { _, err := conn.Exec(expired, "SELECT 1"); return err }(), store.ErrUnavailable},
		{"canceled context", func() error { _, err := conn.Exec(canceled, "SELECT 1"); return err }(), nil},
		{"deadline mid-query", func() error { _, err := conn.Exec(short, "SELECT pg_sleep(5)"); return err }(), store.ErrUnavailable},
		{"connection refused", connectErr("postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=5"), store.ErrUnavailable},
		{"no such database", connectErr(withDatabase(t, pgtest.BaseDSN(t), "authline_no_such_db")), nil},
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

// withDatabase returns dsn naming another database.
func withDatabase(t *testing.T, dsn, db string) string {
	t.Helper()
	if !strings.Contains(dsn, "://") {
		return dsn + " dbname=" + db
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	return u.String()
}

// TestAdminQueriesUseRoleIndex: counting the admins and locking them can
// read the users_role index rather than every user. (With sequential
// scans off, so that the planner shows the index even on a small table.)
func TestAdminQueriesUseRoleIndex(t *testing.T) {
	_, dsn := pgtest.NewSchema(t)
	openTest(t, dsn) // migrates
	conn := pgtest.Connect(t, dsn)
	ctx := t.Context()
	if _, err := conn.Exec(ctx, "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		query string
		args  []any
	}{
		{countAdminsSQL, nil},
		{lockAdminsSQL, []any{"alice"}},
	} {
		rows, err := conn.Query(ctx, "EXPLAIN "+tc.query, tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if p := strings.Join(plan, "\n"); !strings.Contains(p, "users_role") {
			t.Errorf("%s\nplan:\n%s\nwant it to use the index users_role", tc.query, p)
		}
	}
}
