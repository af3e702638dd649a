package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/authline/authline/server/store"
	"github.com/authline/authline/server/store/storeopen"
)

const (
	// migratePageSize is how many users, or refresh tokens, migrate reads
	// from a store at a time.
	migratePageSize = 500
	// migrateProgressMin: with more users than this, migrate shows its
	// progress (a bar on a terminal, else a line every 10%).
	migrateProgressMin = 1000
	// migrateMaxShown is how many problems of one kind migrate describes;
	// the summary counts them all.
	migrateMaxShown = 20
)

type migrateOptions struct {
	streams   Streams
	from, to  string
	overwrite bool
	dryRun    bool

	// Tests set these; zero values take the defaults above, and time.Now.
	pageSize    int
	progressMin int
	now         func() time.Time
}

const migrateLong = `Copy what a server needs from one store (--from) into another (--to), for
example from SQLite to PostgreSQL, or back. DB is anything --db takes: an
SQLite path (or sqlite://PATH) or a postgres:// URL; --db itself is not
used. The source must exist; the target is created if it is a new SQLite
file. Both schemas are brought up to date, as every command does (with
--dry-run too, which writes no records and creates no SQLite file).

Copied, exactly:
  - users: password hash, role, creation and last-login times, disabled,
    token generation (so passwords, roles and issued tokens carry over);
  - signing keys, retired ones included, so the target accepts exactly the
    tokens the source accepts (a key retired in the source is retired in
    the target too);
  - revocations that have not expired;
  - refresh tokens that have not expired, used ones included (the store
    keeps only their hashes), so clients stay logged in.
Not copied: failed-login counters (throttling starts afresh) and the
change feed, which only tells running servers what changed.

Re-running is safe, and copies what is missing: records the target holds
with the same data are skipped. A user that exists in the target with
different data is a conflict: it is reported and left alone, unless
--overwrite replaces it with the source's. Signing keys and refresh tokens
are never overwritten. Nothing is ever deleted from the target, so stop
the servers on the source before the final run: a user deleted, or a
LOGOUT, on the source after a run is not carried over by the next one.

After copying, every record of the source is looked up in the target: the
summary gives, per kind, the source's count, what was copied, updated
(replaced users, keys retired since, refresh tokens used since), skipped
and failed, and the target's count. On a terminal, a store of more than
1000 users shows a progress bar on standard error; otherwise progress is a
line every 10%. Password hashes, keys and passwords in URLs are never
printed.

Exit codes: 0 copied and verified, 1 conflicts, errors or failed
verification (re-run once fixed), 2 usage.`

