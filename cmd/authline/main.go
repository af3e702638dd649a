// Command authline is the command-line client of authline servers.
package main

import (
	"os"

	"github.com/authline/authline/cmd/authline/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.System()))
}
