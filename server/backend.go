package server

import (
	"context"
	"net/netip"
	"time"

	"github.com/authline/authline/protocol"
)

// Identity is who a request acts as.
type Identity struct {
	Username string
	Role     string
	Auth     string // protocol.AuthSession or protocol.AuthToken

	// Gen is the user's generation the identity was established at; a
	// newer one in the store means the session or token was ended.
	Gen int64

	// Set for token identities.
	TokenID   string
	Family    string // the login's refresh-token family, if any
	ExpiresAt time.Time
}

// Peer describes the client connection a request came from.
type Peer struct {
	Addr netip.AddrPort
}

// IssuedToken is a freshly signed access token and its refresh token.
type IssuedToken struct {
	Token     string
	ExpiresAt time.Time
	TTL       time.Duration

	RefreshToken     string
	RefreshExpiresAt time.Time
}

// SessionEndedError is CheckSession's answer for a session that was
// ended elsewhere; Reason goes into the session_ended event.
type SessionEndedError struct {
	Reason string
}

func (e *SessionEndedError) Error() string { return "session ended: " + e.Reason }

// Backend is the application logic behind the protocol: accounts,
// credentials, tokens and resources. The Server owns the transport, the
// framing and the per-connection session; the Backend holds no connection
// state. Errors should be *protocol.Error; anything else is answered as an
// internal error.
type Backend interface {
	// Register creates a user with role "user".
	Register(ctx context.Context, peer Peer, username, password string) (Identity, error)
	// Login checks a username and password.
	Login(ctx context.Context, peer Peer, username, password string) (Identity, error)
	// IssueToken signs an access token and a refresh token (a new family)
	// for an identity Login returned.
	IssueToken(ctx context.Context, id Identity) (IssuedToken, error)
	// Refresh trades a refresh token for a new access and refresh token,
	// retiring the old one.
	Refresh(ctx context.Context, peer Peer, refreshToken string) (Identity, IssuedToken, error)
	// VerifyToken checks a token and returns whom it stands for.
	VerifyToken(ctx context.Context, peer Peer, token string) (Identity, error)
	// RevokeToken makes a token identity's token unusable from now on.
	RevokeToken(ctx context.Context, id Identity) error
	// Resource returns the content of a named resource for id, which is
	// nil when the request is not authenticated.
	Resource(ctx context.Context, id *Identity, name string) (string, error)

	// CheckSession re-validates a session identity: it returns the
	// identity as it stands now (the role may have changed), or a
	// *SessionEndedError if the user was deleted, disabled, or their
	// generation moved on.
	CheckSession(ctx context.Context, id Identity) (Identity, error)
	// Passwd changes id's password, ending every other session and token
	// of the user; it returns id at the new generation.
	Passwd(ctx context.Context, peer Peer, id Identity, oldPassword, newPassword string) (Identity, error)
	// LogoutAll ends every session and token of id's user.
	LogoutAll(ctx context.Context, id Identity) error
	// Admin runs an admin command (protocol.AdminCommands) as id, which
	// is nil when the request is not authenticated.
	Admin(ctx context.Context, id *Identity, req *protocol.Request) (protocol.Data, string, error)

	// JWKS returns the public keys that verify the server's tokens, as a
	// JSON Web Key Set (protocol.JWKSData); anyone may ask.
	JWKS(ctx context.Context) (protocol.Data, error)

	// WatchUsers registers fn to be called with a username whenever that
	// user's state changes (here or in another process sharing the store),
	// so the server can tell affected connections at once.
	WatchUsers(fn func(username string))
}
