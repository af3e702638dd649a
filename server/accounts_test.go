package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server/servertest"
)

func loginTokens(t *testing.T, w *wire, user, pass string) protocol.LoginData {
	t.Helper()
	m := w.expect(fmt.Sprintf(`{"cmd":"LOGIN","username":%q,"password":%q,"mode":"token"}`, user, pass), 200, "")
	d := data[protocol.LoginData](t, m)
	if d.Token == "" || d.RefreshToken == "" || d.RefreshExpiresAt.IsZero() {
		t.Fatalf("token login lacks a token pair: %s", m.Data)
	}
	return d
}

// expectEvent reads the next line and checks it is a session_ended event.
func (w *wire) expectEvent(reason string) {
	w.t.Helper()
	m := w.recv()
	if m.Event != "session_ended" || m.Reason != reason {
		w.t.Fatalf("got %+v, want session_ended %q", m, reason)
	}
}

func TestRefreshRotation(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{RefreshTTL: time.Hour})
	srv.AddUser(t, "ria", "kitten-orbit-1", "user")
	w := openWire(t, srv.Addr)
	first := loginTokens(t, w, "ria", "kitten-orbit-1")
	if d := time.Until(first.RefreshExpiresAt); d < 59*time.Minute || d > time.Hour+time.Second {
		t.Fatalf("refresh_expires_at %v is not an hour away", first.RefreshExpiresAt)
	}

	m := w.expect(`{"cmd":"REFRESH","refresh_token":"`+first.RefreshToken+`"}`, 200, "")
	second := data[protocol.LoginData](t, m)
	if second.Token == "" || second.RefreshToken == "" || second.RefreshToken == first.RefreshToken || second.Token == first.Token {
		t.Fatalf("REFRESH did not rotate: %s", m.Data)
	}
	w.expect("GET protected "+second.Token, 200, "")
	// Inline form.
	third := data[protocol.LoginData](t, w.expect("REFRESH "+second.RefreshToken, 200, ""))

	// The retired token again: theft. The whole family is revoked.
	w.expect("REFRESH "+first.RefreshToken, 401, protocol.CodeInvalidToken)
	w.expect("REFRESH "+third.RefreshToken, 401, protocol.CodeInvalidToken)
	w.expect("REFRESH not-a-refresh-token", 401, protocol.CodeInvalidToken)
	w.expect(`{"cmd":"REFRESH"}`, 400, protocol.CodeBadRequest)

	// Another login is another family, untouched.
	other := loginTokens(t, w, "ria", "kitten-orbit-1")
	w.expect("REFRESH "+other.RefreshToken, 200, "")
}

func TestRefreshTokenExpires(t *testing.T) {
	clk := newClock(time.Now())
	srv := servertest.Start(t, servertest.Options{Now: clk.Now, RefreshTTL: time.Hour, TokenTTL: time.Minute})
	srv.AddUser(t, "rex", "kitten-orbit-1", "user")
	w := openWire(t, srv.Addr)
	d := loginTokens(t, w, "rex", "kitten-orbit-1")
	clk.Add(2 * time.Minute)
	w.expect("GET protected "+d.Token, 401, protocol.CodeTokenExpired)
	d = data[protocol.LoginData](t, w.expect("REFRESH "+d.RefreshToken, 200, ""))
	w.expect("GET protected "+d.Token, 200, "")
	clk.Add(2 * time.Hour)
	w.expect("REFRESH "+d.RefreshToken, 401, protocol.CodeInvalidToken)
}

func TestPasswdEndsOtherSessionsAndTokens(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	srv.AddUser(t, "pam", "kitten-orbit-1", "user")
	me, other := openWire(t, srv.Addr), openWire(t, srv.Addr)
	me.expect("LOGIN pam kitten-orbit-1", 200, "")
	other.expect("LOGIN pam kitten-orbit-1", 200, "")
	tok := loginTokens(t, me, "pam", "kitten-orbit-1")

	me.expect("PASSWD wrong-old-pass kitten-orbit-2", 401, protocol.CodeInvalidCredentials)
	me.expect("PASSWD kitten-orbit-1 password1", 400, protocol.CodeBadRequest)
	m := me.expect("PASSWD kitten-orbit-1 kitten-orbit-2", 200, "")
	if d := data[protocol.LoginData](t, m); d.Mode != "session" || d.Token != "" {
		t.Fatalf("PASSWD on a session: %s", m.Data)
	}
	// The other connection is told, at once, and is logged out.
	other.expectEvent(protocol.SessionEndedPasswordChanged)
	other.expect("GET protected", 401, protocol.CodeUnauthenticated)
	// Every token issued before is refused, refresh tokens too.
	me.expect("GET protected "+tok.Token, 401, protocol.CodeInvalidToken)
	me.expect("REFRESH "+tok.RefreshToken, 401, protocol.CodeInvalidToken)
	// The caller's own session goes on.
	me.expect("GET protected", 200, "")
	me.expect("LOGIN pam kitten-orbit-1", 401, protocol.CodeInvalidCredentials)
	me.expect("LOGIN pam kitten-orbit-2", 200, "")
}

