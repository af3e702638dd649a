package cli

import (
	"context"
	"errors"
	"time"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
)

// asUser makes requests as the logged-in user: with the token pair saved
// for --server (tokenConn, for the commands) or with the login of the
// shell's session (sessionUser). fn gets the client and the token to send,
// "" meaning the session; each call is bounded by --timeout.
type asUser interface {
	do(ctx context.Context, fn func(ctx context.Context, c *client.Client, token string) error) error
}

// tokenConn is a connection whose requests carry the access token saved
// for --server. An access token that has expired is renewed with the saved
// refresh token, before the request when its expiry has passed and after
// the server refused it as expired, and the rotated pair is saved.
type tokenConn struct {
	f     *Factory
	c     *client.Client
	saved savedLogin
	ts    *client.TokenSource
}

// connectSaved loads the login saved for --server and connects.
func (f *Factory) connectSaved(ctx context.Context) (*tokenConn, error) {
	saved, _, _, err := f.savedLoginFor()
	if err != nil {
		return nil, err
	}
	return f.connectAs(ctx, saved)
}

// connectAs connects to use the saved login.
func (f *Factory) connectAs(ctx context.Context, saved savedLogin) (*tokenConn, error) {
	c, err := f.Connect(ctx)
	if err != nil {
		return nil, err
	}
	tc := &tokenConn{f: f, c: c, saved: saved}
	// Renewals save the pair themselves, under the credentials lock.
	tc.ts = client.NewTokenSource(c, saved.tokens(), nil)
	tc.ts.Refresher = tc.refresh
	return tc, nil
}

func (tc *tokenConn) Close() error { return tc.c.Close() }

func (tc *tokenConn) do(ctx context.Context, fn func(ctx context.Context, c *client.Client, token string) error) error {
	rctx, cancel := tc.f.WithTimeout(ctx)
	defer cancel()
	err := tc.ts.Do(rctx, func(ctx context.Context, token string) error { return fn(ctx, tc.c, token) })
	return savedTokenError(err)
}

// refresh renews the pair under the credentials lock. If another authline
// process renewed it since this one read the file, the refresh token this
// one holds is retired (using it again would look like theft and end the
// login): the pair in the file is used instead, renewed only if its access
// token has expired too.
func (tc *tokenConn) refresh(ctx context.Context, refreshToken string) (*protocol.LoginData, error) {
	var renewed *protocol.LoginData
	err := updateCredentials(ctx, func(creds *credentials) error {
		cur, ok := creds.Servers[tc.f.Server]
		if ok && cur.Username == tc.saved.Username && cur.RefreshToken != "" && cur.RefreshToken != refreshToken {
			if time.Now().Before(cur.ExpiresAt.Add(-client.RefreshLeeway)) {
				renewed = cur.loginData()
				return nil
			}
			refreshToken = cur.RefreshToken
		}
		l, err := tc.c.Refresh(ctx, refreshToken)
		if err != nil {
			return err
		}
		if l.Username == "" {
			l.Username = tc.saved.Username
		}
		creds.Servers[tc.f.Server] = newSavedLogin(l)
		renewed = l
		return nil
	})
	if err != nil {
		return nil, err
	}
	tc.saved = newSavedLogin(renewed)
	return renewed, nil
}

// loginData is the saved pair as a token-mode login result.
func (l savedLogin) loginData() *protocol.LoginData {
	return &protocol.LoginData{
		Username: l.Username, Mode: protocol.ModeToken, TokenType: "Bearer",
		Token: l.Token, ExpiresAt: l.ExpiresAt,
		RefreshToken: l.RefreshToken, RefreshExpiresAt: l.RefreshExpiresAt,
	}
}

// savedTokenError adds the way out to a refusal of the saved token.
func savedTokenError(err error) error {
	if errors.Is(err, client.ErrSessionExpired) {
		return withHint(err, sessionExpiredHint)
	}
	return tokenHint(err)
}

// tokenHint adds the way out to a refusal of the saved token.
func tokenHint(err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		switch pe.Code {
		case protocol.CodeTokenExpired:
			return withHint(err, sessionExpiredHint)
		case protocol.CodeInvalidToken, protocol.CodeUnauthenticated:
			return withHint(err, loginHint)
		}
	}
	return err
}

// tokenRefused reports whether err means that the saved login is useless:
// the server refused its token (401), or it expired and could not be
// renewed. The code says why, when the server said.
func tokenRefused(err error) (protocol.Code, bool) {
	var pe *protocol.Error
	hasPE := errors.As(err, &pe)
	switch {
	case hasPE && (pe.Status() == 401 || errors.Is(err, client.ErrSessionExpired)):
		return pe.Code, true
	case errors.Is(err, client.ErrSessionExpired):
		return protocol.CodeTokenExpired, true
	}
	return "", false
}
