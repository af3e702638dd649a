// Package postgres is the PostgreSQL backend of store.Store, on
// github.com/jackc/pgx/v5 and its connection pool, so that several
// authlined instances can share one store.
//
// The schema is migrated on Open from the numbered files in migrations/,
// which mirror the SQLite backend's one for one: schema version N is the
// same tables, columns and units in both. The version is kept in the
// schema_migrations table. Tables are created in, and looked up through,
// the connection's search_path, so one database can hold several stores in
// separate schemas:
//
//	postgres://authline@db.example.com/authline?sslmode=verify-full&search_path=tenant1
//
// The DSN may also set the pool's size (pool_max_conns=N, by default the
// greater of 4 and the number of CPUs) and any other parameter
// pgxpool.ParseConfig knows; behind a pooler in transaction mode such as
// PgBouncer, add default_query_exec_mode=exec, as pgx's per-connection
// statement cache needs a session of its own. The store's locks are all
// transaction-scoped, so they work there too.
//
// It needs PostgreSQL 10 or later (identity columns).
package postgres

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authline/authline/server/store"
)

// ErrSchemaTooNew is store.ErrSchemaTooNew, kept here for callers of Open.
var ErrSchemaTooNew = store.ErrSchemaTooNew

const (
	// migrateLockKey is the key of the transaction-scoped advisory lock
	// under which Open reads the schema version and migrates, so that
	// instances starting together migrate one after another. It is
	// "authline" in ASCII. Advisory locks are per database, so stores in
	// other schemas of the same database wait for it too, but only while
	// one of them opens.
	migrateLockKey int64 = 0x617574686c696e65
	// feedLockClass is the first key of the two-key advisory lock that
	// appendChange holds from just before it inserts a change until the
	// transaction ends; the second key is the oid of the changes table, so
	// stores in different schemas do not wait for each other. See
	// appendChange.
	feedLockClass int32 = 0x616c6366 // "alcf"
	// rollbackTimeout bounds a rollback, which runs even when the
	// caller's context is done.
	rollbackTimeout = 5 * time.Second
	// txAttempts is how often write runs a transaction that failed with a
	// serialization failure or a deadlock before it gives up. The store's
	// transactions take their locks in one order and run at READ
	// COMMITTED, so neither is expected; the retry is a safety net.
	txAttempts = 3
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is a store.Store kept in a PostgreSQL database. It is safe for
// concurrent use, also by several processes on one database.
type Store struct {
	pool   *pgxpool.Pool
	where  string // host:port/database, without credentials, for errors
	closed atomic.Bool
	notify notifier // WaitForChange's listening connection (notify.go)
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by dsn (a postgres:// URL or a
// key=value connection string, as pgxpool.ParseConfig reads them) and
// migrates its schema. The schema lives in the first schema of the
// connection's search_path, which must exist. ctx bounds only the opening.
//
// Errors never contain the DSN's password. A database that cannot be
// reached is reported as store.ErrUnavailable.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn.ParseConfigError masks the password in its text.
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	s := &Store{where: describe(cfg)}
	s.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", s.where, err)
	}
	if err := migrate(ctx, s.pool); err != nil {
		s.Close()
		return nil, mapErr("open "+s.where, err)
	}
	return s, nil
}

// describe names the database cfg connects to, without credentials.
func describe(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	host := c.Host
	if strings.HasPrefix(host, "/") { // a Unix socket directory
		return fmt.Sprintf("%s/.s.PGSQL.%d/%s", host, c.Port, c.Database)
	}
	return fmt.Sprintf("%s/%s", net.JoinHostPort(host, strconv.Itoa(int(c.Port))), c.Database)
}

// String names the database, without credentials.
func (s *Store) String() string { return "postgres " + s.where }

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations, which must be numbered 1, 2,
// ... without gaps (0001_init.sql, 0002_....sql), like SQLite's.
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

// createVersionTable creates the table that records which migrations ran,
// in the schema named by %s: one row per version, the schema's version
// being the highest.
const createVersionTable = `CREATE TABLE %s (
	version    INTEGER     PRIMARY KEY,
	name       TEXT        NOT NULL,
	applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)`

// migrate brings the schema up to date in one transaction, holding the
// advisory lock migrateLockKey from before it reads the version: of
// instances that open a new database at once one migrates it, and the
// others then find it migrated.
//
// The store's tables live in the current schema, the first of the
// search_path that exists: the migrations create them there, unqualified,
// and the version is read from there, so that a schema_migrations table
// further along the search_path (say, in public) is never taken for this
// schema's. A schema at the latest version needs no CREATE privilege.
func migrate(ctx context.Context, pool *pgxpool.Pool) (err error) {
	ms, err := migrations()
	if err != nil {
		return err
	}
	latest := len(ms)

	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, rollback(ctx, tx)) }()

	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLockKey); err != nil {
		return err
	}
	var schema *string
	if err := tx.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return err
	}
	if schema == nil {
		var path string
		if err := tx.QueryRow(ctx, "SHOW search_path").Scan(&path); err != nil {
			return err
		}
		return fmt.Errorf("no schema of search_path %q exists; create it first", path)
	}
	versions := pgx.Identifier{*schema, "schema_migrations"}.Sanitize()
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables
		WHERE schemaname = $1 AND tablename = 'schema_migrations')`, *schema).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if _, err := tx.Exec(ctx, fmt.Sprintf(createVersionTable, versions)); err != nil {
			return err
		}
	}
	var v int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+versions).Scan(&v); err != nil {
		return err
	}
	switch {
	case v > latest:
		return fmt.Errorf("%w (schema %s is at version %d, this binary knows up to %d); upgrade authline",
			ErrSchemaTooNew, *schema, v, latest)
	case v < 0:
		return fmt.Errorf("invalid schema version %d", v)
	case v == latest:
		return nil
	}
	for _, m := range ms[v:] {
		// Without arguments, Exec uses the simple protocol, which runs
		// a file of several statements.
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+versions+" (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// rollback rolls tx back unless it was committed, even if ctx is done.
// pgx closes the connection if it cannot, and the pool then drops it.
func rollback(ctx context.Context, tx pgx.Tx) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	if err := tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return err
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be returned.
// It is idempotent; other calls after Close return store.ErrUnavailable.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.stopListening()
	s.pool.Close()
	return nil
}

// err maps err with mapErr, and reports any failure during or after Close
// as ErrUnavailable (the pool then says "closed pool").
func (s *Store) err(op string, err error) error {
	if err != nil && s.closed.Load() {
		return fmt.Errorf("postgres: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	return mapErr(op, err)
}

// unavailableCodes are the SQLSTATEs, beyond class 08 (connection
// exception), that mean the server cannot serve now but may soon.
var unavailableCodes = map[string]bool{
	"57P01": true, // admin_shutdown: the server or an admin ended the session
	"57P02": true, // crash_shutdown
	"57P03": true, // cannot_connect_now: starting up, shutting down, recovering
	"57014": true, // query_canceled: statement_timeout, or cancelled at a deadline
	"55P03": true, // lock_not_available: lock_timeout
	"53300": true, // too_many_connections
	"40001": true, // serialization_failure, still failing after txAttempts
	"40P01": true, // deadlock_detected, still failing after txAttempts
}

// mapErr wraps err, adding the store error it stands for, if any; the
// cause stays reachable with errors.Is/As.
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if kind := kindOf(err); kind != nil {
		return fmt.Errorf("postgres: %s: %w: %w", op, kind, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// kindOf returns the store error err stands for, or nil.
func kindOf(err error) error {
	var pe *pgconn.PgError
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.ErrNotFound
	case errors.Is(err, context.Canceled):
		// The caller gave up; no outage. (pgx reports a context done
		// before the call as a timeout, whichever way it ended.) SQLite
		// does not map it either.
		return nil
	case errors.As(err, &ce):
		// Could not connect. The server may have answered why: a
		// misconfiguration (wrong password, no such database) is no
		// passing outage; its codes are not unavailableCodes.
		if errors.As(err, &pe) && !unavailableCode(pe.Code) {
			return nil
		}
		return store.ErrUnavailable
	case errors.As(err, &pe):
		switch {
		case pe.Code == "23505": // unique_violation
			return store.ErrConflict
		case unavailableCode(pe.Code):
			return store.ErrUnavailable
		}
		return nil
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err),
		errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.As(err, &ne):
		// A deadline, or a connection that broke under the query.
		return store.ErrUnavailable
	}
	return nil
}

func unavailableCode(code string) bool {
	return strings.HasPrefix(code, "08") || unavailableCodes[code]
}

// retryable reports whether a transaction that failed with err may succeed
// if run again from the start.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// write runs fn in a transaction (READ COMMITTED, the store's locks doing
// the rest) and commits it if fn returns nil.
func (s *Store) write(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := s.tryWrite(ctx, fn)
		if err != nil && attempt < txAttempts && retryable(err) && ctx.Err() == nil {
			continue
		}
		return s.err(op, err)
	}
}

func (s *Store) tryWrite(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, rollback(ctx, tx))
	}
	return tx.Commit(ctx)
}

// execOne runs a statement that must touch exactly one row; ErrNotFound
// if it touched none.
func execOne(ctx context.Context, q execer, sql string, args ...any) error {
	tag, err := q.Exec(ctx, sql, args...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// execer is what the pool and a transaction have in common.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func checkRole(role string) error {
	if !store.ValidRole(role) {
		return fmt.Errorf("postgres: invalid role %q", role)
	}
	return nil
}

// appendChange appends c to the change feed, stamped with the current time
// of this process (for PurgeChanges). Expires is kept in whole seconds,
// like revocations.
//
// The seq comes from a sequence, which numbers inserts in the order they
// happen, not the order their transactions commit: a follower that read
// the feed up to seq 6 would never see a 5 committed after it. So the
// insert is made under an advisory lock held until the transaction ends,
// and the transaction does nothing but commit after it: changes commit in
// seq order, one at a time. Only transactions that record a change (admin
// actions and revocations, none of them on the hot path) queue on it; the
// feed's readers take no lock.
//
// It also notifies the schema's channel, which PostgreSQL delivers to
// WaitForChange's listeners when (and only if) the transaction commits.
func appendChange(ctx context.Context, tx pgx.Tx, c store.Change) error {
	var exp int64
	if !c.Expires.IsZero() {
		exp = c.Expires.Unix()
	}
	// Before the lock, to keep it short: the notice goes out on commit.
	if err := notifyChange(ctx, tx); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, 'changes'::regclass::oid::int4)", feedLockClass); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO changes (kind, username, reason, jti, expires, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		c.Kind, c.Username, c.Reason, c.JTI, exp, time.Now().UnixMilli())
	return err
}

func userChange(username, reason string) store.Change {
	return store.Change{Kind: store.ChangeUser, Username: username, Reason: reason}
}

// The admin queries read the users_role index (migration 0005), not every
// user; TestAdminQueriesUseRoleIndex checks the plans.
const (
	countAdminsSQL = `SELECT count(*) FROM users WHERE role = 'admin'`
	lockAdminsSQL  = `SELECT username, role = 'admin' AND NOT disabled FROM users
		WHERE username = $1 OR (role = 'admin' AND NOT disabled)
		ORDER BY username FOR UPDATE`
)

// lockAdmins locks, in the transaction tx, the row of username and those
// of all enabled admins, and reports whether username exists, whether it
// is an enabled admin, and whether another enabled admin exists.
//
// The rows are locked in username order, so that two of these never
// deadlock, and at READ COMMITTED a row another transaction changed is
// read again, once it committed, before it is locked: two demotions of the
// last two admins queue on the first of the two rows, and the second sees
// the first's result. (A user made an admin by a transaction that began
// after this one's statement is not seen, which only errs on the safe
// side.)
func lockAdmins(ctx context.Context, tx pgx.Tx, username string) (exists, enabledAdmin, otherAdmin bool, err error) {
	rows, err := tx.Query(ctx, lockAdminsSQL, username)
	if err != nil {
		return false, false, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var admin bool
		if err := rows.Scan(&name, &admin); err != nil {
			return false, false, false, err
		}
		if name == username {
			exists, enabledAdmin = true, admin
		} else if admin {
			otherAdmin = true
		}
	}
	return exists, enabledAdmin, otherAdmin, rows.Err()
}

// guardLastAdmin locks the admins (see lockAdmins) and fails with
// ErrNotFound if there is no such user, or ErrLastAdmin if demotes, the
// change about to be made, takes away the last enabled admin.
func guardLastAdmin(ctx context.Context, tx pgx.Tx, username string, demotes bool) error {
	exists, enabledAdmin, otherAdmin, err := lockAdmins(ctx, tx, username)
	switch {
	case err != nil:
		return err
	case !exists:
		return store.ErrNotFound
	case demotes && enabledAdmin && !otherAdmin:
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
	_, err := s.pool.Exec(ctx, `INSERT INTO users (username, password_hash, role, created_at, last_login, disabled, generation)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		u.Username, u.PasswordHash, u.Role, u.CreatedAt.Unix(), nullUnix(u.LastLogin), u.Disabled, gen)
	return s.err("create user", err)
}

