package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The shell's command history, kept in the same directory as the
// credentials file ($XDG_CONFIG_HOME/authline/history), readable by the
// user only. Only command lines the shell accepted are recorded (a line
// that repeats the one before only once), never
// what is typed at a password or confirmation prompt (those are not read
// as command lines at all), and never a line that starts with a space.

// historyKeep is how many lines the shell loads; the file is cut back to
// this many when it has grown to twice as many.
const historyKeep = 500

// historyPath is the shell's history file.
func historyPath() (string, error) {
	creds, err := credentialsPath()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(creds), "history"), nil
}

// history appends command lines to the history file.
type history struct {
	f    *os.File
	last string // a line repeating the one before is not recorded again
}

// openHistory opens (creating) the history file at path for appending and
// returns its last historyKeep lines, oldest first.
func openHistory(path string) (*history, []string, error) {
	lines, err := readHistory(path)
	if err != nil {
		return nil, nil, err
	}
	if len(lines) > 2*historyKeep {
		lines = lines[len(lines)-historyKeep:]
		if err := rewriteHistory(path, lines); err != nil {
			return nil, nil, err
		}
	} else if len(lines) > historyKeep {
		lines = lines[len(lines)-historyKeep:]
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, fmt.Errorf("history: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("history: %w", err)
	}
	// A file created by something else with a laxer mode is made private.
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm() != 0o600 {
		f.Chmod(0o600)
	}
	h := &history{f: f}
	if len(lines) > 0 {
		h.last = lines[len(lines)-1]
	}
	return h, lines, nil
}

func readHistory(path string) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			lines = append(lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	return lines, nil
}

// rewriteHistory replaces the file with lines, atomically.
func rewriteHistory(path string, lines []string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".history-*") // created 0600
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	_, err = tmp.WriteString(strings.Join(lines, "\n") + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

// add appends one line, unless it repeats the previous one. Failing to
// record history is not worth stopping the shell for, so errors are
// dropped.
func (h *history) add(line string) {
	if h == nil || line == h.last || strings.ContainsAny(line, "\r\n") {
		return
	}
	h.last = line
	h.f.WriteString(line + "\n")
}

func (h *history) Close() error {
	if h == nil {
		return nil
	}
	return h.f.Close()
}

// recordable reports whether a command line goes into the history: a
// command the shell knows, with the right number of arguments (so a
// password typed at the command prompt by mistake, or a password given as
// an extra argument, "login alice s3cret", stays out), and not starting
// with a space (as in bash's ignorespace).
func recordable(line string) bool {
	if line == "" || line[0] == ' ' || line[0] == '\t' {
		return false
	}
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return false
	}
	name, args := strings.ToLower(fields[0]), fields[1:]
	spec, ok := shellArgs[name]
	if !ok || checkArgs(spec, args) != nil {
		return false
	}
	if name == "admin" {
		sub, ok := shellAdminArgs[strings.ToLower(args[0])]
		return ok && checkArgs(sub, args[1:]) == nil
	}
	return true
}
