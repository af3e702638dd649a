package main

import (
	"bufio"
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// printed is one setting of `authlined config print`.
type printed struct {
	value  any    // as TOML decodes it
	source string // the comment: flag, env AUTHLINE_X, file or default
}

var printedLine = regexp.MustCompile(`^([a-z0-9-]+) = (.*?)\s+# (.*)$`)

// parsePrinted checks that config print's output is valid TOML and returns
// its settings with their sources.
func parsePrinted(t *testing.T, out string) map[string]printed {
	t.Helper()
	var values map[string]any
	if _, err := toml.Decode(out, &values); err != nil {
		t.Fatalf("config print's output is not valid TOML: %v\n%s", err, out)
	}
	m := map[string]printed{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if l := printedLine.FindStringSubmatch(sc.Text()); l != nil {
			m[l[1]] = printed{value: values[l[1]], source: l[3]}
		}
	}
	if len(m) != len(values) || len(m) < 30 {
		t.Fatalf("config print: %d settings with a source comment, %d in the TOML; want them all (30+):\n%s", len(m), len(values), out)
	}
	return m
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigPrecedence checks flags > env > file > defaults for settings of
// every type, through `config print`, which resolves serve's own flags.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, filepath.Join(dir, "authline.toml"), `
listen = "127.0.0.1:1001"
db = "file.db"
token-ttl = "10m"
max-conns = 111
insecure-plaintext = true
ip-auth-rate = 2.5
log-level = "warn"
`)
	type want struct {
		value  any
		source string
	}
	for _, c := range []struct {
		name  string
		env   map[string]string
		args  []string
		wants map[string]want
	}{
		{
			name: "defaults",
			wants: map[string]want{
				"listen": {"127.0.0.1:7411", "default"}, "db": {"authline.db", "default"}, "token-ttl": {"15m", "default"},
				"max-conns": {int64(10000), "default"}, "insecure-plaintext": {false, "default"}, "ip-auth-rate": {1.0, "default"},
			},
		},
		{
			name: "file over defaults",
			args: []string{"--config", file},
			wants: map[string]want{
				"listen": {"127.0.0.1:1001", "file"}, "db": {"file.db", "file"}, "token-ttl": {"10m", "file"},
				"max-conns": {int64(111), "file"}, "insecure-plaintext": {true, "file"}, "ip-auth-rate": {2.5, "file"},
				"log-level": {"warn", "file"}, "max-line": {int64(16384), "default"},
			},
		},
		{
			name: "env over file",
			env:  map[string]string{"AUTHLINE_LISTEN": "127.0.0.1:2002", "AUTHLINE_MAX_CONNS": "222", "AUTHLINE_TOKEN_TTL": "20m", "AUTHLINE_DB": "env.db", "AUTHLINE_INSECURE_PLAINTEXT": "false"},
			args: []string{"--config", file},
			wants: map[string]want{
				"listen": {"127.0.0.1:2002", "env AUTHLINE_LISTEN"}, "db": {"env.db", "env AUTHLINE_DB"}, "token-ttl": {"20m", "env AUTHLINE_TOKEN_TTL"},
				"max-conns": {int64(222), "env AUTHLINE_MAX_CONNS"}, "insecure-plaintext": {false, "env AUTHLINE_INSECURE_PLAINTEXT"},
				"ip-auth-rate": {2.5, "file"},
			},
		},
		{
			name: "flags over env and file",
			env:  map[string]string{"AUTHLINE_LISTEN": "127.0.0.1:2002", "AUTHLINE_MAX_CONNS": "222", "AUTHLINE_IP_AUTH_RATE": "7"},
			args: []string{"--config", file, "--listen", "127.0.0.1:3003", "--max-conns", "333", "--token-ttl", "30m", "--db", "flag.db", "--ip-auth-rate", "0.5"},
			wants: map[string]want{
				"listen": {"127.0.0.1:3003", "flag"}, "db": {"flag.db", "flag"}, "token-ttl": {"30m", "flag"},
				"max-conns": {int64(333), "flag"}, "insecure-plaintext": {true, "file"}, "ip-auth-rate": {0.5, "flag"},
				"log-level": {"warn", "file"},
			},
		},
		{
			name: "the config file from AUTHLINE_CONFIG",
			env:  map[string]string{"AUTHLINE_CONFIG": file},
			wants: map[string]want{
				"listen": {"127.0.0.1:1001", "file"}, "max-conns": {int64(111), "file"},
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			code, out, errOut := runCmd(t, "", append([]string{"config", "print"}, c.args...)...)
			if code != 0 {
				t.Fatalf("config print %v: exit %d: %s", c.args, code, errOut)
			}
			got := parsePrinted(t, out)
			for key, w := range c.wants {
				if g := got[key]; g.value != w.value || g.source != w.source {
					t.Errorf("%s = %#v (%s), want %#v (%s)", key, g.value, g.source, w.value, w.source)
				}
			}
		})
	}
}

// TestConfigFileErrors: a config file with a mistake is refused with a
// usage error that names the file, the line and the key.
func TestConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "e.db")
	for _, c := range []struct {
		name, content string
		args          []string // after the command
		want          []string // in stderr
	}{
		{"unknown key", "listen = \"127.0.0.1:0\"\nmax-con = 5\n", nil, []string{"bad.toml:2", `unknown key "max-con"`, `did you mean "max-conns"`}},
		{"unknown key far from any", "frobnicate = 1\n", nil, []string{"bad.toml:1", `unknown key "frobnicate"`, "flag names of authlined serve"}},
		{"table", "[serve]\nlisten = \"127.0.0.1:0\"\n", nil, []string{"bad.toml", "unknown table [serve]"}},
		{"a config key", "config = \"other.toml\"\n", nil, []string{"bad.toml:1", `unknown key "config"`}},
		{"bad integer", "max-conns = \"lots\"\n", nil, []string{"bad.toml:1", "max-conns", "want an integer"}},
		{"bad duration", "token-ttl = \"soon\"\n", nil, []string{"bad.toml:1", "token-ttl", "soon"}},
		{"duration as a number", "idle-timeout = 300\n", nil, []string{"bad.toml:1", "idle-timeout", `"15m"`}},
		{"port as a number", "listen = 7411\n", nil, []string{"bad.toml:1", "listen", "want a string"}},
		{"float for an int", "bcrypt-cost = 4.5\n", nil, []string{"bad.toml:1", "bcrypt-cost", "want an integer"}},
		{"string for a bool", "insecure-plaintext = \"yes\"\n", nil, []string{"bad.toml:1", "insecure-plaintext", "want a boolean"}},
		{"array", "listen = [\"a\", \"b\"]\n", nil, []string{"bad.toml:1", "listen", "array"}},
		{"bad value overridden by a flag is still refused", "token-ttl = \"soon\"\n", []string{"--token-ttl", "5m"}, []string{"bad.toml:1", "token-ttl"}},
		{"several mistakes, in the file's order", "zzz = 1\nlisten = 1\n", nil, []string{`bad.toml:1: unknown key "zzz"`, "bad.toml:2: listen"}},
		{"TOML syntax", "listen = \"127.0.0.1:0\nmax-conns = 5\n", nil, []string{"bad.toml", "line 1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := writeFile(t, filepath.Join(t.TempDir(), "bad.toml"), c.content)
			cmds := [][]string{{"serve", "--db", db}, {"config", "print"}, {"user", "list", "--db", db}}
			if len(c.args) > 0 {
				cmds = cmds[:2] // serve's flags
			}
			for _, cmd := range cmds {
				args := append(append(cmd, "--config", file), c.args...)
				code, _, errOut := runCmd(t, "", args...)
				if code != 2 {
					t.Errorf("authlined %s: exit %d, want 2 (stderr %q)", strings.Join(args, " "), code, errOut)
				}
				for _, w := range c.want {
					if !strings.Contains(errOut, w) {
						t.Errorf("authlined %s: stderr %q, want it to contain %q", strings.Join(args, " "), errOut, w)
					}
				}
			}
		})
	}
	if _, err := os.Stat(db); err == nil {
		t.Error("a refused config file still let a command open the database")
	}

	// A missing file, and a file in another format.
	for _, c := range []struct{ file, want string }{
		{filepath.Join(dir, "missing.toml"), "missing.toml"},
		{writeFile(t, filepath.Join(dir, "authline.yaml"), "listen: 127.0.0.1:0\n"), "TOML"},
	} {
		code, _, errOut := runCmd(t, "", "config", "print", "--config", c.file)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("config print --config %s: exit %d, stderr %q; want exit 2 mentioning %q", c.file, code, errOut, c.want)
		}
	}
}

// TestConfigFileOtherCommands: the other commands read the settings they
// share with serve (--db, --bcrypt-cost) from the file, and the settings
// of serve they do not have do not disturb them.
func TestConfigFileOtherCommands(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "other.db")
	file := writeFile(t, filepath.Join(dir, "authline.toml"), "db = \""+db+"\"\nbcrypt-cost = 4\nmax-conns = 5\nlisten = \"127.0.0.1:0\"\n")
	code, out, errOut := runCmd(t, "kitten-orbit-42\n", "user", "add", "filer", "--password-stdin", "--config", file)
	if code != 0 || !strings.Contains(out, "added filer") {
		t.Fatalf("user add with db from the config file: exit %d, %q, %q", code, out, errOut)
	}
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("user add did not use the file's db: %v", err)
	}
	code, out, errOut = runCmd(t, "", "user", "list", "--config", file)
	if code != 0 || !strings.Contains(out, "filer") {
		t.Fatalf("user list with db from the config file: exit %d, %q, %q", code, out, errOut)
	}
	// The stored hash has the file's cost, 4.
	st := openSQLite(t, db)
	defer st.Close()
	u, err := st.GetUser(context.Background(), "filer")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(u.PasswordHash), "$2a$04$") {
		t.Fatalf("hash %q, want bcrypt cost 4 from the config file", u.PasswordHash)
	}
}

// TestConfigPrintRoundTrip: the printed configuration, loaded as a config
// file, gives the same configuration.
func TestConfigPrintRoundTrip(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, filepath.Join(dir, "authline.toml"), `
listen = "0.0.0.0:7411"
db = "`+filepath.Join(dir, "rt.db")+`"
tls-cert = "/etc/authline/tls/fullchain.pem"
tls-key = "/etc/authline/tls/privkey.pem"
token-alg = "EdDSA"
token-ttl = "1h30m"
refresh-ttl = "720h"
sync-interval = "1s"
idle-timeout = 0
max-line-preauth = 1024
no-login-throttle = true
ip-auth-rate = 0.25
log-format = "json"
`)
	t.Setenv("AUTHLINE_MAX_CONNS", "77")
	t.Setenv("AUTHLINE_WRITE_TIMEOUT", "2500ms")
	args := []string{"config", "print", "--config", file, "--hash-workers", "3", "--key-file", `/odd "path"\with\ttab`}
	code, first, errOut := runCmd(t, "", args...)
	if code != 0 {
		t.Fatalf("config print: exit %d: %s", code, errOut)
	}
	printedFile := writeFile(t, filepath.Join(dir, "printed.toml"), first)

	// Without the flags and variables: all from the printed file.
	os.Unsetenv("AUTHLINE_MAX_CONNS")
	os.Unsetenv("AUTHLINE_WRITE_TIMEOUT")
	code, second, errOut := runCmd(t, "", "config", "print", "--config", printedFile)
	if code != 0 {
		t.Fatalf("config print --config printed.toml: exit %d: %s", code, errOut)
	}
	a, b := parsePrinted(t, first), parsePrinted(t, second)
	for key, pa := range a {
		pb := b[key]
		if pa.value != pb.value {
			t.Errorf("%s: printed %#v, then %#v from the printed file", key, pa.value, pb.value)
		}
		if pb.source != "file" {
			t.Errorf("%s: source %q from the printed file, want file", key, pb.source)
		}
	}
	for key, want := range map[string]any{"max-conns": int64(77), "write-timeout": "2.5s", "hash-workers": int64(3), "token-ttl": "1h30m",
		"idle-timeout": "0s", "key-file": `/odd "path"\with\ttab`, "ip-auth-rate": 0.25, "no-login-throttle": true} {
		if got := b[key].value; got != want {
			t.Errorf("%s = %#v after the round trip, want %#v", key, got, want)
		}
	}

	// And the flags themselves resolve to the same values.
	resolve := func(args ...string) map[string]string {
		flags := freshServeFlags()
		for i := 0; i < len(args); i += 2 {
			if err := flags[args[i]].Value.Set(args[i+1]); err != nil {
				t.Fatal(err)
			}
			flags[args[i]].Changed = true
		}
		st, err := resolveFlags(flags)
		if err != nil {
			t.Fatal(err)
		}
		delete(st.values, configFlag)
		return st.values
	}
	t.Setenv("AUTHLINE_MAX_CONNS", "77")
	t.Setenv("AUTHLINE_WRITE_TIMEOUT", "2500ms")
	orig := resolve("config", file, "hash-workers", "3", "key-file", `/odd "path"\with\ttab`)
	os.Unsetenv("AUTHLINE_MAX_CONNS")
	os.Unsetenv("AUTHLINE_WRITE_TIMEOUT")
	if again := resolve("config", printedFile); !maps.Equal(orig, again) {
		t.Errorf("resolved from the printed file:\n%v\nwant\n%v", again, orig)
	}
}

// TestConfigPrintHidesSecrets: a database password never appears in
// config print, wherever the DSN comes from.
func TestConfigPrintHidesSecrets(t *testing.T) {
	const pw = "Sup3r-Secret-Pw"
	dir := t.TempDir()
	for _, c := range []struct {
		name, dsn string
		via       string // file, env or flag
	}{
		{"userinfo in the file", "postgres://authline:" + pw + "@db.example:5432/authline?sslmode=disable", "file"},
		{"userinfo in the environment", "postgresql://authline:" + pw + "@db.example/authline", "env"},
		{"userinfo on the command line", "postgres://authline:" + pw + "@db.example/authline?search_path=a", "flag"},
		{"password parameter", "postgres://authline@db.example/authline?password=" + pw + "&sslmode=require", "file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"config", "print"}
			switch c.via {
			case "file":
				args = append(args, "--config", writeFile(t, filepath.Join(dir, "s.toml"), "db = "+tomlQuote(c.dsn)+"\n"))
			case "env":
				t.Setenv("AUTHLINE_DB", c.dsn)
			case "flag":
				args = append(args, "--db", c.dsn)
			}
			code, out, errOut := runCmd(t, "", args...)
			if code != 0 {
				t.Fatalf("config print: exit %d: %s", code, errOut)
			}
			if strings.Contains(out+errOut, pw) {
				t.Fatalf("config print shows the password:\n%s", out)
			}
			db := parsePrinted(t, out)["db"]
			s, _ := db.value.(string)
			if !strings.Contains(s, "xxxxx") || !strings.Contains(s, "db.example") || !strings.Contains(db.source, "secret hidden") {
				t.Fatalf("db = %q (%s), want the DSN with the password as xxxxx, marked secret hidden", s, db.source)
			}
		})
	}
}

// TestConfigContrib checks the examples in contrib/: the config file loads
// with the real loader, and the systemd unit starts serve with flags that
// exist (and passes systemd-analyze verify where systemd is installed).
func TestConfigContrib(t *testing.T) {
	// The example config file: every key known, every value valid.
	flags := freshServeFlags()
	sources := map[string]string{}
	if err := applyFile(flags, "contrib/authline.toml", sources); err != nil {
		t.Fatalf("contrib/authline.toml: %v", err)
	}
	if len(sources) < 10 {
		t.Fatalf("contrib/authline.toml set only %v", sources)
	}
	for name, want := range map[string]string{"listen": "0.0.0.0:7411", "db": "/var/lib/authline/authline.db", "tls-cert": "/etc/authline/tls/fullchain.pem"} {
		if got := flags[name].Value.String(); got != want {
			t.Errorf("contrib/authline.toml: %s = %q, want %q", name, got, want)
		}
	}
	// It serves TLS on a public address, as it must.
	if (flags["tls-cert"].Value.String() == "") || flags["insecure-plaintext"].Value.String() != "false" {
		t.Error("contrib/authline.toml should serve TLS, not plaintext")
	}

	unit, err := os.ReadFile("contrib/authlined.service")
	if err != nil {
		t.Fatal(err)
	}
	directives := map[string][]string{}
	for _, line := range strings.Split(string(unit), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, " ") {
			directives[k] = append(directives[k], v)
		}
	}
	execStart := directives["ExecStart"]
	if len(execStart) != 1 {
		t.Fatalf("ExecStart: %q, want one", execStart)
	}
	argv := strings.Fields(execStart[0])
	if filepath.Base(argv[0]) != "authlined" || argv[1] != "serve" {
		t.Fatalf("ExecStart=%s, want authlined serve", execStart[0])
	}
	serveFlags := freshServeFlags()
	var configPath string
	for i := 2; i < len(argv); i++ {
		name, value, hasValue := strings.Cut(strings.TrimPrefix(argv[i], "--"), "=")
		f := serveFlags[name]
		if !strings.HasPrefix(argv[i], "--") || f == nil {
			t.Fatalf("ExecStart=%s: %q is not a flag of serve", execStart[0], argv[i])
		}
		if !hasValue && f.Value.Type() != "bool" {
			i++
			value = argv[i]
		}
		if err := f.Value.Set(value); err != nil {
			t.Fatalf("ExecStart=%s: --%s %s: %v", execStart[0], name, value, err)
		}
		if name == configFlag {
			configPath = value
		}
	}
	if configPath != "/etc/authline/authline.toml" {
		t.Errorf("ExecStart=%s: want --config /etc/authline/authline.toml, the example's place", execStart[0])
	}
	for k, want := range map[string]string{
		"ExecReload": "/bin/kill -HUP $MAINPID", "KillSignal": "SIGTERM", "Restart": "on-failure", "User": "authline",
		"StateDirectory": "authline", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
		"PrivateTmp": "yes", "LimitNOFILE": "65536",
	} {
		if got := directives[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s=%q, want %s", k, got, want)
		}
	}
	// The unit gives the graceful shutdown more time than it takes.
	stop, err := time.ParseDuration(directives["TimeoutStopSec"][0])
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	shutdown, _ := time.ParseDuration(flags["shutdown-timeout"].Value.String())
	if f := flags["lame-duck-delay"]; f != nil {
		lameDuck, _ := time.ParseDuration(f.Value.String())
		shutdown += lameDuck
	}
	if stop <= shutdown {
		t.Errorf("TimeoutStopSec=%v is not more than the example's shutdown-timeout (and lame-duck-delay), %v", stop, shutdown)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: the unit's syntax is not checked by systemd")
		return
	}
	// systemd-analyze wants ExecStart's program to exist: the test binary
	// stands in for authlined.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	local := strings.Replace(string(unit), "ExecStart="+argv[0], "ExecStart="+self, 1)
	path := writeFile(t, filepath.Join(t.TempDir(), "authlined.service"), local)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
