package main

// The config file: a flat TOML table whose keys are the flag names of
// `authlined serve` and the global --db. Values go through each flag's own
// pflag.Value.Set, so a value means in the file exactly what it means on
// the command line. Precedence: flags > AUTHLINE_* environment > file >
// defaults.

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/authline/authline/server/store/storeopen"
)

// configFlag names the global flag (and, as AUTHLINE_CONFIG, the
// variable) that gives the config file.
const configFlag = "config"

// Sources of a setting, as config print shows them.
const (
	sourceDefault = "default"
	sourceFlag    = "flag"
	sourceFile    = "file"
	// an environment variable is "env AUTHLINE_..."
)

// configState is how a command's flags were resolved: enough to resolve
// them again on SIGHUP, with the same command line.
type configState struct {
	path    string                 // the config file; "" when none
	cmdline map[string]string      // flags given on the command line, as their values' strings
	sources map[string]string      // every flag's source: flag, env AUTHLINE_X, file or default
	flags   map[string]*pflag.Flag // the command's flags, values resolved
	values  map[string]string      // every flag's value in force, as its Value.String()
}

type configKey struct{}

// configFrom returns the configuration state loadConfig put in ctx, or nil.
func configFrom(ctx context.Context) *configState {
	st, _ := ctx.Value(configKey{}).(*configState)
	return st
}

// loadConfig resolves the running command's flags (flags > env > file >
// defaults) and keeps how in the command's context.
func loadConfig(cmd *cobra.Command) error {
	st, err := resolveFlags(commandFlags(cmd))
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	cmd.SetContext(context.WithValue(ctx, configKey{}, st))
	return nil
}

// resolveFlags fills the flags not given on the command line from the
// environment, then from the config file, and records every flag's source.
func resolveFlags(flags map[string]*pflag.Flag) (*configState, error) {
	st := &configState{cmdline: map[string]string{}, sources: map[string]string{}, flags: flags}
	for name, f := range flags {
		if f.Changed {
			st.cmdline[name] = f.Value.String()
			st.sources[name] = sourceFlag
		}
	}
	if err := applyEnv(flags, st.sources); err != nil {
		return nil, err
	}
	if f := flags[configFlag]; f != nil {
		st.path = f.Value.String()
	}
	if st.path != "" {
		if err := applyFile(flags, st.path, st.sources); err != nil {
			return nil, err
		}
	}
	st.values = map[string]string{}
	for name, f := range flags {
		st.values[name] = f.Value.String()
		if st.sources[name] == "" {
			st.sources[name] = sourceDefault
		}
	}
	return st, nil
}

// resolveAgain resolves a fresh set of serve flags the way st was
// resolved: the same command line, the environment and the config file as
// they are now.
func (st *configState) resolveAgain() (*configState, error) {
	flags := freshServeFlags()
	for _, name := range sortedNames(st.cmdline) {
		f := flags[name]
		if f == nil {
			continue
		}
		if err := f.Value.Set(st.cmdline[name]); err != nil {
			return nil, fmt.Errorf("--%s: %v", name, err)
		}
		f.Changed = true
	}
	return resolveFlags(flags)
}

// commandFlags are a command's flags, its own and inherited, by name;
// cobra's help flag is left out.
func commandFlags(cmd *cobra.Command) map[string]*pflag.Flag {
	m := map[string]*pflag.Flag{}
	add := func(f *pflag.Flag) {
		if f.Name != "help" {
			m[f.Name] = f
		}
	}
	cmd.InheritedFlags().VisitAll(add)
	cmd.Flags().VisitAll(add)
	return m
}

// freshServeFlags are the flags of a new, unparsed serve command, all at
// their defaults, the global ones (--db, --config) included.
func freshServeFlags() map[string]*pflag.Flag {
	root := newRootCmd(Streams{})
	for _, c := range root.Commands() {
		if c.Name() == "serve" {
			return commandFlags(c)
		}
	}
	panic("authlined: no serve command")
}

// fileKeys are the flags a config file may set, by name: those of serve
// and the global --db, but not --config itself.
func fileKeys() map[string]*pflag.Flag {
	m := freshServeFlags()
	delete(m, configFlag)
	return m
}

