package cli

import (
	"bufio"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// IOStreams are the standard streams a command uses, injected so that
// tests can run commands in-process.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	// IsTerminal reports that In is an interactive terminal: prompts are
	// shown (on ErrOut, keeping Out for results) and passwords are read
	// with ReadPassword.
	IsTerminal bool
	// ReadPassword reads one line from the terminal without echoing it.
	ReadPassword func() ([]byte, error)
	// LineEditing reports that In is the process's own terminal, which the
	// shell may put in raw mode to edit lines (readline: history, tab
	// completion). Streams that only act as a terminal (tests) leave it
	// off and get plain line reading.
	LineEditing bool

	in *bufio.Reader // every line read from In goes through this one buffer
	// promptPassword, when set, shows the prompt and reads a password
	// without echo, instead of printing the prompt and calling
	// ReadPassword (see readPasswordRaw).
	promptPassword func(prompt string) ([]byte, error)
}

// System returns the process's standard streams.
func System() *IOStreams {
	fd := int(os.Stdin.Fd())
	isTerm := term.IsTerminal(fd)
	return &IOStreams{
		In:           os.Stdin,
		Out:          os.Stdout,
		ErrOut:       os.Stderr,
		IsTerminal:   isTerm,
		ReadPassword: func() ([]byte, error) { return term.ReadPassword(fd) },
		// The shell edits lines on stderr (prompts go there, results to
		// stdout), so both must be the terminal.
		LineEditing: isTerm && term.IsTerminal(int(os.Stderr.Fd())),
		promptPassword: func(prompt string) ([]byte, error) {
			return readPasswordRaw(os.Stdin, os.Stderr, prompt)
		},
	}
}

// ReadLine returns the next line of In without its "\n" or "\r\n". A last
// line without a terminator is returned too; after it, io.EOF.
func (s *IOStreams) ReadLine() (string, error) {
	if s.in == nil {
		s.in = bufio.NewReader(s.In)
	}
	line, err := s.in.ReadString('\n')
	if err != nil && (err != io.EOF || line == "") {
		return "", err
	}
	line = strings.TrimSuffix(line, "\n")
	return strings.TrimSuffix(line, "\r"), nil
}
