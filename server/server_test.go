package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server/servertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// wire is a raw protocol connection for tests.
type wire struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

// openWire connects and consumes the greeting.
func openWire(t testing.TB, addr string) *wire {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return startWire(t, nc)
}

func startWire(t testing.TB, nc net.Conn) *wire {
	t.Helper()
	t.Cleanup(func() { nc.Close() })
	w := &wire{t: t, nc: nc, r: bufio.NewReader(nc)}
	hello := w.recv()
	if hello.Event != "hello" || hello.Server != "authlined" || hello.Proto != protocol.Proto {
		t.Fatalf("bad greeting: %+v", hello)
	}
	return w
}

func (w *wire) send(line string) {
	w.t.Helper()
	if _, err := io.WriteString(w.nc, line+"\n"); err != nil {
		w.t.Fatalf("send %q: %v", line, err)
	}
}

func (w *wire) recv() protocol.Message {
	w.t.Helper()
	return servertest.ReadJSON[protocol.Message](w.t, w.nc, w.r, time.Now().Add(10*time.Second))
}

// do sends a line and returns the response.
func (w *wire) do(line string) protocol.Message {
	w.t.Helper()
	w.send(line)
	return w.recv()
}

// expect sends a line and checks the response's status and code.
func (w *wire) expect(line string, status int, code protocol.Code) protocol.Message {
	w.t.Helper()
	m := w.do(line)
	if m.Status != status || m.Error != code || m.OK != (code == "") {
		w.t.Fatalf("%s: got status %d code %q ok %v (%s), want %d %q", redact(line), m.Status, m.Error, m.OK, m.Message, status, code)
	}
	return m
}

// expectClosed checks that the server closes the connection.
func (w *wire) expectClosed() {
	w.t.Helper()
	w.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := w.r.ReadByte(); err != io.EOF {
		w.t.Fatalf("want EOF, got byte %q err %v", b, err)
	}
}

func redact(line string) string {
	if len(line) > 80 {
		return line[:80] + "..."
	}
	return line
}

func data[T any](t testing.TB, m protocol.Message) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(m.Data, &v); err != nil {
		t.Fatalf("data %s: %v", m.Data, err)
	}
	return v
}

func tokenOf(t testing.TB, w *wire, user, pass string) string {
	t.Helper()
	m := w.expect(fmt.Sprintf(`{"cmd":"LOGIN","username":%q,"password":%q,"mode":"token"}`, user, pass), 200, "")
	d := data[protocol.LoginData](t, m)
	if d.Token == "" || d.TokenType != "Bearer" || d.ExpiresIn <= 0 {
		t.Fatalf("bad login data: %s", m.Data)
	}
	return d.Token
}

func TestTutorialScenario(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	srv.AddUser(t, "root", "rootpassword", "admin")
	w := openWire(t, srv.Addr)

	steps := []struct {
		line   string
		status int
		code   protocol.Code
	}{
		{"REGISTER alice s3cretpass", 201, ""},
		{"REGISTER alice s3cretpass", 409, protocol.CodeConflict},
		{"REGISTER ALICE otherpass1", 409, protocol.CodeConflict},
		{"GET protected", 401, protocol.CodeUnauthenticated},
		{"LOGIN alice wrongpassword", 401, protocol.CodeInvalidCredentials},
		{"LOGIN nobody s3cretpass", 401, protocol.CodeInvalidCredentials},
		{"LOGIN Alice s3cretpass", 200, ""},
		{"GET protected", 200, ""},
		{"GET admin", 403, protocol.CodeForbidden},
		{"GET garden", 404, protocol.CodeNotFound},
		{"WHOAMI", 200, ""},
		{"GET protected garbage.token.here", 401, protocol.CodeInvalidToken},
		{"LOGOUT", 200, ""},
		{"GET protected", 401, protocol.CodeUnauthenticated},
		{"LOGOUT", 401, protocol.CodeUnauthenticated},
		{"LOGIN root rootpassword", 200, ""},
		{"GET admin", 200, ""},
		{"PING", 200, ""},
	}
	for _, s := range steps {
		w.expect(s.line, s.status, s.code)
	}
	w.expect("QUIT", 200, "")
	if m := w.recv(); m.Event != "bye" || m.Reason != protocol.ByeQuit {
		t.Fatalf("after QUIT: %+v", m)
	}
	w.expectClosed()
}

