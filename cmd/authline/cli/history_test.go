package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRecordable(t *testing.T) {
	tests := []struct {
		line string
		want bool
	}{
		{"login alice", true},
		{"get protected", true},
		{"admin set-role bob admin", true},
		{"logout all", true},
		{"help", true},
		{"login alice s3cret-password", false}, // a password as an extra argument
		{"s3cret-password", false},             // typed at the prompt by mistake
		{" login alice", false},                // a leading space keeps a line out
		{"admin frobnicate", false},
		{"admin set-role bob", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := recordable(tt.line); got != tt.want {
			t.Errorf("recordable(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
}

func TestHistoryFile(t *testing.T) {
	isolate(t)
	path, err := historyPath()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "authline", "history"); path != want {
		t.Fatalf("history path %s, want %s", path, want)
	}

	h, past, err := openHistory(path)
	if err != nil || len(past) != 0 {
		t.Fatalf("new history: %v, %q", err, past)
	}
	for _, line := range []string{"login alice", "get protected", "get protected", "whoami", "get protected"} {
		h.add(line)
	}
	h.Close()
	for p, mode := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != mode {
			t.Fatalf("%s: %v, want mode %v", p, err, mode)
		}
	}

	// Reopened: the lines, a repeat only once.
	h, past, err = openHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	h.add("get protected") // repeats the last line of the file
	h.Close()
	if got := strings.Join(past, "|"); got != "login alice|get protected|whoami|get protected" {
		t.Fatalf("history read back: %q", got)
	}

	// A long file is cut back to the last historyKeep lines.
	var b strings.Builder
	for i := range 2*historyKeep + 1 {
		fmt.Fprintf(&b, "get protected %d\n", i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	h, past, err = openHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if len(past) != historyKeep || past[0] != fmt.Sprintf("get protected %d", historyKeep+1) {
		t.Fatalf("loaded %d lines starting %q", len(past), past[0])
	}
	again, _ := readHistory(path)
	fi, _ := os.Stat(path)
	if len(again) != historyKeep || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file cut to %d lines with mode %v", len(again), fi.Mode().Perm())
	}
}