// applyFile sets the flags not set yet (by flag or env) from the TOML file
// at path. Every key must be a setting of serve (fileKeys), even when the
// running command has no such flag, so a typo never passes silently; each
// value is checked with the flag's own parser.
func applyFile(flags map[string]*pflag.Flag, path string, sources map[string]string) error {
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".yaml", ".yml", ".json", ".ini":
		return usageErrorf("config file %s: the config file is TOML (authline.toml), not %s", path, strings.TrimPrefix(ext, "."))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return usageErrorf("config file: %v", err)
	}
	var m map[string]any
	if _, err := toml.Decode(string(data), &m); err != nil {
		return usageErrorf("config file %s: %v", path, err)
	}
	allowed := fileKeys()
	// In the file's order, so that errors come in the order of its lines.
	keys := sortedNames(m)
	slices.SortStableFunc(keys, func(a, b string) int { return keyLine(data, a) - keyLine(data, b) })
	var errs []string
	for _, key := range keys {
		where := path
		if line := keyLine(data, key); line > 0 {
			where = fmt.Sprintf("%s:%d", path, line)
		}
		check, ok := allowed[key]
		if !ok {
			msg := fmt.Sprintf("%s: unknown key %q", where, key)
			if _, table := m[key].(map[string]any); table {
				msg = fmt.Sprintf("%s: unknown table [%s] (the config file is one flat table: no [sections])", where, key)
			} else if key == configFlag {
				msg += " (a config file cannot name another)"
			} else if s := closest(key, sortedNames(allowed)); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += " (the keys are the flag names of authlined serve, such as token-ttl)"
			}
			errs = append(errs, msg)
			continue
		}
		s, err := tomlValueString(check, m[key])
		if err == nil {
			// Parse it with a fresh flag even when a flag or variable
			// overrides it, so a bad value is refused all the same.
			err = check.Value.Set(s)
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %s: %v", where, key, err))
			continue
		}
		f := flags[key]
		if f == nil || f.Changed {
			continue // not a flag of this command, or set by flag or env
		}
		if err := f.Value.Set(s); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %s: %v", where, key, err))
			continue
		}
		f.Changed = true
		sources[key] = sourceFile
	}
	if len(errs) > 0 {
		return usageErrorf("config file %s", strings.Join(errs, "; "))
	}
	return nil
}

// tomlValueString turns a TOML value into the string the flag's Set takes,
// refusing a value of the wrong TOML type (a port given as a number for
// --listen, say).
func tomlValueString(f *pflag.Flag, v any) (string, error) {
	typ := f.Value.Type()
	switch v := v.(type) {
	case string:
		switch typ {
		case "string", "duration":
			return v, nil
		case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64", "bool":
			return "", fmt.Errorf("want %s, not the string %q (write it without quotes)", tomlTypeName(typ), v)
		}
		return v, nil // other flag types parse their text form
	case int64:
		switch {
		case strings.HasPrefix(typ, "int"), strings.HasPrefix(typ, "uint"), strings.HasPrefix(typ, "float"):
			return strconv.FormatInt(v, 10), nil
		case typ == "duration" && v == 0:
			return "0", nil
		case typ == "duration":
			return "", fmt.Errorf("want a duration string such as \"15m\" or \"10s\", not the number %d", v)
		}
	case float64:
		if strings.HasPrefix(typ, "float") {
			return strconv.FormatFloat(v, 'g', -1, 64), nil
		}
	case bool:
		if typ == "bool" {
			return strconv.FormatBool(v), nil
		}
	}
	return "", fmt.Errorf("want %s, not %s %v", tomlTypeName(typ), tomlTypeOf(v), v)
}

func tomlTypeName(flagType string) string {
	switch {
	case flagType == "duration":
		return "a duration string such as \"15m\""
	case strings.HasPrefix(flagType, "int"), strings.HasPrefix(flagType, "uint"):
		return "an integer"
	case strings.HasPrefix(flagType, "float"):
		return "a number"
	case flagType == "bool":
		return "a boolean (true or false)"
	}
	return "a string"
}

func tomlTypeOf(v any) string {
	switch v.(type) {
	case string:
		return "the string"
	case int64:
		return "the integer"
	case float64:
		return "the number"
	case bool:
		return "the boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("a %T", v)
}

// keyLine finds the line of a top-level key in a TOML file, for error
// messages; 0 when it cannot tell.
func keyLine(data []byte, key string) int {
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		for _, k := range []string{key, `"` + key + `"`, "'" + key + "'"} {
			if rest, ok := strings.CutPrefix(line, k); ok && strings.HasPrefix(strings.TrimSpace(rest), "=") {
				return i + 1
			}
		}
	}
	return 0
}

// closest is the name nearest to key by edit distance, if it is near
// enough to be a typo.
func closest(key string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(key, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// secretName matches flags whose whole value is a secret.
var secretName = regexp.MustCompile(`(?i)password|secret|passphrase|credential`)

// redactSetting hides the secrets in a setting's value for printing and
// logging: the password of a database URL (or of any URL), and the whole
// value of a secret-like setting.
func redactSetting(name, value string) string {
	if value == "" {
		return value
	}
	if secretName.MatchString(name) {
		return "(hidden)"
	}
	if name == "db" {
		return storeopen.Redact(value)
	}
	if u, err := url.Parse(value); err == nil && u.Scheme != "" && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
	}
	return value
}