// userColumns are the columns scanUser reads, in its order.
const userColumns = `username, password_hash, role, created_at, last_login, disabled, generation`

func scanUser(row pgx.Row) (store.User, error) {
	var u store.User
	var created int64
	var lastLogin *int64
	if err := row.Scan(&u.Username, &u.PasswordHash, &u.Role, &created, &lastLogin, &u.Disabled, &u.Generation); err != nil {
		return store.User{}, err
	}
	u.CreatedAt = time.Unix(created, 0).UTC()
	if lastLogin != nil {
		u.LastLogin = time.Unix(*lastLogin, 0).UTC()
	}
	return u, nil
}

// GetUser implements store.Store.
func (s *Store) GetUser(ctx context.Context, username string) (store.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE username = $1`, username))
	if err != nil {
		return store.User{}, s.err("get user", err)
	}
	return u, nil
}

// ListUsers implements store.Store. Usernames sort by their bytes.
func (s *Store) ListUsers(ctx context.Context) ([]store.User, error) {
	return s.queryUsers(ctx, "list users", `SELECT `+userColumns+` FROM users ORDER BY username`)
}

// ListUsersAfter implements store.Store. Usernames sort by their bytes. A
// limit below 1 returns no users.
func (s *Store) ListUsersAfter(ctx context.Context, after string, limit int) ([]store.User, error) {
	if limit < 1 {
		return nil, nil
	}
	return s.queryUsers(ctx, "list users",
		`SELECT `+userColumns+` FROM users WHERE username > $1 ORDER BY username LIMIT $2`, after, limit)
}

func (s *Store) queryUsers(ctx context.Context, op, sql string, args ...any) ([]store.User, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
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
	return s.write(ctx, "set role", func(tx pgx.Tx) error {
		if err := guardLastAdmin(ctx, tx, username, role != store.RoleAdmin); err != nil {
			return err
		}
		if err := execOne(ctx, tx, `UPDATE users SET role = $1 WHERE username = $2`, role, username); err != nil {
			return err
		}
		return appendChange(ctx, tx, userChange(username, "role_changed"))
	})
}

// SetPasswordHash implements store.Store.
func (s *Store) SetPasswordHash(ctx context.Context, username string, hash []byte) error {
	err := execOne(ctx, s.pool, `UPDATE users SET password_hash = $1 WHERE username = $2`, hash, username)
	return s.err("set password hash", err)
}

// ChangePassword implements store.Store.
func (s *Store) ChangePassword(ctx context.Context, username string, hash []byte) (int64, error) {
	var gen int64
	err := s.write(ctx, "change password", func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE users SET password_hash = $1, generation = generation + 1 WHERE username = $2
			RETURNING generation`, hash, username).Scan(&gen)
		if err != nil {
			return err
		}
		return appendChange(ctx, tx, userChange(username, "password_changed"))
	})
	if err != nil {
		return 0, err
	}
	return gen, nil
}

