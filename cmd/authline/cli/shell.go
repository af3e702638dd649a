package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
)

type shellOptions struct {
	*Factory
}

const shellHelp = `Commands:
  register USER   create an account
  login USER      log in for the rest of this session
  get RESOURCE    fetch "protected" or "admin"
  whoami          show whom the session is logged in as
  logout          end the login (the connection stays)
  ping            check that the server answers
  help            show this help
  quit, exit      leave (so does end of input)`

func newShellCmd(f *Factory) *cobra.Command {
	opts := &shellOptions{Factory: f}
	return &cobra.Command{
		Use:   "shell",
		Short: "Interactive session on one connection",
		Long: `Open one connection and read commands from stdin, one per line. Logins are
session logins: they last as long as the connection and save nothing.

Passwords are prompted for without echo when stdin is a terminal; otherwise
the line after "register USER" or "login USER" is the password. A refused
command prints an error and the shell goes on; a lost connection ends it.

` + shellHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runShell(cmd.Context(), opts)
		},
	}
}

// shell is one interactive session.
type shell struct {
	*shellOptions
	c    *client.Client
	user string // logged in as, for the prompt
}

func runShell(ctx context.Context, opts *shellOptions) error {
	c, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	sh := &shell{shellOptions: opts, c: c}
	for {
		if opts.IO.IsTerminal {
			fmt.Fprint(opts.IO.ErrOut, sh.prompt())
		}
		line, err := opts.IO.ReadLine()
		if errors.Is(err, io.EOF) {
			if opts.IO.IsTerminal {
				fmt.Fprintln(opts.IO.ErrOut) // end the prompt's line
			}
			sh.quit(ctx)
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading input: %w", err)
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		done, err := sh.exec(ctx, fields)
		if errors.Is(err, client.ErrConnection) {
			return err // every later command would fail the same way
		}
		if err != nil {
			opts.printError(err)
		}
		if done {
			return nil
		}
	}
}

func (sh *shell) prompt() string {
	if sh.user == "" {
		return "authline> "
	}
	return sh.user + "@" + sh.Server + "> "
}

// shellArgs maps each shell command to its argument, "" for none.
var shellArgs = map[string]string{
	"register": "USER", "login": "USER", "get": "RESOURCE",
	"whoami": "", "logout": "", "ping": "", "help": "", "?": "", "quit": "", "exit": "",
}

// exec runs one command line and reports whether the shell should end.
func (sh *shell) exec(ctx context.Context, fields []string) (done bool, err error) {
	name, args := strings.ToLower(fields[0]), fields[1:]
	arg, known := shellArgs[name]
	if !known {
		return false, usageErrorf("unknown command %q; type help for the list", fields[0])
	}
	if len(args) != len(strings.Fields(arg)) {
		if arg == "" {
			return false, usageErrorf("usage: %s (no arguments)", name)
		}
		return false, usageErrorf("usage: %s %s", name, arg)
	}
	var pw string
	if name == "register" || name == "login" {
		if pw, err = sh.password(name == "register"); err != nil {
			return false, err
		}
	}

	// The clock starts after any password prompt.
	rctx, cancel := sh.WithTimeout(ctx)
	defer cancel()
	switch name {
	case "register":
		u, err := sh.c.Register(rctx, args[0], pw)
		if err != nil {
			return false, err
		}
		return false, sh.printResult(u, fmt.Sprintf("registered %s (role %s)", u.Username, u.Role))
	case "login":
		l, err := sh.c.Login(rctx, args[0], pw, protocol.ModeSession)
		if err != nil {
			return false, err
		}
		sh.user = l.Username
		return false, sh.printResult(l, fmt.Sprintf("logged in as %s (role %s)", l.Username, l.Role))
	case "get":
		r, err := sh.c.Get(rctx, args[0], "")
		if err != nil {
			return false, err
		}
		return false, sh.printResult(r, r.Content)
	case "whoami":
		w, err := sh.c.WhoAmI(rctx, "")
		if err != nil {
			return false, err
		}
		return false, sh.printResult(w, fmt.Sprintf("%s (role %s, auth %s)", w.Username, w.Role, w.Auth))
	case "logout":
		if err := sh.c.Logout(rctx, ""); err != nil {
			return false, err
		}
		res := struct {
			LoggedOut bool   `json:"logged_out"`
			Username  string `json:"username"`
		}{true, sh.user}
		text := "logged out " + sh.user
		sh.user = ""
		return false, sh.printResult(res, text)
	case "ping":
		if err := sh.c.Ping(rctx); err != nil {
			return false, err
		}
		name, version := sh.c.Server()
		return false, sh.printResult(pingResult{Pong: true, Server: name, Version: version}, "pong")
	case "help", "?":
		fmt.Fprintln(sh.IO.Out, shellHelp)
		return false, nil
	default: // quit, exit
		sh.quit(ctx)
		return true, nil
	}
}

// password reads a password: with no echo on a terminal, else the next
// input line.
func (sh *shell) password(confirm bool) (string, error) {
	return readPassword(sh.IO, !sh.IO.IsTerminal, "", "Password: ", confirm)
}

// quit says goodbye to the server. Its failure does not matter: the shell
// is ending either way.
func (sh *shell) quit(ctx context.Context) {
	rctx, cancel := sh.WithTimeout(ctx)
	defer cancel()
	sh.c.Quit(rctx)
}
