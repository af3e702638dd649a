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

	// Close releases the store. Calls after Close return ErrUnavailable.
	Close() error
}
