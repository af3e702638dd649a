package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
)

type logoutOptions struct {
	*Factory
	All bool
}

func newLogoutCmd(f *Factory) *cobra.Command {
	opts := &logoutOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "Revoke the saved token and forget it",
		Long: `Revoke the token saved for the --server address on the server, then remove
it from the credentials file. A token the server no longer accepts (expired
beyond renewal, or revoked already) is removed too.

With --all, end every session and token of your account, on every device;
if the saved token is no longer accepted this cannot be done (exit 1): log
in again and repeat.`,
		Example: `  authline logout
  authline logout --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLogout(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.All, "all", false, "end every session and token of your account")
	return cmd
}

type logoutResult struct {
	LoggedOut bool   `json:"logged_out"`
	Username  string `json:"username"`
	Revoked   bool   `json:"revoked"`
	All       bool   `json:"all,omitempty"`
	// Reason is why the server no longer accepted the token, when it did not.
	Reason protocol.Code `json:"reason,omitempty"`
}

func runLogout(ctx context.Context, opts *logoutOptions) error {
	tc, err := opts.connectSaved(ctx)
	if err != nil {
		return err
	}
	defer tc.Close()
	user := tc.saved.Username

	res := logoutResult{LoggedOut: true, Username: user, Revoked: true, All: opts.All}
	err = tc.do(ctx, func(ctx context.Context, c *client.Client, token string) error {
		if opts.All {
			return c.LogoutAll(ctx, token)
		}
		return c.Logout(ctx, token)
	})
	if err != nil {
		// A token the server refuses, and cannot be renewed, is useless:
		// forgetting it is all that is left to do. Any other failure keeps
		// it, so logout can be retried.
		code, refused := tokenRefused(err)
		if !refused {
			return err
		}
		if ferr := opts.forgetLogin(ctx, user); ferr != nil {
			return ferr
		}
		if opts.All {
			return withHint(fmt.Errorf("could not log %s out everywhere: the saved token is no longer valid (%s); removed it", user, code),
				"run authline login, then authline logout --all")
		}
		res.Revoked, res.Reason = false, code
		return opts.printResult(res, fmt.Sprintf("the token of %s was no longer valid (%s); removed it", user, code))
	}
	if err := opts.forgetLogin(ctx, user); err != nil {
		return err
	}
	text := fmt.Sprintf("logged out %s; token revoked and removed", user)
	if opts.All {
		text = fmt.Sprintf("logged out %s everywhere: every session and token ended; token removed", user)
	}
	return opts.printResult(res, text)
}

// forgetLogin removes the login saved for --server, unless it has been
// replaced by another user's meanwhile.
func (f *Factory) forgetLogin(ctx context.Context, user string) error {
	return updateCredentials(ctx, func(c *credentials) error {
		if cur, ok := c.Servers[f.Server]; ok && cur.Username == user {
			delete(c.Servers, f.Server)
		}
		return nil
	})
}
