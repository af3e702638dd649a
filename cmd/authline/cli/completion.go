package cli

import (
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/authline/authline/protocol"
)

// Tab completion: of the shell's command lines (completeShell, used by
// its line editor), and of the command line (cobra's `authline completion
// bash|zsh|fish|powershell` scripts, which call back `authline __complete`).

// resources are the names GET accepts.
var resources = []string{protocol.ResourceProtected, protocol.ResourceAdmin}

// roles are the names SETROLE accepts.
var roles = []string{"user", "admin"}

// shellCommands are the shell's command names, for completion ("?" is
// left out: it is a synonym of help).
var shellCommands = sortedKeys(shellArgs, "?")

// shellAdminCommands are the shell's admin subcommands.
var shellAdminCommands = sortedKeys(shellAdminArgs)

func sortedKeys(m map[string]argSpec, except ...string) []string {
	var keys []string
	for k := range m {
		if !slices.Contains(except, k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// completeShell completes the last word of line, the shell's input up to
// the cursor. It returns the words that fit, each followed by a space,
// and the partial word they complete.
func completeShell(line string) (candidates []string, partial string) {
	words := strings.Fields(line)
	if line != "" && !strings.HasSuffix(line, " ") && !strings.HasSuffix(line, "\t") && len(words) > 0 {
		partial, words = words[len(words)-1], words[:len(words)-1]
	}
	var choices []string
	switch {
	case len(words) == 0:
		choices = shellCommands
	case len(words) == 1:
		switch strings.ToLower(words[0]) {
		case "get":
			choices = resources
		case "logout":
			choices = []string{"all"}
		case "admin":
			choices = shellAdminCommands
		}
	case len(words) == 3 && strings.EqualFold(words[0], "admin") && strings.EqualFold(words[1], "set-role"):
		choices = roles
	}
	for _, c := range choices {
		if strings.HasPrefix(c, strings.ToLower(partial)) {
			candidates = append(candidates, c+" ")
		}
	}
	return candidates, partial
}

// shellCompleter adapts completeShell to readline's AutoCompleter.
type shellCompleter struct{}

func (shellCompleter) Do(line []rune, pos int) (newLine [][]rune, length int) {
	candidates, partial := completeShell(string(line[:pos]))
	n := len([]rune(partial))
	for _, c := range candidates {
		newLine = append(newLine, []rune(c)[n:])
	}
	return newLine, n
}

// setupCompletion adds argument and flag completions to the command tree.
// Cobra adds the `completion` command itself when the tree is executed.
func setupCompletion(root *cobra.Command, f *Factory) {
	root.CompletionOptions.DisableDefaultCmd = false
	root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	root.RegisterFlagCompletionFunc("server", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		// The servers with a saved login.
		var servers []string
		if creds, _, err := loadCredentials(); err == nil {
			for addr := range creds.Servers {
				servers = append(servers, addr)
			}
			sort.Strings(servers)
		}
		return servers, cobra.ShellCompDirectiveNoFileComp
	})

	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		switch c.CommandPath() {
		case "authline get":
			c.ValidArgsFunction = positional(resources)
		case "authline admin set-role":
			c.ValidArgsFunction = positional(nil, roles)
		}
		// No argument of authline names a file.
		if c.ValidArgsFunction == nil && len(c.ValidArgs) == 0 {
			c.ValidArgsFunction = cobra.NoFileCompletions
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// positional completes the i-th argument from choices[i] (nil: nothing to
// offer).
func positional(choices ...[]string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		var fit []string
		if len(args) < len(choices) {
			for _, c := range choices[len(args)] {
				if strings.HasPrefix(c, toComplete) {
					fit = append(fit, c)
				}
			}
		}
		return fit, cobra.ShellCompDirectiveNoFileComp
	}
}