func TestResponseData(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{TokenTTL: 10 * time.Minute})
	w := openWire(t, srv.Addr)

	m := w.expect(`{"id":"r1","cmd":"register","username":"Bob","password":"s3cretpass"}`, 201, "")
	if string(m.ID) != `"r1"` || m.Message == "" {
		t.Fatalf("register: id %s message %q", m.ID, m.Message)
	}
	if d := data[protocol.UserData](t, m); d != (protocol.UserData{Username: "bob", Role: "user"}) {
		t.Fatalf("register data: %+v", d)
	}

	m = w.expect(`{"id":2,"cmd":"LOGIN","username":"bob","password":"s3cretpass","mode":"token"}`, 200, "")
	ld := data[protocol.LoginData](t, m)
	if string(m.ID) != "2" || ld.Username != "bob" || ld.Role != "user" || ld.Mode != "token" || ld.TokenType != "Bearer" || ld.ExpiresIn != 600 {
		t.Fatalf("login data: %s", m.Data)
	}
	if d := time.Until(ld.ExpiresAt); d < 9*time.Minute || d > 10*time.Minute+time.Second {
		t.Fatalf("expires_at %v is not about 10m away", ld.ExpiresAt)
	}
	var raw map[string]any
	json.Unmarshal(m.Data, &raw)
	if _, err := time.Parse(time.RFC3339, raw["expires_at"].(string)); err != nil {
		t.Fatalf("expires_at not RFC 3339: %v", err)
	}

	m = w.expect(`{"cmd":"GET","resource":"protected","token":"`+ld.Token+`"}`, 200, "")
	if d := data[protocol.ResourceData](t, m); d.Resource != "protected" || d.Username != "bob" || d.Role != "user" || !strings.Contains(d.Content, "bob") {
		t.Fatalf("get data: %+v", d)
	}
	m = w.expect(`{"cmd":"WHOAMI","token":"`+ld.Token+`"}`, 200, "")
	if d := data[protocol.WhoAmIData](t, m); d != (protocol.WhoAmIData{Username: "bob", Role: "user", Auth: "token"}) {
		t.Fatalf("whoami data: %+v", d)
	}
	// Token mode does not log the connection in.
	w.expect("WHOAMI", 401, protocol.CodeUnauthenticated)
	m = w.expect(`LOGIN bob s3cretpass session`, 200, "")
	if d := data[protocol.LoginData](t, m); d.Mode != "session" || d.Token != "" {
		t.Fatalf("session login data: %s", m.Data)
	}
	var sessionData map[string]any
	json.Unmarshal(m.Data, &sessionData)
	if _, ok := sessionData["token"]; ok {
		t.Fatalf("session login carries a token: %s", m.Data)
	}
	m = w.expect("WHOAMI", 200, "")
	if d := data[protocol.WhoAmIData](t, m); d.Auth != "session" {
		t.Fatalf("whoami: %+v", d)
	}
}

func TestSessionsArePerConnection(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	a, b := openWire(t, srv.Addr), openWire(t, srv.Addr)
	a.expect("REGISTER carol s3cretpass", 201, "")
	a.expect("LOGIN carol s3cretpass", 200, "")
	b.expect("WHOAMI", 401, protocol.CodeUnauthenticated)
	b.expect("GET protected", 401, protocol.CodeUnauthenticated)
	a.expect("GET protected", 200, "")

	// A failed LOGIN leaves the session as it was.
	a.expect("LOGIN carol wrongpassword", 401, protocol.CodeInvalidCredentials)
	a.expect("LOGIN carol", 400, protocol.CodeBadRequest)
	if d := data[protocol.WhoAmIData](t, a.expect("WHOAMI", 200, "")); d.Username != "carol" {
		t.Fatalf("session lost after failed login: %+v", d)
	}

	// Closing the connection ends the session: a new one starts anonymous.
	a.nc.Close()
	openWire(t, srv.Addr).expect("WHOAMI", 401, protocol.CodeUnauthenticated)
}

