package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
)

type adminDeleteOptions struct {
	*Factory
	Username string
	Yes      bool
}

func newAdminDeleteCmd(f *Factory) *cobra.Command {
	opts := &adminDeleteOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "delete USERNAME",
		Short: "Delete an account",
		Long: `Delete an account for good; its sessions and tokens end. The last admin
cannot be deleted.

On a terminal you are asked to confirm, unless --yes is given; when stdin
is not a terminal --yes is required.`,
		Example: `  authline admin delete mallory
  authline admin delete mallory --yes`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Username = args[0]
			return runAdminDelete(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func runAdminDelete(ctx context.Context, opts *adminDeleteOptions) error {
	// Not logged in is found out before asking anything.
	saved, _, _, err := opts.savedLoginFor()
	if err != nil {
		return err
	}
	if !opts.Yes {
		if !opts.IO.IsTerminal {
			return usageErrorf("refusing to delete %s without confirmation: stdin is not a terminal; pass --yes", opts.Username)
		}
		if err := confirmDelete(opts.IO, opts.Username); err != nil {
			return err
		}
	}
	tc, err := opts.connectAs(ctx, saved)
	if err != nil {
		return err
	}
	defer tc.Close()
	return adminDelete(ctx, opts.Factory, tc, opts.Username)
}

// errNotConfirmed: the user did not confirm a deletion (exit 1).
var errNotConfirmed = errors.New("not confirmed: nothing deleted")

// confirmDelete reads the answer to "delete for good?", asked on a
// terminal; only "y" or "yes" goes ahead.
func confirmDelete(s *IOStreams, username string) error {
	if s.IsTerminal {
		fmt.Fprintf(s.ErrOut, "Delete account %s for good? [y/N] ", username)
	}
	line, err := s.ReadLine()
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading confirmation: %w", err)
	}
	if s.IsTerminal && errors.Is(err, io.EOF) && line == "" {
		fmt.Fprintln(s.ErrOut) // end the prompt's line
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return errNotConfirmed
}

// adminDelete deletes an account (confirmation is the caller's business).
func adminDelete(ctx context.Context, f *Factory, u asUser, username string) error {
	var d *protocol.UserData
	err := u.do(ctx, func(ctx context.Context, c *client.Client, token string) (err error) {
		d, err = c.Delete(ctx, token, username)
		return err
	})
	if err != nil {
		return err
	}
	return f.printResult(d, fmt.Sprintf("deleted %s (role %s)", d.Username, d.Role))
}
