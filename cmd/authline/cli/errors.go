package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
)

// Exit statuses; exitCodesHelp documents them.
const (
	exitOK      = 0
	exitRefused = 1
	exitUsage   = 2
	exitConnect = 3
)

// Error codes of failures found on this side, in the "error" field of the
// JSON error object (a server refusal carries the server's code instead).
// README.md lists them; they are part of the JSON contract.
const (
	codeUsage          = "usage"             // bad flags, arguments or input (exit 2)
	codeNotLoggedIn    = "not_logged_in"     // no saved login for --server (exit 1)
	codeSessionExpired = "session_expired"   // access token expired, nothing to renew it with (exit 1)
	codeConnection     = "connection_failed" // cannot connect, or the connection broke (exit 3)
	codeNotConfirmed   = "not_confirmed"     // admin delete was not confirmed (exit 1)
	codeFailed         = "failed"            // any other failure on this side (exit 1)
)

// usageError marks bad flags, arguments or input: exit status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

func asUsageError(err error) error {
	var ue *usageError
	if errors.As(err, &ue) {
		return err
	}
	return &usageError{err}
}

// codedError gives a failure found on this side its code for JSON output.
type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// hintError adds advice, printed on its own line after the error.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

func withHint(err error, hint string) error { return &hintError{err: err, hint: hint} }

// loginHint is the advice when only a new login helps.
const loginHint = "run authline login"

// sessionExpiredHint is the advice when the saved login cannot be renewed.
const sessionExpiredHint = "token expired: run authline login"

// errNotLoggedIn is the error of commands that need a saved login when
// there is none for addr.
func errNotLoggedIn(addr string) error {
	return withHint(&codedError{codeNotLoggedIn, fmt.Errorf("not logged in to %s", addr)}, loginHint)
}

// exitError is returned by commands that have already reported their
// outcome (demo, status) and only need a non-zero status.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// exitCode maps an error to the exit status; the one place that does.
func exitCode(err error) int {
	var ee *exitError
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, client.ErrConnection):
		return exitConnect
	default:
		// Server refusals (*protocol.Error) and local failures alike.
		return exitRefused
	}
}

// reportError prints err, with advice where some is known, and returns
// the exit status for it. It reports the errors of top-level commands;
// the shell prints its own with printError.
func (f *Factory) reportError(cmd *cobra.Command, err error) int {
	code := exitCode(err)
	if !hasHint(err) {
		if h := f.hintFor(cmd, err); h != "" {
			err = withHint(err, h)
		}
	}
	if code != exitUsage || cmd == nil {
		f.printError(err)
		return code
	}
	if f.JSON() {
		if !hasHint(err) {
			err = withHint(err, fmt.Sprintf("run '%s --help' for usage", cmd.CommandPath()))
		}
		f.printError(err)
		return code
	}
	f.printError(err)
	fmt.Fprintf(f.IO.ErrOut, "Run '%s --help' for usage.\n", cmd.CommandPath())
	return code
}

func hasHint(err error) bool { return hintOf(err) != "" }

func hintOf(err error) string {
	var he *hintError
	if errors.As(err, &he) {
		return he.hint
	}
	return ""
}

// hintFor is the advice for the common failures that carry none yet.
func (f *Factory) hintFor(cmd *cobra.Command, err error) string {
	var pe *protocol.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) && errors.Is(err, client.ErrConnection):
		return fmt.Sprintf("the server at %s did not answer within --timeout %s; is it overloaded, or is this the right address?", f.Server, f.Timeout)
	case errors.Is(err, client.ErrConnection):
		return fmt.Sprintf("is authlined running at %s? (set --server or AUTHLINE_SERVER)", f.Server)
	case !errors.As(err, &pe):
		return ""
	}
	switch pe.Code {
	case protocol.CodeForbidden:
		return "this needs the admin role: log in as an admin with authline login"
	case protocol.CodeRateLimited:
		if pe.RetryAfter > 0 {
			return "too many attempts: wait " + waitText(pe.RetryAfter) + ", then try again"
		}
		return "too many attempts: wait a minute, then try again"
	case protocol.CodeUnavailable:
		return "the server is busy or cannot reach its store: try again in a moment"
	case protocol.CodeTokenExpired:
		return sessionExpiredHint
	case protocol.CodeInvalidToken, protocol.CodeUnauthenticated:
		return loginHint
	case protocol.CodeInvalidCredentials:
		if cmd != nil && cmd.Name() == "passwd" {
			return "" // "the old password is wrong" says it all
		}
		return "check the username and the password"
	case protocol.CodeConflict:
		if cmd != nil && cmd.Name() == "register" {
			return "pick another username, or log in with authline login"
		}
	}
	return ""
}

