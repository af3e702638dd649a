package main

// Fault test: PostgreSQL goes away while two authlined instances serve on
// it, and comes back. The test runs its own PostgreSQL cluster (initdb in
// a temporary directory, on a port of its own), never the machine's shared
// one, which other test packages use at the same time.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// faultAnswerWithin bounds every answer while the store is down:
	// requests that need it must fail fast, not hang.
	faultAnswerWithin = 3 * time.Second
	// faultRecoverWithin bounds how long after PostgreSQL is back the
	// instances serve store-bound requests again, without a restart.
	faultRecoverWithin = 10 * time.Second
	// faultFeedWithin bounds how long a change made on one instance takes
	// to reach the other once the store is back.
	faultFeedWithin = 5 * time.Second
	// faultPGTimeout bounds initdb and pg_ctl start/stop.
	faultPGTimeout = 60 * time.Second
)

// faultPG is a private PostgreSQL cluster: its data directory, socket and
// log live in one temporary directory, and it listens on 127.0.0.1:port.
type faultPG struct {
	t    *testing.T
	bin  string // directory of initdb, pg_ctl and postgres
	dir  string // temporary directory: data/, the socket, the log
	port int
	cred *syscall.Credential // whom to run as (the postgres user when root); nil: ourselves
}

// faultPostgres starts a private PostgreSQL cluster for the test and stops
// it (and removes its files) when the test ends. It skips the test when
// PostgreSQL's server binaries, or the postgres user needed to run them as
// root, are missing, or when the cluster does not start.
func faultPostgres(t *testing.T) *faultPG {
	t.Helper()
	bin, err := faultPGBin()
	if err != nil {
		t.Skipf("no PostgreSQL server binaries to start a private cluster: %v", err)
	}
	pg := &faultPG{t: t, bin: bin}
	var uid, gid int
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root and there is no postgres user to run initdb and pg_ctl as: %v", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		pg.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Not t.TempDir: its parents are private to us, and the postgres user
	// must reach the directory.
	pg.dir, err = os.MkdirTemp("", "authline-fault-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if pg.cred != nil {
		if err := os.Chown(pg.dir, uid, gid); err != nil {
			os.RemoveAll(pg.dir)
			t.Fatalf("chown %s to the postgres user: %v", pg.dir, err)
		}
	}
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(pg.dir, "data", "postmaster.pid")); err == nil {
			pg.pgctl("stop", "-m", "immediate")
		}
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(pg.dir, "postgres.log")); err == nil {
				t.Logf("private PostgreSQL's log:\n%s", b)
			}
		}
		os.RemoveAll(pg.dir)
	})
	pg.port = faultFreePort(t)
	if out, err := pg.run(filepath.Join(bin, "initdb"), "-D", filepath.Join(pg.dir, "data"),
		"--auth=trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		t.Skipf("initdb of a private PostgreSQL cluster failed: %v\n%s", err, out)
	}
	if out, err := pg.start(); err != nil {
		t.Skipf("the private PostgreSQL cluster does not start: %v\n%s", err, out)
	}
	return pg
}

// faultPGBin finds the directory of PostgreSQL's server binaries: Debian's
// /usr/lib/postgresql/VERSION/bin (the newest), else pg_ctl on PATH.
func faultPGBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { // numerically: 9 < 10
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		ok := true
		for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
			if _, err := os.Stat(filepath.Join(d, name)); err != nil {
				ok = false
			}
		}
		if ok {
			return d, nil
		}
	}
	return "", errors.New("no directory with initdb, pg_ctl and postgres in /usr/lib/postgresql/*/bin or on PATH")
}

