package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/authline/authline/protocol"
)

func newVersionCmd(streams Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(streams.Out, "authlined %s (protocol %d, %s)\n", version, protocol.Proto, runtime.Version())
			return err
		},
	}
}
