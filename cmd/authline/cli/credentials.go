package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// savedLogin is a token saved by `authline login` for one server.
type savedLogin struct {
	Username  string    `json:"username"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
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

// savedLoginFor returns the saved login for the --server address, or an
// error telling the user to log in.
func (f *Factory) savedLoginFor() (savedLogin, *credentials, string, error) {
	creds, path, err := loadCredentials()
	if err != nil {
		return savedLogin{}, nil, "", err
	}
	l, ok := creds.Servers[f.Server]
	if !ok || l.Token == "" {
		return savedLogin{}, nil, "", withHint(fmt.Errorf("not logged in to %s", f.Server), "run: authline login")
	}
	return l, creds, path, nil
}
