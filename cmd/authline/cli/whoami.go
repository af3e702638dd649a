package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
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
	tc, err := opts.connectSaved(ctx)
	if err != nil {
		return err
	}
	defer tc.Close()
	var w *protocol.WhoAmIData
	err = tc.do(ctx, func(ctx context.Context, c *client.Client, token string) (err error) {
		w, err = c.WhoAmI(ctx, token)
		return err
	})
	if err != nil {
		return err
	}
	return opts.printResult(w, fmt.Sprintf("%s (role %s, auth %s)", w.Username, w.Role, w.Auth))
}