// waitText says how long d is to a person: whole seconds under a minute,
// else whole minutes, rounded up.
func waitText(d time.Duration) string {
	if d < time.Minute {
		n := int((d + time.Second - 1) / time.Second)
		if n == 1 {
			return "1 second"
		}
		return fmt.Sprintf("%d seconds", n)
	}
	n := int((d + time.Minute - 1) / time.Minute)
	if n == 1 {
		return "1 minute"
	}
	return fmt.Sprintf("%d minutes", n)
}

// errorObject is the JSON form of every failure: a refusal by the server
// (status and the server's code) or a failure found on this side (one of
// the code* codes, no status).
type errorObject struct {
	OK      bool   `json:"ok"`
	Status  int    `json:"status,omitempty"`
	Error   string `json:"error"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
	// RetryAfter is the server's data.retry_after, in seconds, when it
	// said when to try again.
	RetryAfter int64 `json:"retry_after,omitempty"`
}

// newErrorObject describes err for JSON output.
func newErrorObject(err error) errorObject {
	o := errorObject{Message: errorText(err), Hint: hintOf(err)}
	var pe *protocol.Error
	var ce *codedError
	var ue *usageError
	switch {
	case errors.As(err, &pe):
		o.Status, o.Error = pe.Status(), string(pe.Code)
		o.RetryAfter = int64((pe.RetryAfter + time.Second - 1) / time.Second)
		if !errors.Is(err, client.ErrSessionExpired) {
			o.Message = pe.Message
		}
	case errors.Is(err, client.ErrSessionExpired):
		o.Error = codeSessionExpired
	case errors.As(err, &ce):
		o.Error = ce.code
	case errors.As(err, &ue):
		o.Error = codeUsage
	case errors.Is(err, client.ErrConnection):
		o.Error = codeConnection
	case errors.Is(err, errNotConfirmed):
		o.Error = codeNotConfirmed
	default:
		o.Error = codeFailed
	}
	return o
}

// errorText is the one-line message of err, without the "error: " prefix.
func errorText(err error) string {
	var pe *protocol.Error
	hasPE := errors.As(err, &pe)
	switch {
	case errors.Is(err, client.ErrSessionExpired) && hasPE:
		return fmt.Sprintf("token expired and the server refused to renew it: %s (%s)", pe.Message, pe.Code)
	case errors.Is(err, client.ErrSessionExpired):
		return "token expired and there is no refresh token to renew it"
	case hasPE:
		return fmt.Sprintf("%s (%s)", pe.Message, pe.Code)
	}
	return err.Error()
}

// printError reports err: as the JSON error object on Out in JSON mode,
// else as "error: ..." and maybe "hint: ..." on ErrOut.
func (f *Factory) printError(err error) {
	var ee *exitError
	if errors.As(err, &ee) {
		return
	}
	if f.beforeOutput != nil {
		f.beforeOutput()
	}
	if f.JSON() {
		writeJSON(f.IO.Out, newErrorObject(err))
		return
	}
	fmt.Fprintf(f.IO.ErrOut, "error: %s\n", errorText(err))
	if h := hintOf(err); h != "" {
		fmt.Fprintf(f.IO.ErrOut, "hint: %s\n", h)
	}
}
