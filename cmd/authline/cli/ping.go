package cli

import (
	"context"

	"github.com/spf13/cobra"
)

type pingOptions struct {
	*Factory
}

func newPingCmd(f *Factory) *cobra.Command {
	opts := &pingOptions{Factory: f}
	return &cobra.Command{
		Use:   "ping",
		Short: "Check that the server answers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPing(cmd.Context(), opts)
		},
	}
}

type pingResult struct {
	Pong    bool   `json:"pong"`
	Server  string `json:"server"`
	Version string `json:"version"`
}

func runPing(ctx context.Context, opts *pingOptions) error {
	c, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	rctx, cancel := opts.WithTimeout(ctx)
	defer cancel()
	if err := c.Ping(rctx); err != nil {
		return err
	}
	name, version := c.Server()
	return opts.printResult(pingResult{Pong: true, Server: name, Version: version}, "pong")
}
