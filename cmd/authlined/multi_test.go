package main

// Several authlined processes on one PostgreSQL store behave as one
// system: what is done on one instance holds on the others within a
// second (LISTEN/NOTIFY), and the state that matters (users, signing keys,
// revocations, failed-login counters) lives in the store.

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/authline/authline/server/store/postgres/pgtest"
)

const (
	// multiDSNEnv names the PostgreSQL server of the test (CI sets it to
	// postgres://postgres@127.0.0.1:5432/test?sslmode=disable).
	multiDSNEnv = "AUTHLINE_TEST_POSTGRES_DSN"
	// multiBound is how soon a change made on one instance must hold on
	// the others.
	multiBound = time.Second
	// multiPollEvery is how often the test asks while it waits for that.
	multiPollEvery = 20 * time.Millisecond
)

// TestMultiInstance runs three instances, A, B and C, on one schema and
// checks that they act as one server.
func TestMultiInstance(t *testing.T) {
	base := os.Getenv(multiDSNEnv)
	if base == "" {
		t.Skip("the multi-instance test needs PostgreSQL: set " + multiDSNEnv + " to a postgres:// URL")
	}
	if testing.Short() {
		t.Skip("the multi-instance test builds and runs the binaries; skipped with -short")
	}
	db := multiSchema(t, base)
	bins := e2eBuild(t)

	const rootPW = "granite-pelican-38"
	e2eRun(t, bins.authlined, rootPW+"\n", nil, "user", "add", "root", "--role", "admin", "--password-stdin", "--bcrypt-cost", "4", "--db", db).
		wantCode(t, 0, "user add root --role admin")

	// The instances poll the change feed only every 10s: every bound of
	// one second below can only be met by LISTEN/NOTIFY waking them.
	start := func() *e2eServer {
		t.Helper()
		return e2eStart(t, bins.authlined, nil, serveArgs(db, "--sync-interval", "10s")...)
	}
	srvA, srvB, srvC := start(), start(), start()
	a, b, c := e2eDial(t, srvA.addr), e2eDial(t, srvB.addr), e2eDial(t, srvC.addr)
	on := map[string]*e2eConn{"A": a, "B": b, "C": c}

	// Registered on A, alice logs in on B, in both modes.
	const alicePW = "lilac-harbor-17"
	a.expect("REGISTER alice "+alicePW, 201, "")
	multiData(t, b.expect("LOGIN alice "+alicePW, 200, ""), "username", "alice", "mode", "session")
	multiData(t, b.expect("WHOAMI", 200, ""), "username", "alice", "auth", "session")
	tokB := b.token("alice", alicePW)
	multiData(t, b.expect("WHOAMI "+tokB, 200, ""), "username", "alice", "auth", "token")

	// A token from A is good on B and C: the signing keys are the store's.
	tokA := a.token("alice", alicePW)
	for _, name := range []string{"B", "C"} {
		multiData(t, on[name].expect("WHOAMI "+tokA, 200, ""), "username", "alice", "auth", "token")
	}

	// LOGOUT on A: B and C, which accepted the token before, refuse it
	// within a second.
	a.expect("LOGOUT "+tokA, 200, "")
	logout := time.Now()
	for _, name := range []string{"B", "C"} {
		multiWithin(t, "the token logged out on A is refused on "+name, logout, func() bool {
			m := on[name].do("WHOAMI " + tokA)
			return m["status"] == float64(401) && m["error"] == "invalid_token"
		})
	}
	b.expect("WHOAMI "+tokB, 200, "") // alice's other login is untouched

	// REVOKE of bob by an admin on A: bob's token is refused on B, and his
	// session on C ends with the session_ended event, within a second.
	root := e2eDial(t, srvA.addr)
	root.expect("LOGIN root "+rootPW, 200, "")
	const bobPW = "copper-lantern-52"
	a.expect("REGISTER bob "+bobPW, 201, "")
	bobTok := a.token("bob", bobPW)
	b.expect("WHOAMI "+bobTok, 200, "")
	bobC := e2eDial(t, srvC.addr)
	bobC.expect("LOGIN bob "+bobPW, 200, "")
	bobC.expect("WHOAMI", 200, "")
	root.expect("REVOKE bob", 200, "")
	revoke := time.Now()
	multiWithin(t, "bob's token, after REVOKE on A, is refused on B", revoke, func() bool {
		return b.do("WHOAMI " + bobTok)["status"] == float64(401)
	})
	ev := multiRecvBy(t, bobC, revoke.Add(multiBound), "the session_ended event on C after REVOKE on A")
	if ev["event"] != "session_ended" || ev["reason"] != "revoked" {
		t.Fatalf("bob's session on C got %v, want the event session_ended, reason revoked", ev)
	}
	t.Logf("session_ended on C: %v after the REVOKE", time.Since(revoke).Round(time.Millisecond))
	bobC.expect("WHOAMI", 401, "unauthenticated")

	// SETROLE on A applies on B within a second, both ways.
	const carolPW = "saffron-meadow-64"
	a.expect("REGISTER carol "+carolPW, 201, "")
	carolTok := b.token("carol", carolPW)
	b.expect("GET admin "+carolTok, 403, "forbidden")
	for _, step := range []struct {
		role   string
		status int
	}{{"admin", 200}, {"user", 403}} {
		multiData(t, root.expect("SETROLE carol "+step.role, 200, ""), "username", "carol", "role", step.role)
		set := time.Now()
		multiWithin(t, fmt.Sprintf("GET admin on B answering %d after SETROLE carol %s on A", step.status, step.role), set, func() bool {
			return b.do("GET admin " + carolTok)["status"] == float64(step.status)
		})
	}

	// Failed logins count in the store, whichever instance saw them: 3 on
	// A and 2 on B (from one address) use up the 5 free failures, so the
	// next LOGIN, on C, is throttled, even with the right password.
	const davePW = "indigo-falcon-71"
	a.expect("REGISTER dave "+davePW, 201, "")
	for _, name := range []string{"A", "A", "A", "B", "B"} {
		on[name].expect("LOGIN dave wrong-password-0", 401, "invalid_credentials")
	}
	m := c.expect("LOGIN dave "+davePW, 429, "rate_limited")
	data, _ := m["data"].(map[string]any)
	if ra, _ := data["retry_after"].(float64); ra < 1 {
		t.Fatalf("429 without a positive retry_after: %v", m)
	}

	// A key rotated with `authlined keys rotate` on the store: within a
	// second every instance signs new tokens with it, and each instance's
	// new tokens are good on all of them, as are the older ones.
	r := e2eRun(t, bins.authlined, "", nil, "keys", "rotate", "--db", db)
	r.wantCode(t, 0, "keys rotate")
	rotate := time.Now()
	_, kid := rotated(t, r.stdout)
	for _, issuer := range []string{"A", "B", "C"} {
		var tok string
		multiWithin(t, "new tokens from "+issuer+" signed with the rotated key "+kid, rotate, func() bool {
			tok = on[issuer].token("alice", alicePW)
			return e2eKID(t, tok) == kid
		})
		for _, verifier := range []string{"A", "B", "C"} {
			multiData(t, on[verifier].expect("WHOAMI "+tok, 200, ""), "username", "alice")
		}
	}
	for _, verifier := range []string{"A", "B", "C"} {
		on[verifier].expect("WHOAMI "+tokB, 200, "") // signed with the old key
	}

	// All three stop cleanly.
	for _, s := range []*e2eServer{srvA, srvB, srvC} {
		s.terminate()
	}
	for _, s := range []*e2eServer{srvA, srvB, srvC} {
		s.waitStopped()
	}
}