func TestTokenTakesPrecedenceOverSession(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	srv.AddUser(t, "boss", "bosspassword", "admin")
	w := openWire(t, srv.Addr)
	w.expect("REGISTER dave s3cretpass", 201, "")
	bossToken := tokenOf(t, w, "boss", "bosspassword")
	w.expect("LOGIN dave s3cretpass", 200, "")

	w.expect("GET admin", 403, protocol.CodeForbidden)
	m := w.expect("GET admin "+bossToken, 200, "")
	if d := data[protocol.ResourceData](t, m); d.Username != "boss" {
		t.Fatalf("token identity not used: %+v", d)
	}
	// A bad token is an error even though the session is good.
	w.expect("GET protected not-a-token", 401, protocol.CodeInvalidToken)
	w.expect("WHOAMI not-a-token", 401, protocol.CodeInvalidToken)

	// LOGOUT with a token revokes that token and keeps the session.
	w.expect("LOGOUT "+bossToken, 200, "")
	w.expect("GET admin "+bossToken, 401, protocol.CodeInvalidToken)
	if d := data[protocol.WhoAmIData](t, w.expect("WHOAMI", 200, "")); d.Username != "dave" {
		t.Fatalf("session changed by token logout: %+v", d)
	}
	// Revoking twice: the token is already invalid.
	w.expect("LOGOUT "+bossToken, 401, protocol.CodeInvalidToken)
}

func TestRevocationAndTokensSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	srv := servertest.Start(t, servertest.Options{Dir: dir})
	w := openWire(t, srv.Addr)
	w.expect("REGISTER erin s3cretpass", 201, "")
	kept := tokenOf(t, w, "erin", "s3cretpass")
	revoked := tokenOf(t, w, "erin", "s3cretpass")
	w.expect("LOGOUT "+revoked, 200, "")
	srv.Stop(t)

	srv2 := servertest.Start(t, servertest.Options{Dir: dir})
	w2 := openWire(t, srv2.Addr)
	w2.expect("GET protected "+kept, 200, "")
	w2.expect("GET protected "+revoked, 401, protocol.CodeInvalidToken)
}

// clock is a settable time source for token tests.
type clock struct{ now atomic.Int64 }

func newClock(t time.Time) *clock    { c := &clock{}; c.now.Store(t.UnixNano()); return c }
func (c *clock) Now() time.Time      { return time.Unix(0, c.now.Load()) }
func (c *clock) Add(d time.Duration) { c.now.Add(int64(d)) }

func TestTokenExpiry(t *testing.T) {
	clk := newClock(time.Now())
	srv := servertest.Start(t, servertest.Options{TokenTTL: time.Minute, Now: clk.Now})
	w := openWire(t, srv.Addr)
	w.expect("REGISTER frank s3cretpass", 201, "")
	tok := tokenOf(t, w, "frank", "s3cretpass")
	w.expect("GET protected "+tok, 200, "")
	clk.Add(2 * time.Minute)
	w.expect("GET protected "+tok, 401, protocol.CodeTokenExpired)
	w.expect("WHOAMI "+tok, 401, protocol.CodeTokenExpired)
	w.expect("LOGOUT "+tok, 401, protocol.CodeTokenExpired)

	// Expired and tampered is invalid, never expired (CVE-2024-51744).
	parts := strings.Split(tok, ".")
	sig := []byte(parts[2])
	sig[0] ^= 'A' ^ 'B'
	if sig[0] == parts[2][0] {
		sig[0] = 'C'
	}
	tampered := parts[0] + "." + parts[1] + "." + string(sig)
	w.expect("GET protected "+tampered, 401, protocol.CodeInvalidToken)
}

func TestDeletedUserTokenStopsWorking(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	w := openWire(t, srv.Addr)
	w.expect("REGISTER gina s3cretpass", 201, "")
	tok := tokenOf(t, w, "gina", "s3cretpass")
	if err := srv.Store.DeleteUser(context.Background(), "gina"); err != nil {
		t.Fatal(err)
	}
	// Deleted in the store directly, as `authlined user delete` does.
	waitFor(t, func() bool { return w.do("GET protected "+tok).Error == protocol.CodeInvalidToken })
}

func TestRoleChangeAppliesToTokens(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	w := openWire(t, srv.Addr)
	w.expect("REGISTER hank s3cretpass", 201, "")
	tok := tokenOf(t, w, "hank", "s3cretpass")
	w.expect("GET admin "+tok, 403, protocol.CodeForbidden)
	if err := srv.Store.SetRole(context.Background(), "hank", "admin"); err != nil {
		t.Fatal(err)
	}
	// Changed in the store directly, as another process would: the
	// change feed brings it within the sync interval.
	waitFor(t, func() bool { return w.do("GET admin " + tok).OK })
}

