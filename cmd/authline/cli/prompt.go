package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"golang.org/x/term"
)

// askUsername returns the USERNAME argument, or prompts for it when stdin
// is a terminal.
func askUsername(s *IOStreams, args []string) (string, error) {
	if len(args) > 0 {
		return args[0], nil
	}
	if !s.IsTerminal {
		return "", usageErrorf("USERNAME argument required (stdin is not a terminal to prompt on)")
	}
	fmt.Fprint(s.ErrOut, "Username: ")
	line, err := s.ReadLine()
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading username: %w", err)
	}
	name := strings.TrimSpace(line)
	if name == "" {
		return "", usageErrorf("no username given")
	}
	return name, nil
}

// readPassword gets a password, never from a flag or an argument: the
// first line of stdin when fromStdin (stdinFlag names the flag that asked
// for it, for messages), else a no-echo prompt on the terminal, asked twice
// when confirm is set.
func readPassword(s *IOStreams, fromStdin bool, stdinFlag, prompt string, confirm bool) (string, error) {
	if fromStdin {
		line, err := s.ReadLine()
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading password: %w", err)
		}
		if line == "" {
			return "", usageErrorf("no password on standard input%s", forFlag(stdinFlag))
		}
		return line, nil
	}
	if !s.IsTerminal || s.ReadPassword == nil {
		return "", usageErrorf("cannot prompt for a password: stdin is not a terminal; pipe the password to %s", stdinFlag)
	}
	pw, err := promptPassword(s, prompt)
	if err != nil || !confirm {
		return pw, err
	}
	again, err := promptPassword(s, "Repeat password: ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", usageErrorf("the passwords do not match")
	}
	return pw, nil
}

func forFlag(flag string) string {
	if flag == "" {
		return ""
	}
	return " (" + flag + ")"
}

func promptPassword(s *IOStreams, prompt string) (string, error) {
	var b []byte
	var err error
	if s.promptPassword != nil {
		b, err = s.promptPassword(prompt)
	} else {
		fmt.Fprint(s.ErrOut, prompt)
		b, err = s.ReadPassword()
	}
	fmt.Fprintln(s.ErrOut) // the user's Enter was not echoed
	if err != nil {
		return "", fmt.Errorf("reading password: %w", err)
	}
	if len(b) == 0 {
		return "", usageErrorf("empty password")
	}
	return string(b), nil
}

// readPasswordRaw shows prompt on out and reads a password from the
// terminal in, with echo off from before the prompt is shown (so that
// nothing typed after it appears is echoed). It reads one byte at a time,
// leaving whatever was typed after the Enter for the next reader (the
// shell's line editor). Backspace and Ctrl-U edit; Ctrl-C interrupts;
// Ctrl-D on nothing typed is the end of input.
func readPasswordRaw(in *os.File, out io.Writer, prompt string) ([]byte, error) {
	fd := int(in.Fd())
	old, err := term.MakeRaw(fd)
	if err != nil {
		fmt.Fprint(out, prompt)
		return term.ReadPassword(fd)
	}
	defer term.Restore(fd, old)
	fmt.Fprint(out, prompt)
	var pw []byte
	var b [1]byte
	for {
		n, err := in.Read(b[:])
		if n == 0 {
			if err == nil {
				continue
			}
			if errors.Is(err, io.EOF) && len(pw) > 0 {
				return pw, nil
			}
			return nil, err
		}
		switch c := b[0]; c {
		case '\r', '\n':
			return pw, nil
		case 3: // Ctrl-C
			return nil, errInterrupted
		case 4: // Ctrl-D
			if len(pw) == 0 {
				return nil, io.EOF
			}
		case 0x7f, '\b': // Backspace: drop the last character (UTF-8)
			if len(pw) > 0 {
				_, size := utf8.DecodeLastRune(pw)
				pw = pw[:len(pw)-size]
			}
		case 0x15: // Ctrl-U
			pw = pw[:0]
		default:
			pw = append(pw, c)
		}
	}
}