// SetDisabled implements store.Store. It records a change even if the
// user was in that state already.
func (s *Store) SetDisabled(ctx context.Context, username string, disabled bool) error {
	return s.write(ctx, "set disabled", func(tx pgx.Tx) error {
		if err := guardLastAdmin(ctx, tx, username, disabled); err != nil {
			return err
		}
		if err := execOne(ctx, tx, `UPDATE users SET disabled = $1 WHERE username = $2`, disabled, username); err != nil {
			return err
		}
		reason := "enabled"
		if disabled {
			reason = "disabled"
		}
		return appendChange(ctx, tx, userChange(username, reason))
	})
}

// BumpGeneration implements store.Store.
func (s *Store) BumpGeneration(ctx context.Context, username, reason string) (int64, error) {
	var gen int64
	err := s.write(ctx, "bump generation", func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE users SET generation = generation + 1 WHERE username = $1 RETURNING generation`,
			username).Scan(&gen)
		if err != nil {
			return err
		}
		return appendChange(ctx, tx, userChange(username, reason))
	})
	if err != nil {
		return 0, err
	}
	return gen, nil
}

// SetLastLogin implements store.Store; ErrNotFound if there is no such
// user. The time is kept in whole seconds.
func (s *Store) SetLastLogin(ctx context.Context, username string, at time.Time) error {
	err := execOne(ctx, s.pool, `UPDATE users SET last_login = $1 WHERE username = $2`, nullUnix(at), username)
	return s.err("set last login", err)
}

// DeleteUser implements store.Store. The user's refresh tokens go with
// them.
func (s *Store) DeleteUser(ctx context.Context, username string) error {
	return s.write(ctx, "delete user", func(tx pgx.Tx) error {
		if err := guardLastAdmin(ctx, tx, username, true); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM refresh_tokens WHERE username = $1`, username); err != nil {
			return err
		}
		if err := execOne(ctx, tx, `DELETE FROM users WHERE username = $1`, username); err != nil {
			return err
		}
		return appendChange(ctx, tx, userChange(username, "deleted"))
	})
}

