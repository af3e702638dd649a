package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

type registerOptions struct {
	*Factory
	Username      string
	PasswordStdin bool
}

func newRegisterCmd(f *Factory) *cobra.Command {
	opts := &registerOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "register [USERNAME]",
		Short: "Create an account",
		Long: `Create an account with the "user" role.

USERNAME is prompted for when missing and stdin is a terminal. The password
is prompted for twice without echo, or read from the first line of stdin
with --password-stdin.`,
		Example: `  authline register alice
  printf '%s\n' "$PASSWORD" | authline register alice --password-stdin`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := askUsername(f.IO, args)
			if err != nil {
				return err
			}
			opts.Username = name
			return runRegister(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.PasswordStdin, "password-stdin", false, "read the password from the first line of stdin")
	return cmd
}

func runRegister(ctx context.Context, opts *registerOptions) error {
	pw, err := readPassword(opts.IO, opts.PasswordStdin, "--password-stdin", "Password: ", true)
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
	u, err := c.Register(rctx, opts.Username, pw)
	if err != nil {
		return err
	}
	return opts.printResult(u, fmt.Sprintf("registered %s (role %s)", u.Username, u.Role))
}