// faultFreePort returns a free TCP port on 127.0.0.1 below the kernel's
// ephemeral range (32768 and up on Linux), so that while the cluster is
// down no socket bound to port 0 elsewhere takes it; PostgreSQL must get
// it back when it restarts.
func faultFreePort(t *testing.T) int {
	t.Helper()
	for range 100 {
		p := 20000 + rand.IntN(12000)
		if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
			ln.Close()
			return p
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// run runs a PostgreSQL program as the cluster's user, in the cluster's
// directory, with no PG* variables from our environment.
func (pg *faultPG) run(bin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), faultPGTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = pg.dir
	env := []string{"HOME=" + pg.dir, "LC_ALL=C"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "TMPDIR=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	if pg.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	}
	// pg_ctl start leaves the postmaster running with its output in the
	// log file; should anything still hold our pipe, do not wait for it.
	cmd.WaitDelay = time.Second
	return cmd.CombinedOutput()
}

func (pg *faultPG) pgctl(args ...string) ([]byte, error) {
	return pg.run(filepath.Join(pg.bin, "pg_ctl"), append([]string{"-D", filepath.Join(pg.dir, "data"), "-w", "-t", strconv.Itoa(int(faultPGTimeout / time.Second))}, args...)...)
}

// start starts the cluster on its port and waits until it accepts
// connections.
func (pg *faultPG) start() ([]byte, error) {
	opts := fmt.Sprintf("-p %d -k '%s' -c listen_addresses=127.0.0.1", pg.port, pg.dir)
	return pg.pgctl("-l", filepath.Join(pg.dir, "postgres.log"), "-o", opts, "start")
}

// stopImmediate stops the cluster the harsh way: every PostgreSQL process
// quits at once, no checkpoint, open connections are cut; the next start
// recovers from the WAL.
func (pg *faultPG) stopImmediate() {
	pg.t.Helper()
	if out, err := pg.pgctl("stop", "-m", "immediate"); err != nil {
		pg.t.Fatalf("pg_ctl stop -m immediate: %v\n%s", err, out)
	}
}

func (pg *faultPG) restart() {
	pg.t.Helper()
	if out, err := pg.start(); err != nil {
		pg.t.Fatalf("pg_ctl start after the outage: %v\n%s", err, out)
	}
}

func (pg *faultPG) dsn() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.port)
}

// faultDo sends one request on c and waits at most limit for the answer.
// It returns the answer and how long it took, or an error when none came
// (c is then out of step and must not be used again).
func faultDo(c *e2eConn, req string, limit time.Duration) (map[string]any, time.Duration, error) {
	start := time.Now()
	c.nc.SetWriteDeadline(start.Add(limit))
	if _, err := c.nc.Write([]byte(req + "\n")); err != nil {
		return nil, time.Since(start), fmt.Errorf("send %q: %w", req, err)
	}
	c.nc.SetReadDeadline(start.Add(limit))
	line, err := c.r.ReadBytes('\n')
	took := time.Since(start)
	c.nc.SetDeadline(time.Time{}) // the e2eConn methods set only read deadlines
	if err != nil {
		return nil, took, fmt.Errorf("no answer to %q within %v: %w", faultRedact(req), limit, err)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, took, fmt.Errorf("answer to %q: %q: %w", faultRedact(req), line, err)
	}
	return m, took, nil
}

// faultRedact shortens the tokens in a request for messages.
func faultRedact(req string) string {
	f := strings.Fields(req)
	for i, w := range f {
		if len(w) > 40 {
			f[i] = w[:12] + "…"
		}
	}
	return strings.Join(f, " ")
}

// faultStatus is an answer's status and error code, as "503 unavailable".
func faultStatus(m map[string]any) string {
	s := fmt.Sprint(m["status"])
	if code, _ := m["error"].(string); code != "" {
		s += " " + code
	}
	return s
}

// faultAlive fails the test if an instance has exited or does not answer
// PING on a new connection.
func faultAlive(t *testing.T, name string, s *e2eServer) {
	t.Helper()
	select {
	case <-s.exited:
		t.Fatalf("instance %s exited (%v):\n%s", name, s.err, s.stderr.String())
	default:
	}
	c := e2eDial(t, s.addr)
	if m, took, err := faultDo(c, "PING", faultAnswerWithin); err != nil || m["status"] != 200.0 {
		t.Fatalf("instance %s: PING: %v %v (after %v)", name, m, err, took)
	}
	c.nc.Close()
}

// faultRegistrar registers new users on one instance, one after another on
// new connections, until stop is closed, and records each user whose
// REGISTER was answered 201. Every answer must be 201 or 503 unavailable
// and come within faultAnswerWithin; anything else is recorded in errs.
type faultRegistrar struct {
	addr, prefix string
	stop         chan struct{}
	done         chan struct{}
	acked        map[string]string // user -> password, once done is closed
	tried, n503  int
	slowest      time.Duration
	errs         []string
}

func startFaultRegistrar(addr, prefix string) *faultRegistrar {
	r := &faultRegistrar{addr: addr, prefix: prefix, stop: make(chan struct{}), done: make(chan struct{}), acked: map[string]string{}}
	go r.run()
	return r
}

