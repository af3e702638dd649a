package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server/servertest"
)

// TestAuditLog runs every kind of security event through a server logging
// JSON, then checks each event is one record with the remote address and
// the username where known, and that no password or token is anywhere in
// the log.
func TestAuditLog(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clk := newClock(time.Now())
	srv := servertest.Start(t, servertest.Options{Logger: logger, Throttle: &testPolicy, Now: clk.Now, MaxConns: 2})
	srv.AddUser(t, "root", "Adm1n-secret-pw", "admin")

	passwords := []string{"Adm1n-secret-pw", "Us3r-secret-pw", "Wr0ng-secret-pw", "Sh0rt"}
	w := openWire(t, srv.Addr)
	w.expect("REGISTER amy Us3r-secret-pw", 201, "")
	w.expect("REGISTER amy Us3r-secret-pw", 409, protocol.CodeConflict)
	w.expect("REGISTER bo Sh0rt", 400, protocol.CodeBadRequest)
	tok := tokenOf(t, w, "amy", "Us3r-secret-pw")
	adminTok := tokenOf(t, w, "root", "Adm1n-secret-pw")
	w.expect("GET admin "+tok, 403, protocol.CodeForbidden)
	w.expect("GET admin "+adminTok, 200, "")
	tampered := tok[:len(tok)-3] + "xyz"
	w.expect("GET protected "+tampered, 401, protocol.CodeInvalidToken)
	w.expect("LOGOUT "+tok, 200, "")
	w.expect("WHOAMI "+tok, 401, protocol.CodeInvalidToken)
	for range 3 {
		w.expect("LOGIN amy Wr0ng-secret-pw", 401, protocol.CodeInvalidCredentials)
	}
	w.expect("LOGIN amy Us3r-secret-pw", 429, protocol.CodeRateLimited)
	clk.Add(time.Minute)
	w.expect(`{"cmd":"LOGIN","username":"amy","password":"Us3r-secret-pw"}`, 200, "")
	w.expect("LOGOUT", 200, "")
	openWire(t, srv.Addr)
	expectTooManyConns(t, srv.Addr) // limit hit
	w.send(strings.Repeat("x", 20000))
	w.recv()

	srv.Stop(t)
	mu.Lock()
	logs := buf.String()
	mu.Unlock()

	for _, secret := range append(passwords, tok, adminTok, tampered, tok[strings.LastIndexByte(tok, '.')+1:]) {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains a secret %q", secret)
		}
	}

	type record struct {
		Msg    string `json:"msg"`
		Remote string `json:"remote"`
		User   string `json:"user"`
		Code   string `json:"code"`
	}
	var records []record
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log line is not one JSON record: %q", sc.Text())
		}
		records = append(records, r)
	}
	want := []struct {
		msg, user string
		code      protocol.Code
	}{
		{"user registered", "amy", ""},
		{"register failed", "amy", protocol.CodeConflict},
		{"register failed", "bo", protocol.CodeBadRequest},
		{"login succeeded", "amy", ""},
		{"login succeeded", "root", ""},
		{"access denied", "amy", protocol.CodeForbidden},
		{"token rejected", "", protocol.CodeInvalidToken},
		{"token revoked", "amy", ""},
		{"login failed", "amy", protocol.CodeInvalidCredentials},
		{"login throttled", "amy", protocol.CodeRateLimited},
		{"logged out", "amy", ""},
		{"connection limit reached; refusing connection", "", ""},
		{"limit hit: request line too long; closing", "", ""},
	}
	for _, w := range want {
		found := false
		for _, r := range records {
			if r.Msg == w.msg && r.User == w.user && r.Code == string(w.code) {
				if !strings.HasPrefix(r.Remote, "127.0.0.1:") {
					t.Errorf("%q has no remote address: %+v", w.msg, r)
				}
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no %q record for user %q code %q in:\n%s", w.msg, w.user, w.code, logs)
		}
	}
}
