package cli

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

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
"authline login" saved for the --server address.`,
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
	r, err := c.Get(rctx, opts.Resource, saved.Token)
	if err != nil {
		return tokenHint(err)
	}
	return opts.printResult(r, r.Content)
}

// tokenHint adds the way out to a refusal of the saved token.
func tokenHint(err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		switch pe.Code {
		case protocol.CodeTokenExpired, protocol.CodeInvalidToken, protocol.CodeUnauthenticated:
			return withHint(err, "run: authline login")
		}
	}
	return err
}
