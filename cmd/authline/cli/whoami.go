package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

type whoamiOptions struct {
	*Factory
}

func newWhoAmICmd(f *Factory) *cobra.Command {
	opts := &whoamiOptions{Factory: f}
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show whom the saved token belongs to",
		Long:  `Ask the server whom the token saved for the --server address belongs to.`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWhoAmI(cmd.Context(), opts)
		},
	}
}

func runWhoAmI(ctx context.Context, opts *whoamiOptions) error {
	saved, _, _, err := opts.savedLoginFor()
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
	w, err := c.WhoAmI(rctx, saved.Token)
	if err != nil {
		return tokenHint(err)
	}
	return opts.printResult(w, fmt.Sprintf("%s (role %s, auth %s)", w.Username, w.Role, w.Auth))
}
