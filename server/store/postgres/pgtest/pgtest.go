// Package pgtest gives tests schemas of their own on the PostgreSQL server
// named by AUTHLINE_TEST_POSTGRES_DSN, dropped when the test ends. CI sets
// it to postgres://postgres@127.0.0.1:5432/test?sslmode=disable; without
// it the tests that need PostgreSQL are skipped.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DSNEnv is the environment variable naming the test server.
const DSNEnv = "AUTHLINE_TEST_POSTGRES_DSN"

// BaseDSN returns the test server's DSN, or skips the test when DSNEnv is
// not set.
func BaseDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(DSNEnv)
	if dsn == "" {
		t.Skip(DSNEnv + " is not set: PostgreSQL tests skipped")
	}
	return dsn
}

// WithParams returns dsn with the run-time parameters params added, in a
// URL's query or as key=value pairs.
func WithParams(t testing.TB, dsn string, params map[string]string) string {
	t.Helper()
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("%s: %v", DSNEnv, err)
		}
		q := u.Query()
		for k, v := range params {
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	for k, v := range params {
		dsn += fmt.Sprintf(" %s='%s'", k, v) // test names need no escaping
	}
	return dsn
}

// Connect opens a bare connection to dsn, beside any store, closed when
// the test ends.
func Connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// NewSchema creates an empty schema with a random name and returns the
// name and a DSN whose search_path is it (see Schema).
func NewSchema(t testing.TB) (schema, dsn string) {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	schema = "authline_t_" + hex.EncodeToString(b)
	return schema, Schema(t, schema)
}

// Schema creates the schema name, dropped with everything in it when the
// test ends, and returns a DSN whose search_path is it and whose
// application_name is name, so that a test can find a store's sessions.
// Call it before opening a store on the DSN: cleanups run last first, so
// the store is closed before its schema is dropped.
func Schema(t testing.TB, name string) string {
	t.Helper()
	base := BaseDSN(t)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := Connect(t, base).Exec(t.Context(), "CREATE SCHEMA "+ident); err != nil {
		t.Fatalf("create schema %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+ident+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	// search_path takes identifiers: quoted, for names with capitals or
	// dashes.
	return WithParams(t, base, map[string]string{"search_path": ident, "application_name": name})
}
