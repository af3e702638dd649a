package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
)

// savedLogin is the token pair saved by `authline login` for one server:
// the access token, and the refresh token that renews it when it expires
// (absent in files written before refresh tokens existed).
type savedLogin struct {
	Username         string    `json:"username"`
	Token            string    `json:"token"`
	ExpiresAt        time.Time `json:"expires_at"`
	RefreshToken     string    `json:"refresh_token,omitempty"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at,omitzero"`
}

// newSavedLogin is what to save from a token-mode LOGIN, REFRESH or PASSWD.
func newSavedLogin(l *protocol.LoginData) savedLogin {
	return savedLogin{
		Username: l.Username, Token: l.Token, ExpiresAt: l.ExpiresAt,
		RefreshToken: l.RefreshToken, RefreshExpiresAt: l.RefreshExpiresAt,
	}
}

// tokens returns the saved pair in the client package's terms.
func (l savedLogin) tokens() client.Tokens {
	return client.Tokens{
		Access: l.Token, AccessExpiresAt: l.ExpiresAt,
		Refresh: l.RefreshToken, RefreshExpiresAt: l.RefreshExpiresAt,
	}
}

// credentials is the content of credentials.json, keyed by the --server
// address the token was obtained from.
type credentials struct {
	Servers map[string]savedLogin `json:"servers"`
}

// credentialsPath is $XDG_CONFIG_HOME/authline/credentials.json, falling
// back to $HOME/.config on every OS so the location is predictable.
func credentialsPath() (string, error) {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if !filepath.IsAbs(dir) { // the XDG spec says relative paths are invalid
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cannot locate the credentials file: %w", err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "authline", "credentials.json"), nil
}

// loadCredentials reads the credentials file; a missing file is empty.
func loadCredentials() (*credentials, string, error) {
	path, err := credentialsPath()
	if err != nil {
		return nil, "", err
	}
	c := &credentials{Servers: map[string]savedLogin{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, path, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading credentials: %w", err)
	}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, "", fmt.Errorf("credentials file %s is corrupt: %v", path, err)
	}
	if c.Servers == nil {
		c.Servers = map[string]savedLogin{}
	}
	return c, path, nil
}

// save writes the file atomically (temporary file, then rename) so a crash
// never leaves a half-written file, and with mode 0600 in a 0700 directory
// because it holds bearer tokens.
func (c *credentials) save(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("saving credentials: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("saving credentials: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".credentials-*.json") // created 0600
	if err != nil {
		return fmt.Errorf("saving credentials: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("saving credentials: %w", err)
	}
	return nil
}

// Several authline processes may update the file at once (a script running
// commands in parallel when the access token has expired). Refresh tokens
// are single-use and the server takes a second use of one for theft, so two
// processes must never both renew the same saved pair: every change of the
// file, renewals included, is made under a lock file next to it, re-reading
// the file first.
const (
	lockWait  = 5 * time.Second  // give up waiting for the lock after this
	lockStale = 30 * time.Second // a lock older than this was left by a crash
	lockPoll  = 10 * time.Millisecond
)

// lockCredentials takes the lock of the credentials file at path. It
// creates path+".lock" exclusively, which works the same on every OS.
func lockCredentials(ctx context.Context, path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("saving credentials: %w", err)
	}
	lock := path + ".lock"
	deadline := time.Now().Add(lockWait)
	for {
		f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			f.Close()
			return func() { os.Remove(lock) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("locking credentials: %w", err)
		}
		if fi, serr := os.Stat(lock); serr == nil && time.Since(fi.ModTime()) > lockStale {
			// A crashed process's; whoever creates it next wins. (Two
			// processes breaking the same stale lock at the same instant
			// could both win: a crash and such a race at once is rare
			// enough, and the worst outcome is a login to redo.)
			os.Remove(lock)
			continue
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("credentials file is locked by another authline (remove %s if none is running)", lock)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("locking credentials: %w", ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// updateCredentials applies change to the credentials file under its lock:
// the file is read afresh, changed and saved atomically.
func updateCredentials(ctx context.Context, change func(*credentials) error) error {
	path, err := credentialsPath()
	if err != nil {
		return err
	}
	unlock, err := lockCredentials(ctx, path)
	if err != nil {
		return err
	}
	defer unlock()
	creds, _, err := loadCredentials()
	if err != nil {
		return err
	}
	if err := change(creds); err != nil {
		return err
	}
	return creds.save(path)
}

// savedLoginFor returns the saved login for the --server address, or an
// error telling the user to log in.
func (f *Factory) savedLoginFor() (savedLogin, *credentials, string, error) {
	creds, path, err := loadCredentials()
	if err != nil {
		return savedLogin{}, nil, "", err
	}
	l, ok := creds.Servers[f.Server]
	if !ok || l.Token == "" {
		return savedLogin{}, nil, "", errNotLoggedIn(f.Server)
	}
	return l, creds, path, nil
}