func (r *faultRegistrar) run() {
	defer close(r.done)
	for i := 0; ; i++ {
		select {
		case <-r.stop:
			return
		default:
		}
		name, pass := fmt.Sprintf("%s%04d", r.prefix, i), fmt.Sprintf("olive-harbor-%04d", i)
		if err := r.register(name, pass); err != nil {
			r.errs = append(r.errs, err.Error())
			if len(r.errs) >= 5 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *faultRegistrar) register(name, pass string) error {
	nc, err := net.DialTimeout("tcp", r.addr, faultAnswerWithin)
	if err != nil {
		return fmt.Errorf("dial %s: %v", r.addr, err)
	}
	defer nc.Close()
	c := &e2eConn{nc: nc, r: bufio.NewReader(nc)}
	nc.SetReadDeadline(time.Now().Add(faultAnswerWithin))
	if _, err := c.r.ReadBytes('\n'); err != nil {
		return fmt.Errorf("%s: no greeting: %v", r.addr, err)
	}
	m, took, err := faultDo(c, "REGISTER "+name+" "+pass, faultAnswerWithin)
	r.tried++
	r.slowest = max(r.slowest, took)
	switch {
	case err != nil:
		return err
	case m["status"] == 201.0:
		r.acked[name] = pass
	case faultStatus(m) == "503 unavailable":
		r.n503++
	default:
		return fmt.Errorf("REGISTER %s: got %v after %v, want 201 or 503 unavailable", name, m, took)
	}
	return nil
}

// finish stops the registrar and waits for it.
func (r *faultRegistrar) finish() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}

// TestFaultPostgresOutage stops PostgreSQL (immediate mode) under two
// serving instances and starts it again. While it is down, requests that
// need the store get 503 unavailable quickly, checks answered from memory
// (a session, a token seen before) keep working and nothing exits; once
// it is back, both instances serve again by themselves, and every REGISTER
// that was answered 201 — before or during the outage — can log in.
func TestFaultPostgresOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test builds the binaries and runs a private PostgreSQL cluster; skipped with -short")
	}
	pg := faultPostgres(t)
	bins := e2eBuild(t)
	dsn := pg.dsn()

	const rootPass = "copper-lantern-17"
	e2eRun(t, bins.authlined, rootPass+"\n", nil, "user", "add", "root", "--role", "admin", "--password-stdin", "--bcrypt-cost", "4", "--db", dsn).
		wantCode(t, 0, "user add root --role admin")
	a := e2eStart(t, bins.authlined, nil, serveArgs(dsn)...)
	b := e2eStart(t, bins.authlined, nil, serveArgs(dsn)...)
	instances := []struct {
		name string
		srv  *e2eServer
	}{{"A", a}, {"B", b}}

	// acked holds every user whose REGISTER was answered 201, with the
	// password.
	acked := map[string]string{}
	seq := 0
	newUser := func(phase string) (name, pass string) {
		seq++
		return fmt.Sprintf("%s%03d", phase, seq), fmt.Sprintf("amber-violin-%03d", seq)
	}

	// --- before the fault
	conns := []*e2eConn{e2eDial(t, a.addr), e2eDial(t, b.addr)}
	var names []string
	for i := range 8 {
		name, pass := newUser("pre")
		conns[i%2].expect("REGISTER "+name+" "+pass, 201, "")
		acked[name] = pass
		names = append(names, name)
	}
	// A session on A, and a token from B used on B: both are then in
	// their instance's memory.
	sessA := e2eDial(t, a.addr)
	sessA.expect("LOGIN "+names[0]+" "+acked[names[0]], 200, "")
	sessA.expect("GET protected", 200, "")
	adminA := e2eDial(t, a.addr)
	adminA.expect("LOGIN root "+rootPass, 200, "")
	adminA.expect("GET admin", 200, "")
	tokB := conns[1].token(names[1], acked[names[1]])
	conns[1].expect("GET protected "+tokB, 200, "")
	// A token issued by A that B has never seen: checking it on B needs
	// the store (is it revoked? the user's state).
	tokA := conns[0].token(names[2], acked[names[2]])
	conns[0].expect("GET protected "+tokA, 200, "")

	// Registrars keep registering on both instances from before the stop
	// until after the recovery: REGISTERs in flight when PostgreSQL dies
	// get 201 or 503, and every 201 must survive the crash.
	var registrars []*faultRegistrar
	for _, in := range instances {
		r := startFaultRegistrar(in.srv.addr, "bg"+strings.ToLower(in.name))
		t.Cleanup(r.finish)
		registrars = append(registrars, r)
	}
	time.Sleep(300 * time.Millisecond) // some acknowledged before the stop

	// --- PostgreSQL goes away
	stopStart := time.Now()
	pg.stopImmediate()
	down := time.Now()
	t.Logf("PostgreSQL stopped (immediate) in %v", down.Sub(stopStart).Round(time.Millisecond))

	// expectWithin sends req on a new connection to s and wants one of
	// the statuses within faultAnswerWithin.
	expectWithin := func(inst string, s *e2eServer, req string, want ...string) (map[string]any, time.Duration) {
		t.Helper()
		c := e2eDial(t, s.addr)
		defer c.nc.Close()
		m, took, err := faultDo(c, req, faultAnswerWithin)
		if err != nil {
			t.Fatalf("instance %s, PostgreSQL down: %v", inst, err)
		}
		if !slices.Contains(want, faultStatus(m)) {
			t.Fatalf("instance %s, PostgreSQL down: %s: got %v (after %v), want %s", inst, faultRedact(req), m, took, strings.Join(want, " or "))
		}
		return m, took
	}
	var slowest time.Duration
	for _, in := range instances {
		name, pass := newUser("out")
		_, took := expectWithin(in.name, in.srv, "REGISTER "+name+" "+pass, "503 unavailable")
		t.Logf("instance %s: REGISTER while PostgreSQL is down: 503 unavailable in %v", in.name, took.Round(time.Millisecond))
		slowest = max(slowest, took)
		_, took = expectWithin(in.name, in.srv, "LOGIN "+names[3]+" "+acked[names[3]], "503 unavailable")
		t.Logf("instance %s: LOGIN while PostgreSQL is down: 503 unavailable in %v", in.name, took.Round(time.Millisecond))
		slowest = max(slowest, took)
		_, took = expectWithin(in.name, in.srv, "LOGIN "+names[4]+" "+acked[names[4]]+" token", "503 unavailable")
		slowest = max(slowest, took)
		expectWithin(in.name, in.srv, "PING", "200")
		expectWithin(in.name, in.srv, "JWKS", "200") // the keys are in memory
	}
	// What memory answers goes on working: the session on A (on its
	// connection), the token B has seen (on a new connection).
	for _, req := range []string{"GET protected", "WHOAMI"} {
		if m, took, err := faultDo(sessA, req, faultAnswerWithin); err != nil || m["status"] != 200.0 {
			t.Fatalf("instance A, PostgreSQL down: session %s: %v %v (after %v), want 200", req, m, err, took)
		}
	}
	expectWithin("B", b, "GET protected "+tokB, "200")
	if m, _ := expectWithin("B", b, "WHOAMI "+tokB, "200"); m["data"].(map[string]any)["username"] != names[1] {
		t.Fatalf("instance B, PostgreSQL down: WHOAMI with the token: %v", m)
	}
	// A token B must look up is not refused as invalid: the store is
	// down, the token may well be good.
	_, took := expectWithin("B", b, "GET protected "+tokA, "503 unavailable")
	t.Logf("instance B: GET with a token it has not seen while PostgreSQL is down: 503 unavailable in %v", took.Round(time.Millisecond))

	// Keep registering for a while: every answer is 201 or 503, and
	// every 201 must survive.
	outageRegs, outageAcked := 0, 0
	for i := 0; time.Since(down) < 3*time.Second || i < 10; i++ {
		in := instances[i%2]
		name, pass := newUser("out")
		m, took := expectWithin(in.name, in.srv, "REGISTER "+name+" "+pass, "201", "503 unavailable")
		slowest = max(slowest, took)
		outageRegs++
		if m["status"] == 201.0 {
			acked[name] = pass
			outageAcked++
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d REGISTERs while PostgreSQL was down: %d acknowledged, the rest 503; slowest store-bound answer %v",
		outageRegs, outageAcked, slowest.Round(time.Millisecond))
	for _, in := range instances {
		faultAlive(t, in.name, in.srv)
	}

	// --- PostgreSQL comes back
	restartStart := time.Now()
	pg.restart()
	up := time.Now()
	t.Logf("PostgreSQL back after an outage of %v (pg_ctl start took %v)", up.Sub(down).Round(time.Millisecond), up.Sub(restartStart).Round(time.Millisecond))
	for _, in := range instances {
		// Until a REGISTER and a LOGIN succeed; 503 meanwhile.
		deadline := up.Add(faultRecoverWithin)
		registered, loggedIn := false, false
		attempts := 0
		for !registered || !loggedIn {
			if time.Now().After(deadline) {
				t.Fatalf("instance %s does not serve REGISTER and LOGIN within %v of PostgreSQL's restart (%d attempts; register ok %v, login ok %v)",
					in.name, faultRecoverWithin, attempts, registered, loggedIn)
			}
			attempts++
			if !registered {
				name, pass := newUser("rec")
				m, _ := expectWithin(in.name, in.srv, "REGISTER "+name+" "+pass, "201", "503 unavailable")
				if m["status"] == 201.0 {
					acked[name] = pass
					registered = true
				}
			}
			if registered && !loggedIn {
				m, _ := expectWithin(in.name, in.srv, "LOGIN "+names[5]+" "+acked[names[5]], "200", "503 unavailable")
				loggedIn = m["status"] == 200.0
			}
			if !registered || !loggedIn {
				time.Sleep(100 * time.Millisecond)
			}
		}
		t.Logf("instance %s serves REGISTER and LOGIN again %v after PostgreSQL's restart (%d attempts)", in.name, time.Since(up).Round(time.Millisecond), attempts)
	}

	time.Sleep(300 * time.Millisecond) // the registrars succeed again too
	for i, r := range registrars {
		r.finish()
		if len(r.errs) > 0 {
			t.Fatalf("instance %s, background REGISTERs:\n%s", instances[i].name, strings.Join(r.errs, "\n"))
		}
		t.Logf("instance %s, background REGISTERs across the outage: %d tried, %d acknowledged, %d answered 503; slowest answer %v",
			instances[i].name, r.tried, len(r.acked), r.n503, r.slowest.Round(time.Millisecond))
		if r.n503 == 0 {
			t.Fatalf("instance %s: no background REGISTER was answered 503 during the outage", instances[i].name)
		}
		maps.Copy(acked, r.acked)
	}

	// No acknowledged REGISTER is lost: each user logs in, on either
	// instance.
	i := 0
	for name, pass := range acked {
		c := conns[i%2]
		m := c.expect("LOGIN "+name+" "+pass, 200, "")
		if m["data"].(map[string]any)["username"] != name {
			t.Fatalf("LOGIN %s after the outage: %v", name, m)
		}
		i++
	}
	t.Logf("all %d acknowledged users log in after the outage", len(acked))

	// The session and the tokens from before are still good; B can now
	// check A's token.
	sessA.expect("GET protected", 200, "")
	conns[1].expect("GET protected "+tokB, 200, "")
	conns[1].expect("GET protected "+tokA, 200, "")
	// The change feed flows again: a REVOKE on A ends the token on B.
	adminA.expect("REVOKE "+names[1], 200, "")
	deadline := time.Now().Add(faultFeedWithin)
	for {
		m := conns[1].do("GET protected " + tokB)
		if m["status"] == 401.0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance B still accepts a token %v after A revoked its user (change feed not flowing after the outage): %v", faultFeedWithin, m)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Both stop cleanly: nothing crashed and no data race was reported.
	for _, in := range instances {
		in.srv.stop()
	}
}

// pids returns the cluster's postmaster and its child processes.
func (pg *faultPG) pids() (postmaster int, children []int) {
	pg.t.Helper()
	b, err := os.ReadFile(filepath.Join(pg.dir, "data", "postmaster.pid"))
	if err != nil {
		pg.t.Fatalf("the private cluster's postmaster.pid: %v", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	if postmaster, err = strconv.Atoi(strings.TrimSpace(first)); err != nil || postmaster <= 0 {
		pg.t.Fatalf("postmaster.pid starts with %q", first)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		pg.t.Fatalf("list processes: %v", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		if f := strings.Fields(string(stat[i+1:])); len(f) > 1 && f[1] == strconv.Itoa(postmaster) {
			children = append(children, pid)
		}
	}
	return postmaster, children
}

// freeze stops every process of the cluster with SIGSTOP: connections stay
// open and new ones are accepted by the kernel, but nothing answers, as
// with a hung server or a network that drops packets. The returned thaw
// (also run at cleanup) resumes them.
func (pg *faultPG) freeze() (thaw func()) {
	pg.t.Helper()
	postmaster, _ := pg.pids()
	// The postmaster first, so that it forks no backend after the scan.
	if err := syscall.Kill(postmaster, syscall.SIGSTOP); err != nil {
		pg.t.Fatalf("SIGSTOP the postmaster %d: %v", postmaster, err)
	}
	_, children := pg.pids()
	stopped := append([]int{postmaster}, children...)
	for _, pid := range children {
		syscall.Kill(pid, syscall.SIGSTOP)
	}
	thawed := false
	thaw = func() {
		if thawed {
			return
		}
		thawed = true
		for _, pid := range stopped {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	pg.t.Cleanup(thaw) // runs before the cluster's own cleanup stops it
	return thaw
}

// TestFaultPostgresFrozen freezes PostgreSQL (SIGSTOP on all its
// processes) under a serving instance: unlike a stopped server, which
// refuses connections at once, a frozen one or a network that drops
// packets answers nothing. Requests that need the store must still get
// 503 unavailable within faultAnswerWithin instead of hanging, memory-only
// checks go on working, and everything works again once it thaws.
func TestFaultPostgresFrozen(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test builds the binaries and runs a private PostgreSQL cluster; skipped with -short")
	}
	// Known failure: nothing bounds how long a request waits for the
	// store (the request context has no deadline, nor has the feed's
	// Sync), so with PostgreSQL frozen REGISTER and LOGIN hang until it
	// thaws instead of answering 503. Remove this skip with the fix.
	pg := faultPostgres(t)
	bins := e2eBuild(t)
	a := e2eStart(t, bins.authlined, nil, serveArgs(pg.dsn())...)

	c := e2eDial(t, a.addr)
	c.expect("REGISTER frozen1 amber-violin-1", 201, "")
	c.expect("REGISTER frozen2 amber-violin-2", 201, "")
	sess := e2eDial(t, a.addr)
	sess.expect("LOGIN frozen1 amber-violin-1", 200, "")
	sess.expect("GET protected", 200, "")
	tok := c.token("frozen2", "amber-violin-2")
	c.expect("GET protected "+tok, 200, "")

	thaw := pg.freeze()
	frozen := time.Now()
	// Each on a new connection: a request that hangs must not hide the
	// next one's answer.
	ask := func(req string, want ...string) time.Duration {
		t.Helper()
		c := e2eDial(t, a.addr)
		defer c.nc.Close()
		m, took, err := faultDo(c, req, faultAnswerWithin)
		if err != nil {
			t.Fatalf("PostgreSQL frozen: %v", err)
		}
		if !slices.Contains(want, faultStatus(m)) {
			t.Fatalf("PostgreSQL frozen: %s: got %v after %v, want %s", faultRedact(req), m, took, strings.Join(want, " or "))
		}
		return took
	}
	// Twice each: the first may find a pooled connection to a frozen
	// backend, the next a new connection the frozen postmaster never
	// answers.
	for i := range 2 {
		took := ask(fmt.Sprintf("REGISTER frozenx%d amber-violin-3", i), "503 unavailable")
		t.Logf("REGISTER with PostgreSQL frozen: 503 unavailable in %v", took.Round(time.Millisecond))
		took = ask("LOGIN frozen2 amber-violin-2", "503 unavailable")
		t.Logf("LOGIN with PostgreSQL frozen: 503 unavailable in %v", took.Round(time.Millisecond))
	}
	if m, took, err := faultDo(sess, "GET protected", faultAnswerWithin); err != nil || m["status"] != 200.0 {
		t.Fatalf("PostgreSQL frozen: session GET: %v %v (after %v), want 200", m, err, took)
	}
	ask("GET protected "+tok, "200")
	ask("PING", "200")
	faultAlive(t, "A", a)

	thaw()
	thawed := time.Now()
	t.Logf("PostgreSQL thawed after %v", thawed.Sub(frozen).Round(time.Millisecond))
	deadline := thawed.Add(faultRecoverWithin)
	for i := 0; ; i++ {
		c := e2eDial(t, a.addr)
		m, _, err := faultDo(c, fmt.Sprintf("REGISTER frozeny%d amber-violin-4", i), faultAnswerWithin)
		c.nc.Close()
		if err == nil && m["status"] == 201.0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("REGISTER does not work within %v of PostgreSQL thawing: %v %v", faultRecoverWithin, m, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("REGISTER works again %v after PostgreSQL thawed", time.Since(thawed).Round(time.Millisecond))
	c = e2eDial(t, a.addr)
	c.expect("LOGIN frozen1 amber-violin-1", 200, "")
	sess.expect("GET protected", 200, "")
	a.stop()
}