func TestPasswdWithTokenGetsNewTokens(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	srv.AddUser(t, "pia", "kitten-orbit-1", "user")
	w := openWire(t, srv.Addr)
	old := loginTokens(t, w, "pia", "kitten-orbit-1")
	m := w.expect(`{"cmd":"PASSWD","old_password":"kitten-orbit-1","new_password":"kitten-orbit-3","token":"`+old.Token+`"}`, 200, "")
	fresh := data[protocol.LoginData](t, m)
	if fresh.Mode != "token" || fresh.Token == "" || fresh.RefreshToken == "" {
		t.Fatalf("PASSWD with a token must return a new pair: %s", m.Data)
	}
	w.expect("GET protected "+old.Token, 401, protocol.CodeInvalidToken)
	w.expect("GET protected "+fresh.Token, 200, "")
	w.expect("PASSWD kitten-orbit-3 kitten-orbit-4", 401, protocol.CodeUnauthenticated)
}

func TestLogoutAll(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	srv.AddUser(t, "lou", "kitten-orbit-1", "user")
	srv.AddUser(t, "bystander", "kitten-orbit-1", "user")
	a, b, c := openWire(t, srv.Addr), openWire(t, srv.Addr), openWire(t, srv.Addr)
	a.expect("LOGIN lou kitten-orbit-1", 200, "")
	b.expect("LOGIN lou kitten-orbit-1", 200, "")
	c.expect("LOGIN bystander kitten-orbit-1", 200, "")
	tok := loginTokens(t, c, "lou", "kitten-orbit-1")

	a.expect(`{"cmd":"LOGOUT","all":true}`, 200, "")
	b.expectEvent(protocol.SessionEndedLogoutAll)
	a.expect("WHOAMI", 401, protocol.CodeUnauthenticated)
	b.expect("WHOAMI", 401, protocol.CodeUnauthenticated)
	c.expect("GET protected "+tok.Token, 401, protocol.CodeInvalidToken)
	c.expect("REFRESH "+tok.RefreshToken, 401, protocol.CodeInvalidToken)
	c.expect("WHOAMI", 200, "") // another user's session is untouched

	// Inline, with a token.
	tok = loginTokens(t, c, "lou", "kitten-orbit-1")
	c.expect("LOGOUT ALL "+tok.Token, 200, "")
	c.expect("GET protected "+tok.Token, 401, protocol.CodeInvalidToken)
	c.expect("LOGOUT ALL", 200, "") // bystander's own
	c.expect("WHOAMI", 401, protocol.CodeUnauthenticated)
}

