package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server/auth"
	"github.com/authline/authline/server/servertest"
)

func TestAdminCommands(t *testing.T) {
	var clk clock
	srv := tokenServer(t, &clk)
	for i := range 5 {
		srv.AddUser(t, fmt.Sprintf("user%d", i), "kitten-orbit-42", "user")
	}
	c := dial(t, srv.Addr)
	ctx := context.Background()
	root := tokenLogin(t, c, "root", "rooted-walrus-77").Token
	alice := tokenLogin(t, c, "alice", "kitten-orbit-42")

	// Paging: 7 accounts, 3 per page.
	var names []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("paging does not end")
		}
		d, err := c.Users(ctx, root, 3, after)
		if err != nil {
			t.Fatalf("Users: %v", err)
		}
		if len(d.Users) > 3 {
			t.Fatalf("page of %d users, limit 3", len(d.Users))
		}
		for _, u := range d.Users {
			names = append(names, u.Username)
		}
		if d.Next == "" {
			break
		}
		after = d.Next
	}
	if fmt.Sprint(names) != "[alice root user0 user1 user2 user3 user4]" {
		t.Fatalf("users = %v", names)
	}
	d, err := c.Users(ctx, root, 0, "")
	if err != nil || len(d.Users) != 7 || d.Next != "" {
		t.Fatalf("Users with the default limit = %+v, %v", d, err)
	}
	if a := d.Users[0]; a.Username != "alice" || a.Role != "user" || a.Disabled || a.CreatedAt.IsZero() || a.LastLogin.IsZero() {
		t.Fatalf("alice in USERS = %+v (she has logged in)", a)
	}

	u, err := c.User(ctx, root, "user0")
	if err != nil || u.Username != "user0" || u.Role != "user" || !u.LastLogin.IsZero() || u.Throttled {
		t.Fatalf("User = %+v, %v", u, err)
	}
	_, err = c.User(ctx, root, "nobody")
	wantCode(t, err, protocol.CodeNotFound)

	u, err = c.SetRole(ctx, root, "user0", "admin")
	if err != nil || u.Role != "admin" {
		t.Fatalf("SetRole = %+v, %v", u, err)
	}
	u, err = c.SetRole(ctx, root, "user0", "user")
	if err != nil || u.Role != "user" {
		t.Fatalf("SetRole back = %+v, %v", u, err)
	}

	// Disable ends alice's tokens; enable lets her log in again.
	u, err = c.Disable(ctx, root, "alice")
	if err != nil || !u.Disabled {
		t.Fatalf("Disable = %+v, %v", u, err)
	}
	_, err = c.WhoAmI(ctx, alice.Token)
	wantCode(t, err, protocol.CodeInvalidToken)
	_, err = c.Login(ctx, "alice", "kitten-orbit-42", protocol.ModeToken)
	if err == nil {
		t.Fatal("a disabled user logged in")
	}
	u, err = c.Enable(ctx, root, "alice")
	if err != nil || u.Disabled {
		t.Fatalf("Enable = %+v, %v", u, err)
	}
	alice = tokenLogin(t, c, "alice", "kitten-orbit-42")

	// Revoke ends every token, refresh tokens included.
	u, err = c.Revoke(ctx, root, "alice")
	if err != nil || u.Username != "alice" {
		t.Fatalf("Revoke = %+v, %v", u, err)
	}
	_, err = c.WhoAmI(ctx, alice.Token)
	wantCode(t, err, protocol.CodeInvalidToken)
	_, err = c.Refresh(ctx, alice.RefreshToken)
	wantCode(t, err, protocol.CodeInvalidToken)

	ud, err := c.Delete(ctx, root, "user2")
	if err != nil || ud.Username != "user2" || ud.Role != "user" {
		t.Fatalf("Delete = %+v, %v", ud, err)
	}
	_, err = c.User(ctx, root, "user2")
	wantCode(t, err, protocol.CodeNotFound)

	// The last admin stays.
	_, err = c.SetRole(ctx, root, "root", "user")
	wantCode(t, err, protocol.CodeConflict)
	_, err = c.Disable(ctx, root, "root")
	wantCode(t, err, protocol.CodeConflict)
	_, err = c.Delete(ctx, root, "root")
	wantCode(t, err, protocol.CodeConflict)

	// Non-admins are refused, by token and by session.
	alice = tokenLogin(t, c, "alice", "kitten-orbit-42")
	sc := dial(t, srv.Addr)
	if _, err := sc.Login(ctx, "alice", "kitten-orbit-42", ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c     *client.Client
		token string
	}{{c, alice.Token}, {sc, ""}} {
		calls := map[string]func() error{
			"USERS":   func() error { _, err := tc.c.Users(ctx, tc.token, 0, ""); return err },
			"USER":    func() error { _, err := tc.c.User(ctx, tc.token, "user0"); return err },
			"SETROLE": func() error { _, err := tc.c.SetRole(ctx, tc.token, "alice", "admin"); return err },
			"DISABLE": func() error { _, err := tc.c.Disable(ctx, tc.token, "user0"); return err },
			"ENABLE":  func() error { _, err := tc.c.Enable(ctx, tc.token, "user0"); return err },
			"UNLOCK":  func() error { _, err := tc.c.Unlock(ctx, tc.token, "user0"); return err },
			"REVOKE":  func() error { _, err := tc.c.Revoke(ctx, tc.token, "user0"); return err },
			"DELETE":  func() error { _, err := tc.c.Delete(ctx, tc.token, "user0"); return err },
		}
		for name, call := range calls {
			t.Run(name, func(t *testing.T) { wantCode(t, call(), protocol.CodeForbidden) })
		}
	}

	// An admin session works too.
	rc := dial(t, srv.Addr)
	if _, err := rc.Login(ctx, "root", "rooted-walrus-77", ""); err != nil {
		t.Fatal(err)
	}
	if u, err := rc.User(ctx, "", "alice"); err != nil || u.Username != "alice" {
		t.Fatalf("User on an admin session = %+v, %v", u, err)
	}
}