func newMigrateCmd(streams Streams) *cobra.Command {
	opts := &migrateOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "migrate --from DB --to DB",
		Short: "Copy users, signing keys, revocations and refresh tokens from one store into another, and verify them",
		Long:  migrateLong,
		Example: `  authlined migrate --from sqlite:///var/lib/authline/authline.db \
      --to 'postgres://authline@db.example.com/authline?sslmode=verify-full' --dry-run
  authlined migrate --from sqlite:///var/lib/authline/authline.db \
      --to 'postgres://authline@db.example.com/authline?sslmode=verify-full'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMigrate(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.from, "from", "", "the store to copy from: an SQLite path (or sqlite://PATH), or a postgres:// URL")
	f.StringVar(&opts.to, "to", "", "the store to copy into: an SQLite path (or sqlite://PATH), or a postgres:// URL")
	f.BoolVar(&opts.overwrite, "overwrite", false, "replace users that exist in the target with different data by the source's")
	f.BoolVar(&opts.dryRun, "dry-run", false, "write no records: report what would be copied, and the conflicts")
	return cmd
}

func runMigrate(ctx context.Context, o *migrateOptions) error {
	switch {
	case o.from == "" || o.to == "":
		return usageErrorf("give the source with --from and the target with --to")
	case sameStore(o.from, o.to):
		return usageErrorf("--from and --to name the same store")
	}
	if path, isFile := storeopen.SQLitePath(o.from); isFile {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("no source database at %s: %w", path, err)
		}
	}
	src, err := storeopen.Open(ctx, o.from)
	if err != nil {
		return fmt.Errorf("open source: %w", err)
	}
	defer src.Close()
	dst, closeDst, err := openTarget(ctx, o)
	if err != nil {
		return err
	}
	defer closeDst()

	m := newMigration(o, src, dst)
	out := o.streams.Out
	fmt.Fprintf(out, "from: %s\nto:   %s\n", storeopen.Redact(o.from), storeopen.Redact(o.to))
	if o.dryRun {
		fmt.Fprintln(out, "dry run: nothing is written; the counts say what a run would do")
	}
	if err := m.copy(ctx); err != nil {
		return err
	}
	if !o.dryRun {
		if err := m.verify(ctx); err != nil {
			return err
		}
	}
	if err := m.summary(); err != nil {
		return err
	}

	failed := 0
	for _, k := range m.kinds() {
		failed += k.failed
	}
	switch {
	case o.dryRun && failed > 0:
		return fmt.Errorf("dry run: %s (see above)", plural(failed, "conflict"))
	case o.dryRun:
		fmt.Fprintln(out, "dry run: no conflicts")
		return nil
	}
	missing := 0
	for _, k := range m.kinds() {
		missing += k.source - k.verified
	}
	if failed > 0 || missing > 0 {
		fmt.Fprintf(out, "verification failed: %s of the source not in the target as in the source\n", plural(missing, "record"))
		return fmt.Errorf("migration incomplete: %s, %s of the source not in the target as in the source (see above); fix them and run migrate again",
			plural(failed, "conflict"), plural(missing, "record"))
	}
	fmt.Fprintln(out, "verified: the target holds every record of the source, with the same data")
	return nil
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// openTarget opens --to. A dry run does not create an SQLite file: it
// compares with an empty store in a temporary directory instead.
func openTarget(ctx context.Context, o *migrateOptions) (store.Store, func(), error) {
	if path, isFile := storeopen.SQLitePath(o.to); isFile && o.dryRun {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			dir, err := os.MkdirTemp("", "authlined-migrate-")
			if err != nil {
				return nil, nil, err
			}
			st, err := storeopen.Open(ctx, filepath.Join(dir, "empty.db"))
			if err != nil {
				os.RemoveAll(dir)
				return nil, nil, fmt.Errorf("open an empty store for the dry run: %w", err)
			}
			return st, func() { st.Close(); os.RemoveAll(dir) }, nil
		}
	}
	st, err := storeopen.Open(ctx, o.to)
	if err != nil {
		return nil, nil, fmt.Errorf("open target: %w", err)
	}
	return st, func() { st.Close() }, nil
}

// sameStore reports whether a and b name the same store, as far as can be
// told without opening them.
func sameStore(a, b string) bool {
	pa, fileA := storeopen.SQLitePath(a)
	pb, fileB := storeopen.SQLitePath(b)
	if !fileA || !fileB {
		return a == b
	}
	if fa, err := os.Stat(pa); err == nil {
		if fb, err := os.Stat(pb); err == nil {
			return os.SameFile(fa, fb)
		}
	}
	absA, errA := filepath.Abs(pa)
	absB, errB := filepath.Abs(pb)
	return errA == nil && errB == nil && absA == absB
}

// tally counts one kind of record.
type tally struct {
	name   string
	source int // records in the source (not expired)
	copied int // added to the target
	// updated: existed in the target and changed to match (a replaced
	// user, a key retired since, a revocation extended, a refresh token
	// used since).
	updated  int
	skipped  int // in the target with the same data already
	failed   int // conflicts: left as they are in the target
	verified int // source records found in the target with the same data
	target   int // records in the target after the copy
	shown    int // problems described so far
}

// migration is one run of migrate.
type migration struct {
	o        *migrateOptions
	src, dst store.Store
	// now is the time the run started: what expired before it is not
	// copied, and verification lists the same records.
	now    time.Time
	errOut io.Writer

	keys, users, revocations, refresh tally
	// unmatched are the users the target does not hold as the source
	// does (conflicts): their refresh tokens are not copied.
	unmatched map[string]bool
}

func newMigration(o *migrateOptions, src, dst store.Store) *migration {
	if o.pageSize == 0 {
		o.pageSize = migratePageSize
	}
	if o.progressMin == 0 {
		o.progressMin = migrateProgressMin
	}
	if o.now == nil {
		o.now = time.Now
	}
	return &migration{
		o: o, src: src, dst: dst, now: o.now(), errOut: o.streams.ErrOut,
		keys:        tally{name: "signing keys"},
		users:       tally{name: "users"},
		revocations: tally{name: "revocations"},
		refresh:     tally{name: "refresh tokens"},
		unmatched:   map[string]bool{},
	}
}

func (m *migration) kinds() []*tally {
	return []*tally{&m.keys, &m.users, &m.revocations, &m.refresh}
}

// problem describes a problem with a record of kind k on standard error,
// up to migrateMaxShown of them. It never gets secrets: names and kids
// only.
func (m *migration) problem(k *tally, format string, args ...any) {
	k.shown++
	switch {
	case k.shown <= migrateMaxShown:
		fmt.Fprintf(m.errOut, "%s: %s\n", k.name, fmt.Sprintf(format, args...))
	case k.shown == migrateMaxShown+1:
		fmt.Fprintf(m.errOut, "%s: more problems, counted in the summary only\n", k.name)
	}
}

// conflict counts a record of kind k that is not copied, and says why.
func (m *migration) conflict(k *tally, format string, args ...any) {
	k.failed++
	m.problem(k, format, args...)
}

func (m *migration) copy(ctx context.Context) error {
	// Keys first: a server started on the target early verifies the
	// source's tokens from the start.
	if err := m.copyKeys(ctx); err != nil {
		return fmt.Errorf("copy signing keys: %w", err)
	}
	if err := m.copyUsers(ctx); err != nil {
		return fmt.Errorf("copy users: %w", err)
	}
	if err := m.copyRevocations(ctx); err != nil {
		return fmt.Errorf("copy revocations: %w", err)
	}
	if err := m.copyRefreshTokens(ctx); err != nil {
		return fmt.Errorf("copy refresh tokens: %w", err)
	}
	return nil
}

// sameKey reports whether two keys sign and verify the same tokens. The
// creation time may differ: a key file's key imported into each store
// separately gets the time of each import.
func sameKey(a, b store.SigningKey) bool {
	return a.KID == b.KID && a.Alg == b.Alg && bytes.Equal(a.Private, b.Private) && bytes.Equal(a.Public, b.Public)
}

func keysByKID(keys []store.StoredSigningKey) map[string]store.StoredSigningKey {
	byKID := make(map[string]store.StoredSigningKey, len(keys))
	for _, k := range keys {
		byKID[k.KID] = k
	}
	return byKID
}

func (m *migration) copyKeys(ctx context.Context) error {
	k := &m.keys
	src, err := m.src.AllSigningKeys(ctx)
	if err != nil {
		return err
	}
	dst, err := m.dst.AllSigningKeys(ctx)
	if err != nil {
		return err
	}
	have := keysByKID(dst)
	for _, key := range src { // oldest first, so the newest stays the newest
		k.source++
		d, ok := have[key.KID]
		switch {
		case !ok:
			if !m.o.dryRun {
				err := m.dst.ImportSigningKey(ctx, key.SigningKey, key.RetiredAt)
				if errors.Is(err, store.ErrConflict) {
					m.conflict(k, "key %s was added to the target meanwhile; run migrate again", key.KID)
					continue
				} else if err != nil {
					return fmt.Errorf("key %s: %w", key.KID, err)
				}
			}
			k.copied++
		case !sameKey(key.SigningKey, d.SigningKey):
			m.conflict(k, "the target has another key under kid %s; keys are never overwritten", key.KID)
		case key.RetiredAt.IsZero() == d.RetiredAt.IsZero():
			k.skipped++
		case !key.RetiredAt.IsZero(): // retired in the source since it was copied
			if !m.o.dryRun {
				err := m.dst.RetireSigningKey(ctx, key.KID, key.RetiredAt)
				if err != nil && !errors.Is(err, store.ErrNotFound) { // not found: retired meanwhile
					return fmt.Errorf("retire key %s: %w", key.KID, err)
				}
			}
			k.updated++
		default:
			m.conflict(k, "key %s is retired in the target but active in the source: the target refuses tokens the source accepts, and a retired key is never reactivated", key.KID)
		}
	}
	return nil
}

// userDiff names the fields in which two users differ.
func userDiff(a, b store.User) []string {
	var diff []string
	if !bytes.Equal(a.PasswordHash, b.PasswordHash) {
		diff = append(diff, "password hash")
	}
	if a.Role != b.Role {
		diff = append(diff, "role")
	}
	if a.CreatedAt.Unix() != b.CreatedAt.Unix() {
		diff = append(diff, "creation time")
	}
	if a.LastLogin.IsZero() != b.LastLogin.IsZero() || a.LastLogin.Unix() != b.LastLogin.Unix() {
		diff = append(diff, "last login")
	}
	if a.Disabled != b.Disabled {
		diff = append(diff, "disabled")
	}
	if a.Generation != b.Generation {
		diff = append(diff, "generation")
	}
	return diff
}

func (m *migration) usersCursor(st store.Store) *cursor[store.User] {
	return &cursor[store.User]{
		list: st.ListUsersAfter,
		key:  func(u store.User) string { return u.Username },
		size: m.o.pageSize,
	}
}

func (m *migration) copyUsers(ctx context.Context) error {
	total, err := m.src.CountUsers(ctx)
	if err != nil {
		return err
	}
	prog := m.progress("copying users", total)
	defer prog.finish()
	src, dst := m.usersCursor(m.src), m.usersCursor(m.dst)
	// Replacements refused because they would leave no enabled admin for
	// a moment, tried again once every other user is in.
	var later []store.User
	for {
		u, ok, err := src.next(ctx)
		if err != nil {
			return fmt.Errorf("read the source: %w", err)
		}
		if !ok {
			break
		}
		m.users.source++
		prog.add(1)
		d, found, err := dst.find(ctx, u.Username)
		if err != nil {
			return fmt.Errorf("read the target: %w", err)
		}
		if !found {
			if m.o.dryRun {
				m.users.copied++
				continue
			}
			err := m.dst.CreateUser(ctx, u)
			if err == nil {
				m.users.copied++
				continue
			}
			if !errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("user %s: %w", u.Username, err)
			}
			// Added to the target meanwhile: compare with it.
			if d, err = m.dst.GetUser(ctx, u.Username); err != nil {
				return fmt.Errorf("user %s: %w", u.Username, err)
			}
		}
		if err := m.existingUser(ctx, u, d, &later); err != nil {
			return err
		}
	}
	for _, u := range later {
		switch err := m.dst.ReplaceUser(ctx, u); {
		case errors.Is(err, store.ErrLastAdmin):
			m.unmatched[u.Username] = true
			m.conflict(&m.users, "%s: replacing it would leave the target without an enabled admin", u.Username)
		case err != nil:
			return fmt.Errorf("user %s: %w", u.Username, err)
		default:
			m.users.updated++
		}
	}
	return nil
}

// existingUser handles a user of the source that the target holds as d.
func (m *migration) existingUser(ctx context.Context, u, d store.User, later *[]store.User) error {
	diff := userDiff(u, d)
	switch {
	case len(diff) == 0:
		m.users.skipped++
		return nil
	case !m.o.overwrite:
		m.unmatched[u.Username] = true
		m.conflict(&m.users, "%s exists in the target with a different %s (--overwrite replaces it with the source's)",
			u.Username, strings.Join(diff, ", "))
		return nil
	case m.o.dryRun:
		m.users.updated++
		return nil
	}
	switch err := m.dst.ReplaceUser(ctx, u); {
	case errors.Is(err, store.ErrLastAdmin):
		*later = append(*later, u)
	case errors.Is(err, store.ErrNotFound): // deleted from the target meanwhile
		if err := m.dst.CreateUser(ctx, u); err != nil {
			return fmt.Errorf("user %s: %w", u.Username, err)
		}
		m.users.copied++
	case err != nil:
		return fmt.Errorf("user %s: %w", u.Username, err)
	default:
		m.users.updated++
	}
	return nil
}

func (m *migration) copyRevocations(ctx context.Context) error {
	k := &m.revocations
	src, err := m.src.ListRevocations(ctx, m.now)
	if err != nil {
		return err
	}
	dst, err := m.dst.ListRevocations(ctx, m.now)
	if err != nil {
		return err
	}
	have := make(map[string]time.Time, len(dst))
	for _, r := range dst {
		have[r.JTI] = r.ExpiresAt
	}
	for _, r := range src {
		k.source++
		exp, ok := have[r.JTI]
		if ok && !exp.Before(r.ExpiresAt) {
			k.skipped++
			continue
		}
		if !m.o.dryRun {
			// Keeps the later expiry, should the target's have grown
			// meanwhile.
			if err := m.dst.RevokeToken(ctx, r.JTI, r.ExpiresAt); err != nil {
				return err
			}
		}
		if ok {
			k.updated++
		} else {
			k.copied++
		}
	}
	return nil
}

func (m *migration) refreshCursor(st store.Store) *cursor[store.RefreshToken] {
	return &cursor[store.RefreshToken]{
		list: func(ctx context.Context, after string, limit int) ([]store.RefreshToken, error) {
			return st.ListRefreshTokensAfter(ctx, []byte(after), limit, m.now)
		},
		key:  func(rt store.RefreshToken) string { return string(rt.Hash) },
		size: m.o.pageSize,
	}
}

// sameRefreshToken reports whether two tokens are one, used or not.
func sameRefreshToken(a, b store.RefreshToken) bool {
	return bytes.Equal(a.Hash, b.Hash) && a.Family == b.Family && a.Username == b.Username &&
		a.Generation == b.Generation && a.ExpiresAt.Equal(b.ExpiresAt)
}

func (m *migration) copyRefreshTokens(ctx context.Context) error {
	k := &m.refresh
	src, dst := m.refreshCursor(m.src), m.refreshCursor(m.dst)
	for {
		rt, ok, err := src.next(ctx)
		if err != nil {
			return fmt.Errorf("read the source: %w", err)
		}
		if !ok {
			return nil
		}
		k.source++
		if m.unmatched[rt.Username] {
			// The target's user is not the source's: the token is not
			// theirs to use. The user's conflict was reported.
			k.failed++
			continue
		}
		d, found, err := dst.find(ctx, string(rt.Hash))
		if err != nil {
			return fmt.Errorf("read the target: %w", err)
		}
		switch {
		case !found:
			if !m.o.dryRun {
				err := m.dst.CreateRefreshToken(ctx, rt)
				if errors.Is(err, store.ErrConflict) {
					m.conflict(k, "a refresh token of %s was added to the target meanwhile; run migrate again", rt.Username)
					continue
				} else if err != nil {
					return fmt.Errorf("a refresh token of %s: %w", rt.Username, err)
				}
			}
			k.copied++
		case !sameRefreshToken(rt, d):
			m.conflict(k, "a refresh token of %s differs in the target; refresh tokens are never overwritten", rt.Username)
		case !rt.UsedAt.IsZero() && d.UsedAt.IsZero(): // used in the source since it was copied
			if !m.o.dryRun {
				_, err := m.dst.UseRefreshToken(ctx, rt.Hash, rt.UsedAt)
				if err != nil && !errors.Is(err, store.ErrReused) { // reused: used meanwhile
					return fmt.Errorf("a refresh token of %s: %w", rt.Username, err)
				}
			}
			k.updated++
		default:
			k.skipped++
		}
	}
}

// verify looks every record of the source up in the target, and counts
// the target's.
func (m *migration) verify(ctx context.Context) error {
	if err := m.verifyKeys(ctx); err != nil {
		return fmt.Errorf("verify signing keys: %w", err)
	}
	if err := m.verifyUsers(ctx); err != nil {
		return fmt.Errorf("verify users: %w", err)
	}
	if err := m.verifyRevocations(ctx); err != nil {
		return fmt.Errorf("verify revocations: %w", err)
	}
	if err := m.verifyRefreshTokens(ctx); err != nil {
		return fmt.Errorf("verify refresh tokens: %w", err)
	}
	for _, k := range m.kinds() {
		if k.target < k.source {
			m.problem(k, "the target has %d, fewer than the source's %d", k.target, k.source)
		}
	}
	return nil
}

// mismatch reports a record that verification did not find in the target
// as in the source, unless a conflict about it was reported already.
func (m *migration) mismatch(k *tally, reported bool, format string, args ...any) {
	if !reported {
		m.problem(k, "not verified: "+format, args...)
	}
}

func (m *migration) verifyKeys(ctx context.Context) error {
	k := &m.keys
	src, err := m.src.AllSigningKeys(ctx)
	if err != nil {
		return err
	}
	dst, err := m.dst.AllSigningKeys(ctx)
	if err != nil {
		return err
	}
	k.source, k.target = len(src), len(dst)
	have := keysByKID(dst)
	for _, key := range src {
		d, ok := have[key.KID]
		switch {
		case !ok:
			m.mismatch(k, false, "key %s is missing in the target", key.KID)
		case !sameKey(key.SigningKey, d.SigningKey):
			m.mismatch(k, k.failed > 0, "key %s differs in the target", key.KID)
		case key.RetiredAt.IsZero() != d.RetiredAt.IsZero():
			m.mismatch(k, k.failed > 0, "key %s is retired in one store only", key.KID)
		default:
			k.verified++
		}
	}
	return nil
}

func (m *migration) verifyUsers(ctx context.Context) error {
	k := &m.users
	total, err := m.src.CountUsers(ctx)
	if err != nil {
		return err
	}
	prog := m.progress("verifying users", total)
	defer prog.finish()
	src, dst := m.usersCursor(m.src), m.usersCursor(m.dst)
	k.source = 0
	for {
		u, ok, err := src.next(ctx)
		if err != nil {
			return fmt.Errorf("read the source: %w", err)
		}
		if !ok {
			break
		}
		k.source++
		prog.add(1)
		d, found, err := dst.find(ctx, u.Username)
		if err != nil {
			return fmt.Errorf("read the target: %w", err)
		}
		switch diff := userDiff(u, d); {
		case !found:
			m.mismatch(k, false, "%s is missing in the target", u.Username)
		case len(diff) > 0:
			m.mismatch(k, m.unmatched[u.Username], "%s differs in the target (%s)", u.Username, strings.Join(diff, ", "))
		default:
			k.verified++
		}
	}
	k.target, err = m.dst.CountUsers(ctx)
	return err
}

func (m *migration) verifyRevocations(ctx context.Context) error {
	k := &m.revocations
	src, err := m.src.ListRevocations(ctx, m.now)
	if err != nil {
		return err
	}
	dst, err := m.dst.ListRevocations(ctx, m.now)
	if err != nil {
		return err
	}
	k.source, k.target = len(src), len(dst)
	have := make(map[string]time.Time, len(dst))
	for _, r := range dst {
		have[r.JTI] = r.ExpiresAt
	}
	for _, r := range src {
		if exp, ok := have[r.JTI]; !ok || exp.Before(r.ExpiresAt) {
			m.mismatch(k, false, "token id %s is not revoked in the target until %s", r.JTI, r.ExpiresAt.Format(time.RFC3339))
			continue
		}
		k.verified++
	}
	return nil
}

func (m *migration) verifyRefreshTokens(ctx context.Context) error {
	k := &m.refresh
	src, dst := m.refreshCursor(m.src), m.refreshCursor(m.dst)
	k.source = 0
	for {
		rt, ok, err := src.next(ctx)
		if err != nil {
			return fmt.Errorf("read the source: %w", err)
		}
		if !ok {
			break
		}
		k.source++
		d, found, err := dst.find(ctx, string(rt.Hash))
		if err != nil {
			return fmt.Errorf("read the target: %w", err)
		}
		reported := m.unmatched[rt.Username] || k.failed > 0
		switch {
		case !found:
			m.mismatch(k, reported, "a refresh token of %s is missing in the target", rt.Username)
		case !sameRefreshToken(rt, d):
			m.mismatch(k, reported, "a refresh token of %s differs in the target", rt.Username)
		case !rt.UsedAt.IsZero() && d.UsedAt.IsZero():
			m.mismatch(k, false, "a refresh token of %s is used in the source only", rt.Username)
		default:
			k.verified++
		}
	}
	// The rest of the target's tokens, for its count.
	n, err := dst.count(ctx)
	k.target = n
	return err
}

// summary prints the table of counts.
func (m *migration) summary() error {
	var b strings.Builder
	if m.o.dryRun {
		fmt.Fprintf(&b, "%-14s %9s %9s %9s %9s %9s\n", "", "SOURCE", "TO COPY", "TO UPDATE", "TO SKIP", "CONFLICTS")
	} else {
		fmt.Fprintf(&b, "%-14s %9s %9s %9s %9s %9s %9s\n", "", "SOURCE", "COPIED", "UPDATED", "SKIPPED", "FAILED", "TARGET")
	}
	for _, k := range m.kinds() {
		fmt.Fprintf(&b, "%-14s %9d %9d %9d %9d %9d", k.name, k.source, k.copied, k.updated, k.skipped, k.failed)
		if !m.o.dryRun {
			fmt.Fprintf(&b, " %9d", k.target)
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(m.o.streams.Out, b.String())
	return err
}

// cursor walks the records of a store in key order, a page at a time.
// Keys compare as Go strings do, by their bytes, as the stores sort them.
type cursor[T any] struct {
	list  func(ctx context.Context, after string, limit int) ([]T, error)
	key   func(T) string
	size  int
	page  []T
	after string // the key of the last record fetched
	eof   bool
	read  int // records consumed
}

// peek returns the next record without consuming it; false at the end.
func (c *cursor[T]) peek(ctx context.Context) (T, bool, error) {
	var zero T
	if len(c.page) == 0 && !c.eof {
		page, err := c.list(ctx, c.after, c.size)
		if err != nil {
			return zero, false, err
		}
		c.page, c.eof = page, len(page) < c.size
		if len(page) > 0 {
			c.after = c.key(page[len(page)-1])
		}
	}
	if len(c.page) == 0 {
		return zero, false, nil
	}
	return c.page[0], true, nil
}

func (c *cursor[T]) pop() {
	c.page = c.page[1:]
	c.read++
}

// next returns the next record; false at the end.
func (c *cursor[T]) next(ctx context.Context) (T, bool, error) {
	r, ok, err := c.peek(ctx)
	if ok {
		c.pop()
	}
	return r, ok, err
}

// find returns the record with key k, if there is one, consuming it and
// the records before it. Keys must be asked for in increasing order.
func (c *cursor[T]) find(ctx context.Context, k string) (T, bool, error) {
	var zero T
	for {
		r, ok, err := c.peek(ctx)
		if err != nil || !ok {
			return zero, false, err
		}
		switch rk := c.key(r); {
		case rk < k:
			c.pop()
		case rk == k:
			c.pop()
			return r, true, nil
		default:
			return zero, false, nil
		}
	}
}

// count consumes the rest of the records and returns how many were read
// in all.
func (c *cursor[T]) count(ctx context.Context) (int, error) {
	for {
		_, ok, err := c.next(ctx)
		if err != nil || !ok {
			return c.read, err
		}
	}
}

// errIsTerminal reports whether ErrOut is a terminal. A writer may tell
// by itself, with an IsTerminal method (tests do, to get the progress
// bar).
func (s Streams) errIsTerminal() bool {
	switch w := s.ErrOut.(type) {
	case interface{ IsTerminal() bool }:
		return w.IsTerminal()
	case *os.File:
		return term.IsTerminal(int(w.Fd()))
	}
	return false
}

// progress shows how far a phase over total records has come, on
// standard error: a bar redrawn on one line (\r) at most every
// progressEvery on a terminal, else a line at every 10%, and nothing for
// progressMin records or fewer.
type progress struct {
	w           io.Writer
	bar         bool
	label       string
	total, done int
	now         func() time.Time
	drawn       time.Time // when the bar was last drawn; zero if never
	tenths      int       // lines printed
}

const (
	progressEvery = 100 * time.Millisecond
	progressWidth = 30
)

// progress returns the progress display of a phase, nil (which shows
// nothing) for a small store.
func (m *migration) progress(label string, total int) *progress {
	if total <= m.o.progressMin {
		return nil
	}
	return &progress{w: m.errOut, bar: m.o.streams.errIsTerminal(), label: label, total: total, now: m.o.now}
}

func (p *progress) add(n int) {
	if p == nil {
		return
	}
	p.done += n
	if p.bar {
		if now := p.now(); p.drawn.IsZero() || now.Sub(p.drawn) >= progressEvery {
			p.draw(now)
		}
		return
	}
	for t := min(p.done, p.total) * 10 / p.total; p.tenths < t; {
		p.tenths++
		fmt.Fprintf(p.w, "%s: %d%% (%d of %d)\n", p.label, p.tenths*10, min(p.done, p.total), p.total)
	}
}

func (p *progress) draw(now time.Time) {
	done := min(p.done, p.total) // more users than counted: added meanwhile
	fill := done * progressWidth / p.total
	fmt.Fprintf(p.w, "\r%s [%s%s] %3d%% %d/%d", p.label, strings.Repeat("#", fill), strings.Repeat(".", progressWidth-fill),
		done*100/p.total, done, p.total)
	p.drawn = now
}

// finish ends the display: the bar is drawn complete and its line ended.
func (p *progress) finish() {
	if p == nil || !p.bar || p.drawn.IsZero() {
		return
	}
	p.draw(p.now())
	fmt.Fprintln(p.w)
}
