package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/authline/authline/protocol"
)

type logoutOptions struct {
	*Factory
}

func newLogoutCmd(f *Factory) *cobra.Command {
	opts := &logoutOptions{Factory: f}
	return &cobra.Command{
		Use:   "logout",
		Short: "Revoke the saved token and forget it",
		Long: `Revoke the token saved for the --server address on the server, then remove
it from the credentials file. A token the server no longer accepts (expired,
or revoked already) is removed too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLogout(cmd.Context(), opts)
		},
	}
}

type logoutResult struct {
	LoggedOut bool   `json:"logged_out"`
	Username  string `json:"username"`
	Revoked   bool   `json:"revoked"`
	// Reason is why the server no longer accepted the token, when it did not.
	Reason protocol.Code `json:"reason,omitempty"`
}

func runLogout(ctx context.Context, opts *logoutOptions) error {
	saved, creds, path, err := opts.savedLoginFor()
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

	res := logoutResult{LoggedOut: true, Username: saved.Username, Revoked: true}
	if err := c.Logout(rctx, saved.Token); err != nil {
		// A token the server rejects as invalid or expired is useless:
		// forgetting it is all that is left to do. Any other failure keeps
		// it, so logout can be retried.
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Status() != 401 {
			return err
		}
		res.Revoked, res.Reason = false, pe.Code
	}
	delete(creds.Servers, opts.Server)
	if err := creds.save(path); err != nil {
		return err
	}
	text := fmt.Sprintf("logged out %s; token revoked and removed", saved.Username)
	if !res.Revoked {
		text = fmt.Sprintf("the token of %s was no longer valid (%s); removed it", saved.Username, res.Reason)
	}
	return opts.printResult(res, text)
}