func TestAdminEventsOnSessions(t *testing.T) {
	var clk clock
	srv := tokenServer(t, &clk)
	ctx := context.Background()
	root := tokenLogin(t, dial(t, srv.Addr), "root", "rooted-walrus-77").Token
	c := dial(t, srv.Addr)

	for _, tt := range []struct {
		reason string
		act    func() error
	}{
		{protocol.SessionEndedRevoked, func() error { _, err := c.Revoke(ctx, root, "alice"); return err }},
		{protocol.SessionEndedDisabled, func() error { _, err := c.Disable(ctx, root, "alice"); return err }},
	} {
		t.Run(tt.reason, func(t *testing.T) {
			if _, err := c.Enable(ctx, root, "alice"); err != nil {
				t.Fatal(err)
			}
			events := newEventLog()
			sc := dialEvents(t, srv.Addr, events)
			if _, err := sc.Login(ctx, "alice", "kitten-orbit-42", ""); err != nil {
				t.Fatal(err)
			}
			if err := tt.act(); err != nil {
				t.Fatal(err)
			}
			if ev := events.wait(t, client.EventSessionEnded); ev.Reason != tt.reason {
				t.Fatalf("event %+v", ev)
			}
			_, err := sc.WhoAmI(ctx, "")
			wantCode(t, err, protocol.CodeUnauthenticated)
		})
	}
}

func TestAdminUnlock(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Throttle: &auth.ThrottlePolicy{
		Window: time.Hour, BaseDelay: time.Minute,
		PairFree: 2, PairMaxDelay: time.Hour, UserFree: 2, UserMaxDelay: time.Hour,
	}})
	srv.AddUser(t, "alice", "kitten-orbit-42", "user")
	srv.AddUser(t, "root", "rooted-walrus-77", "admin")
	c := dial(t, srv.Addr)
	ctx := context.Background()
	root := tokenLogin(t, c, "root", "rooted-walrus-77").Token

	for range 3 {
		c.Login(ctx, "alice", "wrong-password-9", "")
	}
	_, err := c.Login(ctx, "alice", "kitten-orbit-42", "")
	wantCode(t, err, protocol.CodeRateLimited)
	// The refusal says how long the throttle lasts (BaseDelay: a minute).
	if pe := (*protocol.Error)(nil); !errors.As(err, &pe) || pe.RetryAfter <= 0 || pe.RetryAfter > time.Minute {
		t.Fatalf("throttled Login: RetryAfter of %v, want up to a minute", err)
	}
	u, err := c.User(ctx, root, "alice")
	if err != nil || !u.Throttled || u.RetryAfter <= 0 {
		t.Fatalf("User after failed logins = %+v, %v; want throttled", u, err)
	}
	if u, err = c.Unlock(ctx, root, "alice"); err != nil || u.Throttled {
		t.Fatalf("Unlock = %+v, %v", u, err)
	}
	if _, err := c.Login(ctx, "alice", "kitten-orbit-42", ""); err != nil {
		t.Fatalf("Login after Unlock: %v", err)
	}
}