// CountAdmins implements store.Store. Disabled admins count.
func (s *Store) CountAdmins(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, countAdminsSQL).Scan(&n); err != nil {
		return 0, s.err("count admins", err)
	}
	return n, nil
}

// CreateRefreshToken implements store.Store; ErrConflict if a token with
// that hash exists. Times are kept to the millisecond.
func (s *Store) CreateRefreshToken(ctx context.Context, rt store.RefreshToken) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO refresh_tokens (hash, family, username, generation, expires_at, used_at)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		rt.Hash, rt.Family, rt.Username, rt.Generation, rt.ExpiresAt.UnixMilli(), nullUnixMilli(rt.UsedAt))
	return s.err("create refresh token", err)
}

// UseRefreshToken implements store.Store. On success the returned token's
// UsedAt is now (to the millisecond), as stored; with ErrReused it is the
// time of the earlier use. A token is still good at its ExpiresAt, compared
// to the millisecond. The token's row is locked (FOR UPDATE) from the read
// to the commit, so of concurrent uses the first marks it used and the
// others, waiting on the lock, then read it used.
func (s *Store) UseRefreshToken(ctx context.Context, hash []byte, now time.Time) (store.RefreshToken, error) {
	rt := store.RefreshToken{Hash: bytes.Clone(hash)}
	err := s.write(ctx, "use refresh token", func(tx pgx.Tx) error {
		var exp int64
		var used *int64
		err := tx.QueryRow(ctx, `SELECT family, username, generation, expires_at, used_at FROM refresh_tokens
			WHERE hash = $1 FOR UPDATE`, hash).Scan(&rt.Family, &rt.Username, &rt.Generation, &exp, &used)
		if err != nil {
			return err
		}
		rt.ExpiresAt = time.UnixMilli(exp).UTC()
		if exp < now.UnixMilli() {
			return store.ErrNotFound
		}
		if used != nil {
			rt.UsedAt = time.UnixMilli(*used).UTC()
			return store.ErrReused
		}
		rt.UsedAt = time.UnixMilli(now.UnixMilli()).UTC()
		return execOne(ctx, tx, `UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2`, now.UnixMilli(), hash)
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
	_, err := s.pool.Exec(ctx, `DELETE FROM refresh_tokens WHERE family = $1`, family)
	return s.err("revoke refresh family", err)
}

// PurgeRefreshTokens implements store.Store, comparing to the millisecond.
func (s *Store) PurgeRefreshTokens(ctx context.Context, now time.Time) (int, error) {
	return s.execCount(ctx, "purge refresh tokens", `DELETE FROM refresh_tokens WHERE expires_at < $1`, now.UnixMilli())
}

// LatestChange implements store.Store. After PurgeChanges deleted every
// change it is 0 again; new changes still get higher numbers than any
// before.
func (s *Store) LatestChange(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM changes`).Scan(&seq); err != nil {
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
	rows, err := s.pool.Query(ctx, `SELECT seq, kind, username, reason, jti, expires FROM changes
		WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
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
	return s.execCount(ctx, "purge changes", `DELETE FROM changes WHERE created_at < $1`, before.UnixMilli())
}

// RevokeToken implements store.Store. Revoking a token again keeps the
// later of the two expiry times; each call records a change carrying the
// expiry in force after it.
func (s *Store) RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error {
	return s.write(ctx, "revoke token", func(tx pgx.Tx) error {
		var exp int64
		err := tx.QueryRow(ctx, `INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2)
			ON CONFLICT (jti) DO UPDATE SET expires_at = greatest(revoked_tokens.expires_at, excluded.expires_at)
			RETURNING expires_at`, jti, expiresAt.Unix()).Scan(&exp)
		if err != nil {
			return err
		}
		return appendChange(ctx, tx, store.Change{Kind: store.ChangeRevoke, JTI: jti, Expires: time.Unix(exp, 0)})
	})
}

// IsRevoked implements store.Store.
func (s *Store) IsRevoked(ctx context.Context, jti string) (bool, error) {
	var revoked bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $1)`, jti).Scan(&revoked)
	if err != nil {
		return false, s.err("is revoked", err)
	}
	return revoked, nil
}

// PurgeRevocations implements store.Store. Times are compared in whole
// seconds; a revocation expiring within now's second is kept.
func (s *Store) PurgeRevocations(ctx context.Context, now time.Time) (int, error) {
	return s.execCount(ctx, "purge revocations", `DELETE FROM revoked_tokens WHERE expires_at < $1`, now.Unix())
}

// checkSigningKey refuses a key that could never sign or verify.
func checkSigningKey(k store.SigningKey) error {
	if err := k.Validate(); err != nil {
		return fmt.Errorf("postgres: %w", err)
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
	return s.write(ctx, "add signing key", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO signing_keys (kid, alg, private, public, created_at) VALUES ($1, $2, $3, $4, $5)`,
			k.KID, k.Alg, k.Private, public, k.CreatedAt.UnixMilli())
		if err != nil {
			return err
		}
		return appendChange(ctx, tx, store.Change{Kind: store.ChangeKeys})
	})
}

