package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/authline/authline/protocol"
)

type loginOptions struct {
	*Factory
	Username      string
	PasswordStdin bool
}

func newLoginCmd(f *Factory) *cobra.Command {
	opts := &loginOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "login [USERNAME]",
		Short: "Log in and save a token for this server",
		Long: `Log in in token mode and save the tokens for the --server address in
$XDG_CONFIG_HOME/authline/credentials.json (default ~/.config), readable by
you only: the access token, which get, whoami, logout, passwd and admin
send, and the refresh token that renews the access token when it expires
(access tokens live minutes, refresh tokens days; every renewal replaces
both, and the file is updated).

USERNAME is prompted for when missing and stdin is a terminal. The password
is prompted for without echo, or read from the first line of stdin with
--password-stdin.`,
		Example: `  authline login alice
  printf '%s\n' "$PASSWORD" | authline login alice --password-stdin`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := askUsername(f.IO, args)
			if err != nil {
				return err
			}
			opts.Username = name
			return runLogin(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.PasswordStdin, "password-stdin", false, "read the password from the first line of stdin")
	return cmd
}

// loginResult is the JSON output of login: the response data without the
// token, which goes to the credentials file and not into terminals or CI
// logs.
type loginResult struct {
	Username         string    `json:"username"`
	Role             string    `json:"role"`
	Mode             string    `json:"mode"`
	TokenType        string    `json:"token_type"`
	ExpiresAt        time.Time `json:"expires_at"`
	ExpiresIn        int64     `json:"expires_in"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at,omitzero"`
	SavedTo          string    `json:"saved_to"`
}

func newLoginResult(l *protocol.LoginData, path string) loginResult {
	return loginResult{
		Username: l.Username, Role: l.Role, Mode: l.Mode, TokenType: l.TokenType,
		ExpiresAt: l.ExpiresAt, ExpiresIn: l.ExpiresIn, RefreshExpiresAt: l.RefreshExpiresAt, SavedTo: path,
	}
}

// saveLogin saves the token pair of l for the --server address.
func (f *Factory) saveLogin(ctx context.Context, l *protocol.LoginData) error {
	return updateCredentials(ctx, func(c *credentials) error {
		c.Servers[f.Server] = newSavedLogin(l)
		return nil
	})
}

// expiryText says until when a saved pair is good.
func expiryText(l *protocol.LoginData) string {
	s := "expires " + l.ExpiresAt.Local().Format(time.RFC3339)
	if l.RefreshToken != "" {
		s += ", renewable until " + l.RefreshExpiresAt.Local().Format(time.RFC3339)
	}
	return s
}

func runLogin(ctx context.Context, opts *loginOptions) error {
	pw, err := readPassword(opts.IO, opts.PasswordStdin, "--password-stdin", "Password: ", false)
	if err != nil {
		return err
	}
	// Read the file first so that a corrupt one fails before the server
	// issues a token we could not keep.
	_, path, err := loadCredentials()
	if err != nil {
		return err
	}
	c, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	rctx, cancel := opts.WithTimeout(ctx)
	defer cancel()
	l, err := c.Login(rctx, opts.Username, pw, protocol.ModeToken)
	if err != nil {
		return err
	}
	if err := opts.saveLogin(ctx, l); err != nil {
		return err
	}
	return opts.printResult(newLoginResult(l, path),
		fmt.Sprintf("logged in as %s (role %s); token saved, %s", l.Username, l.Role, expiryText(l)))
}
