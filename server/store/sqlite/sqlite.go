// Package sqlite is the SQLite backend of store.Store, on the pure-Go
// (cgo-free) modernc.org/sqlite driver.
//
// The database runs in WAL mode with synchronous=FULL, so a method that
// returned nil has been fsynced to the write-ahead log and survives a crash
// or power loss. The schema is migrated on Open from the numbered files in
// migrations/, tracked with PRAGMA user_version.
package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/authline/authline/server/store"
)

// ErrSchemaTooNew is store.ErrSchemaTooNew, kept here for callers of Open.
var ErrSchemaTooNew = store.ErrSchemaTooNew

const (
	// busyTimeout is how long a statement waits for another connection's
	// lock before it fails with SQLITE_BUSY (reported as ErrUnavailable).
	busyTimeout = 5 * time.Second
	// maxConns bounds the pool. Writers are serialised by SQLite anyway;
	// the bound keeps a burst of requests from opening a file-descriptor
	// set per goroutine.
	maxConns = 16
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is a store.Store kept in one SQLite database file. It is safe for
// concurrent use.
type Store struct {
	path   string
	db     *sql.DB
	closed atomic.Bool

	createUser, getUser, listUsers, listUsersAfter, userState, otherAdmin,
	setRole, setPasswordHash, changePassword, setDisabled, bumpGeneration,
	setLastLogin, deleteUser, countAdmins,
	createRefresh, getRefresh, useRefresh, revokeFamily, purgeRefresh, deleteUserRefresh,
	addChange, latestChange, changes, purgeChanges,
	revokeToken, isRevoked, purgeRevocations,
	addKey, signingKeys, retireKey,
	addFailure, getFailures, resetFailures, clearFailures, purgeFailures *sql.Stmt
	stmts []*sql.Stmt // every prepared statement above, for Close
}

var _ store.Store = (*Store)(nil)

// Open opens the database at path, creating it (mode 0600, as it holds
// password hashes) if it does not exist, and migrates its schema. The parent
// directory must exist. ctx bounds only the opening.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: open: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := createFile(abs); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)

	s := &Store{path: path, db: db}
	if err := s.init(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open %s: %w", path, err), s.Close())
	}
	return s, nil
}

