// Package cli implements the authline command: one file per command, each
// with an options struct and a run function, all writing to injected
// IOStreams so that tests run them in-process.
package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
)

// DefaultServer is the address used when neither --server nor
// AUTHLINE_SERVER is set.
const DefaultServer = "127.0.0.1:7411"

const exitCodesHelp = `
Exit status:
  0  success
  1  the server refused the request, or the command failed (e.g. not logged in)
  2  usage error: bad flags or arguments
  3  cannot connect to the server, or the connection broke`

// Factory carries what commands share: the streams and the global flags.
type Factory struct {
	IO *IOStreams

	// Global options, bound to the root command's persistent flags.
	Server             string
	TLS                bool
	CAFile             string
	InsecureSkipVerify bool
	Output             string
	Timeout            time.Duration

	tlsConfig *tls.Config // built from the TLS flags before any command runs
	// running is set once flags and arguments were accepted: any error
	// before that is a usage error.
	running bool
	// beforeOutput, when set, runs before any result or error is printed
	// (the shell prints the events that came first).
	beforeOutput func()
}

// JSON reports whether --output json is in effect.
func (f *Factory) JSON() bool { return f.Output == "json" }

// Connect dials the server named by the global flags, bounded by --timeout.
func (f *Factory) Connect(ctx context.Context) (*client.Client, error) {
	return f.connectWithEvents(ctx, nil)
}

// connectWithEvents is Connect with a handler of the server's events (see
// client.Options.OnEvent).
func (f *Factory) connectWithEvents(ctx context.Context, onEvent func(protocol.Message)) (*client.Client, error) {
	ctx, cancel := f.WithTimeout(ctx)
	defer cancel()
	c, err := client.Dial(ctx, f.Server, &client.Options{TLSConfig: f.tlsConfig, DialTimeout: f.Timeout, OnEvent: onEvent})
	if err != nil {
		return nil, withHint(err, f.hintFor(nil, err))
	}
	return c, nil
}

// WithTimeout bounds one request by --timeout (zero: no bound).
func (f *Factory) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if f.Timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, f.Timeout)
}

// Main runs the authline command line and returns the exit status.
func Main(args []string, io *IOStreams) int {
	f := &Factory{IO: io}
	root := NewCmdRoot(f)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(context.Background())
	if err == nil {
		return exitOK
	}
	if !f.running {
		// Cobra's own errors (unknown command, wrong number of arguments)
		// are plain errors; they all happen before a command runs.
		err = asUsageError(err)
		if f.Output == "text" && jsonRequested(args) {
			// Cobra stopped before parsing the flags (unknown command):
			// the error is still reported as JSON.
			f.Output = "json"
		}
	}
	return f.reportError(cmd, err)
}

// jsonRequested reports whether args ask for --output json.
func jsonRequested(args []string) bool {
	for i, a := range args {
		switch {
		case a == "--":
			return false
		case a == "-o" || a == "--output":
			if i+1 < len(args) && args[i+1] == "json" {
				return true
			}
		case a == "-ojson" || a == "-o=json" || a == "--output=json":
			return true
		}
	}
	return false
}

// NewCmdRoot builds the command tree.
func NewCmdRoot(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "authline <command>",
		Short: "Client for authline authentication servers",
		Long: `authline talks to an authlined server: register an account, log in to get
a token (saved per server in $XDG_CONFIG_HOME/authline/credentials.json),
fetch protected resources with it, change your password, manage accounts
as an admin, see your saved logins with "status", or explore
interactively with "shell".

With --output json every command prints one JSON object on stdout, failures
included ({"ok":false,"error":CODE,"message":...,"hint":...}); in text mode
a failure is one "error: ..." line on stderr, often followed by a
"hint: ..." line saying what to do next.

Passwords are read from a prompt that does not echo, or from standard input
with --password-stdin; never from flags or arguments.` + "\n" + exitCodesHelp,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := f.prepare(); err != nil {
				return err
			}
			f.running = true
			return nil
		},
	}
	cmd.SetIn(f.IO.In)
	cmd.SetOut(f.IO.Out)
	cmd.SetErr(f.IO.ErrOut)
	cmd.SetVersionTemplate("authline version {{.Version}}\n")
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		if strings.HasPrefix(err.Error(), "unknown flag: --password") && !strings.Contains(err.Error(), "stdin") {
			return withHint(usageErrorf("%v", err),
				"passwords are never taken from flags: use the prompt, or pipe the password to --password-stdin")
		}
		return usageErrorf("%v", err)
	})

	server := os.Getenv("AUTHLINE_SERVER")
	if server == "" {
		server = DefaultServer
	}
	fl := cmd.PersistentFlags()
	fl.StringVar(&f.Server, "server", server, "server address host:port (env AUTHLINE_SERVER)")
	fl.BoolVar(&f.TLS, "tls", false, "connect with TLS")
	fl.StringVar(&f.CAFile, "ca-file", "", "PEM file of CA certificates to trust (implies --tls)")
	fl.BoolVar(&f.InsecureSkipVerify, "insecure-skip-verify", false, "do not verify the server's certificate (implies --tls; testing only)")
	fl.StringVarP(&f.Output, "output", "o", "text", "output format: text or json")
	fl.DurationVar(&f.Timeout, "timeout", 10*time.Second, "time limit for connecting and for each request (0: none)")

	cmd.AddCommand(
		newRegisterCmd(f),
		newLoginCmd(f),
		newGetCmd(f),
		newWhoAmICmd(f),
		newLogoutCmd(f),
		newStatusCmd(f),
		newPasswdCmd(f),
		newAdminCmd(f),
		newPingCmd(f),
		newBenchCmd(f),
		newShellCmd(f),
		newDemoCmd(f),
		newVersionCmd(f),
	)
	for _, c := range cmd.Commands() {
		if c.Long == "" {
			c.Long = c.Short + "."
		}
		c.Long += "\n" + exitCodesHelp
	}
	setupCompletion(cmd, f)
	return cmd
}

// prepare checks the global flags and builds the TLS configuration.
func (f *Factory) prepare() error {
	switch f.Output {
	case "text", "json":
	default:
		return usageErrorf("--output must be text or json, not %q", f.Output)
	}
	if f.Timeout < 0 {
		return usageErrorf("--timeout must not be negative")
	}
	if f.Server == "" {
		return usageErrorf("--server must not be empty")
	}
	if !f.TLS && f.CAFile == "" && !f.InsecureSkipVerify {
		return nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: f.InsecureSkipVerify}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return usageErrorf("--ca-file: %v", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return usageErrorf("--ca-file: no PEM certificates in %s", f.CAFile)
		}
	}
	f.tlsConfig = cfg
	return nil
}
