// Command seed fills an authline SQLite store with many users, for
// benchmarks that need a large store (startup time with 100,000 users, in
// bench/run.sh):
//
//	go run ./bench/seed --db /tmp/authline.db --users 100000
//
// The store is created (and migrated) if it does not exist. The users are
// named PREFIX000000, PREFIX000001, ... with role user and one bcrypt hash
// of a random password, computed once and shared (nobody can log in as
// them); one admin, PREFIXadmin, is added too, as a real store has one.
//
// --method api creates every user with the store's CreateUser, one
// transaction (one fsync) each: slow, but through the store's own code
// only. --method sql (the default) creates the first user with CreateUser
// and then copies its row, under new names, with one INSERT ... SELECT in
// one transaction: the columns are read from the table, so the copy
// follows the schema that the store's migrations made.
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/authline/authline/server/store"
	"github.com/authline/authline/server/store/sqlite"
)

type options struct {
	DB     string
	Users  int
	Prefix string
	Method string // "sql" or "api"
	Cost   int    // bcrypt cost of the shared hash
}

func main() {
	var o options
	flag.StringVar(&o.DB, "db", "", "SQLite database file (created if missing)")
	flag.IntVar(&o.Users, "users", 100000, "users to create")
	flag.StringVar(&o.Prefix, "prefix", "seed-", "username prefix")
	flag.StringVar(&o.Method, "method", "sql", "sql: one INSERT ... SELECT; api: CreateUser for each user")
	flag.IntVar(&o.Cost, "cost", bcrypt.DefaultCost, "bcrypt cost of the (shared) password hash")
	flag.Parse()
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) error {
	switch {
	case o.DB == "":
		return errors.New("--db is required")
	case o.Users < 1:
		return errors.New("--users must be at least 1")
	case o.Method != "sql" && o.Method != "api":
		return fmt.Errorf("--method must be sql or api, not %q", o.Method)
	case o.Prefix == "" || strings.ToLower(o.Prefix) != o.Prefix:
		return errors.New("--prefix must be non-empty and lower-case")
	}
	start := time.Now()
	password := rand.Text()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), o.Cost)
	if err != nil {
		return err
	}
	st, err := sqlite.Open(ctx, o.DB)
	if err != nil {
		return err
	}
	defer func() {
		if st != nil {
			st.Close()
		}
	}()
	now := time.Now()
	user := func(i int) store.User {
		return store.User{Username: name(o.Prefix, i), PasswordHash: hash, Role: store.RoleUser, CreatedAt: now}
	}
	if err := st.CreateUser(ctx, store.User{Username: o.Prefix + "admin", PasswordHash: hash, Role: store.RoleAdmin, CreatedAt: now}); err != nil {
		return fmt.Errorf("creating %sadmin: %w", o.Prefix, err)
	}
	if err := st.CreateUser(ctx, user(0)); err != nil {
		return fmt.Errorf("creating %s: %w", name(o.Prefix, 0), err)
	}
	if o.Method == "api" {
		for i := 1; i < o.Users; i++ {
			if err := st.CreateUser(ctx, user(i)); err != nil {
				return fmt.Errorf("creating %s: %w", name(o.Prefix, i), err)
			}
		}
	} else {
		if err := st.Close(); err != nil {
			return err
		}
		st = nil
		if err := copyUser(ctx, o.DB, o.Prefix, o.Users); err != nil {
			return err
		}
		if st, err = sqlite.Open(ctx, o.DB); err != nil {
			return err
		}
	}
	n, err := st.CountUsers(ctx)
	if err != nil {
		return err
	}
	if n < o.Users+1 {
		return fmt.Errorf("the store holds %d users, want at least %d", n, o.Users+1)
	}
	fmt.Fprintf(out, "seeded %d users (and %sadmin) into %s in %.2fs (method %s); the store holds %d users\n",
		o.Users, o.Prefix, o.DB, time.Since(start).Seconds(), o.Method, n)
	return nil
}

// name is the username of the i-th user.
func name(prefix string, i int) string { return fmt.Sprintf("%s%06d", prefix, i) }

// copyUser copies the row of user PREFIX000000 to PREFIX000001 ...
// PREFIX(users-1), in one transaction.
func copyUser(ctx context.Context, path, prefix string, users int) error {
	if users < 2 {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	// The driver is modernc.org/sqlite, registered by the store's package.
	db, err := sql.Open("sqlite", "file:"+abs+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT name FROM pragma_table_info('users')")
	if err != nil {
		return err
	}
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return err
		}
		if c != "username" {
			cols = append(cols, `"`+c+`"`)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	if len(cols) == 0 {
		return errors.New("table users has no columns besides username")
	}
	list := strings.Join(cols, ", ")
	q := fmt.Sprintf(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
INSERT INTO users (username, %s)
SELECT ? || printf('%%06d', n.i), %s FROM n, users WHERE users.username = ?`, list, list)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, q, users-1, prefix, name(prefix, 0))
	if err != nil {
		return fmt.Errorf("copying users: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != int64(users-1) {
		return fmt.Errorf("copied %d users, want %d", n, users-1)
	}
	return tx.Commit()
}
