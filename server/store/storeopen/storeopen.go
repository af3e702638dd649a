// Package storeopen opens the store.Store that a --db value names:
//
//	postgres://... or postgresql://...  a PostgreSQL database (postgres.Open)
//	sqlite://PATH                       the SQLite database file at PATH
//	anything else                       the SQLite database file at that path
//
// The schemes are matched as written, in lower case, as pgx expects them.
package storeopen

import (
	"context"
	"net/url"
	"strings"

	"github.com/authline/authline/server/store"
	"github.com/authline/authline/server/store/postgres"
	"github.com/authline/authline/server/store/sqlite"
)

// sqlitePrefix marks a SQLite path given as a URL-like string.
const sqlitePrefix = "sqlite://"

// Open opens the store db names (see the package comment) and migrates its
// schema. ctx bounds only the opening. A PostgreSQL server that cannot be
// reached is reported as store.ErrUnavailable.
func Open(ctx context.Context, db string) (store.Store, error) {
	if IsPostgres(db) {
		s, err := postgres.Open(ctx, db)
		if err != nil {
			return nil, err // a nil *postgres.Store must not become a non-nil store.Store
		}
		return s, nil
	}
	path, _ := SQLitePath(db)
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// IsPostgres reports whether db names a PostgreSQL database.
func IsPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// SQLitePath returns the path of the SQLite database file db names, with
// any sqlite:// prefix removed, and false if db names a PostgreSQL
// database. Callers use it for what only a file has: checking that it
// exists, or putting other files beside it.
func SQLitePath(db string) (string, bool) {
	if IsPostgres(db) {
		return "", false
	}
	path, _ := strings.CutPrefix(db, sqlitePrefix)
	return path, true
}

// Redact returns db fit for logs and messages: a PostgreSQL URL with its
// password (in the user info or the password parameter) replaced by
// "xxxxx"; a SQLite path as it is.
func Redact(db string) string {
	if !IsPostgres(db) {
		return db
	}
	u, err := url.Parse(db)
	if err != nil {
		// Unparseable, so no telling where a password would be.
		scheme, _, _ := strings.Cut(db, "://")
		return scheme + "://(unparseable URL)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
