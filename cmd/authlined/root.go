package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/authline/authline/protocol"
)

// version is the server's version, announced in the greeting; release
// builds set it with -ldflags "-X main.version=...".
var version = "0.1.0"

// Exit codes of authlined.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// Streams are the command's I/O, injected so tests run commands in-process.
type Streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// isTerminal reports whether the input is an interactive terminal.
func (s Streams) isTerminal() bool {
	f, ok := s.In.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// globalOptions are the flags every command shares.
type globalOptions struct {
	db string
}

// usageError marks errors in how the command was called (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func newRootCmd(streams Streams) *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "authlined",
		Short: "authline server: authentication over a newline-delimited JSON protocol on TCP",
		Long: `authlined serves the authline protocol (register, log in, sessions and
JWT tokens, an admin-only resource) on TCP or TLS, and manages its users
offline. Every flag can also be set with an AUTHLINE_* environment variable
(--token-ttl is AUTHLINE_TOKEN_TTL) and in a TOML config file given with
--config (token-ttl = "15m"). Flags win over the environment, which wins
over the file. "authlined config print" shows the configuration in force.

Exit codes: 0 ok, 1 error, 2 usage.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return loadConfig(cmd)
		},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&g.db, "db", "authline.db", "the store: an SQLite path (or sqlite://PATH), or a postgres:// URL (search_path selects the schema)")
	root.PersistentFlags().String(configFlag, "", "TOML config file whose keys are the flag names of serve (listen = \"0.0.0.0:7411\"); flags and AUTHLINE_* variables win over it")
	root.AddCommand(newServeCmd(g, streams), newUserCmd(g, streams), newKeysCmd(g, streams), newMigrateCmd(streams), newVersionCmd(streams), newConfigCmd(g, streams))
	return root
}

// Main runs authlined with args and returns the exit code.
func Main(args []string, streams Streams) int {
	root := newRootCmd(streams)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err == nil {
		return exitOK
	}
	msg := err.Error()
	var pe *protocol.Error
	if errors.As(err, &pe) {
		msg = pe.Message // the wire code means nothing on the command line
	}
	fmt.Fprintf(streams.ErrOut, "authlined: %s\n", msg)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsageError(err) {
		return exitUsage
	}
	return exitError
}

// isCobraUsageError recognises cobra's own argument and command errors,
// which it does not type.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "unknown flag", "unknown shorthand", "invalid argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// applyEnv sets every flag that was not given on the command line from
// AUTHLINE_<FLAG>, with dashes as underscores, marks it changed and records
// the variable as its source.
func applyEnv(flags map[string]*pflag.Flag, sources map[string]string) error {
	var errs []error
	for _, name := range sortedNames(flags) {
		f := flags[name]
		if f.Changed {
			continue
		}
		env := envName(name)
		if v, ok := os.LookupEnv(env); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, usageErrorf("%s: %v", env, err))
			}
			f.Changed = true
			sources[name] = "env " + env
		}
	}
	return errors.Join(errs...)
}

// envName is the environment variable of a flag: --token-ttl is
// AUTHLINE_TOKEN_TTL.
func envName(flag string) string {
	return "AUTHLINE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}