// createFile creates path with mode 0600 unless it exists. SQLite would
// create it 0644; it gives the -wal and -shm files the mode of the database.
func createFile(path string) error {
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("directory %s: %w", dir, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// dsn is the driver's data source name for the absolute path abs. The
// _pragma parameters run on every connection the pool opens, busy_timeout
// first. _txlock=immediate makes BeginTx take the write lock up front, so
// transactions wait in busy_timeout instead of failing on lock upgrade.
func dsn(abs string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // Windows drive letter: file:///C:/...
	}
	// A file: URI, so that the path is escaped ('?', '#', '%') rather than
	// cut at the first '?'.
	u := url.URL{Scheme: "file", Path: p, RawQuery: q.Encode()}
	return u.String()
}

// The admin queries read the users_role index (migration 0005), not every
// user; TestAdminQueriesUseRoleIndex checks the plans.
const (
	countAdminsSQL = `SELECT count(*) FROM users WHERE role = 'admin'`
	otherAdminSQL  = `SELECT EXISTS (SELECT 1 FROM users WHERE role = 'admin' AND disabled = 0 AND username <> ?)`
)

// journalMode opens the pool's first connection and returns its journal
// mode. Turning a new database to WAL (the journal_mode pragma in dsn) needs
// an exclusive lock, and SQLite reports SQLITE_BUSY at once, without calling
// the busy handler, when another process is opening the same new database;
// so that one case is retried here, for as long as busy_timeout would wait.
func journalMode(ctx context.Context, db *sql.DB) (string, error) {
	deadline := time.Now().Add(busyTimeout)
	pause := time.Millisecond
	for {
		var mode string
		err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode)
		if err == nil || !isBusy(err) || time.Now().Add(pause).After(deadline) {
			return mode, err
		}
		select {
		case <-ctx.Done():
			return "", err
		case <-time.After(pause):
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// isBusy reports whether err is SQLite's SQLITE_BUSY, extended or not.
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

func (s *Store) init(ctx context.Context) error {
	// SQLite silently keeps the old journal mode if WAL is impossible
	// (e.g. on some network file systems); refuse rather than run without
	// the durability we promise.
	mode, err := journalMode(ctx, s.db)
	if err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	if err := migrate(ctx, s.db); err != nil {
		return err
	}
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&s.createUser, `INSERT INTO users (username, password_hash, role, created_at, last_login, disabled, generation)
			VALUES (?, ?, ?, ?, ?, ?, ?)`},
		{&s.getUser, `SELECT ` + userColumns + ` FROM users WHERE username = ?`},
		{&s.listUsers, `SELECT ` + userColumns + ` FROM users ORDER BY username`},
		{&s.listUsersAfter, `SELECT ` + userColumns + ` FROM users WHERE username > ? ORDER BY username LIMIT ?`},
		{&s.userState, `SELECT role, disabled FROM users WHERE username = ?`},
		{&s.otherAdmin, otherAdminSQL},
		{&s.setRole, `UPDATE users SET role = ? WHERE username = ?`},
		{&s.setPasswordHash, `UPDATE users SET password_hash = ? WHERE username = ?`},
		{&s.changePassword, `UPDATE users SET password_hash = ?, generation = generation + 1 WHERE username = ?
			RETURNING generation`},
		{&s.setDisabled, `UPDATE users SET disabled = ? WHERE username = ?`},
		{&s.bumpGeneration, `UPDATE users SET generation = generation + 1 WHERE username = ? RETURNING generation`},
		{&s.setLastLogin, `UPDATE users SET last_login = ? WHERE username = ?`},
		{&s.deleteUser, `DELETE FROM users WHERE username = ?`},
		{&s.countAdmins, countAdminsSQL},
		{&s.createRefresh, `INSERT INTO refresh_tokens (hash, family, username, generation, expires_at, used_at)
			VALUES (?, ?, ?, ?, ?, ?)`},
		{&s.getRefresh, `SELECT family, username, generation, expires_at, used_at FROM refresh_tokens WHERE hash = ?`},
		{&s.useRefresh, `UPDATE refresh_tokens SET used_at = ? WHERE hash = ?`},
		{&s.revokeFamily, `DELETE FROM refresh_tokens WHERE family = ?`},
		{&s.purgeRefresh, `DELETE FROM refresh_tokens WHERE expires_at < ?`},
		{&s.deleteUserRefresh, `DELETE FROM refresh_tokens WHERE username = ?`},
		{&s.addChange, `INSERT INTO changes (kind, username, reason, jti, expires, created_at) VALUES (?, ?, ?, ?, ?, ?)`},
		{&s.latestChange, `SELECT coalesce(max(seq), 0) FROM changes`},
		{&s.changes, `SELECT seq, kind, username, reason, jti, expires FROM changes WHERE seq > ? ORDER BY seq LIMIT ?`},
		{&s.purgeChanges, `DELETE FROM changes WHERE created_at < ?`},
		// Revoking again never shortens an existing revocation.
		{&s.revokeToken, `INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?)
			ON CONFLICT (jti) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)
			RETURNING expires_at`},
		{&s.isRevoked, `SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?)`},
		{&s.purgeRevocations, `DELETE FROM revoked_tokens WHERE expires_at < ?`},
		{&s.addKey, `INSERT INTO signing_keys (kid, alg, private, public, created_at) VALUES (?, ?, ?, ?, ?)`},
		{&s.signingKeys, `SELECT kid, alg, private, public, created_at FROM signing_keys
			WHERE retired_at IS NULL ORDER BY created_at, kid`},
		{&s.retireKey, `UPDATE signing_keys SET retired_at = ? WHERE kid = ? AND retired_at IS NULL`},
		{&s.addFailure, `INSERT INTO login_failures (username, ip, count, last_failure) VALUES (?1, ?2, 1, ?3)
			ON CONFLICT (username, ip) DO UPDATE SET
				count = CASE WHEN last_failure < ?4 THEN 1 ELSE count + 1 END,
				last_failure = excluded.last_failure
			RETURNING count, last_failure`},
		{&s.getFailures, `SELECT count, last_failure FROM login_failures WHERE username = ? AND ip = ?`},
		{&s.resetFailures, `DELETE FROM login_failures WHERE username = ? AND ip = ?`},
		{&s.clearFailures, `DELETE FROM login_failures WHERE username = ?`},
		{&s.purgeFailures, `DELETE FROM login_failures WHERE last_failure < ?`},
	} {
		st, err := s.db.PrepareContext(ctx, p.query)
		if err != nil {
			return err
		}
		*p.stmt = st
		s.stmts = append(s.stmts, st)
	}
	return nil
}

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations, which must be numbered 1, 2,
// ... without gaps (0001_init.sql, 0002_....sql).
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations") // sorted by name
	if err != nil {
		return nil, err
	}
	var ms []migration
	for i, e := range entries {
		num, _, _ := strings.Cut(e.Name(), "_")
		if v, err := strconv.Atoi(num); err != nil || v != i+1 {
			return nil, fmt.Errorf("migration %s: want version %d", e.Name(), i+1)
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: i + 1, name: e.Name(), sql: string(b)})
	}
	return ms, nil
}