// SigningKeys implements store.Store.
func (s *Store) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	const op = "signing keys"
	rows, err := s.pool.Query(ctx, `SELECT kid, alg, private, public, created_at FROM signing_keys
		WHERE retired_at IS NULL ORDER BY created_at, kid`)
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

// RetireSigningKey implements store.Store. Of concurrent retirements of
// one key, the first locks its row; the others then find it retired, and
// so not found.
func (s *Store) RetireSigningKey(ctx context.Context, kid string, at time.Time) error {
	return s.write(ctx, "retire signing key", func(tx pgx.Tx) error {
		err := execOne(ctx, tx, `UPDATE signing_keys SET retired_at = $1 WHERE kid = $2 AND retired_at IS NULL`,
			at.UnixMilli(), kid)
		if err != nil {
			return err
		}
		return appendChange(ctx, tx, store.Change{Kind: store.ChangeKeys})
	})
}

// AddLoginFailure implements store.Store. It is one INSERT ... ON CONFLICT
// DO UPDATE, which PostgreSQL runs atomically against concurrent ones.
func (s *Store) AddLoginFailure(ctx context.Context, k store.FailureKey, now time.Time, window time.Duration) (store.Failures, error) {
	var f store.Failures
	var last int64
	err := s.pool.QueryRow(ctx, `INSERT INTO login_failures (username, ip, count, last_failure) VALUES ($1, $2, 1, $3)
		ON CONFLICT (username, ip) DO UPDATE SET
			count = CASE WHEN login_failures.last_failure < $4 THEN 1 ELSE login_failures.count + 1 END,
			last_failure = excluded.last_failure
		RETURNING count, last_failure`,
		k.Username, k.IP, now.UnixMilli(), now.Add(-window).UnixMilli()).Scan(&f.Count, &last)
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
	err := s.pool.QueryRow(ctx, `SELECT count, last_failure FROM login_failures WHERE username = $1 AND ip = $2`,
		k.Username, k.IP).Scan(&f.Count, &last)
	if errors.Is(err, pgx.ErrNoRows) {
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
	_, err := s.pool.Exec(ctx, `DELETE FROM login_failures WHERE username = $1 AND ip = $2`, k.Username, k.IP)
	return s.err("reset login failures", err)
}

// ClearLoginFailures implements store.Store.
func (s *Store) ClearLoginFailures(ctx context.Context, username string) (int, error) {
	return s.execCount(ctx, "clear login failures", `DELETE FROM login_failures WHERE username = $1`, username)
}

// PurgeLoginFailures implements store.Store.
func (s *Store) PurgeLoginFailures(ctx context.Context, before time.Time) (int, error) {
	return s.execCount(ctx, "purge login failures", `DELETE FROM login_failures WHERE last_failure < $1`, before.UnixMilli())
}

// execCount runs a statement and returns how many rows it changed.
func (s *Store) execCount(ctx context.Context, op, sql string, args ...any) (int, error) {
	tag, err := s.pool.Exec(ctx, sql, args...)
	if err != nil {
		return 0, s.err(op, err)
	}
	return int(tag.RowsAffected()), nil
}

// The methods below serve authlined migrate.

// CountUsers implements store.Store.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, s.err("count users", err)
	}
	return n, nil
}

