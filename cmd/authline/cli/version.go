package cli

import (
	"github.com/spf13/cobra"
)

// version is the client's version, set at build time with
//
//	go build -ldflags "-X github.com/authline/authline/cmd/authline/cli.version=1.2.3"
var version = "0.1.0-dev"

type versionOptions struct {
	*Factory
}

func newVersionCmd(f *Factory) *cobra.Command {
	opts := &versionOptions{Factory: f}
	return &cobra.Command{
		Use:   "version",
		Short: "Print the client's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVersion(opts)
		},
	}
}

func runVersion(opts *versionOptions) error {
	return opts.printResult(struct {
		Version string `json:"version"`
	}{version}, "authline version "+version)
}
