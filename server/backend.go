package server

import (
	"context"
	"net/netip"
	"time"
)

// Identity is who a request acts as.
type Identity struct {
	Username string
	Role     string
	Auth     string // protocol.AuthSession or protocol.AuthToken

	// Set for token identities.
	TokenID   string
	ExpiresAt time.Time
}

// Peer describes the client connection a request came from.
type Peer struct {
	Addr netip.AddrPort
}

// IssuedToken is a freshly signed access token.
type IssuedToken struct {
	Token     string
	ExpiresAt time.Time
	TTL       time.Duration
}

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
	// IssueToken signs an access token for an identity Login returned.
	IssueToken(ctx context.Context, id Identity) (IssuedToken, error)
	// VerifyToken checks a token and returns whom it stands for.
	VerifyToken(ctx context.Context, peer Peer, token string) (Identity, error)
	// RevokeToken makes a token identity's token unusable from now on.
	RevokeToken(ctx context.Context, id Identity) error
	// Resource returns the content of a named resource for id, which is
	// nil when the request is not authenticated.
	Resource(ctx context.Context, id *Identity, name string) (string, error)
}
