package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
)

type shellOptions struct {
	*Factory
}

const shellHelp = `Commands:
  register USER        create an account
  login USER           log in for the rest of this session
  get RESOURCE         fetch "protected" or "admin"
  whoami               show whom the session is logged in as
  passwd               change your password (ends your other logins)
  logout [all]         end the login (the connection stays); with "all",
                       every session and token of yours everywhere
  ping                 check that the server answers
  help                 show this help
  quit, exit           leave (so does end of input, Ctrl-D)

Admin commands (role admin):
  admin users [LIMIT [AFTER]]       list accounts, a page at a time
  admin user NAME                   show an account
  admin set-role NAME user|admin    change an account's role
  admin disable NAME                disable an account
  admin enable NAME                 enable it again
  admin unlock NAME                 clear its failed-login throttling
  admin revoke NAME                 end all its sessions and tokens
  admin delete NAME                 delete it (asks to confirm)

On a terminal: Tab completes commands, admin commands, resources and roles;
Up and Down (and Ctrl-R) recall earlier commands, kept in the history file;
Ctrl-C drops the line being typed.`

func newShellCmd(f *Factory) *cobra.Command {
	opts := &shellOptions{Factory: f}
	return &cobra.Command{
		Use:   "shell",
		Short: "Interactive session on one connection",
		Long: `Open one connection and read commands from stdin, one per line. Logins are
session logins: they last as long as the connection and save nothing.

On a terminal the prompt shows the server, and whom the shell is logged in
as: "127.0.0.1:7411> ", then "alice@127.0.0.1:7411> ". Lines can be edited
(arrows, Ctrl-A, Ctrl-E, Ctrl-W...), Tab completes command names, admin
commands, resources and roles, the up and down arrows (and Ctrl-R) walk
the history, kept in $XDG_CONFIG_HOME/authline/history (mode 0600). Only
accepted command lines are recorded: never what is typed at a password
prompt, nor a line that starts with a space. Ctrl-C drops the line being
typed; Ctrl-D on an empty line leaves.

Passwords are prompted for without echo when stdin is a terminal; otherwise
the line after "register USER" or "login USER" is the password, the two
lines after "passwd" are the current and the new password, and the line
after "admin delete NAME" must be "yes". A refused command prints an error
and the shell goes on; a lost connection ends it. When the server ends the
session from elsewhere (logout everywhere, password change, an admin's
revoke), the shell says so at once.

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
	// ed edits lines on a real terminal (nil: plain line reading, for
	// scripts and pipes), hist records them.
	ed   *lineEditor
	hist *history
	// events carries session_ended events from the client's reading
	// goroutine; only the shell's goroutine prints.
	events chan protocol.Message
}

func runShell(ctx context.Context, opts *shellOptions) error {
	sh := &shell{shellOptions: opts, events: make(chan protocol.Message, 16)}
	c, err := opts.connectWithEvents(ctx, sh.onEvent)
	if err != nil {
		return err
	}
	defer c.Close()
	sh.c = c
	if opts.IO.LineEditing {
		sh.startEditor()
		defer sh.stopEditor()
	}
	// Events that came before a result are shown before it.
	opts.beforeOutput = sh.flushEvents
	defer func() { opts.beforeOutput = nil }()
	for {
		sh.flushEvents()
		if opts.IO.IsTerminal && sh.ed == nil {
			fmt.Fprint(opts.IO.ErrOut, sh.prompt())
		}
		line, err := sh.readLine()
		if errors.Is(err, errInterrupted) {
			continue
		}
		if errors.Is(err, io.EOF) {
			if opts.IO.IsTerminal && sh.ed == nil {
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
		if sh.ed != nil && recordable(line) {
			line = strings.TrimSpace(line)
			sh.ed.remember(line)
			sh.hist.add(line)
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

// startEditor sets up line editing and the history. Without a history
// file the shell still edits lines; without readline it reads plain lines.
func (sh *shell) startEditor() {
	var past []string
	if path, err := historyPath(); err == nil {
		h, lines, err := openHistory(path)
		if err != nil {
			fmt.Fprintf(sh.IO.ErrOut, "warning: no history: %v\n", err)
		}
		sh.hist, past = h, lines
	}
	ed, err := newLineEditor(sh.IO, past)
	if err != nil {
		fmt.Fprintf(sh.IO.ErrOut, "warning: no line editing: %v\n", err)
		return
	}
	sh.ed = ed
}

func (sh *shell) stopEditor() {
	if sh.ed != nil {
		sh.ed.Close()
	}
	sh.hist.Close()
}

// onEvent runs on the client's reading goroutine: it only hands over.
func (sh *shell) onEvent(m protocol.Message) {
	if m.Event != client.EventSessionEnded {
		return
	}
	select {
	case sh.events <- m:
	default: // a backlog of endings says nothing more than the first
	}
}

// readLine reads the next input line, showing events that arrive while
// waiting for it (and the prompt again after them).
func (sh *shell) readLine() (string, error) {
	type result struct {
		line string
		err  error
	}
	lines := make(chan result, 1)
	prompt := sh.prompt()
	go func() {
		var r result
		if sh.ed != nil {
			r.line, r.err = sh.ed.readLine(prompt)
		} else {
			r.line, r.err = sh.IO.ReadLine()
		}
		lines <- r
	}()
	for {
		select {
		case r := <-lines:
			return r.line, r.err
		case ev := <-sh.events:
			if sh.ed != nil {
				// The line being typed is erased, the event shown, and
				// the line drawn again after the new prompt.
				sh.ed.printAbove(sh.promptAfter(ev), func() { sh.showEvent(ev) })
				continue
			}
			if sh.IO.IsTerminal && sh.user != "" {
				fmt.Fprintln(sh.IO.ErrOut) // leave the prompt's line
			}
			if sh.showEvent(ev) && sh.IO.IsTerminal {
				fmt.Fprint(sh.IO.ErrOut, sh.prompt())
			}
		}
	}
}

// promptAfter is the prompt once ev has been shown: showEvent forgets the
// login.
func (sh *shell) promptAfter(protocol.Message) string {
	if sh.user == "" {
		return sh.prompt()
	}
	return sh.Server + "> "
}

// flushEvents shows the events received so far.
func (sh *shell) flushEvents() {
	for {
		select {
		case ev := <-sh.events:
			sh.showEvent(ev)
		default:
			return
		}
	}
}

// showEvent reports that the server ended the session, and forgets the
// login. An event for a login the shell ended itself says nothing new and
// is not shown; showEvent reports whether it showed it.
func (sh *shell) showEvent(ev protocol.Message) bool {
	if sh.user == "" {
		return false
	}
	sh.user = ""
	if sh.JSON() {
		writeJSON(sh.IO.Out, struct {
			Event  string `json:"event"`
			Reason string `json:"reason"`
		}{ev.Event, ev.Reason})
	} else {
		fmt.Fprintf(sh.IO.ErrOut, "session ended by the server: %s\n", ev.Reason)
	}
	return true
}

// prompt shows the server, and whom the shell is logged in as:
// "alice@127.0.0.1:7411> ", or "127.0.0.1:7411> " before a login.
func (sh *shell) prompt() string {
	if sh.user == "" {
		return sh.Server + "> "
	}
	return sh.user + "@" + sh.Server + "> "
}

// do runs a request as the session's user (asUser for the admin
// commands), bounded by --timeout.
func (sh *shell) do(ctx context.Context, fn func(ctx context.Context, c *client.Client, token string) error) error {
	rctx, cancel := sh.WithTimeout(ctx)
	defer cancel()
	return fn(rctx, sh.c, "")
}

// argSpec is how many arguments a shell command takes, and its syntax.
type argSpec struct {
	min, max int // max -1: any number
	usage    string
}

var shellArgs = map[string]argSpec{
	"register": {1, 1, "register USER"},
	"login":    {1, 1, "login USER"},
	"get":      {1, 1, "get RESOURCE"},
	"whoami":   {0, 0, "whoami"},
	"passwd":   {0, 0, "passwd"},
	"logout":   {0, 1, "logout [all]"},
	"ping":     {0, 0, "ping"},
	"help":     {0, 0, "help"},
	"?":        {0, 0, "?"},
	"quit":     {0, 0, "quit"},
	"exit":     {0, 0, "exit"},
	"admin":    {1, -1, "admin COMMAND [ARGS]; type help for the list"},
}

var shellAdminArgs = map[string]argSpec{
	"users":    {0, 2, "admin users [LIMIT [AFTER]]"},
	"user":     {1, 1, "admin user NAME"},
	"set-role": {2, 2, "admin set-role NAME user|admin"},
	"disable":  {1, 1, "admin disable NAME"},
	"enable":   {1, 1, "admin enable NAME"},
	"unlock":   {1, 1, "admin unlock NAME"},
	"revoke":   {1, 1, "admin revoke NAME"},
	"delete":   {1, 1, "admin delete NAME"},
}

func checkArgs(spec argSpec, args []string) error {
	if len(args) >= spec.min && (spec.max < 0 || len(args) <= spec.max) {
		return nil
	}
	if spec.max == 0 {
		return usageErrorf("usage: %s (no arguments)", spec.usage)
	}
	return usageErrorf("usage: %s", spec.usage)
}

// exec runs one command line and reports whether the shell should end.
func (sh *shell) exec(ctx context.Context, fields []string) (done bool, err error) {
	name, args := strings.ToLower(fields[0]), fields[1:]
	spec, known := shellArgs[name]
	if !known {
		return false, usageErrorf("unknown command %q; type help for the list", fields[0])
	}
	if err := checkArgs(spec, args); err != nil {
		return false, err
	}
	if name == "logout" && len(args) == 1 && !strings.EqualFold(args[0], "all") {
		return false, usageErrorf("usage: %s", spec.usage)
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
		sh.flushEvents() // they were about the previous login
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
	case "passwd":
		return false, sh.passwd(ctx)
	case "logout":
		all := len(args) == 1
		if all {
			err = sh.c.LogoutAll(rctx, "")
		} else {
			err = sh.c.Logout(rctx, "")
		}
		sh.flushEvents()
		if err != nil {
			return false, err
		}
		res := logoutResult{LoggedOut: true, Username: sh.user, Revoked: true, All: all}
		text := "logged out " + sh.user
		if all {
			text += " everywhere: every session and token ended"
		}
		sh.user = ""
		return false, sh.printResult(res, text)
	case "ping":
		if err := sh.c.Ping(rctx); err != nil {
			return false, err
		}
		name, version := sh.c.Server()
		return false, sh.printResult(pingResult{Pong: true, Server: name, Version: version}, "pong")
	case "admin":
		return false, sh.admin(ctx, args)
	case "help", "?":
		fmt.Fprintln(sh.IO.Out, shellHelp)
		return false, nil
	default: // quit, exit
		sh.quit(ctx)
		return true, nil
	}
}

// passwd changes the session user's password.
func (sh *shell) passwd(ctx context.Context) error {
	oldPW, newPW, err := readPasswordChange(sh.IO, !sh.IO.IsTerminal, "passwd")
	if err != nil {
		return err
	}
	var l *protocol.LoginData
	err = sh.do(ctx, func(ctx context.Context, c *client.Client, token string) (err error) {
		l, err = c.Passwd(ctx, oldPW, newPW, token)
		return err
	})
	if err != nil {
		return err
	}
	return sh.printResult(l, fmt.Sprintf("password of %s changed; other sessions and tokens ended", l.Username))
}

// admin runs "admin COMMAND ARGS" on the session.
func (sh *shell) admin(ctx context.Context, args []string) error {
	sub, args := strings.ToLower(args[0]), args[1:]
	spec, known := shellAdminArgs[sub]
	if !known {
		return usageErrorf("unknown admin command %q; type help for the list", sub)
	}
	if err := checkArgs(spec, args); err != nil {
		return err
	}
	f := sh.Factory
	switch sub {
	case "users":
		limit, after := 0, ""
		if len(args) > 0 {
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 1 || n > protocol.MaxUsersLimit {
				return usageErrorf("LIMIT must be a number from 1 to %d", protocol.MaxUsersLimit)
			}
			limit = n
		}
		if len(args) > 1 {
			after = args[1]
		}
		return adminUsers(ctx, f, sh, limit, after, false, func(next string) string {
			if limit == 0 {
				limit = protocol.DefaultUsersLimit
			}
			return fmt.Sprintf("admin users %d %s", limit, next)
		})
	case "user":
		return adminUser(ctx, f, sh, args[0])
	case "set-role":
		if err := checkRole(args[1]); err != nil {
			return err
		}
		return adminSetRole(ctx, f, sh, args[0], args[1])
	case "disable":
		return adminDisable(ctx, f, sh, args[0])
	case "enable":
		return adminEnable(ctx, f, sh, args[0])
	case "unlock":
		return adminUnlock(ctx, f, sh, args[0])
	case "revoke":
		return adminRevoke(ctx, f, sh, args[0])
	default: // delete
		if err := confirmDelete(sh.IO, args[0]); err != nil {
			return err
		}
		return adminDelete(ctx, f, sh, args[0])
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
