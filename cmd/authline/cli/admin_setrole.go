package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
)

type adminSetRoleOptions struct {
	*Factory
	Username string
	Role     string
}

func newAdminSetRoleCmd(f *Factory) *cobra.Command {
	opts := &adminSetRoleOptions{Factory: f}
	return &cobra.Command{
		Use:   "set-role USERNAME user|admin",
		Short: "Give an account the user or the admin role",
		Long: `Give an account the "user" or the "admin" role. The last admin cannot be
demoted.`,
		Example: `  authline admin set-role alice admin`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Username, opts.Role = args[0], args[1]
			if err := checkRole(opts.Role); err != nil {
				return err
			}
			return runAdminSetRole(cmd.Context(), opts)
		},
	}
}

// checkRole refuses a role the server does not know before connecting.
func checkRole(role string) error {
	if role != "user" && role != "admin" {
		return usageErrorf("role must be user or admin, not %q", role)
	}
	return nil
}

func runAdminSetRole(ctx context.Context, opts *adminSetRoleOptions) error {
	return opts.runSaved(ctx, func(u asUser) error {
		return adminSetRole(ctx, opts.Factory, u, opts.Username, opts.Role)
	})
}

// adminSetRole changes an account's role.
func adminSetRole(ctx context.Context, f *Factory, u asUser, username, role string) error {
	req := func(c *client.Client, ctx context.Context, token, username string) (*protocol.UserInfo, error) {
		return c.SetRole(ctx, token, username, role)
	}
	return adminUserChange(ctx, f, u, username, req, fmt.Sprintf("role of %s set to %s", username, role))
}
