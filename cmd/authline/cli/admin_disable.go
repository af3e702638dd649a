package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/authline/authline/client"
)

type adminDisableOptions struct {
	*Factory
	Username string
}

func newAdminDisableCmd(f *Factory) *cobra.Command {
	opts := &adminDisableOptions{Factory: f}
	return &cobra.Command{
		Use:   "disable USERNAME",
		Short: "Disable an account",
		Long: `Disable an account: it can no longer log in, and its sessions and tokens end.
"authline admin enable" undoes it. The last admin cannot be disabled.`,
		Example: `  authline admin disable alice`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Username = args[0]
			return runAdminDisable(cmd.Context(), opts)
		},
	}
}

func runAdminDisable(ctx context.Context, opts *adminDisableOptions) error {
	return opts.runSaved(ctx, func(u asUser) error {
		return adminDisable(ctx, opts.Factory, u, opts.Username)
	})
}

// adminDisable disables an account.
func adminDisable(ctx context.Context, f *Factory, u asUser, username string) error {
	return adminUserChange(ctx, f, u, username, (*client.Client).Disable, "disabled "+username)
}