func TestPasswords(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	w := openWire(t, srv.Addr)
	pw72 := strings.Repeat("p", 72)
	cases := []struct {
		name   string
		line   string
		status int
		code   protocol.Code
	}{
		{"too short", `REGISTER ivy short`, 400, protocol.CodeBadRequest},
		{"73 bytes", `REGISTER ivy ` + pw72 + "x", 400, protocol.CodeBadRequest},
		{"72 bytes", `REGISTER ivy ` + pw72, 201, ""},
		// bcrypt would accept this: only its first 72 bytes are compared.
		{"login with 73 bytes", `LOGIN ivy ` + pw72 + "x", 400, protocol.CodeBadRequest},
		{"login with 72 bytes", `LOGIN ivy ` + pw72, 200, ""},
		// "é" as one code point and as e + combining acute are one password
		// after NFKC; 3-byte multi-code-point input counts after normalising.
		{"register composed", `{"cmd":"REGISTER","username":"jo","password":"caf\u00e9-p\u00e4ss"}`, 400, protocol.CodeBadRequest},
		{"register composed ok", `{"cmd":"REGISTER","username":"joe","password":"caf\u00e9-p\u00e4ss"}`, 201, ""},
		{"login decomposed", `{"cmd":"LOGIN","username":"joe","password":"cafe\u0301-pa\u0308ss"}`, 200, ""},
		{"login fullwidth digits", `{"cmd":"LOGIN","username":"joe","password":"caf\u00e9-p\u00e4sS"}`, 401, protocol.CodeInvalidCredentials},
		{"bad username", `REGISTER -dash s3cretpass`, 400, protocol.CodeBadRequest},
		{"long username", `REGISTER ` + strings.Repeat("a", 33) + ` s3cretpass`, 400, protocol.CodeBadRequest},
		{"non-ascii username", `{"cmd":"REGISTER","username":"jos\u00e9","password":"s3cretpass"}`, 400, protocol.CodeBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w.t = t
			w.expect(c.line, c.status, c.code)
		})
	}
}

func TestUnknownUserLooksLikeWrongPassword(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	w := openWire(t, srv.Addr)
	w.expect("REGISTER kim s3cretpass", 201, "")
	wrong := w.expect("LOGIN kim wrongpass1", 401, protocol.CodeInvalidCredentials)
	unknown := w.expect("LOGIN kimberly wrongpass1", 401, protocol.CodeInvalidCredentials)
	malformed := w.expect("LOGIN -x wrongpass1", 401, protocol.CodeInvalidCredentials)
	if wrong.Message != unknown.Message || wrong.Message != malformed.Message {
		t.Fatalf("messages differ: %q / %q / %q", wrong.Message, unknown.Message, malformed.Message)
	}
}

func TestBadInputKeepsConnection(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	w := openWire(t, srv.Addr)
	bad := []struct {
		line string
		code protocol.Code
	}{
		{`{"cmd":"PING"`, protocol.CodeBadRequest},
		{`{"cmd":"PING"}{"cmd":"PING"}`, protocol.CodeBadRequest},
		{`{"cmd":"PING"} x`, protocol.CodeBadRequest},
		{`{"cmd":42}`, protocol.CodeBadRequest},
		{`{"cmd":"LOGIN","username":["a"],"password":"x"}`, protocol.CodeBadRequest},
		{`{"cmd":"REGISTER","username":"bob"}`, protocol.CodeBadRequest},
		{`{"cmd":"GET"}`, protocol.CodeBadRequest},
		{`{"id":true,"cmd":"PING"}`, protocol.CodeBadRequest},
		{`{"cmd":"LOGIN","username":"a","password":"b","mode":"cookie"}`, protocol.CodeBadRequest},
		{`{}`, protocol.CodeBadRequest},
		{`{"cmd":"FLY"}`, protocol.CodeUnknownCommand},
		{`[1,2,3]`, protocol.CodeUnknownCommand},
		{`null`, protocol.CodeUnknownCommand},
		{"PING \xff\xfe", protocol.CodeBadRequest},
		{"{\"cmd\":\"PING\",\"x\":\"\xc3\x28\"}", protocol.CodeBadRequest},
		{`PING extra`, protocol.CodeBadRequest},
		{`REGISTER onlyname`, protocol.CodeBadRequest},
		{`LOGIN a b c d`, protocol.CodeBadRequest},
		{strings.Repeat("Z", 3000), protocol.CodeUnknownCommand},
	}
	for _, b := range bad {
		m := w.do(b.line)
		if m.OK || m.Error != b.code || m.Status != 400 || m.Message == "" {
			t.Errorf("%q: got %+v, want 400 %s", redact(b.line), m, b.code)
		}
	}
	// Each bad line got exactly one answer and the connection still works.
	w.expect("PING", 200, "")
	// The id survives a type error elsewhere in the request.
	if m := w.do(`{"id":9,"cmd":"LOGIN","username":1}`); string(m.ID) != "9" || m.Error != protocol.CodeBadRequest {
		t.Fatalf("id not echoed on type error: %+v", m)
	}
}

