// Package store defines the persistence interface of authlined. Backends
// live in sub-packages (sqlite, and postgres next); storetest holds the one
// conformance suite that every backend must pass.
package store

import (
	"context"
	"errors"
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
	// ErrConflict: a user with that name exists already.
	ErrConflict = errors.New("store: already exists")
	// ErrUnavailable: the store cannot serve right now (closed, locked past
	// its timeout, unreachable). Callers answer 503 and may retry.
	ErrUnavailable = errors.New("store: unavailable")
)

// User is an account. Username is always lower-case.
type User struct {
	Username     string
	PasswordHash []byte // bcrypt
	Role         string
	CreatedAt    time.Time
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
	// SetRole changes a user's role; ErrNotFound if there is none.
	SetRole(ctx context.Context, username, role string) error
	// SetPasswordHash replaces a user's hash; ErrNotFound if there is none.
	SetPasswordHash(ctx context.Context, username string, hash []byte) error
	// DeleteUser removes a user; ErrNotFound if there is none.
	DeleteUser(ctx context.Context, username string) error
	// CountAdmins returns how many users have the admin role.
	CountAdmins(ctx context.Context) (int, error)

	// RevokeToken records a token id as revoked until expiresAt, after
	// which it is useless anyway and may be purged. Revoking twice is fine.
	RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error
	// IsRevoked reports whether a token id was revoked.
	IsRevoked(ctx context.Context, jti string) (bool, error)
	// PurgeRevocations deletes revocations that expired before now and
	// returns how many it deleted.
	PurgeRevocations(ctx context.Context, now time.Time) (int, error)

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
}
