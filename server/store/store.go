// Package store defines the persistence interface of authlined. Backends
// live in sub-packages (sqlite, postgres); storetest holds the one
// conformance suite that every backend must pass.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Roles.
const (
	RoleUser  = "user"
	RoleAdmin = "admin"
)

// ValidRole reports whether role is one authline knows.
func ValidRole(role string) bool { return role == RoleUser || role == RoleAdmin }

var (
	// ErrNotFound: no such user (or other record).
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a user with that name (or another record with that
	// key, such as a signing key's kid) exists already.
	ErrConflict = errors.New("store: already exists")
	// ErrUnavailable: the store cannot serve right now (closed, locked past
	// its timeout, unreachable). Callers answer 503 and may retry.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrLastAdmin: the change would leave no enabled admin.
	ErrLastAdmin = errors.New("store: would remove the last admin")
	// ErrSchemaTooNew: Open found a database whose schema was written by a
	// newer authline than this one.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary supports")
	// ErrReused: a refresh token that was used already was presented again.
	ErrReused = errors.New("store: refresh token reused")
)

// User is an account. Username is always lower-case.
type User struct {
	Username     string
	PasswordHash []byte // bcrypt
	Role         string
	CreatedAt    time.Time
	LastLogin    time.Time // zero if never
	Disabled     bool
	// Generation is stamped into the user's tokens and sessions; bumping
	// it ends all of them at once (password change, logout everywhere,
	// revoke).
	Generation int64
}

// RefreshToken is a stored refresh token. Only a hash of the token is
// kept. Tokens descend from one LOGIN in a family; reusing a retired token
// revokes the family.
type RefreshToken struct {
	Hash       []byte // SHA-256 of the token
	Family     string
	Username   string
	Generation int64 // the user's generation when issued
	ExpiresAt  time.Time
	UsedAt     time.Time // zero while unused
}

// Kinds of change in the change feed.
const (
	// ChangeUser: the user's role, status, generation or existence
	// changed; caches drop their copy.
	ChangeUser = "user"
	// ChangeRevoke: a token id was revoked.
	ChangeRevoke = "revoke"
	// ChangeKeys: a signing key was added or retired; servers reload
	// their key set (SigningKeys).
	ChangeKeys = "keys"
)

// Token signing algorithms (JWS "alg" values).
const (
	AlgHS256 = "HS256" // HMAC-SHA256 with a shared secret
	AlgEdDSA = "EdDSA" // Ed25519 signatures; the public key verifies
)

// ValidAlg reports whether alg is a signing algorithm authline knows.
func ValidAlg(alg string) bool { return alg == AlgHS256 || alg == AlgEdDSA }

// SigningKey is a token signing key. Keys are never changed once added;
// retiring one removes it from SigningKeys for good (its kid is never
// reused).
type SigningKey struct {
	KID string // the tokens' kid header; unique, also among retired keys
	Alg string // AlgHS256 or AlgEdDSA
	// Private is the HS256 secret, or the Ed25519 private key
	// (ed25519.PrivateKey, 64 bytes).
	Private []byte
	// Public is the Ed25519 public key (32 bytes); nil for HS256.
	Public    []byte
	CreatedAt time.Time // kept to the millisecond
}

// Validate checks what every backend requires of a key before storing it.
func (k SigningKey) Validate() error {
	switch {
	case k.KID == "":
		return errors.New("signing key without kid")
	case !ValidAlg(k.Alg):
		return fmt.Errorf("signing key %s: invalid alg %q", k.KID, k.Alg)
	case len(k.Private) == 0:
		return fmt.Errorf("signing key %s: no private key", k.KID)
	case (k.Alg == AlgEdDSA) != (len(k.Public) > 0):
		return fmt.Errorf("signing key %s: an %s key must have a public key, and only that alg", k.KID, AlgEdDSA)
	}
	return nil
}

// Change is one entry of the change feed, which every instance (and the
// offline admin tool) writes to and every server follows, to keep its
// caches fresh without a store round-trip per request.
type Change struct {
	Seq      int64
	Kind     string // ChangeUser, ChangeRevoke or ChangeKeys
	Username string // ChangeUser
	Reason   string // ChangeUser: why, e.g. "password_changed"; may be empty
	JTI      string // ChangeRevoke
	Expires  time.Time
}

// FailureKey names a failed-login counter: a username as typed (lower-
// cased, whether or not the user exists) and a client IP address, or IP ""
// for the username's counter across all addresses.
type FailureKey struct {
	Username string
	IP       string
}

// Failures is a failed-login counter.
type Failures struct {
	Count int
	Last  time.Time // time of the last failure, to the millisecond
}

// Store is what authlined keeps on disk. Implementations are safe for
// concurrent use, and a method that returns nil has made its change durable.
type Store interface {
	// CreateUser inserts u; ErrConflict if the username is taken.
	CreateUser(ctx context.Context, u User) error
	// GetUser returns the user; ErrNotFound if there is none.
	GetUser(ctx context.Context, username string) (User, error)
	// ListUsers returns every user ordered by username.
	ListUsers(ctx context.Context) ([]User, error)
	// ListUsersAfter returns up to limit users whose names sort after
	// after (all if after is ""), ordered by username (byte order).
	ListUsersAfter(ctx context.Context, after string, limit int) ([]User, error)
	// SetRole changes a user's role; ErrNotFound if there is none,
	// ErrLastAdmin if it would demote the last enabled admin.
	SetRole(ctx context.Context, username, role string) error
	// SetPasswordHash replaces a user's hash (a re-hash: nothing else
	// changes); ErrNotFound if there is none.
	SetPasswordHash(ctx context.Context, username string, hash []byte) error
	// ChangePassword replaces a user's hash and bumps their generation in
	// one transaction, returning the new generation.
	ChangePassword(ctx context.Context, username string, hash []byte) (int64, error)
	// SetDisabled disables or enables a user; ErrLastAdmin if it would
	// disable the last enabled admin.
	SetDisabled(ctx context.Context, username string, disabled bool) error
	// BumpGeneration ends all of a user's tokens and sessions, recording
	// reason in the change feed; it returns the new generation.
	BumpGeneration(ctx context.Context, username, reason string) (int64, error)
	// SetLastLogin records a successful login.
	SetLastLogin(ctx context.Context, username string, at time.Time) error
	// DeleteUser removes a user; ErrNotFound if there is none,
	// ErrLastAdmin if they are the last enabled admin.
	DeleteUser(ctx context.Context, username string) error
	// CountAdmins returns how many users have the admin role.
	CountAdmins(ctx context.Context) (int, error)

	// CreateRefreshToken stores a refresh token.
	CreateRefreshToken(ctx context.Context, t RefreshToken) error
	// UseRefreshToken marks the token with this hash used at now and
	// returns it. ErrNotFound if there is none (or it expired before now,
	// or its family was revoked); ErrReused, with the token, if it was
	// used before. Concurrent uses of one token: exactly one succeeds.
	UseRefreshToken(ctx context.Context, hash []byte, now time.Time) (RefreshToken, error)
	// RevokeRefreshFamily deletes every token of a family.
	RevokeRefreshFamily(ctx context.Context, family string) error
	// PurgeRefreshTokens deletes tokens that expired before now.
	PurgeRefreshTokens(ctx context.Context, now time.Time) (int, error)

	// LatestChange returns the sequence number of the newest change, 0 if
	// none.
	LatestChange(ctx context.Context) (int64, error)
	// Changes returns up to limit changes with Seq > after, oldest first.
	// SetRole, SetDisabled, ChangePassword, BumpGeneration, DeleteUser,
	// RevokeToken, AddSigningKey and RetireSigningKey each append one in
	// the same transaction as their change.
	Changes(ctx context.Context, after int64, limit int) ([]Change, error)
	// PurgeChanges deletes changes older than before.
	PurgeChanges(ctx context.Context, before time.Time) (int, error)

	// RevokeToken records a token id as revoked until expiresAt, after
	// which it is useless anyway and may be purged. Revoking twice is fine.
	RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error
	// IsRevoked reports whether a token id was revoked.
	IsRevoked(ctx context.Context, jti string) (bool, error)
	// PurgeRevocations deletes revocations that expired before now and
	// returns how many it deleted.
	PurgeRevocations(ctx context.Context, now time.Time) (int, error)

	// AddSigningKey stores a new signing key; ErrConflict if a key with
	// that kid exists or existed (retired). It records a ChangeKeys.
	AddSigningKey(ctx context.Context, k SigningKey) error
	// SigningKeys returns every key that is not retired, oldest first
	// (by CreatedAt, then by KID).
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	// RetireSigningKey retires a key at the given time: it is no longer
	// returned by SigningKeys. ErrNotFound if there is no such key or it
	// was retired already. It records a ChangeKeys.
	RetireSigningKey(ctx context.Context, kid string, at time.Time) error

	// AddLoginFailure counts one failed login for k at now and returns the
	// counter. A counter whose last failure is older than now-window starts
	// again from one. It is atomic: concurrent failures are all counted.
	AddLoginFailure(ctx context.Context, k FailureKey, now time.Time, window time.Duration) (Failures, error)
	// LoginFailures returns the counter for k; the zero Failures if none.
	LoginFailures(ctx context.Context, k FailureKey) (Failures, error)
	// ResetLoginFailures deletes the counter for k.
	ResetLoginFailures(ctx context.Context, k FailureKey) error
	// ClearLoginFailures deletes every counter of a username, all
	// addresses included, and returns how many it deleted.
	ClearLoginFailures(ctx context.Context, username string) (int, error)
	// PurgeLoginFailures deletes counters whose last failure is before
	// before, and returns how many it deleted.
	PurgeLoginFailures(ctx context.Context, before time.Time) (int, error)

	// Close releases the store. Calls after Close return ErrUnavailable.
	Close() error

	// The methods below copy a store into another (authlined migrate):
	// they enumerate what the methods above cannot, and write records
	// exactly as another store holds them.

	// CountUsers returns how many users there are.
	CountUsers(ctx context.Context) (int, error)
	// ReplaceUser overwrites every field of the existing user
	// u.Username with u's (a zero Generation is stored as 1, as by
	// CreateUser), in one transaction that records a ChangeUser with
	// reason "replaced". ErrNotFound if there is no such user;
	// ErrLastAdmin if it would demote or disable the last enabled admin.
	ReplaceUser(ctx context.Context, u User) error
	// ListRevocations returns the revocations that have not expired at
	// now (those PurgeRevocations(now) would keep), ordered by JTI.
	ListRevocations(ctx context.Context, now time.Time) ([]Revocation, error)
	// AllSigningKeys returns every signing key, retired ones included
	// with the time they were retired, oldest first (by CreatedAt, then
	// by KID).
	AllSigningKeys(ctx context.Context) ([]StoredSigningKey, error)
	// ImportSigningKey stores k as another store holds it: active if
	// retiredAt is zero, else retired at retiredAt (and so never
	// returned by SigningKeys). ErrConflict if a key with that kid exists
	// or existed. It records a ChangeKeys, like AddSigningKey.
	ImportSigningKey(ctx context.Context, k SigningKey, retiredAt time.Time) error
	// ListRefreshTokensAfter returns up to limit refresh tokens whose
	// hashes sort after after (all if after is empty), ordered by hash
	// (byte order), leaving out those that expired before now (those
	// PurgeRefreshTokens(now) would delete). Used tokens are included,
	// with their UsedAt.
	ListRefreshTokensAfter(ctx context.Context, after []byte, limit int, now time.Time) ([]RefreshToken, error)
}

// Revocation is a revoked token id, as ListRevocations returns it.
type Revocation struct {
	JTI       string
	ExpiresAt time.Time // in whole seconds
}

// StoredSigningKey is a signing key as the store keeps it, with its
// retirement.
type StoredSigningKey struct {
	SigningKey
	RetiredAt time.Time // zero while the key is active; to the millisecond
}

// ChangeNotifier is implemented by stores that can tell when the change
// feed may have grown, so that followers need not wait for their next
// poll. It is optional: a follower that has it still polls (Changes) now
// and then, as notices can be lost with the connection that carries them.
type ChangeNotifier interface {
	// WaitForChange blocks until a change may have been appended to the
	// feed since the previous call, by this or any other process, or
	// until ctx ends (then it returns an error). It may return nil
	// without a new change; the caller then reads the feed for nothing.
	// An error other than ctx's means notices cannot be had right now
	// (say, the connection was lost): the caller polls, and calls again
	// later. Calls are meant to come from one goroutine at a time.
	WaitForChange(ctx context.Context) error
}
