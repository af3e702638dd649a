package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/authline/authline/client"
)

type adminUnlockOptions struct {
	*Factory
	Username string
}

func newAdminUnlockCmd(f *Factory) *cobra.Command {
	opts := &adminUnlockOptions{Factory: f}
	return &cobra.Command{
		Use:   "unlock USERNAME",
		Short: "Clear an account's failed-login throttling",
		Long: `Clear the failed-login throttling of an account, so that it can log in again
at once.`,
		Example: `  authline admin unlock alice`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Username = args[0]
			return runAdminUnlock(cmd.Context(), opts)
		},
	}
}

func runAdminUnlock(ctx context.Context, opts *adminUnlockOptions) error {
	return opts.runSaved(ctx, func(u asUser) error {
		return adminUnlock(ctx, opts.Factory, u, opts.Username)
	})
}

// adminUnlock clears an account's login throttling.
func adminUnlock(ctx context.Context, f *Factory, u asUser, username string) error {
	return adminUserChange(ctx, f, u, username, (*client.Client).Unlock, "unlocked "+username)
}
