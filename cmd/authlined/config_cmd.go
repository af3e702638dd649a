package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
)

func newConfigCmd(g *globalOptions, streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show the configuration the server runs with",
		Args:  cobra.NoArgs,
	}
	printCmd := &cobra.Command{
		Use:   "print [serve flags]",
		Short: "Print the configuration serve would run with, as a config file, secrets hidden",
		Long: `Print the configuration authlined serve would run with, given the same
flags, AUTHLINE_* variables and --config file: every setting of serve and
--db with the value in force (flags > environment > config file >
defaults) and, as a comment, where it comes from.

The output is itself a valid config file. Secrets are hidden: the password
of a database URL is printed as xxxxx.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st := configFrom(cmd.Context())
			if st == nil {
				return fmt.Errorf("no configuration loaded")
			}
			return printConfig(streams.Out, st)
		},
	}
	// The serve flags themselves, so that they resolve exactly as serve's.
	printCmd.Flags().AddFlagSet(newServeCmd(g, streams).Flags())
	cmd.AddCommand(printCmd)
	return cmd
}

// printConfig writes the settings of st as a TOML config file, each with
// its source as a comment.
func printConfig(w io.Writer, st *configState) error {
	keys := fileKeys()
	type line struct{ setting, comment string }
	var lines []line
	width := 0
	for _, name := range sortedNames(keys) {
		f := st.flags[name]
		if f == nil {
			continue
		}
		value := st.values[name]
		shown := redactSetting(name, value)
		comment := st.sources[name]
		if shown != value {
			comment += ", secret hidden"
		}
		l := line{name + " = " + tomlValue(f.Value.Type(), shown), comment}
		if n := utf8.RuneCountInString(l.setting); n <= 40 { // a long URL does not push every comment out
			width = max(width, n)
		}
		lines = append(lines, l)
	}
	var b strings.Builder
	b.WriteString("# The configuration authlined serve runs with: flags > environment\n")
	b.WriteString("# (AUTHLINE_*) > config file > defaults. This is a valid config file.\n")
	if st.path != "" {
		fmt.Fprintf(&b, "# Config file: %s\n", st.path)
	} else {
		b.WriteString("# Config file: none (--config, AUTHLINE_CONFIG)\n")
	}
	b.WriteString("\n")
	for _, l := range lines {
		fmt.Fprintf(&b, "%-*s  # %s\n", width, l.setting, l.comment)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// tomlValue writes a flag's value (its Value.String()) as a TOML value of
// the type the config file loader expects for the flag.
func tomlValue(flagType, value string) string {
	switch {
	case flagType == "duration":
		if d, err := time.ParseDuration(value); err == nil {
			return tomlQuote(shortDuration(d))
		}
	case flagType == "bool", strings.HasPrefix(flagType, "int"), strings.HasPrefix(flagType, "uint"):
		return value
	case strings.HasPrefix(flagType, "float"):
		if f, err := strconv.ParseFloat(value, 64); err == nil {
			s := strconv.FormatFloat(f, 'g', -1, 64)
			if !strings.ContainsAny(s, ".eEnN") { // TOML floats need a point
				s += ".0"
			}
			return s
		}
	}
	return tomlQuote(value)
}

// shortDuration drops the zero tails of Duration.String: 15m, not 15m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// tomlQuote writes s as a TOML basic string.
func tomlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