// migrate brings the schema up to date in one transaction. The transaction
// is IMMEDIATE (see dsn), so two processes opening a new database at once
// cannot both migrate it.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	latest := len(ms)

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // no-op after Commit

	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	switch {
	case v > latest:
		return fmt.Errorf("%w (version %d, this binary knows up to %d); upgrade authline",
			ErrSchemaTooNew, v, latest)
	case v < 0:
		return fmt.Errorf("invalid schema version %d", v)
	case v == latest:
		return nil
	}
	for _, m := range ms[v:] {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	// PRAGMA takes no bound parameters; latest is an int we computed.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", latest)); err != nil {
		return err
	}
	return tx.Commit()
}

// Path returns the path the store was opened with.
func (s *Store) Path() string { return s.path }

// Close closes the database. It is idempotent; other calls after Close
// return store.ErrUnavailable.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	var errs []error
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	errs = append(errs, s.db.Close())
	return errors.Join(errs...)
}

// err maps err with mapErr, and reports any failure during or after Close
// as ErrUnavailable: database/sql says "statement is closed" or "database
// is closed" there, which it exports no error value for.
func (s *Store) err(op string, err error) error {
	if err != nil && s.closed.Load() {
		return fmt.Errorf("sqlite: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	return mapErr(op, err)
}

// mapErr wraps err, adding the store error it stands for, if any; the
// cause stays reachable with errors.Is/As.
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var kind error
	var se *sqlite.Error
	switch {
	case errors.Is(err, sql.ErrNoRows):
		kind = store.ErrNotFound
	case errors.Is(err, sql.ErrConnDone), errors.Is(err, context.DeadlineExceeded):
		kind = store.ErrUnavailable
	case errors.As(err, &se):
		// Codes are extended (the driver turns extended codes on).
		switch code := se.Code(); {
		case code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, code == sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			kind = store.ErrConflict
		case isBusy(err): // still locked after busy_timeout
			kind = store.ErrUnavailable
		}
	}
	if kind == nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	return fmt.Errorf("sqlite: %s: %w: %w", op, kind, err)
}

// execOne runs a statement that must touch exactly one user.
func (s *Store) execOne(ctx context.Context, op string, st *sql.Stmt, args ...any) error {
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return s.err(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.err(op, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: %s: %w", op, store.ErrNotFound)
	}
	return nil
}

func checkRole(role string) error {
	if !store.ValidRole(role) {
		return fmt.Errorf("sqlite: invalid role %q", role)
	}
	return nil
}

// write runs fn in a write transaction and commits it if fn returns nil.
// The transaction is IMMEDIATE (see dsn): it holds the write lock from the
// start, so what fn reads cannot change under it before it commits; a
// check and the change it guards are one atomic step.
func (s *Store) write(ctx context.Context, op string, fn func(t txn) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.err(op, err)
	}
	defer tx.Rollback() // no-op after Commit
	if err := fn(txn{ctx: ctx, tx: tx}); err != nil {
		return s.err(op, err)
	}
	return s.err(op, tx.Commit())
}

// txn runs the store's prepared statements inside one transaction.
type txn struct {
	ctx context.Context
	tx  *sql.Tx
}

func (t txn) exec(st *sql.Stmt, args ...any) (sql.Result, error) {
	return t.tx.StmtContext(t.ctx, st).ExecContext(t.ctx, args...)
}

func (t txn) queryRow(st *sql.Stmt, args ...any) *sql.Row {
	return t.tx.StmtContext(t.ctx, st).QueryRowContext(t.ctx, args...)
}

// execOne runs a statement that must touch exactly one user.
func (t txn) execOne(st *sql.Stmt, args ...any) error {
	res, err := t.exec(st, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// appendChange appends c to the change feed, stamped with the current time
// (for PurgeChanges). Expires is kept in whole seconds, like revocations.
func (s *Store) appendChange(t txn, c store.Change) error {
	var exp int64
	if !c.Expires.IsZero() {
		exp = c.Expires.Unix()
	}
	_, err := t.exec(s.addChange, c.Kind, c.Username, c.Reason, c.JTI, exp, time.Now().UnixMilli())
	return err
}

func userChange(username, reason string) store.Change {
	return store.Change{Kind: store.ChangeUser, Username: username, Reason: reason}
}

// adminState is what the last-admin rule needs to know of a user.
type adminState struct {
	role     string
	disabled bool
}

func (a adminState) enabledAdmin() bool { return a.role == store.RoleAdmin && !a.disabled }

// adminState reads username's role and status; ErrNotFound if there is no
// such user.
func (s *Store) adminState(t txn, username string) (adminState, error) {
	var a adminState
	err := t.queryRow(s.userState, username).Scan(&a.role, &a.disabled)
	return a, err
}

// keepAdmin fails with ErrLastAdmin unless an enabled admin other than
// username exists. Callers run it, in the transaction that makes the
// change, when the change takes an enabled admin away.
func (s *Store) keepAdmin(t txn, username string) error {
	var other bool
	if err := t.queryRow(s.otherAdmin, username).Scan(&other); err != nil {
		return err
	}
	if !other {
		return store.ErrLastAdmin
	}
	return nil
}

// nullUnix is t in unix seconds, or NULL for the zero time.
func nullUnix(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Unix()
}

// nullUnixMilli is t in unix milliseconds, or NULL for the zero time.
func nullUnixMilli(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// CreateUser implements store.Store. A zero Generation is stored as 1.
// Times are kept in whole seconds.
func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	if err := checkRole(u.Role); err != nil {
		return err
	}
	gen := u.Generation
	if gen == 0 {
		gen = 1
	}
	_, err := s.createUser.ExecContext(ctx, u.Username, u.PasswordHash, u.Role, u.CreatedAt.Unix(),
		nullUnix(u.LastLogin), u.Disabled, gen)
	return s.err("create user", err)
}

type scanner interface{ Scan(dest ...any) error }

// userColumns are the columns scanUser reads, in its order.
const userColumns = `username, password_hash, role, created_at, last_login, disabled, generation`

func scanUser(sc scanner) (store.User, error) {
	var u store.User
	var created int64
	var lastLogin sql.NullInt64
	if err := sc.Scan(&u.Username, &u.PasswordHash, &u.Role, &created, &lastLogin, &u.Disabled, &u.Generation); err != nil {
		return store.User{}, err
	}
	u.CreatedAt = time.Unix(created, 0).UTC()
	if lastLogin.Valid {
		u.LastLogin = time.Unix(lastLogin.Int64, 0).UTC()
	}
	return u, nil
}

// GetUser implements store.Store.
func (s *Store) GetUser(ctx context.Context, username string) (store.User, error) {
	u, err := scanUser(s.getUser.QueryRowContext(ctx, username))
	if err != nil {
		return store.User{}, s.err("get user", err)
	}
	return u, nil
}

// ListUsers implements store.Store. Usernames sort by their bytes.
func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	return s.queryUsers(ctx, "list users", s.listUsers)
}

// ListUsersAfter implements store.Store. Usernames sort by their bytes. A
// limit below 1 returns no users.
func (s *Store) ListUsersAfter(ctx context.Context, after string, limit int) ([]store.User, error) {
	if limit < 1 {
		return nil, nil
	}
	return s.queryUsers(ctx, "list users", s.listUsersAfter, after, limit)
}

func (s *Store) queryUsers(ctx context.Context, op string, st *sql.Stmt, args ...any) ([]store.User, error) {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, s.err(op, err)
	}
	defer rows.Close()
	var users []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, s.err(op, err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, s.err(op, err)
	}
	return users, nil
}

// SetRole implements store.Store. It records a change even if the user
// had the role already.
func (s *Store) SetRole(ctx context.Context, username, role string) error {
	if err := checkRole(role); err != nil {
		return err
	}
	return s.write(ctx, "set role", func(t txn) error {
		a, err := s.adminState(t, username)
		if err != nil {
			return err
		}
		if a.enabledAdmin() && role != store.RoleAdmin {
			if err := s.keepAdmin(t, username); err != nil {
				return err
			}
		}
		if err := t.execOne(s.setRole, role, username); err != nil {
			return err
		}
		return s.appendChange(t, userChange(username, "role_changed"))
	})
}

// SetPasswordHash implements store.Store.
func (s *Store) SetPasswordHash(ctx context.Context, username string, hash []byte) error {
	return s.execOne(ctx, "set password hash", s.setPasswordHash, hash, username)
}

// ChangePassword implements store.Store.
func (s *Store) ChangePassword(ctx context.Context, username string, hash []byte) (int64, error) {
	var gen int64
	err := s.write(ctx, "change password", func(t txn) error {
		if err := t.queryRow(s.changePassword, hash, username).Scan(&gen); err != nil {
			return err
		}
		return s.appendChange(t, userChange(username, "password_changed"))
	})
	if err != nil {
		return 0, err
	}
	return gen, nil
}

// SetDisabled implements store.Store. It records a change even if the
// user was in that state already.
func (s *Store) SetDisabled(ctx context.Context, username string, disabled bool) error {
	return s.write(ctx, "set disabled", func(t txn) error {
		a, err := s.adminState(t, username)
		if err != nil {
			return err
		}
		if a.enabledAdmin() && disabled {
			if err := s.keepAdmin(t, username); err != nil {
				return err
			}
		}
		if err := t.execOne(s.setDisabled, disabled, username); err != nil {
			return err
		}
		reason := "enabled"
		if disabled {
			reason = "disabled"
		}
		return s.appendChange(t, userChange(username, reason))
	})
}

// BumpGeneration implements store.Store.
func (s *Store) BumpGeneration(ctx context.Context, username, reason string) (int64, error) {
	var gen int64
	err := s.write(ctx, "bump generation", func(t txn) error {
		if err := t.queryRow(s.bumpGeneration, username).Scan(&gen); err != nil {
			return err
		}
		return s.appendChange(t, userChange(username, reason))
	})
	if err != nil {
		return 0, err
	}
	return gen, nil
}

// SetLastLogin implements store.Store; ErrNotFound if there is no such
// user. The time is kept in whole seconds.
func (s *Store) SetLastLogin(ctx context.Context, username string, at time.Time) error {
	return s.execOne(ctx, "set last login", s.setLastLogin, nullUnix(at), username)
}

// DeleteUser implements store.Store. The user's refresh tokens go with
// them.
func (s *Store) DeleteUser(ctx context.Context, username string) error {
	return s.write(ctx, "delete user", func(t txn) error {
		a, err := s.adminState(t, username)
		if err != nil {
			return err
		}
		if a.enabledAdmin() {
			if err := s.keepAdmin(t, username); err != nil {
				return err
			}
		}
		if _, err := t.exec(s.deleteUserRefresh, username); err != nil {
			return err
		}
		if err := t.execOne(s.deleteUser, username); err != nil {
			return err
		}
		return s.appendChange(t, userChange(username, "deleted"))
	})
}

// CountAdmins implements store.Store. Disabled admins count.
func (s *Store) CountAdmins(ctx context.Context) (int, error) {
	var n int
	if err := s.countAdmins.QueryRowContext(ctx).Scan(&n); err != nil {
		return 0, s.err("count admins", err)
	}
	return n, nil
}

// CreateRefreshToken implements store.Store; ErrConflict if a token with
// that hash exists. Times are kept to the millisecond.
func (s *Store) CreateRefreshToken(ctx context.Context, rt store.RefreshToken) error {
	_, err := s.createRefresh.ExecContext(ctx, rt.Hash, rt.Family, rt.Username, rt.Generation,
		rt.ExpiresAt.UnixMilli(), nullUnixMilli(rt.UsedAt))
	return s.err("create refresh token", err)
}

// UseRefreshToken implements store.Store. On success the returned token's
// UsedAt is now (to the millisecond), as stored; with ErrReused it is the
// time of the earlier use. A token is still good at its ExpiresAt, compared
// to the millisecond.
func (s *Store) UseRefreshToken(ctx context.Context, hash []byte, now time.Time) (store.RefreshToken, error) {
	rt := store.RefreshToken{Hash: bytes.Clone(hash)}
	err := s.write(ctx, "use refresh token", func(t txn) error {
		var exp int64
		var used sql.NullInt64
		err := t.queryRow(s.getRefresh, hash).Scan(&rt.Family, &rt.Username, &rt.Generation, &exp, &used)
		if err != nil {
			return err
		}
		rt.ExpiresAt = time.UnixMilli(exp).UTC()
		if exp < now.UnixMilli() {
			return store.ErrNotFound
		}
		if used.Valid {
			rt.UsedAt = time.UnixMilli(used.Int64).UTC()
			return store.ErrReused
		}
		rt.UsedAt = time.UnixMilli(now.UnixMilli()).UTC()
		return t.execOne(s.useRefresh, now.UnixMilli(), hash)
	})
	switch {
	case errors.Is(err, store.ErrReused):
		return rt, err
	case err != nil:
		return store.RefreshToken{}, err
	}
	return rt, nil
}

// RevokeRefreshFamily implements store.Store. Revoking a family that has
// no tokens is not an error.
func (s *Store) RevokeRefreshFamily(ctx context.Context, family string) error {
	_, err := s.revokeFamily.ExecContext(ctx, family)
	return s.err("revoke refresh family", err)
}

// PurgeRefreshTokens implements store.Store, comparing to the millisecond.
func (s *Store) PurgeRefreshTokens(ctx context.Context, now time.Time) (int, error) {
	return s.execCount(ctx, "purge refresh tokens", s.purgeRefresh, now.UnixMilli())
}

// LatestChange implements store.Store. After PurgeChanges deleted every
// change it is 0 again; new changes still get higher numbers than any
// before.
func (s *Store) LatestChange(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.latestChange.QueryRowContext(ctx).Scan(&seq); err != nil {
		return 0, s.err("latest change", err)
	}
	return seq, nil
}

// Changes implements store.Store. A limit below 1 returns no changes.
// Expires is in whole seconds, and zero for user changes.
func (s *Store) Changes(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	const op = "changes"
	if limit < 1 {
		return nil, nil
	}
	rows, err := s.changes.QueryContext(ctx, after, limit)
	if err != nil {
		return nil, s.err(op, err)
	}
	defer rows.Close()
	var cs []store.Change
	for rows.Next() {
		var c store.Change
		var exp int64
		if err := rows.Scan(&c.Seq, &c.Kind, &c.Username, &c.Reason, &c.JTI, &exp); err != nil {
			return nil, s.err(op, err)
		}
		if exp != 0 {
			c.Expires = time.Unix(exp, 0).UTC()
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.err(op, err)
	}
	return cs, nil
}

// PurgeChanges implements store.Store, comparing to the millisecond the
// time each change was written.
func (s *Store) PurgeChanges(ctx context.Context, before time.Time) (int, error) {
	return s.execCount(ctx, "purge changes", s.purgeChanges, before.UnixMilli())
}

// RevokeToken implements store.Store. Revoking a token again keeps the
// later of the two expiry times; each call records a change carrying the
// expiry in force after it.
func (s *Store) RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error {
	return s.write(ctx, "revoke token", func(t txn) error {
		var exp int64
		if err := t.queryRow(s.revokeToken, jti, expiresAt.Unix()).Scan(&exp); err != nil {
			return err
		}
		return s.appendChange(t, store.Change{Kind: store.ChangeRevoke, JTI: jti, Expires: time.Unix(exp, 0)})
	})
}

// IsRevoked implements store.Store.
func (s *Store) IsRevoked(ctx context.Context, jti string) (bool, error) {
	var revoked bool
	if err := s.isRevoked.QueryRowContext(ctx, jti).Scan(&revoked); err != nil {
		return false, s.err("is revoked", err)
	}
	return revoked, nil
}

// PurgeRevocations implements store.Store. Times are compared in whole
// seconds; a revocation expiring within now's second is kept.
func (s *Store) PurgeRevocations(ctx context.Context, now time.Time) (int, error) {
	return s.execCount(ctx, "purge revocations", s.purgeRevocations, now.Unix())
}

// checkSigningKey refuses a key that could never sign or verify.
func checkSigningKey(k store.SigningKey) error {
	if err := k.Validate(); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return nil
}

// AddSigningKey implements store.Store. CreatedAt is kept to the
// millisecond.
func (s *Store) AddSigningKey(ctx context.Context, k store.SigningKey) error {
	if err := checkSigningKey(k); err != nil {
		return err
	}
	var public any // NULL for HS256
	if len(k.Public) > 0 {
		public = k.Public
	}
	return s.write(ctx, "add signing key", func(t txn) error {
		if _, err := t.exec(s.addKey, k.KID, k.Alg, k.Private, public, k.CreatedAt.UnixMilli()); err != nil {
			return err
		}
		return s.appendChange(t, store.Change{Kind: store.ChangeKeys})
	})
}

// SigningKeys implements store.Store.
func (s *Store) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	const op = "signing keys"
	rows, err := s.signingKeys.QueryContext(ctx)
	if err != nil {
		return nil, s.err(op, err)
	}
	defer rows.Close()
	var keys []store.SigningKey
	for rows.Next() {
		var k store.SigningKey
		var created int64
		if err := rows.Scan(&k.KID, &k.Alg, &k.Private, &k.Public, &created); err != nil {
			return nil, s.err(op, err)
		}
		k.CreatedAt = time.UnixMilli(created).UTC()
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, s.err(op, err)
	}
	return keys, nil
}

// RetireSigningKey implements store.Store.
func (s *Store) RetireSigningKey(ctx context.Context, kid string, at time.Time) error {
	return s.write(ctx, "retire signing key", func(t txn) error {
		if err := t.execOne(s.retireKey, at.UnixMilli(), kid); err != nil {
			return err
		}
		return s.appendChange(t, store.Change{Kind: store.ChangeKeys})
	})
}

// AddLoginFailure implements store.Store.
func (s *Store) AddLoginFailure(ctx context.Context, k store.FailureKey, now time.Time, window time.Duration) (store.Failures, error) {
	var f store.Failures
	var last int64
	err := s.addFailure.QueryRowContext(ctx, k.Username, k.IP, now.UnixMilli(), now.Add(-window).UnixMilli()).Scan(&f.Count, &last)
	if err != nil {
		return store.Failures{}, s.err("add login failure", err)
	}
	f.Last = time.UnixMilli(last).UTC()
	return f, nil
}

// LoginFailures implements store.Store.
func (s *Store) LoginFailures(ctx context.Context, k store.FailureKey) (store.Failures, error) {
	var f store.Failures
	var last int64
	err := s.getFailures.QueryRowContext(ctx, k.Username, k.IP).Scan(&f.Count, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Failures{}, nil
	}
	if err != nil {
		return store.Failures{}, s.err("login failures", err)
	}
	f.Last = time.UnixMilli(last).UTC()
	return f, nil
}

// ResetLoginFailures implements store.Store.
func (s *Store) ResetLoginFailures(ctx context.Context, k store.FailureKey) error {
	_, err := s.resetFailures.ExecContext(ctx, k.Username, k.IP)
	return s.err("reset login failures", err)
}

// ClearLoginFailures implements store.Store.
func (s *Store) ClearLoginFailures(ctx context.Context, username string) (int, error) {
	return s.execCount(ctx, "clear login failures", s.clearFailures, username)
}

// PurgeLoginFailures implements store.Store.
func (s *Store) PurgeLoginFailures(ctx context.Context, before time.Time) (int, error) {
	return s.execCount(ctx, "purge login failures", s.purgeFailures, before.UnixMilli())
}

// execCount runs a statement and returns how many rows it changed.
func (s *Store) execCount(ctx context.Context, op string, st *sql.Stmt, args ...any) (int, error) {
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return 0, s.err(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.err(op, err)
	}
	return int(n), nil
}

// The methods below serve authlined migrate. They run rarely, so their
// statements are not prepared in init.

// CountUsers implements store.Store.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, s.err("count users", err)
	}
	return n, nil
}