func TestBlankLinesAndCRLF(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	w := openWire(t, srv.Addr)
	io.WriteString(w.nc, "\n\r\n   \n\t\nPING\r\n{\"id\":1,\"cmd\":\"ping\"}\r\n")
	if m := w.recv(); !m.OK || len(m.ID) != 0 {
		t.Fatalf("first response: %+v", m)
	}
	if m := w.recv(); string(m.ID) != "1" {
		t.Fatalf("second response: %+v", m)
	}
}

func TestPipelining(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	w := openWire(t, srv.Addr)
	const n = 500
	var batch bytes.Buffer
	for i := range n {
		if i%3 == 0 {
			batch.WriteString("FLY\n")
			continue
		}
		fmt.Fprintf(&batch, `{"id":%d,"cmd":"PING"}`+"\n", i)
	}
	if _, err := w.nc.Write(batch.Bytes()); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		m := w.recv()
		if i%3 == 0 {
			if m.Error != protocol.CodeUnknownCommand {
				t.Fatalf("response %d: %+v", i, m)
			}
			continue
		}
		if string(m.ID) != fmt.Sprint(i) || !m.OK {
			t.Fatalf("response %d out of order: %+v", i, m)
		}
	}
}

func TestLineTooLong(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{MaxLineBytes: 64})
	w := openWire(t, srv.Addr)
	// Exactly the limit, with CRLF, is fine.
	w.expect(`{"cmd":"PING","pad":"`+strings.Repeat("x", 64-len(`{"cmd":"PING","pad":""}`))+`"}`+"\r", 200, "")
	w.send(strings.Repeat("x", 65))
	if m := w.recv(); m.Status != 413 || m.Error != protocol.CodeLineTooLong {
		t.Fatalf("got %+v, want 413", m)
	}
	if m := w.recv(); m.Event != "bye" || m.Reason != protocol.ByeLineTooLong {
		t.Fatalf("got %+v, want bye", m)
	}
	w.expectClosed()

	// A line far longer than the read buffer, never terminated: the server
	// answers once the limit is passed, without waiting for the end.
	w2 := openWire(t, srv.Addr)
	go io.WriteString(w2.nc, strings.Repeat("y", 1<<20))
	if m := w2.recv(); m.Status != 413 {
		t.Fatalf("got %+v, want 413", m)
	}
}

func TestUnterminatedLastLineIsAnswered(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	w := openWire(t, srv.Addr)
	io.WriteString(w.nc, "PING")
	w.nc.(*net.TCPConn).CloseWrite()
	if m := w.recv(); !m.OK || m.Message != "pong" {
		t.Fatalf("got %+v, want pong", m)
	}
	w.expectClosed()
}

func TestPasswordPolicy(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	w := openWire(t, srv.Addr)
	for _, c := range []struct {
		line, msg string
	}{
		{"REGISTER nora password1", "too common"},
		{"REGISTER nora PASSWORD1", "too common"},
		{"REGISTER nora12345 nora12345", "same as the username"},
		{"REGISTER nora my-nora-pass", "contain the username"},
	} {
		m := w.expect(c.line, 400, protocol.CodeBadRequest)
		if !strings.Contains(m.Message, c.msg) {
			t.Errorf("%s: message %q does not say %q", c.line, m.Message, c.msg)
		}
	}
	w.expect("REGISTER nora kitten-orbit-77", 201, "")
}