// ReplaceUser implements store.Store. Times are kept in whole seconds.
// It locks the admins as SetRole does (see lockAdmins).
func (s *Store) ReplaceUser(ctx context.Context, u store.User) error {
	if err := checkRole(u.Role); err != nil {
		return err
	}
	gen := u.Generation
	if gen == 0 {
		gen = 1
	}
	return s.write(ctx, "replace user", func(tx pgx.Tx) error {
		if err := guardLastAdmin(ctx, tx, u.Username, u.Role != store.RoleAdmin || u.Disabled); err != nil {
			return err
		}
		err := execOne(ctx, tx, `UPDATE users SET password_hash = $1, role = $2, created_at = $3, last_login = $4,
			disabled = $5, generation = $6 WHERE username = $7`,
			u.PasswordHash, u.Role, u.CreatedAt.Unix(), nullUnix(u.LastLogin), u.Disabled, gen, u.Username)
		if err != nil {
			return err
		}
		return appendChange(ctx, tx, userChange(u.Username, "replaced"))
	})
}

// ListRevocations implements store.Store. Times are compared in whole
// seconds, as by PurgeRevocations.
func (s *Store) ListRevocations(ctx context.Context, now time.Time) ([]store.Revocation, error) {
	const op = "list revocations"
	rows, err := s.pool.Query(ctx, `SELECT jti, expires_at FROM revoked_tokens WHERE expires_at >= $1 ORDER BY jti`, now.Unix())
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
	rows, err := s.pool.Query(ctx, `SELECT kid, alg, private, public, created_at, retired_at FROM signing_keys
		ORDER BY created_at, kid`)
	if err != nil {
		return nil, s.err(op, err)
	}
	defer rows.Close()
	var keys []store.StoredSigningKey
	for rows.Next() {
		var k store.StoredSigningKey
		var created int64
		var retired *int64
		if err := rows.Scan(&k.KID, &k.Alg, &k.Private, &k.Public, &created, &retired); err != nil {
			return nil, s.err(op, err)
		}
		k.CreatedAt = time.UnixMilli(created).UTC()
		if retired != nil {
			k.RetiredAt = time.UnixMilli(*retired).UTC()
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
	return s.write(ctx, "import signing key", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO signing_keys (kid, alg, private, public, created_at, retired_at)
			VALUES ($1, $2, $3, $4, $5, $6)`, k.KID, k.Alg, k.Private, public, k.CreatedAt.UnixMilli(), nullUnixMilli(retiredAt))
		if err != nil {
			return err
		}
		return appendChange(ctx, tx, store.Change{Kind: store.ChangeKeys})
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
	rows, err := s.pool.Query(ctx, `SELECT hash, family, username, generation, expires_at, used_at FROM refresh_tokens
		WHERE hash > $1 AND expires_at >= $2 ORDER BY hash LIMIT $3`, after, now.UnixMilli(), limit)
	if err != nil {
		return nil, s.err(op, err)
	}
	defer rows.Close()
	var rts []store.RefreshToken
	for rows.Next() {
		var rt store.RefreshToken
		var exp int64
		var used *int64
		if err := rows.Scan(&rt.Hash, &rt.Family, &rt.Username, &rt.Generation, &exp, &used); err != nil {
			return nil, s.err(op, err)
		}
		rt.ExpiresAt = time.UnixMilli(exp).UTC()
		if used != nil {
			rt.UsedAt = time.UnixMilli(*used).UTC()
		}
		rts = append(rts, rt)
	}
	if err := rows.Err(); err != nil {
		return nil, s.err(op, err)
	}
	return rts, nil
}