func TestAdminCommands(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	srv.AddUser(t, "boss", "kitten-orbit-1", "admin")
	for i := range 5 {
		srv.AddUser(t, fmt.Sprintf("member%d", i), "kitten-orbit-1", "user")
	}
	admin := openWire(t, srv.Addr)
	admin.expect("USERS", 401, protocol.CodeUnauthenticated)
	member := openWire(t, srv.Addr)
	member.expect("LOGIN member0 kitten-orbit-1", 200, "")
	member.expect("USERS", 403, protocol.CodeForbidden)
	member.expect("DISABLE member1", 403, protocol.CodeForbidden)
	admin.expect("LOGIN boss kitten-orbit-1", 200, "")

	// Paging.
	var names []string
	after := ""
	for {
		m := admin.expect(fmt.Sprintf(`{"cmd":"USERS","limit":2,"after":%q}`, after), 200, "")
		page := data[protocol.UsersData](t, m)
		for _, u := range page.Users {
			names = append(names, u.Username)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if fmt.Sprint(names) != "[boss member0 member1 member2 member3 member4]" {
		t.Fatalf("paged USERS = %v", names)
	}
	admin.expect(`{"cmd":"USERS","limit":5000}`, 400, protocol.CodeBadRequest)

	info := data[protocol.UserInfo](t, admin.expect("USER member0", 200, ""))
	if info.Username != "member0" || info.Role != "user" || info.Disabled || info.LastLogin.IsZero() || info.CreatedAt.IsZero() {
		t.Fatalf("USER member0 = %+v", info)
	}
	admin.expect("USER ghost", 404, protocol.CodeNotFound)

	// Promote, then demote: the role applies at once to the session.
	admin.expect("SETROLE member0 admin", 200, "")
	member.expect("GET admin", 200, "")
	admin.expect(`{"cmd":"SETROLE","username":"member0","role":"user"}`, 200, "")
	member.expect("GET admin", 403, protocol.CodeForbidden)
	admin.expect("SETROLE member0 king", 400, protocol.CodeBadRequest)

	// Disable: the session ends with an event; tokens stop; LOGIN fails.
	tok := loginTokens(t, member, "member0", "kitten-orbit-1")
	admin.expect("DISABLE member0", 200, "")
	member.expectEvent(protocol.SessionEndedDisabled)
	member.expect("GET protected", 401, protocol.CodeUnauthenticated)
	member.expect("GET protected "+tok.Token, 401, protocol.CodeInvalidToken)
	member.expect("LOGIN member0 kitten-orbit-1", 401, protocol.CodeInvalidCredentials)
	if info := data[protocol.UserInfo](t, admin.expect("USER member0", 200, "")); !info.Disabled {
		t.Fatalf("USER after DISABLE: %+v", info)
	}
	admin.expect("ENABLE member0", 200, "")
	member.expect("LOGIN member0 kitten-orbit-1", 200, "")

	// Revoke: every session and token of the user ends.
	tok = loginTokens(t, member, "member0", "kitten-orbit-1")
	admin.expect("REVOKE member0", 200, "")
	member.expectEvent(protocol.SessionEndedRevoked)
	member.expect("GET protected "+tok.Token, 401, protocol.CodeInvalidToken)

	// Unlock: throttled failures are cleared.
	for range 5 {
		member.do("LOGIN member2 wrong-pass-x")
	}
	if info := data[protocol.UserInfo](t, admin.expect("USER member2", 200, "")); info.Throttled {
		// the per-username counter needs 20; the per-address one is not shown
		t.Logf("member2 throttled for everyone: %+v", info)
	}
	member.expect("LOGIN member2 kitten-orbit-1", 429, protocol.CodeRateLimited)
	admin.expect("UNLOCK member2", 200, "")
	member.expect("LOGIN member2 kitten-orbit-1", 200, "")

	// Delete: session ends, tokens stop.
	tok = loginTokens(t, member, "member2", "kitten-orbit-1")
	m := admin.expect("DELETE member2", 200, "")
	if d := data[protocol.UserData](t, m); d.Username != "member2" {
		t.Fatalf("DELETE data: %s", m.Data)
	}
	member.expectEvent(protocol.SessionEndedDeleted)
	member.expect("GET protected "+tok.Token, 401, protocol.CodeInvalidToken)
	admin.expect("DELETE member2", 404, protocol.CodeNotFound)

	// The last admin cannot be removed, demoted or disabled.
	admin.expect("SETROLE boss user", 409, protocol.CodeConflict)
	admin.expect("DISABLE boss", 409, protocol.CodeConflict)
	admin.expect("DELETE boss", 409, protocol.CodeConflict)
	admin.expect("SETROLE member3 admin", 200, "")
	admin.expect("SETROLE boss user", 200, "")
	admin.expect("GET admin", 403, protocol.CodeForbidden)
}

// A change made outside this server (another instance, or `authlined
// user` on the same database) reaches open sessions through the store's
// change feed.
func TestChangesFromElsewhereApply(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	srv.AddUser(t, "eve", "kitten-orbit-1", "admin")
	w := openWire(t, srv.Addr)
	w.expect("LOGIN eve kitten-orbit-1", 200, "")
	tok := loginTokens(t, w, "eve", "kitten-orbit-1")
	w.expect("GET admin", 200, "")
	w.expect("GET admin "+tok.Token, 200, "")
	srv.AddUser(t, "adam", "kitten-orbit-1", "admin") // so eve is not the last admin
	if err := srv.Store.SetRole(context.Background(), "eve", "user"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return w.do("GET admin").Error == protocol.CodeForbidden })
	w.expect("GET admin "+tok.Token, 403, protocol.CodeForbidden)
	if _, err := srv.Store.BumpGeneration(context.Background(), "eve", protocol.SessionEndedRevoked); err != nil {
		t.Fatal(err)
	}
	w.expectEvent(protocol.SessionEndedRevoked)
	w.expect("GET protected "+tok.Token, 401, protocol.CodeInvalidToken)
}

// LOGOUT with an access token ends its login: the refresh token that came
// with it can no longer mint new tokens. Other logins go on.
func TestLogoutTokenEndsItsRefreshTokens(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	srv.AddUser(t, "leo", "kitten-orbit-1", "user")
	w := openWire(t, srv.Addr)
	first := loginTokens(t, w, "leo", "kitten-orbit-1")
	other := loginTokens(t, w, "leo", "kitten-orbit-1")
	// A refreshed token belongs to the same login.
	second := data[protocol.LoginData](t, w.expect("REFRESH "+first.RefreshToken, 200, ""))
	w.expect("LOGOUT "+second.Token, 200, "")
	w.expect("REFRESH "+second.RefreshToken, 401, protocol.CodeInvalidToken)
	w.expect("GET protected "+other.Token, 200, "")
	w.expect("REFRESH "+other.RefreshToken, 200, "")
}
