package cli

import (
	"errors"
	"io"
	"os"

	"github.com/chzyer/readline"
	"golang.org/x/term"
)

// lineEditor reads the shell's command lines on a real terminal with
// readline: editing keys, history (up and down arrows, Ctrl-R) and tab
// completion. Passwords are not read through it: the shell asks for them
// with IOStreams.ReadPassword (no echo) between two command lines, so
// they never reach readline's history.
type lineEditor struct {
	rl *readline.Instance
}

// errInterrupted: Ctrl-C at the prompt; the line typed so far is dropped.
var errInterrupted = errors.New("interrupted")

// newLineEditor starts readline on s, which must be the process's
// terminal (s.LineEditing). It draws on s.ErrOut, like the prompts.
func newLineEditor(s *IOStreams, past []string) (*lineEditor, error) {
	rl, err := readline.NewEx(&readline.Config{
		// readline reads through a bufio.Reader of its own; giving it one
		// byte at a time leaves everything after the line's Enter unread,
		// for the password prompt that may follow.
		Stdin:  io.NopCloser(oneByteReader{s.In}),
		Stdout: s.ErrOut,
		Stderr: s.ErrOut,
		// The history is kept by the shell, which records only the lines
		// it accepts as commands (see recordable).
		HistoryLimit:           historyKeep,
		DisableAutoSaveHistory: true,
		AutoComplete:           shellCompleter{},
		InterruptPrompt:        "^C",
		EOFPrompt:              "\n", // Ctrl-D on an empty line: leave quietly
		FuncIsTerminal:         func() bool { return true },
		FuncGetWidth:           terminalWidth,
	})
	if err != nil {
		return nil, err
	}
	for _, line := range past {
		rl.SaveHistory(line)
	}
	return &lineEditor{rl: rl}, nil
}

// terminalWidth is the width readline lays lines out in; completion needs
// one, so a terminal that does not say gets 80 columns.
func terminalWidth() int {
	for _, f := range []*os.File{os.Stderr, os.Stdout, os.Stdin} {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
			return w
		}
	}
	return 80
}

// readLine shows prompt and returns the line typed: io.EOF on Ctrl-D at an
// empty line, errInterrupted on Ctrl-C.
func (e *lineEditor) readLine(prompt string) (string, error) {
	e.rl.SetPrompt(prompt)
	line, err := e.rl.Readline()
	if errors.Is(err, readline.ErrInterrupt) {
		return "", errInterrupted
	}
	return line, err
}

// remember adds a command line to the history the arrows walk.
func (e *lineEditor) remember(line string) { e.rl.SaveHistory(line) }

// printAbove runs print, which writes whole lines, while a line is being
// edited: the line is erased first and drawn again after, with prompt.
func (e *lineEditor) printAbove(prompt string, print func()) {
	e.rl.Clean()
	print()
	e.rl.SetPrompt(prompt)
	e.rl.Refresh()
}

func (e *lineEditor) Close() error { return e.rl.Close() }

// oneByteReader reads at most one byte per Read.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}
