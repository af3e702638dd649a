package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/authline/authline/server/servertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// result is what one run of the command line produced.
type result struct {
	out, err string
	code     int
}

// isolate points the credentials file and the default server away from
// the user's real ones.
func isolate(t *testing.T) (configDir string) {
	t.Helper()
	configDir = t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", configDir)
	t.Setenv("AUTHLINE_SERVER", "")
	return configDir
}

// startServer starts a server with alice (user) and root (admin), and
// isolates the test's environment.
func startServer(t *testing.T, opts servertest.Options) *servertest.Server {
	t.Helper()
	isolate(t)
	srv := servertest.Start(t, opts)
	srv.AddUser(t, "alice", "alice-password", "user")
	srv.AddUser(t, "root", "root-password", "admin")
	return srv
}

// run runs the command line with in as a non-terminal stdin.
func run(t *testing.T, in string, args ...string) result {
	t.Helper()
	return runIO(t, &IOStreams{In: strings.NewReader(in)}, args...)
}

// runIO runs the command line with the given streams; Out and ErrOut are
// replaced by buffers.
func runIO(t *testing.T, s *IOStreams, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	s.Out, s.ErrOut = &out, &errOut
	code := Main(args, s)
	return result{out: out.String(), err: errOut.String(), code: code}
}

// terminal returns streams that act as a terminal: lines typed come from
// in, and passwords typed without echo from passwords, in order.
func terminal(in string, passwords ...string) *IOStreams {
	return &IOStreams{
		In:         strings.NewReader(in),
		IsTerminal: true,
		ReadPassword: func() ([]byte, error) {
			if len(passwords) == 0 {
				return nil, errors.New("no more passwords typed")
			}
			pw := passwords[0]
			passwords = passwords[1:]
			return []byte(pw), nil
		},
	}
}

func wantCode(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout:\n%sstderr:\n%s", r.code, code, r.out, r.err)
	}
}

// decodeJSON checks that out is exactly one JSON object and decodes it.
func decodeJSON(t *testing.T, out string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%s", err, out)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON value:\n%s", out)
	}
	return m
}

// readCredentials reads the credentials file the way a user would.
func readCredentials(t *testing.T) credentials {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "authline", "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c credentials
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("credentials file: %v\n%s", err, b)
	}
	return c
}

func writeCredentials(t *testing.T, c credentials) {
	t.Helper()
	path, err := credentialsPath()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.save(path); err != nil {
		t.Fatal(err)
	}
}

// closedAddr is an address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentAddr is the address of a peer that accepts one connection and
// never answers, not even with a greeting: only a timeout ends a wait on
// it. It is closed when the test ends.
func silentAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			conn.Read(make([]byte, 1)) // until the client hangs up
			conn.Close()
		}
	}()
	return ln.Addr().String()
}

// clock is a settable time source for the server, to expire tokens.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }
func (c *clock) options() servertest.Options {
	return servertest.Options{Now: c.now, TokenTTL: time.Hour}
}