// multiSchema creates a schema with a random name, dropped (with
// everything in it) when the test ends, and returns the DSN of base with
// that schema as its search_path.
func multiSchema(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("%s must be a postgres:// URL, as authlined's --db takes it (parse error: %v)", multiDSNEnv, err)
	}
	// Made before the processes start, so the schema is dropped after
	// they are killed.
	_, dsn := pgtest.NewSchema(t)
	return dsn
}

// multiWithin asks cond every multiPollEvery until it holds, and fails the
// test if it does not within multiBound of since.
func multiWithin(t *testing.T, what string, since time.Time, cond func() bool) {
	t.Helper()
	deadline := since.Add(multiBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, multiBound)
		}
		time.Sleep(multiPollEvery)
	}
	t.Logf("%s: %v", what, time.Since(since).Round(time.Millisecond))
}

// multiRecvBy reads the next message from c, failing the test if none
// comes before deadline.
func multiRecvBy(t *testing.T, c *e2eConn, deadline time.Time, what string) map[string]any {
	t.Helper()
	c.nc.SetReadDeadline(deadline)
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		t.Fatalf("%s: nothing within %v (%v; got %q)", what, multiBound, err, line)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("%s: server sent %q: %v", what, line, err)
	}
	return m
}

// multiData checks fields of a response's data, given as name, value
// pairs.
func multiData(t *testing.T, m map[string]any, pairs ...string) {
	t.Helper()
	data, _ := m["data"].(map[string]any)
	for i := 0; i+1 < len(pairs); i += 2 {
		if got := fmt.Sprint(data[pairs[i]]); got != pairs[i+1] {
			t.Fatalf("data.%s = %s, want %s, in %v", pairs[i], got, pairs[i+1], m)
		}
	}
}
