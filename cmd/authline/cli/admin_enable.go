package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/authline/authline/client"
)

type adminEnableOptions struct {
	*Factory
	Username string
}

func newAdminEnableCmd(f *Factory) *cobra.Command {
	opts := &adminEnableOptions{Factory: f}
	return &cobra.Command{
		Use:     "enable USERNAME",
		Short:   "Enable a disabled account",
		Long:    `Let a disabled account log in again.`,
		Example: `  authline admin enable alice`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Username = args[0]
			return runAdminEnable(cmd.Context(), opts)
		},
	}
}

func runAdminEnable(ctx context.Context, opts *adminEnableOptions) error {
	return opts.runSaved(ctx, func(u asUser) error {
		return adminEnable(ctx, opts.Factory, u, opts.Username)
	})
}

// adminEnable enables an account.
func adminEnable(ctx context.Context, f *Factory, u asUser, username string) error {
	return adminUserChange(ctx, f, u, username, (*client.Client).Enable, "enabled "+username)
}
