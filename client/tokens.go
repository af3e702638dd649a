package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/authline/authline/protocol"
)

// ErrSessionExpired is wrapped when the access token has expired and could
// not be renewed: there is no refresh token, or the server refused it
// (expired, revoked, or retired already). Only a new login helps. When the
// server refused, the *protocol.Error is in the chain too.
var ErrSessionExpired = errors.New("session expired")

// RefreshLeeway is how long before its expiry TokenSource renews an access
// token, so that a token does not expire between the check and its use.
const RefreshLeeway = 10 * time.Second

// Tokens is the token pair of a token-mode login.
type Tokens struct {
	Access           string
	AccessExpiresAt  time.Time // zero: unknown, assumed valid
	Refresh          string    // empty: the access token cannot be renewed
	RefreshExpiresAt time.Time
}

// TokensFrom returns the tokens of a token-mode LOGIN, REFRESH or PASSWD
// result.
func TokensFrom(l *protocol.LoginData) Tokens {
	return Tokens{
		Access:           l.Token,
		AccessExpiresAt:  l.ExpiresAt,
		Refresh:          l.RefreshToken,
		RefreshExpiresAt: l.RefreshExpiresAt,
	}
}

// TokenSource hands out a valid access token, renewing it with the refresh
// token when it has expired: before a request when its expiry (less
// RefreshLeeway) has passed, and after the server refused it with
// token_expired (see Do). Refresh tokens are single-use, so every renewal
// rotates the pair; Save is told about each new pair so that it can be
// kept.
//
// A TokenSource is safe for concurrent use: requests that find the token
// expired at the same time share one renewal.
//
// Over a Client that reconnects (the default, see the package
// documentation) a TokenSource goes on across server restarts and
// lame-duck shutdowns: a REFRESH finding the connection lost is sent on a
// new one. A REFRESH is never sent twice, though: if the connection broke
// after it was written, the error wraps ErrConnection and the pair is
// kept; should the server have carried it out, the kept refresh token is
// retired and the next renewal fails with ErrSessionExpired.
type TokenSource struct {
	// Client makes the REFRESH requests (unless Refresher is set).
	Client *Client
	// Save, when set, is called with every new pair (after a renewal, or
	// Set) before it is used. If it fails, the error is returned and the
	// pair is kept in memory only.
	Save func(Tokens) error
	// Refresher, when set, replaces Client.Refresh. It lets a caller that
	// shares the saved tokens with other processes serialize renewals and
	// pick up a pair another process already renewed; the pair it returns
	// is then passed to Save like any other.
	Refresher func(ctx context.Context, refreshToken string) (*protocol.LoginData, error)
	// Now is the clock that expiry is checked against; nil means time.Now.
	Now func() time.Time

	mu  sync.Mutex
	tok Tokens
}

// NewTokenSource returns a TokenSource starting from t, renewing through c
// and saving through save (which may be nil).
func NewTokenSource(c *Client, t Tokens, save func(Tokens) error) *TokenSource {
	return &TokenSource{Client: c, Save: save, tok: t}
}

// Tokens returns the current pair.
func (s *TokenSource) Tokens() Tokens {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tok
}

// Set replaces the pair, e.g. with the fresh one PASSWD returns, and saves
// it.
func (s *TokenSource) Set(t Tokens) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tok = t
	return s.save()
}

// Token returns an access token that has not expired by the clock,
// renewing it first if needed. With no refresh token the access token is
// returned as it is, for the server to judge.
func (s *TokenSource) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok.Refresh != "" && s.expired() {
		if err := s.renew(ctx); err != nil {
			return "", err
		}
	}
	return s.tok.Access, nil
}

// Do calls fn with a valid access token (see Token). If the server refuses
// that token with token_expired (clocks disagree, or it expired in
// flight), Do renews the pair and calls fn once more with the new token.
// fn must be safe to repeat: a request refused for its token had no
// effect.
func (s *TokenSource) Do(ctx context.Context, fn func(ctx context.Context, token string) error) error {
	token, err := s.Token(ctx)
	if err != nil {
		return err
	}
	err = fn(ctx, token)
	if !errors.Is(err, &protocol.Error{Code: protocol.CodeTokenExpired}) {
		return err
	}
	if token, err = s.renewAfterRefusal(ctx, token); err != nil {
		return err
	}
	return fn(ctx, token)
}

// renewAfterRefusal renews the pair after the server refused stale as
// expired, unless another caller has renewed it meanwhile.
func (s *TokenSource) renewAfterRefusal(ctx context.Context, stale string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok.Access == stale {
		if err := s.renew(ctx); err != nil {
			return "", err
		}
	}
	return s.tok.Access, nil
}

func (s *TokenSource) expired() bool {
	if s.tok.AccessExpiresAt.IsZero() {
		return s.tok.Access == ""
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	return !now().Before(s.tok.AccessExpiresAt.Add(-RefreshLeeway))
}

// renew trades the refresh token for a new pair and saves it. s.mu is
// held.
func (s *TokenSource) renew(ctx context.Context) error {
	if s.tok.Refresh == "" {
		return fmt.Errorf("%w: the access token expired and there is no refresh token", ErrSessionExpired)
	}
	refresh := s.Refresher
	if refresh == nil {
		if s.Client == nil {
			return errors.New("client: TokenSource has neither Client nor Refresher")
		}
		refresh = s.Client.Refresh
	}
	l, err := refresh(ctx, s.tok.Refresh)
	if err != nil {
		var pe *protocol.Error
		if errors.As(err, &pe) && pe.Status() == 401 {
			// Only a new login helps; the refresh token is dead, so drop it.
			s.tok.Refresh = ""
			return fmt.Errorf("%w: %w", ErrSessionExpired, err)
		}
		return err // a connection error, or a refusal that may pass (429, 503)
	}
	if l.Token == "" {
		return errors.New("client: REFRESH answered without an access token")
	}
	next := TokensFrom(l)
	if next.Refresh == "" {
		// A server that does not rotate keeps the old refresh token valid.
		next.Refresh, next.RefreshExpiresAt = s.tok.Refresh, s.tok.RefreshExpiresAt
	}
	s.tok = next
	return s.save()
}

func (s *TokenSource) save() error {
	if s.Save == nil {
		return nil
	}
	if err := s.Save(s.tok); err != nil {
		return fmt.Errorf("saving the renewed tokens: %w", err)
	}
	return nil
}
