package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/authline/authline/client"
)

type adminRevokeOptions struct {
	*Factory
	Username string
}

func newAdminRevokeCmd(f *Factory) *cobra.Command {
	opts := &adminRevokeOptions{Factory: f}
	return &cobra.Command{
		Use:   "revoke USERNAME",
		Short: "End every session and token of an account",
		Long: `End every session and token of an account, refresh tokens included; the
account itself stays and can log in again.`,
		Example: `  authline admin revoke alice`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Username = args[0]
			return runAdminRevoke(cmd.Context(), opts)
		},
	}
}

func runAdminRevoke(ctx context.Context, opts *adminRevokeOptions) error {
	return opts.runSaved(ctx, func(u asUser) error {
		return adminRevoke(ctx, opts.Factory, u, opts.Username)
	})
}

// adminRevoke ends every session and token of an account.
func adminRevoke(ctx context.Context, f *Factory, u asUser, username string) error {
	return adminUserChange(ctx, f, u, username, (*client.Client).Revoke, "revoked every session and token of "+username)
}
