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

	in *bufio.Reader // every line read from In goes through this one buffer
}

// System returns the process's standard streams.
func System() *IOStreams {
	fd := int(os.Stdin.Fd())
	return &IOStreams{
		In:           os.Stdin,
		Out:          os.Stdout,
		ErrOut:       os.Stderr,
		IsTerminal:   term.IsTerminal(fd),
		ReadPassword: func() ([]byte, error) { return term.ReadPassword(fd) },
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
