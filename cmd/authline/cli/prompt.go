package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
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
	fmt.Fprint(s.ErrOut, prompt)
	b, err := s.ReadPassword()
	fmt.Fprintln(s.ErrOut) // the user's Enter was not echoed
	if err != nil {
		return "", fmt.Errorf("reading password: %w", err)
	}
	if len(b) == 0 {
		return "", usageErrorf("empty password")
	}
	return string(b), nil
}
