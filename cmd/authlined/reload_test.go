package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// reloadWait bounds every wait for the server to act on a SIGHUP.
const reloadWait = 10 * time.Second

// TestReloadSIGHUP runs authlined with a config file, changes the file and
// sends SIGHUP: the new certificate, limit and log level apply without
// dropping the open connection, flags on the command line still win, and
// bad configurations are refused with the running one kept.
func TestReloadSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	bins := e2eBuild(t)
	dir := t.TempDir()
	certA, keyA, poolA := e2eCert(t, mkdir(t, dir, "a"))
	certB, keyB, _ := e2eCert(t, mkdir(t, dir, "b"))
	pool := poolA.Clone() // the client trusts A and B
	pool.AddCert(parseCert(t, certB))

	cfg := filepath.Join(dir, "authline.toml")
	base := fmt.Sprintf("listen = \"127.0.0.1:0\"\ndb = %q\nbcrypt-cost = 4\nip-auth-rate = 0\n", filepath.Join(dir, "r.db"))
	writeConfig := func(more string) {
		t.Helper()
		// Written aside and renamed, as editors and config managers do:
		// the server never reads half a file.
		tmp := cfg + ".tmp"
		if err := os.WriteFile(tmp, []byte(base+more), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfg); err != nil {
			t.Fatal(err)
		}
	}
	tlsFiles := func(cert, key string) string { return fmt.Sprintf("tls-cert = %q\ntls-key = %q\n", cert, key) }

	// The file says one connection per address; the command line's 20 wins,
	// at the start and after every reload.
	writeConfig(tlsFiles(certA, keyA) + "log-level = \"info\"\nmax-conns-per-ip = 1\n")
	srv := e2eStart(t, bins.authlined, nil, "serve", "--config", cfg, "--max-conns-per-ip", "20")
	dial := func() (*e2eConn, []byte) {
		t.Helper()
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: e2eReadTimeout}, Config: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
		nc, err := d.DialContext(context.Background(), "tcp", srv.addr)
		if err != nil {
			t.Fatalf("TLS dial: %v", err)
		}
		return e2eGreet(t, nc), nc.(*tls.Conn).ConnectionState().PeerCertificates[0].Raw
	}
	wantCert := func(got []byte, file, what string) {
		t.Helper()
		if !bytes.Equal(got, parseCert(t, file).Raw) {
			t.Fatalf("%s: the server presented another certificate than %s", what, file)
		}
	}
	longID := strings.Repeat("x", 1000)
	// preauthLine sends a 1000-byte line and returns the status.
	preauthLine := func(c *e2eConn) any {
		t.Helper()
		return c.do(map[string]any{"id": longID, "cmd": "PING"})["status"]
	}
	// probe makes the server log at debug level: a plaintext client on the
	// TLS port fails the handshake ("read failed", or "write failed").
	probe := func() {
		t.Helper()
		raw, err := net.DialTimeout("tcp", srv.addr, e2eReadTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(e2eReadTimeout))
		raw.Write([]byte("PING\n"))
		var sink bytes.Buffer
		sink.ReadFrom(raw) // until the server closes
	}
	hup := func() {
		t.Helper()
		if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatalf("SIGHUP: %v", err)
		}
	}
	debugLines := regexp.MustCompile(`level=DEBUG`)

	// Before: certificate A, 1000-byte lines before login, no debug logs.
	c1, got := dial()
	wantCert(got, certA, "at the start")
	c1.expect("REGISTER reloader kitten-orbit-42", 201, "")
	c1.expect("LOGIN reloader kitten-orbit-42", 200, "")
	c2, _ := dial() // two connections from one address: --max-conns-per-ip 20, not the file's 1
	if m := preauthLine(c2); m != 200.0 {
		t.Fatalf("a 1000-byte line before login with max-line-preauth 4096: status %v, want 200", m)
	}
	probe()
	if n := len(debugLines.FindAllString(srv.stderr.String(), -1)); n != 0 {
		t.Fatalf("debug logs at log-level info:\n%s", srv.stderr.String())
	}

	// A good new configuration: certificate B, a lower pre-auth line limit,
	// debug logs, a token lifetime that needs a restart.
	writeConfig(tlsFiles(certB, keyB) + "log-level = \"debug\"\nmax-conns-per-ip = 1\nmax-line-preauth = 256\ntoken-ttl = \"5m\"\n")
	hup()
	line := waitLog(t, srv, `msg="configuration reloaded"`, 1)
	for _, want := range []string{"changed=certificate,log-level,max-line-preauth,tls-cert,tls-key", "max-line-preauth=256", "log-level=debug", "tls-cert=" + certB} {
		if !strings.Contains(line, want) {
			t.Errorf("reload log line %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "max-conns-per-ip") {
		t.Errorf("reload log line %q: max-conns-per-ip changed, but the flag wins over the file", line)
	}
	if w := waitLog(t, srv, `msg="configuration change needs a restart`, 1); !strings.Contains(w, "setting=token-ttl") {
		t.Errorf("want a restart warning for token-ttl, got %q", w)
	}

	// The open connection goes on, logged in.
	if m := c1.expect("WHOAMI", 200, ""); !strings.Contains(fmt.Sprint(m["data"]), "reloader") {
		t.Fatalf("WHOAMI on the connection opened before the reload: %v", m)
	}
	// New handshakes get certificate B; the file's max-conns-per-ip 1 is
	// not in force (c1, c2 and c3 are open from one address).
	c3, got := dial()
	wantCert(got, certB, "after the reload")
	c3.expect("PING", 200, "")
	if m := preauthLine(c3); m != 413.0 {
		t.Fatalf("a 1000-byte line before login with max-line-preauth 256: status %v, want 413", m)
	}
	c1.expect(map[string]any{"id": longID, "cmd": "PING"}, 200, "") // logged in: max-line applies
	probe()
	waitLog(t, srv, `level=DEBUG`, 1)

	// Bad configurations are refused as a whole: certificate B, the limit
	// 256 and debug logging stay.
	missing := filepath.Join(dir, "missing.pem")
	refused := 0
	for _, bad := range []struct{ name, config, want string }{
		{"a missing certificate", tlsFiles(missing, keyB) + "log-level = \"info\"\nmax-line-preauth = 4096\n", "missing.pem"},
		{"a bad value", tlsFiles(certB, keyB) + "log-level = \"info\"\nmax-line-preauth = \"lots\"\n", "max-line-preauth"},
		{"a bad log level", tlsFiles(certB, keyB) + "log-level = \"loud\"\nmax-line-preauth = 4096\n", "log-level"},
		{"a key that does not match the certificate", tlsFiles(certA, keyB) + "log-level = \"info\"\nmax-line-preauth = 4096\n", "private key does not match"},
		{"a value serve would refuse at start", tlsFiles(certB, keyB) + "log-level = \"info\"\nmax-line-preauth = 4096\ntoken-alg = \"RS256\"\n", "token-alg"},
		{"an unknown key", tlsFiles(certB, keyB) + "log-level = \"info\"\nmax-line-preauth = 4096\nmax-line-pre-auth = 1\n", `unknown key \"max-line-pre-auth\"`},
	} {
		writeConfig(bad.config)
		hup()
		refused++
		line := waitLog(t, srv, `msg="configuration reload refused`, refused)
		if !strings.Contains(line, bad.want) {
			t.Errorf("%s: refusal %q does not mention %q", bad.name, line, bad.want)
		}
		debugBefore := len(debugLines.FindAllString(srv.stderr.String(), -1))
		c, got := dial()
		wantCert(got, certB, "after refusing "+bad.name)
		if m := preauthLine(c); m != 413.0 {
			t.Fatalf("after refusing %s: a 1000-byte line before login: status %v, want 413 (max-line-preauth still 256)", bad.name, m)
		}
		probe()
		waitLog(t, srv, `level=DEBUG`, debugBefore+1) // still debug
	}
	if n := strings.Count(srv.stderr.String(), `msg="configuration reloaded"`); n != 1 {
		t.Fatalf("%d reloads applied, want 1 (the bad ones refused):\n%s", n, srv.stderr.String())
	}

	// A certificate renewed in place (same files, new contents), as certbot
	// does, applies on the next SIGHUP; the old limit comes back.
	e2eCert(t, filepath.Join(dir, "b"))
	pool.AddCert(parseCert(t, certB))
	writeConfig(tlsFiles(certB, keyB) + "log-level = \"info\"\nmax-conns-per-ip = 1\n")
	hup()
	line = waitLog(t, srv, `msg="configuration reloaded"`, 2)
	for _, want := range []string{"changed=certificate,log-level,max-line-preauth", "max-line-preauth=4096"} {
		if !strings.Contains(line, want) {
			t.Errorf("reload log line %q lacks %q", line, want)
		}
	}
	c4, got := dial()
	wantCert(got, certB, "after renewing in place")
	if bytes.Equal(got, c3.nc.(*tls.Conn).ConnectionState().PeerCertificates[0].Raw) {
		t.Fatal("the renewed certificate is the old one")
	}
	if m := preauthLine(c4); m != 200.0 {
		t.Fatalf("a 1000-byte line before login with max-line-preauth 4096 again: status %v, want 200", m)
	}
	c1.expect("WHOAMI", 200, "")
	srv.stop()
}

// waitLog waits until the server has logged n lines matching pattern and
// returns the n-th.
func waitLog(t *testing.T, srv *e2eServer, pattern string, n int) string {
	t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.Now().Add(reloadWait)
	for {
		var found []string
		for _, l := range strings.Split(srv.stderr.String(), "\n") {
			if re.MatchString(l) {
				found = append(found, l)
			}
		}
		if len(found) >= n {
			return found[n-1]
		}
		select {
		case <-srv.exited:
			t.Fatalf("authlined exited (%v) before logging %q %d times:\n%s", srv.err, pattern, n, srv.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("authlined did not log %q %d times within %v:\n%s", pattern, n, reloadWait, srv.stderr.String())
		}
	}
}

func mkdir(t *testing.T, parent, name string) string {
	t.Helper()
	p := filepath.Join(parent, name)
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// parseCert reads the certificate in a PEM file.
func parseCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", file)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
