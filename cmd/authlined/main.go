// Command authlined is the authline server and its offline admin tool.
package main

import (
	"os"
)

func main() {
	os.Exit(Main(os.Args[1:], Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}))
}