// ReplaceUser implements store.Store. Times are kept in whole seconds.
func (s *Store) ReplaceUser(ctx context.Context, u store.User) error {
	if err := checkRole(u.Role); err != nil {
		return err
	}
	gen := u.Generation
	if gen == 0 {
		gen = 1
	}
	return s.write(ctx, "replace user", func(t txn) error {
		a, err := s.adminState(t, u.Username)
		if err != nil {
			return err
		}
		if a.enabledAdmin() && (u.Role != store.RoleAdmin || u.Disabled) {
			if err := s.keepAdmin(t, u.Username); err != nil {
				return err
			}
		}
		_, err = t.tx.ExecContext(t.ctx, `UPDATE users SET password_hash = ?, role = ?, created_at = ?, last_login = ?,
			disabled = ?, generation = ? WHERE username = ?`,
			u.PasswordHash, u.Role, u.CreatedAt.Unix(), nullUnix(u.LastLogin), u.Disabled, gen, u.Username)
		if err != nil {
			return err
		}
		return s.appendChange(t, userChange(u.Username, "replaced"))
	})
}

// ListRevocations implements store.Store. Times are compared in whole
// seconds, as by PurgeRevocations.
func (s *Store) ListRevocations(ctx context.Context, now time.Time) ([]store.Revocation, error) {
	const op = "list revocations"
	rows, err := s.db.QueryContext(ctx, `SELECT jti, expires_at FROM revoked_tokens WHERE expires_at >= ? ORDER BY jti`, now.Unix())
	if err != nil {
		return nil, s.err(op, err)
	}
	defer rows.Close()
	var rs []store.Revocation
	for rows.Next() {
		var r store.Revocation
		var exp int64
		if err := rows.Scan(&r.JTI, &exp); err != nil {
			return nil, s.err(op, err)
		}
		r.ExpiresAt = time.Unix(exp, 0).UTC()
		rs = append(rs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.err(op, err)
	}
	return rs, nil
}

// AllSigningKeys implements store.Store.
func (s *Store) AllSigningKeys(ctx context.Context) ([]store.StoredSigningKey, error) {
	const op = "all signing keys"
	rows, err := s.db.QueryContext(ctx, `SELECT kid, alg, private, public, created_at, retired_at FROM signing_keys
		ORDER BY created_at, kid`)
	if err != nil {
		return nil, s.err(op, err)
	}
	defer rows.Close()
	var keys []store.StoredSigningKey
	for rows.Next() {
		var k store.StoredSigningKey
		var created int64
		var retired sql.NullInt64
		if err := rows.Scan(&k.KID, &k.Alg, &k.Private, &k.Public, &created, &retired); err != nil {
			return nil, s.err(op, err)
		}
		k.CreatedAt = time.UnixMilli(created).UTC()
		if retired.Valid {
			k.RetiredAt = time.UnixMilli(retired.Int64).UTC()
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, s.err(op, err)
	}
	return keys, nil
}

// ImportSigningKey implements store.Store. Times are kept to the
// millisecond.
func (s *Store) ImportSigningKey(ctx context.Context, k store.SigningKey, retiredAt time.Time) error {
	if err := checkSigningKey(k); err != nil {
		return err
	}
	var public any // NULL for HS256
	if len(k.Public) > 0 {
		public = k.Public
	}
	return s.write(ctx, "import signing key", func(t txn) error {
		_, err := t.tx.ExecContext(t.ctx, `INSERT INTO signing_keys (kid, alg, private, public, created_at, retired_at)
			VALUES (?, ?, ?, ?, ?, ?)`, k.KID, k.Alg, k.Private, public, k.CreatedAt.UnixMilli(), nullUnixMilli(retiredAt))
		if err != nil {
			return err
		}
		return s.appendChange(t, store.Change{Kind: store.ChangeKeys})
	})
}

// ListRefreshTokensAfter implements store.Store. Expiry is compared to the
// millisecond, as by PurgeRefreshTokens. A limit below 1 returns no tokens.
func (s *Store) ListRefreshTokensAfter(ctx context.Context, after []byte, limit int, now time.Time) ([]store.RefreshToken, error) {
	const op = "list refresh tokens"
	if limit < 1 {
		return nil, nil
	}
	if after == nil {
		after = []byte{} // a nil slice would be NULL, after which nothing sorts
	}
	rows, err := s.db.QueryContext(ctx, `SELECT hash, family, username, generation, expires_at, used_at FROM refresh_tokens
		WHERE hash > ? AND expires_at >= ? ORDER BY hash LIMIT ?`, after, now.UnixMilli(), limit)
	if err != nil {
		return nil, s.err(op, err)
	}
	defer rows.Close()
	var rts []store.RefreshToken
	for rows.Next() {
		var rt store.RefreshToken
		var exp int64
		var used sql.NullInt64
		if err := rows.Scan(&rt.Hash, &rt.Family, &rt.Username, &rt.Generation, &exp, &used); err != nil {
			return nil, s.err(op, err)
		}
		rt.ExpiresAt = time.UnixMilli(exp).UTC()
		if used.Valid {
			rt.UsedAt = time.UnixMilli(used.Int64).UTC()
		}
		rts = append(rts, rt)
	}
	if err := rows.Err(); err != nil {
		return nil, s.err(op, err)
	}
	return rts, nil
}
