package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/authline/authline/client"
)

type adminUserOptions struct {
	*Factory
	Username string
}

func newAdminUserCmd(f *Factory) *cobra.Command {
	opts := &adminUserOptions{Factory: f}
	return &cobra.Command{
		Use:   "user USERNAME",
		Short: "Show an account",
		Long: `Show an account: role, whether it is disabled, whether failed logins
currently throttle it, its last login and creation time.`,
		Example: `  authline admin user alice`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Username = args[0]
			return runAdminUser(cmd.Context(), opts)
		},
	}
}

func runAdminUser(ctx context.Context, opts *adminUserOptions) error {
	return opts.runSaved(ctx, func(u asUser) error {
		return adminUser(ctx, opts.Factory, u, opts.Username)
	})
}

// adminUser prints an account.
func adminUser(ctx context.Context, f *Factory, u asUser, username string) error {
	return adminUserChange(ctx, f, u, username, (*client.Client).User, "")
}
