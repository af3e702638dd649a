package cli

import (
	"reflect"
	"strings"
	"testing"

	"github.com/authline/authline/server/servertest"
)

func TestCompletionScripts(t *testing.T) {
	isolate(t)
	for shell, want := range map[string]string{
		"bash":       "# bash completion V2 for authline",
		"zsh":        "#compdef authline",
		"fish":       "complete -c authline",
		"powershell": "Register-ArgumentCompleter",
	} {
		t.Run(shell, func(t *testing.T) {
			r := run(t, "", "completion", shell)
			wantCode(t, r, 0)
			if !strings.Contains(r.out, want) || !strings.Contains(r.out, "__complete") || r.err != "" {
				t.Fatalf("completion %s: stdout lacks %q or __complete (%d bytes), stderr %q", shell, want, len(r.out), r.err)
			}
		})
	}
}

// complete runs `authline __complete ARGS...`, as the completion scripts
// do, and returns the candidates offered and the directive.
func complete(t *testing.T, args ...string) (candidates []string, directive string) {
	t.Helper()
	r := run(t, "", append([]string{"__complete"}, args...)...)
	wantCode(t, r, 0)
	for _, line := range strings.Split(strings.TrimSuffix(r.out, "\n"), "\n") {
		if strings.HasPrefix(line, ":") {
			return candidates, line
		}
		name, _, _ := strings.Cut(line, "\t")
		candidates = append(candidates, name)
	}
	t.Fatalf("no directive line in %q", r.out)
	return nil, ""
}

func TestCompleteCommandLine(t *testing.T) {
	srv := startServer(t, servertest.Options{})
	wantCode(t, run(t, "alice-password\n", "--server", srv.Addr, "login", "alice", "--password-stdin"), 0)

	const noFiles = ":4" // cobra.ShellCompDirectiveNoFileComp
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"get", ""}, []string{"protected", "admin"}},
		{[]string{"get", "p"}, []string{"protected"}},
		{[]string{"get", "protected", ""}, nil},
		{[]string{"admin", "set-role", "bob", ""}, []string{"user", "admin"}},
		{[]string{"admin", "user", ""}, nil},
		{[]string{"--output", ""}, []string{"text", "json"}},
		{[]string{"--server", ""}, []string{srv.Addr}}, // the servers with a saved login
		{[]string{"whoami", ""}, nil},
	}
	for _, tt := range tests {
		got, directive := complete(t, tt.args...)
		if !reflect.DeepEqual(got, tt.want) || directive != noFiles {
			t.Errorf("__complete %q = %q %s, want %q %s", tt.args, got, directive, tt.want, noFiles)
		}
	}

	// Command and subcommand names.
	for args, want := range map[string][]string{
		"":      {"completion", "get", "login", "shell", "status", "whoami"},
		"admin": {"delete", "set-role", "users"},
	} {
		a := append(strings.Fields(args), "")
		got, _ := complete(t, a...)
		for _, w := range want {
			if !strings.Contains(" "+strings.Join(got, " ")+" ", " "+w+" ") {
				t.Errorf("__complete %q = %q, lacks %s", a, got, w)
			}
		}
	}
}

func TestCompleteShellLine(t *testing.T) {
	tests := []struct {
		line    string
		want    []string
		partial string
	}{
		{"ge", []string{"get "}, "ge"},
		{"get ", []string{"protected ", "admin "}, ""},
		{"get p", []string{"protected "}, "p"},
		{"GET a", []string{"admin "}, "a"},
		{"  get  ", []string{"protected ", "admin "}, ""},
		{"admin s", []string{"set-role "}, "s"},
		{"admin u", []string{"unlock ", "user ", "users "}, "u"},
		{"admin set-role bob ", []string{"user ", "admin "}, ""},
		{"admin set-role bob a", []string{"admin "}, "a"},
		{"logout ", []string{"all "}, ""},
		{"lo", []string{"login ", "logout "}, "lo"},
		{"whoami ", nil, ""},
		{"get protected ", nil, ""},
		{"frob", nil, "frob"},
	}
	for _, tt := range tests {
		got, partial := completeShell(tt.line)
		if !reflect.DeepEqual(got, tt.want) || partial != tt.partial {
			t.Errorf("completeShell(%q) = %q, %q; want %q, %q", tt.line, got, partial, tt.want, tt.partial)
		}
	}
	// Every command of the shell is offered on an empty line, "?" aside.
	all, _ := completeShell("")
	if len(all) != len(shellArgs)-1 {
		t.Errorf("completeShell(\"\") = %q, want the %d commands", all, len(shellArgs)-1)
	}

	// readline gets what is left to type.
	newLine, n := shellCompleter{}.Do([]rune("admin se"), len("admin se"))
	if len(newLine) != 1 || string(newLine[0]) != "t-role " || n != 2 {
		t.Errorf("Do = %q, %d", newLine, n)
	}
}
