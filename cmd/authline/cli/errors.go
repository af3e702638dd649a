package cli

import (
	"errors"
	"fmt"

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

// hintError adds advice, printed on its own line after the error.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

func withHint(err error, hint string) error { return &hintError{err: err, hint: hint} }

// exitError is returned by commands that have already reported their
// outcome (demo) and only need a non-zero status.
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

// reportError prints err and returns the exit status for it.
func (f *Factory) reportError(cmd *cobra.Command, err error) int {
	code := exitCode(err)
	f.printError(err)
	if code == exitUsage && cmd != nil {
		fmt.Fprintf(f.IO.ErrOut, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// errorObject is the JSON form of a server refusal.
type errorObject struct {
	OK      bool          `json:"ok"`
	Status  int           `json:"status"`
	Error   protocol.Code `json:"error"`
	Message string        `json:"message"`
}

// printError reports err: a server refusal as a JSON object on Out in
// JSON mode, everything else as "error: ..." (and maybe "hint: ...") on
// ErrOut.
func (f *Factory) printError(err error) {
	var ee *exitError
	if errors.As(err, &ee) {
		return
	}
	if f.beforeOutput != nil {
		f.beforeOutput()
	}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		if f.JSON() {
			writeJSON(f.IO.Out, errorObject{Status: pe.Status(), Error: pe.Code, Message: pe.Message})
			return
		}
		if errors.Is(err, client.ErrSessionExpired) {
			fmt.Fprintf(f.IO.ErrOut, "error: the saved token expired and the server refused to renew it: %s (%s)\n", pe.Message, pe.Code)
		} else {
			fmt.Fprintf(f.IO.ErrOut, "error: %s (%s)\n", pe.Message, pe.Code)
		}
	} else {
		fmt.Fprintf(f.IO.ErrOut, "error: %v\n", err)
	}
	var he *hintError
	if errors.As(err, &he) {
		fmt.Fprintf(f.IO.ErrOut, "hint: %s\n", he.hint)
	}
}
