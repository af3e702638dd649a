package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
)

type getOptions struct {
	*Factory
	Resource string
}

func newGetCmd(f *Factory) *cobra.Command {
	opts := &getOptions{Factory: f}
	return &cobra.Command{
		Use:   "get RESOURCE",
		Short: "Fetch a resource with the saved token",
		Long: `Fetch a resource ("protected", or "admin" for admins) with the token that
"authline login" saved for the --server address (renewed with the saved
refresh token when it has expired).`,
		Example: `  authline get protected
  authline get admin --output json | jq -r .content`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Resource = args[0]
			return runGet(cmd.Context(), opts)
		},
	}
}

func runGet(ctx context.Context, opts *getOptions) error {
	tc, err := opts.connectSaved(ctx)
	if err != nil {
		return err
	}
	defer tc.Close()
	var r *protocol.ResourceData
	err = tc.do(ctx, func(ctx context.Context, c *client.Client, token string) (err error) {
		r, err = c.Get(ctx, opts.Resource, token)
		return err
	})
	if err != nil {
		return err
	}
	return opts.printResult(r, r.Content)
}
