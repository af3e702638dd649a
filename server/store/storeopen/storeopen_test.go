package storeopen

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/authline/authline/server/store"
	"github.com/authline/authline/server/store/postgres"
	"github.com/authline/authline/server/store/postgres/pgtest"
	"github.com/authline/authline/server/store/sqlite"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// roundTrip checks that s works: a user stored can be read back.
func roundTrip(t *testing.T, s store.Store) {
	t.Helper()
	u := store.User{Username: "alice", PasswordHash: []byte("h"), Role: store.RoleUser, CreatedAt: time.Unix(1700000000, 0)}
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if _, err := s.GetUser(t.Context(), "alice"); err != nil {
		t.Fatalf("GetUser: %v", err)
	}
}

func TestOpenSQLite(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range []struct{ db, file string }{
		{filepath.Join(dir, "plain.db"), filepath.Join(dir, "plain.db")},
		{"relative.db", filepath.Join(dir, "relative.db")},
		{"sqlite://" + filepath.Join(dir, "url.db"), filepath.Join(dir, "url.db")}, // sqlite:///abs/url.db
		{"sqlite://rel-url.db", filepath.Join(dir, "rel-url.db")},
	} {
		t.Run(tc.db, func(t *testing.T) {
			s, err := Open(t.Context(), tc.db)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			if _, ok := s.(*sqlite.Store); !ok {
				t.Fatalf("Open(%q) = %T, want *sqlite.Store", tc.db, s)
			}
			roundTrip(t, s)
			if _, err := os.Stat(tc.file); err != nil {
				t.Errorf("no database at %s: %v", tc.file, err)
			}
		})
	}
}

func TestOpenErrorIsNilStore(t *testing.T) {
	for _, db := range []string{
		"",
		"sqlite://",
		filepath.Join(t.TempDir(), "missing", "dir.db"),
		"postgres://authline:pw@127.0.0.1:1/authline?connect_timeout=5&sslmode=disable",
	} {
		s, err := Open(t.Context(), db)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", db)
			continue
		}
		if s != nil {
			t.Errorf("Open(%q) = %#v, %v; want a nil store.Store", db, s, err)
		}
	}
}

// A postgres:// DSN goes to PostgreSQL even without a server to answer:
// the error is the PostgreSQL backend's, and no SQLite file appears.
func TestOpenPostgresDispatch(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, db := range []string{
		"postgres://authline@127.0.0.1:1/authline?connect_timeout=5&sslmode=disable",
		"postgresql://authline@127.0.0.1:1/authline?connect_timeout=5&sslmode=disable",
	} {
		_, err := Open(t.Context(), db)
		if !errors.Is(err, store.ErrUnavailable) || !strings.HasPrefix(err.Error(), "postgres: ") {
			t.Errorf("Open(%q) = %v, want the postgres backend's ErrUnavailable", db, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("Open created %v", entries)
	}
}

// With a server (AUTHLINE_TEST_POSTGRES_DSN), a postgres:// DSN opens a
// working PostgreSQL store.
func TestOpenPostgres(t *testing.T) {
	schema, dsn := pgtest.NewSchema(t)
	if !IsPostgres(dsn) {
		t.Skipf("%s is not a postgres:// URL", pgtest.DSNEnv)
	}
	ctx := t.Context()
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if _, ok := s.(*postgres.Store); !ok {
		t.Fatalf("Open = %T, want *postgres.Store", s)
	}
	roundTrip(t, s)
	var n int
	if err := pgtest.Connect(t, dsn).QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{schema, "users"}.Sanitize()).Scan(&n); err != nil || n != 1 {
		t.Errorf("users in schema %s: %d, %v; want 1", schema, n, err)
	}
}

func TestSQLitePath(t *testing.T) {
	for _, tc := range []struct {
		db, path string
		ok       bool
	}{
		{"authline.db", "authline.db", true},
		{"/var/lib/authline/authline.db", "/var/lib/authline/authline.db", true},
		{"sqlite:///var/lib/authline.db", "/var/lib/authline.db", true},
		{"sqlite://data/authline.db", "data/authline.db", true},
		{"postgres://h/db", "", false},
		{"postgresql://h/db", "", false},
		{"POSTGRES://h/db", "POSTGRES://h/db", true}, // schemes are lower case
		{"postgres:/h/db", "postgres:/h/db", true},   // not a postgres URL: a path
		{"", "", true},
	} {
		path, ok := SQLitePath(tc.db)
		if path != tc.path || ok != tc.ok {
			t.Errorf("SQLitePath(%q) = %q, %v; want %q, %v", tc.db, path, ok, tc.path, tc.ok)
		}
		if IsPostgres(tc.db) == tc.ok {
			t.Errorf("IsPostgres(%q) = %v", tc.db, !tc.ok)
		}
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ db, want string }{
		{"authline.db", "authline.db"},
		{"sqlite:///a:b@c.db", "sqlite:///a:b@c.db"},
		{"postgres://h/db?sslmode=disable", "postgres://h/db?sslmode=disable"},
		{"postgres://authline@h/db", "postgres://authline@h/db"},
		{"postgres://authline:s3cret@h:5432/db?sslmode=verify-full", "postgres://authline:xxxxx@h:5432/db?sslmode=verify-full"},
		{"postgresql://h/db?password=s3cret&sslmode=disable", "postgresql://h/db?password=xxxxx&sslmode=disable"},
		{"postgres://u:s3cret@h/db%zz", "postgres://(unparseable URL)"},
	} {
		got := Redact(tc.db)
		if got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.db, got, tc.want)
		}
		if strings.Contains(got, "s3cret") {
			t.Errorf("Redact(%q) = %q: shows the password", tc.db, got)
		}
	}
}
