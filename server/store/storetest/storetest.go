// Package storetest is the conformance suite of store.Store: every backend
// runs it from its own tests with
//
//	storetest.Run(t, func(t *testing.T) store.Store { ... })
//
// It uses only the store.Store interface.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/authline/authline/server/store"
)

// Run runs every conformance test as a subtest. newStore must return a new,
// empty store for each call and close it when t ends (t.Cleanup); a test
// may close it first, so Close must tolerate a second call. Subtests run
// one after another, so a backend may reuse one database it empties in
// newStore.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"CreateGetUser", testCreateGetUser},
		{"CreateUserConflict", testCreateUserConflict},
		{"CreateUserInvalidRole", testCreateUserInvalidRole},
		{"MissingUser", testMissingUser},
		{"ListUsers", testListUsers},
		{"SetRole", testSetRole},
		{"SetPasswordHash", testSetPasswordHash},
		{"DeleteUser", testDeleteUser},
		{"CountAdmins", testCountAdmins},
		{"UserFields", testUserFields},
		{"ListUsersAfter", testListUsersAfter},
		{"Generation", testGeneration},
		{"SetDisabled", testSetDisabled},
		{"LastAdmin", testLastAdmin},
		{"ConcurrentLastAdmin", testConcurrentLastAdmin},
		{"ChangeFeed", testChangeFeed},
		{"ChangesPaging", testChangesPaging},
		{"PurgeChanges", testPurgeChanges},
		{"RefreshToken", testRefreshToken},
		{"RefreshTokenExpiry", testRefreshTokenExpiry},
		{"RevokeRefreshFamily", testRevokeRefreshFamily},
		{"PurgeRefreshTokens", testPurgeRefreshTokens},
		{"DeleteUserRefreshTokens", testDeleteUserRefreshTokens},
		{"ConcurrentUseRefreshToken", testConcurrentUseRefreshToken},
		{"RevokeToken", testRevokeToken},
		{"RevokeTokenKeepsLaterExpiry", testRevokeTokenKeepsLaterExpiry},
		{"PurgeRevocations", testPurgeRevocations},
		{"SigningKeys", testSigningKeys},
		{"SigningKeysOrder", testSigningKeysOrder},
		{"SigningKeyInvalid", testSigningKeyInvalid},
		{"RetireSigningKey", testRetireSigningKey},
		{"ConcurrentRetireSigningKey", testConcurrentRetireSigningKey},
		{"LoginFailures", testLoginFailures},
		{"LoginFailuresWindow", testLoginFailuresWindow},
		{"ConcurrentLoginFailures", testConcurrentLoginFailures},
		{"ExpiredContext", testExpiredContext},
		{"Closed", testClosed},
		{"ConcurrentCreateSameName", testConcurrentCreateSameName},
		{"ConcurrentCreateDistinct", testConcurrentCreateDistinct},
		{"CountUsers", testCountUsers},
		{"ReplaceUser", testReplaceUser},
		{"ReplaceUserLastAdmin", testReplaceUserLastAdmin},
		{"ListRevocations", testListRevocations},
		{"AllSigningKeys", testAllSigningKeys},
		{"ImportSigningKey", testImportSigningKey},
		{"ListRefreshTokensAfter", testListRefreshTokensAfter},
		{"MigrationCallsUnavailable", testMigrationCallsUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newStore(t)) })
	}
}

// hash is a fake password hash. It holds a NUL and non-UTF-8 bytes, so a
// backend that stores it as text rather than bytes fails.
func hash(seed string) []byte {
	return append([]byte("$2a$10$"+seed), 0x00, 0xff, 0xfe, 0x80, '\n')
}

func newUser(name, role string) store.User {
	return store.User{
		Username:     name,
		PasswordHash: hash(name),
		Role:         role,
		// Sub-second and non-UTC on purpose: only the instant, to the
		// second, must round-trip.
		CreatedAt: time.Date(2024, 3, 9, 14, 15, 16, 987654321, time.FixedZone("X", 5*3600+1800)),
	}
}

func mustCreate(t *testing.T, s store.Store, users ...store.User) {
	t.Helper()
	for _, u := range users {
		if err := s.CreateUser(t.Context(), u); err != nil {
			t.Fatalf("CreateUser(%q): %v", u.Username, err)
		}
	}
}

func mustGet(t *testing.T, s store.Store, name string) store.User {
	t.Helper()
	u, err := s.GetUser(t.Context(), name)
	if err != nil {
		t.Fatalf("GetUser(%q): %v", name, err)
	}
	return u
}

// checkUser compares got with what was stored as want.
func checkUser(t *testing.T, got, want store.User) {
	t.Helper()
	if got.Username != want.Username {
		t.Errorf("Username = %q, want %q", got.Username, want.Username)
	}
	if !bytes.Equal(got.PasswordHash, want.PasswordHash) {
		t.Errorf("%s: PasswordHash = %q, want %q", want.Username, got.PasswordHash, want.PasswordHash)
	}
	if got.Role != want.Role {
		t.Errorf("%s: Role = %q, want %q", want.Username, got.Role, want.Role)
	}
	if w := want.CreatedAt.Truncate(time.Second); !got.CreatedAt.Equal(w) {
		t.Errorf("%s: CreatedAt = %v, want %v", want.Username, got.CreatedAt, w)
	}
	// Zero (never) stays zero.
	if w := want.LastLogin.Truncate(time.Second); !got.LastLogin.Equal(w) || got.LastLogin.IsZero() != w.IsZero() {
		t.Errorf("%s: LastLogin = %v, want %v", want.Username, got.LastLogin, w)
	}
	if got.Disabled != want.Disabled {
		t.Errorf("%s: Disabled = %v, want %v", want.Username, got.Disabled, want.Disabled)
	}
	w := want.Generation
	if w == 0 { // CreateUser starts users at 1
		w = 1
	}
	if got.Generation != w {
		t.Errorf("%s: Generation = %d, want %d", want.Username, got.Generation, w)
	}
}

func checkCount(t *testing.T, s store.Store, want int) {
	t.Helper()
	n, err := s.CountAdmins(t.Context())
	if err != nil {
		t.Fatalf("CountAdmins: %v", err)
	}
	if n != want {
		t.Errorf("CountAdmins = %d, want %d", n, want)
	}
}

func checkRevoked(t *testing.T, s store.Store, jti string, want bool) {
	t.Helper()
	got, err := s.IsRevoked(t.Context(), jti)
	if err != nil {
		t.Fatalf("IsRevoked(%q): %v", jti, err)
	}
	if got != want {
		t.Errorf("IsRevoked(%q) = %v, want %v", jti, got, want)
	}
}

func testCreateGetUser(t *testing.T, s store.Store) {
	alice := newUser("alice", store.RoleUser)
	root := newUser("root", store.RoleAdmin)
	// Callers lower-case usernames; the store keeps what it is given.
	mixed := newUser("MiXed", store.RoleUser)
	mustCreate(t, s, alice, root, mixed)
	for _, want := range []store.User{alice, root, mixed} {
		checkUser(t, mustGet(t, s, want.Username), want)
	}
}

func testCreateUserConflict(t *testing.T, s store.Store) {
	orig := newUser("alice", store.RoleUser)
	mustCreate(t, s, orig)
	dup := store.User{Username: "alice", PasswordHash: hash("other"), Role: store.RoleAdmin, CreatedAt: time.Now()}
	if err := s.CreateUser(t.Context(), dup); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CreateUser(duplicate) = %v, want ErrConflict", err)
	}
	// The failed create must not have overwritten anything.
	checkUser(t, mustGet(t, s, "alice"), orig)
}

func testCreateUserInvalidRole(t *testing.T, s store.Store) {
	err := s.CreateUser(t.Context(), newUser("alice", "superuser"))
	if err == nil || errors.Is(err, store.ErrConflict) {
		t.Fatalf("CreateUser(role superuser) = %v, want a non-conflict error", err)
	}
	if _, err := s.GetUser(t.Context(), "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser after rejected create = %v, want ErrNotFound", err)
	}
}

func testMissingUser(t *testing.T, s store.Store) {
	// Another user exists, so "not found" is not just "table empty".
	mustCreate(t, s, newUser("alice", store.RoleUser))
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"GetUser", func() error { _, err := s.GetUser(ctx, "nobody"); return err }},
		{"SetRole", func() error { return s.SetRole(ctx, "nobody", store.RoleAdmin) }},
		{"SetRole(user)", func() error { return s.SetRole(ctx, "nobody", store.RoleUser) }},
		{"SetPasswordHash", func() error { return s.SetPasswordHash(ctx, "nobody", hash("x")) }},
		{"ChangePassword", func() error { _, err := s.ChangePassword(ctx, "nobody", hash("x")); return err }},
		{"SetDisabled(true)", func() error { return s.SetDisabled(ctx, "nobody", true) }},
		{"SetDisabled(false)", func() error { return s.SetDisabled(ctx, "nobody", false) }},
		{"BumpGeneration", func() error { _, err := s.BumpGeneration(ctx, "nobody", "test"); return err }},
		{"SetLastLogin", func() error { return s.SetLastLogin(ctx, "nobody", time.Now()) }},
		{"DeleteUser", func() error { return s.DeleteUser(ctx, "nobody") }},
	} {
		if err := tc.call(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s(nobody) = %v, want ErrNotFound", tc.name, err)
		}
	}
	if _, err := s.GetUser(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the calls created the missing user: GetUser = %v", err)
	}
	checkLatest(t, s, 0) // failed calls record no change
}

func testListUsers(t *testing.T, s store.Store) {
	users, err := s.ListUsers(t.Context())
	if err != nil {
		t.Fatalf("ListUsers(empty): %v", err)
	}
	if len(users) != 0 {
		t.Fatalf("ListUsers(empty) = %d users, want 0", len(users))
	}

	// Inserted out of order. The punctuation pins byte order: a
	// locale-aware collation that skips '-', '.' and '_' would put "ab"
	// before "a-c" (PostgreSQL needs COLLATE "C").
	names := []string{"zed", "bob", "a-c", "alice", "ab", "a.d", "a_b", "al", "bob2", "0day"}
	for i, n := range names {
		role := store.RoleUser
		if i%3 == 0 {
			role = store.RoleAdmin
		}
		mustCreate(t, s, newUser(n, role))
	}
	users, err = s.ListUsers(t.Context())
	if err != nil {
		t.Fatalf("ListUsers: %v", err)
	}
	want := slices.Clone(names)
	sort.Strings(want)
	var got []string
	for _, u := range users {
		got = append(got, u.Username)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ListUsers order = %q, want %q", got, want)
	}
	// Whole records, not just names.
	for _, u := range users {
		role := store.RoleUser
		if i := slices.Index(names, u.Username); i%3 == 0 {
			role = store.RoleAdmin
		}
		checkUser(t, u, newUser(u.Username, role))
	}
}

func testSetRole(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob := newUser("alice", store.RoleUser), newUser("bob", store.RoleUser)
	// root stays admin, so that alice is never the last one.
	mustCreate(t, s, alice, bob, newUser("root", store.RoleAdmin))

	if err := s.SetRole(ctx, "alice", store.RoleAdmin); err != nil {
		t.Fatalf("SetRole(admin): %v", err)
	}
	alice.Role = store.RoleAdmin
	checkUser(t, mustGet(t, s, "alice"), alice)
	checkUser(t, mustGet(t, s, "bob"), bob)

	// Setting the role a user already has is not "not found".
	if err := s.SetRole(ctx, "alice", store.RoleAdmin); err != nil {
		t.Errorf("SetRole(same role): %v", err)
	}
	if err := s.SetRole(ctx, "alice", "root"); err == nil {
		t.Errorf("SetRole(root) = nil, want an error")
	}
	checkUser(t, mustGet(t, s, "alice"), alice)

	if err := s.SetRole(ctx, "alice", store.RoleUser); err != nil {
		t.Fatalf("SetRole(user): %v", err)
	}
	alice.Role = store.RoleUser
	checkUser(t, mustGet(t, s, "alice"), alice)
}

func testSetPasswordHash(t *testing.T, s store.Store) {
	alice, bob := newUser("alice", store.RoleUser), newUser("bob", store.RoleUser)
	mustCreate(t, s, alice, bob)
	// Longer and shorter than the old hash: no stale tail may survive.
	for _, h := range [][]byte{hash("a much longer replacement hash"), {0x00}} {
		if err := s.SetPasswordHash(t.Context(), "alice", h); err != nil {
			t.Fatalf("SetPasswordHash: %v", err)
		}
		alice.PasswordHash = h
		checkUser(t, mustGet(t, s, "alice"), alice)
	}
	checkUser(t, mustGet(t, s, "bob"), bob)
}

func testDeleteUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreate(t, s, newUser("alice", store.RoleUser), newUser("bob", store.RoleUser))
	if err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, err := s.GetUser(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser(deleted) = %v, want ErrNotFound", err)
	}
	if err := s.DeleteUser(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteUser twice = %v, want ErrNotFound", err)
	}
	mustGet(t, s, "bob")
	// The name is free again.
	again := newUser("alice", store.RoleAdmin)
	mustCreate(t, s, again)
	checkUser(t, mustGet(t, s, "alice"), again)
}

func testCountAdmins(t *testing.T, s store.Store) {
	ctx := t.Context()
	checkCount(t, s, 0)
	mustCreate(t, s, newUser("a1", store.RoleAdmin), newUser("a2", store.RoleAdmin), newUser("u1", store.RoleUser))
	checkCount(t, s, 2)
	if err := s.SetRole(ctx, "u1", store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	checkCount(t, s, 3)
	if err := s.SetRole(ctx, "a1", store.RoleUser); err != nil {
		t.Fatal(err)
	}
	checkCount(t, s, 2)
	if err := s.DeleteUser(ctx, "a2"); err != nil {
		t.Fatal(err)
	}
	checkCount(t, s, 1)
}

func testRevokeToken(t *testing.T, s store.Store) {
	exp := time.Now().Add(time.Hour)
	checkRevoked(t, s, "jti-1", false)
	if err := s.RevokeToken(t.Context(), "jti-1", exp); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	checkRevoked(t, s, "jti-1", true)
	if err := s.RevokeToken(t.Context(), "jti-1", exp); err != nil {
		t.Fatalf("RevokeToken twice: %v", err)
	}
	checkRevoked(t, s, "jti-1", true)
	checkRevoked(t, s, "jti-2", false)
}

// A second revocation of the same token must not cut the first one short,
// whichever order the expiry times come in.
func testRevokeTokenKeepsLaterExpiry(t *testing.T, s store.Store) {
	now := time.Now()
	early, late := now.Add(-time.Hour), now.Add(time.Hour)
	for jti, exps := range map[string][2]time.Time{"late-first": {late, early}, "early-first": {early, late}} {
		for _, exp := range exps {
			if err := s.RevokeToken(t.Context(), jti, exp); err != nil {
				t.Fatalf("RevokeToken(%s): %v", jti, err)
			}
		}
	}
	n, err := s.PurgeRevocations(t.Context(), now)
	if err != nil {
		t.Fatalf("PurgeRevocations: %v", err)
	}
	if n != 0 {
		t.Errorf("PurgeRevocations = %d, want 0", n)
	}
	checkRevoked(t, s, "late-first", true)
	checkRevoked(t, s, "early-first", true)
}

func testPurgeRevocations(t *testing.T, s store.Store) {
	now := time.Now()
	tokens := []struct {
		jti     string
		exp     time.Time
		expired bool
	}{
		{"long-gone", now.Add(-24 * time.Hour), true},
		{"just-gone", now.Add(-time.Second), true},
		{"at-now", now, false}, // "before now" is strict
		{"live", now.Add(time.Hour), false},
	}
	for _, tok := range tokens {
		if err := s.RevokeToken(t.Context(), tok.jti, tok.exp); err != nil {
			t.Fatalf("RevokeToken(%s): %v", tok.jti, err)
		}
	}
	for i, want := range []int{2, 0} { // the second purge finds nothing
		n, err := s.PurgeRevocations(t.Context(), now)
		if err != nil {
			t.Fatalf("PurgeRevocations #%d: %v", i+1, err)
		}
		if n != want {
			t.Errorf("PurgeRevocations #%d = %d, want %d", i+1, n, want)
		}
	}
	for _, tok := range tokens {
		checkRevoked(t, s, tok.jti, !tok.expired)
	}
}

// allCalls calls every data method of s with ctx, for the tests that expect
// each of them to fail the same way.
func allCalls(s store.Store, ctx context.Context) map[string]func() error {
	return map[string]func() error{
		"CreateUser":      func() error { return s.CreateUser(ctx, newUser("carol", store.RoleUser)) },
		"GetUser":         func() error { _, err := s.GetUser(ctx, "alice"); return err },
		"ListUsers":       func() error { _, err := s.ListUsers(ctx); return err },
		"SetRole":         func() error { return s.SetRole(ctx, "alice", store.RoleAdmin) },
		"ListUsersAfter":  func() error { _, err := s.ListUsersAfter(ctx, "", 10); return err },
		"SetPasswordHash": func() error { return s.SetPasswordHash(ctx, "alice", hash("x")) },
		"ChangePassword":  func() error { _, err := s.ChangePassword(ctx, "alice", hash("x")); return err },
		"SetDisabled":     func() error { return s.SetDisabled(ctx, "alice", true) },
		"BumpGeneration":  func() error { _, err := s.BumpGeneration(ctx, "alice", "test"); return err },
		"SetLastLogin":    func() error { return s.SetLastLogin(ctx, "alice", time.Now()) },
		"DeleteUser":      func() error { return s.DeleteUser(ctx, "alice") },
		"CountAdmins":     func() error { _, err := s.CountAdmins(ctx); return err },
		"CreateRefreshToken": func() error {
			return s.CreateRefreshToken(ctx, refreshToken("new", "fam-new", "alice", time.Now().Add(time.Hour)))
		},
		"UseRefreshToken": func() error {
			_, err := s.UseRefreshToken(ctx, refreshHash("seed"), time.Now())
			return err
		},
		"RevokeRefreshFamily": func() error { return s.RevokeRefreshFamily(ctx, "fam-seed") },
		// Later than every expiry and every change, so that each would
		// delete something if it ran.
		"PurgeRefreshTokens": func() error { _, err := s.PurgeRefreshTokens(ctx, time.Now().Add(48*time.Hour)); return err },
		"LatestChange":       func() error { _, err := s.LatestChange(ctx); return err },
		"Changes":            func() error { _, err := s.Changes(ctx, 0, 10); return err },
		"PurgeChanges":       func() error { _, err := s.PurgeChanges(ctx, time.Now().Add(48*time.Hour)); return err },
		"RevokeToken":        func() error { return s.RevokeToken(ctx, "jti-2", time.Now().Add(time.Hour)) },
		"IsRevoked":          func() error { _, err := s.IsRevoked(ctx, "jti-1"); return err },
		"PurgeRevocations":   func() error { _, err := s.PurgeRevocations(ctx, time.Now()); return err },
		"AddLoginFailure": func() error {
			_, err := s.AddLoginFailure(ctx, store.FailureKey{Username: "alice"}, time.Now(), time.Minute)
			return err
		},
		"LoginFailures":      func() error { _, err := s.LoginFailures(ctx, store.FailureKey{Username: "alice"}); return err },
		"ResetLoginFailures": func() error { return s.ResetLoginFailures(ctx, store.FailureKey{Username: "alice"}) },
		"ClearLoginFailures": func() error { _, err := s.ClearLoginFailures(ctx, "alice"); return err },
		"PurgeLoginFailures": func() error { _, err := s.PurgeLoginFailures(ctx, time.Now()); return err },
		"AddSigningKey":      func() error { return s.AddSigningKey(ctx, hmacKey("kid-new", time.Now())) },
		"SigningKeys":        func() error { _, err := s.SigningKeys(ctx); return err },
		"RetireSigningKey":   func() error { return s.RetireSigningKey(ctx, "kid-seed", time.Now()) },
	}
}

func checkFailures(t *testing.T, s store.Store, k store.FailureKey, wantCount int, wantLast time.Time) {
	t.Helper()
	f, err := s.LoginFailures(t.Context(), k)
	if err != nil {
		t.Fatalf("LoginFailures(%+v): %v", k, err)
	}
	if f.Count != wantCount || (wantCount > 0 && !f.Last.Equal(wantLast.Truncate(time.Millisecond))) {
		t.Errorf("LoginFailures(%+v) = %d at %v, want %d at %v", k, f.Count, f.Last, wantCount, wantLast)
	}
}

func testLoginFailures(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Now().Truncate(time.Millisecond)
	pair := store.FailureKey{Username: "alice", IP: "192.0.2.1"}
	other := store.FailureKey{Username: "alice", IP: "2001:db8::1"}
	user := store.FailureKey{Username: "alice"}
	bob := store.FailureKey{Username: "bob"}

	checkFailures(t, s, pair, 0, time.Time{})
	for i := 1; i <= 3; i++ {
		at := now.Add(time.Duration(i) * time.Second)
		f, err := s.AddLoginFailure(ctx, pair, at, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if f.Count != i || !f.Last.Equal(at) {
			t.Fatalf("AddLoginFailure #%d = %+v, want count %d at %v", i, f, i, at)
		}
	}
	for _, k := range []store.FailureKey{other, user, bob} {
		if _, err := s.AddLoginFailure(ctx, k, now, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	checkFailures(t, s, pair, 3, now.Add(3*time.Second))
	checkFailures(t, s, other, 1, now)
	checkFailures(t, s, user, 1, now)

	// Reset touches one counter only.
	if err := s.ResetLoginFailures(ctx, pair); err != nil {
		t.Fatal(err)
	}
	checkFailures(t, s, pair, 0, time.Time{})
	checkFailures(t, s, other, 1, now)
	if err := s.ResetLoginFailures(ctx, pair); err != nil {
		t.Fatalf("resetting a missing counter: %v", err)
	}

	// Clear removes every counter of the username, and nobody else's.
	if n, err := s.ClearLoginFailures(ctx, "alice"); err != nil || n != 2 {
		t.Fatalf("ClearLoginFailures = %d, %v; want 2", n, err)
	}
	checkFailures(t, s, other, 0, time.Time{})
	checkFailures(t, s, user, 0, time.Time{})
	checkFailures(t, s, bob, 1, now)

	// Purge removes counters by the age of their last failure.
	if _, err := s.AddLoginFailure(ctx, pair, now.Add(time.Hour), time.Hour); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PurgeLoginFailures(ctx, now.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("PurgeLoginFailures = %d, %v; want 1", n, err)
	}
	checkFailures(t, s, bob, 0, time.Time{})
	checkFailures(t, s, pair, 1, now.Add(time.Hour))
}

// A counter whose last failure is older than the window starts again.
func testLoginFailuresWindow(t *testing.T, s store.Store) {
	ctx := t.Context()
	k := store.FailureKey{Username: "carol", IP: "192.0.2.7"}
	now := time.Now()
	for i := range 4 {
		if _, err := s.AddLoginFailure(ctx, k, now.Add(time.Duration(i)*time.Minute), 10*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	// 3 minutes after the last one, within the window: counts on.
	f, err := s.AddLoginFailure(ctx, k, now.Add(6*time.Minute), 10*time.Minute)
	if err != nil || f.Count != 5 {
		t.Fatalf("within window: %+v, %v; want count 5", f, err)
	}
	// Over the window since the last failure: starts from one.
	f, err = s.AddLoginFailure(ctx, k, now.Add(17*time.Minute), 10*time.Minute)
	if err != nil || f.Count != 1 {
		t.Fatalf("after window: %+v, %v; want count 1", f, err)
	}
}

// Failures from many goroutines at once are all counted.
func testConcurrentLoginFailures(t *testing.T, s store.Store) {
	k := store.FailureKey{Username: "dave"}
	now := time.Now()
	for i, err := range run(func(int) error {
		_, err := s.AddLoginFailure(t.Context(), k, now, time.Hour)
		return err
	}) {
		if err != nil {
			t.Errorf("AddLoginFailure #%d: %v", i, err)
		}
	}
	checkFailures(t, s, k, goroutines, now)
}

// seed stores a user, a revocation and a signing key (and so two
// changes) and a refresh token for allCalls to aim at.
func seed(t *testing.T, s store.Store) {
	t.Helper()
	mustCreate(t, s, newUser("alice", store.RoleUser))
	if err := s.RevokeToken(t.Context(), "jti-1", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustCreateRefresh(t, s, refreshToken("seed", "fam-seed", "alice", time.Now().Add(time.Hour)))
	mustAddKey(t, s, hmacKey("kid-seed", time.Now()))
}

// A request whose deadline has passed gets ErrUnavailable (a 503), and
// changes nothing.
func testExpiredContext(t *testing.T, s store.Store) {
	seed(t, s)
	latest := mustLatest(t, s)
	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	for name, call := range allCalls(s, ctx) {
		if err := call(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with expired context = %v, want ErrUnavailable", name, err)
		}
	}
	checkUser(t, mustGet(t, s, "alice"), newUser("alice", store.RoleUser))
	if _, err := s.GetUser(t.Context(), "carol"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateUser with expired context created the user: GetUser = %v", err)
	}
	checkRevoked(t, s, "jti-1", true)
	checkRevoked(t, s, "jti-2", false)
	checkLatest(t, s, latest)
	if cs := mustChanges(t, s, 0, 10); len(cs) != 2 {
		t.Errorf("Changes = %+v, want the seed's revocation and key", cs)
	}
	checkUseFails(t, s, refreshHash("new"), time.Now(), store.ErrNotFound)
	mustUse(t, s, refreshHash("seed"), time.Now()) // not used, revoked or purged
	checkKIDs(t, s, "kid-seed")                    // neither retired nor joined by kid-new
}

func testClosed(t *testing.T, s store.Store) {
	seed(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for name, call := range allCalls(s, t.Context()) {
		if err := call(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s after Close = %v, want ErrUnavailable", name, err)
		}
	}
	// The cleanup closes it again; that must not fail the test either.
	if err := s.Close(); err != nil && !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("second Close = %v, want nil or ErrUnavailable", err)
	}
}

const goroutines = 32

// run calls f(i) for i in [0, goroutines) at once and returns the errors.
func run(f func(i int) error) []error {
	errs := make([]error, goroutines)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Go(func() {
			<-start // line up, to maximise overlap
			errs[i] = f(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func testConcurrentCreateSameName(t *testing.T, s store.Store) {
	users := make([]store.User, goroutines)
	for i := range users {
		users[i] = newUser("alice", store.RoleUser)
		users[i].PasswordHash = hash(fmt.Sprint(i)) // tells the winner apart
	}
	errs := run(func(i int) error { return s.CreateUser(t.Context(), users[i]) })
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("CreateUser #%d and #%d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("CreateUser #%d = %v, want nil or ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no CreateUser succeeded")
	}
	checkUser(t, mustGet(t, s, "alice"), users[winner])
}

func testConcurrentCreateDistinct(t *testing.T, s store.Store) {
	users := make([]store.User, goroutines)
	for i := range users {
		role := store.RoleUser
		if i%2 == 0 {
			role = store.RoleAdmin
		}
		users[i] = newUser(fmt.Sprintf("user%02d", i), role)
	}
	errs := run(func(i int) error { return s.CreateUser(t.Context(), users[i]) })
	for i, err := range errs {
		if err != nil {
			t.Errorf("CreateUser(%s): %v", users[i].Username, err)
		}
	}
	got, err := s.ListUsers(t.Context())
	if err != nil {
		t.Fatalf("ListUsers: %v", err)
	}
	if len(got) != len(users) {
		t.Fatalf("ListUsers = %d users, want %d", len(got), len(users))
	}
	for i := range users { // user00..user31 sort as created
		checkUser(t, got[i], users[i])
	}
	checkCount(t, s, goroutines/2)
}

// secondNow is the current time in whole seconds. Tests of times that a
// backend may keep at any precision from the second down use it, so that
// every backend must return them exactly.
func secondNow() time.Time { return time.Unix(time.Now().Unix(), 0) }

func mustLatest(t *testing.T, s store.Store) int64 {
	t.Helper()
	seq, err := s.LatestChange(t.Context())
	if err != nil {
		t.Fatalf("LatestChange: %v", err)
	}
	return seq
}

func checkLatest(t *testing.T, s store.Store, want int64) {
	t.Helper()
	if got := mustLatest(t, s); got != want {
		t.Errorf("LatestChange = %d, want %d", got, want)
	}
}

func mustChanges(t *testing.T, s store.Store, after int64, limit int) []store.Change {
	t.Helper()
	cs, err := s.Changes(t.Context(), after, limit)
	if err != nil {
		t.Fatalf("Changes(%d, %d): %v", after, limit, err)
	}
	return cs
}

// checkChange compares a change with want, but for Seq.
func checkChange(t *testing.T, got, want store.Change) {
	t.Helper()
	if got.Kind != want.Kind || got.Username != want.Username || got.Reason != want.Reason ||
		got.JTI != want.JTI || !got.Expires.Equal(want.Expires) || got.Expires.IsZero() != want.Expires.IsZero() {
		t.Errorf("change #%d = %+v, want %+v", got.Seq, got, want)
	}
}

func userChange(name, reason string) store.Change {
	return store.Change{Kind: store.ChangeUser, Username: name, Reason: reason}
}

// refreshHash is a fake token hash, as long as a SHA-256 one, holding a NUL
// and non-UTF-8 bytes.
func refreshHash(seed string) []byte {
	h := sha256.Sum256([]byte(seed))
	h[0], h[1] = 0x00, 0xff
	return h[:]
}

func refreshToken(seed, family, username string, expires time.Time) store.RefreshToken {
	return store.RefreshToken{Hash: refreshHash(seed), Family: family, Username: username, Generation: 1, ExpiresAt: expires}
}

func mustCreateRefresh(t *testing.T, s store.Store, tokens ...store.RefreshToken) {
	t.Helper()
	for _, rt := range tokens {
		if err := s.CreateRefreshToken(t.Context(), rt); err != nil {
			t.Fatalf("CreateRefreshToken(%s): %v", rt.Family, err)
		}
	}
}

func mustUse(t *testing.T, s store.Store, hash []byte, now time.Time) store.RefreshToken {
	t.Helper()
	rt, err := s.UseRefreshToken(t.Context(), hash, now)
	if err != nil {
		t.Fatalf("UseRefreshToken(%x): %v", hash[:4], err)
	}
	return rt
}

func checkUseFails(t *testing.T, s store.Store, hash []byte, now time.Time, want error) {
	t.Helper()
	if _, err := s.UseRefreshToken(t.Context(), hash, now); !errors.Is(err, want) {
		t.Errorf("UseRefreshToken(%x) = %v, want %v", hash[:4], err, want)
	}
}

// checkToken compares a token with the one stored as want, but for UsedAt.
// Its times must be whole seconds.
func checkToken(t *testing.T, got, want store.RefreshToken) {
	t.Helper()
	if !bytes.Equal(got.Hash, want.Hash) || got.Family != want.Family || got.Username != want.Username ||
		got.Generation != want.Generation || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("token = %+v, want %+v", got, want)
	}
}

// The new user fields round-trip through every read.
func testUserFields(t *testing.T, s store.Store) {
	ctx := t.Context()
	full := newUser("full", store.RoleAdmin)
	full.LastLogin = time.Date(2025, 1, 2, 3, 4, 5, 600000000, time.FixedZone("Y", -7*3600))
	full.Disabled = true
	full.Generation = 42
	plain := newUser("plain", store.RoleUser) // never logged in, generation 0 -> 1
	mustCreate(t, s, full, plain)

	check := func(what string, want ...store.User) {
		t.Helper()
		for _, w := range want {
			checkUser(t, mustGet(t, s, w.Username), w)
		}
		for name, list := range map[string]func() ([]store.User, error){
			"ListUsers":      func() ([]store.User, error) { return s.ListUsers(ctx) },
			"ListUsersAfter": func() ([]store.User, error) { return s.ListUsersAfter(ctx, "", 10) },
		} {
			users, err := list()
			if err != nil {
				t.Fatalf("%s: %s: %v", what, name, err)
			}
			if len(users) != len(want) {
				t.Fatalf("%s: %s = %d users, want %d", what, name, len(users), len(want))
			}
			for i := range want {
				checkUser(t, users[i], want[i])
			}
		}
	}
	check("created", full, plain)

	at := time.Date(2025, 6, 7, 8, 9, 10, 110000000, time.UTC)
	for _, at := range []time.Time{at, at.Add(time.Hour)} { // a later login overwrites
		if err := s.SetLastLogin(ctx, "plain", at); err != nil {
			t.Fatalf("SetLastLogin: %v", err)
		}
		plain.LastLogin = at
		check("SetLastLogin", full, plain)
	}
	checkLatest(t, s, 0) // neither CreateUser nor SetLastLogin records a change
}

// ListUsersAfter pages through the users in byte order.
func testListUsersAfter(t *testing.T, s store.Store) {
	ctx := t.Context()
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprintf("user%02d", i))
	}
	names = append(names, "a-c", "ab", "a.d", "a_b", "0day") // see testListUsers
	users := make(map[string]store.User)
	for i := range names {
		n := names[i*7%len(names)] // out of order
		u := newUser(n, store.RoleUser)
		u.Disabled = i%4 == 0
		u.Generation = int64(i + 1)
		users[n] = u
		mustCreate(t, s, u)
	}
	want := slices.Clone(names)
	sort.Strings(want)

	var got []string
	after := ""
	for _, size := range []int{10, 10, 5, 0} {
		page, err := s.ListUsersAfter(ctx, after, 10)
		if err != nil {
			t.Fatalf("ListUsersAfter(%q, 10): %v", after, err)
		}
		if len(page) != size {
			t.Fatalf("ListUsersAfter(%q, 10) = %d users, want %d", after, len(page), size)
		}
		for _, u := range page {
			checkUser(t, u, users[u.Username])
			got = append(got, u.Username)
		}
		if size > 0 {
			after = page[len(page)-1].Username
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages = %q, want %q", got, want)
	}

	// after need not be a user's name.
	page, err := s.ListUsersAfter(ctx, "user05x", 3)
	if err != nil {
		t.Fatal(err)
	}
	var pageNames []string
	for _, u := range page {
		pageNames = append(pageNames, u.Username)
	}
	if w := []string{"user06", "user07", "user08"}; !slices.Equal(pageNames, w) {
		t.Errorf("ListUsersAfter(user05x, 3) = %q, want %q", pageNames, w)
	}
}

func testGeneration(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob := newUser("alice", store.RoleUser), newUser("bob", store.RoleUser)
	carol := newUser("carol", store.RoleUser)
	carol.Generation = 7 // a non-zero generation is kept
	mustCreate(t, s, alice, bob, carol)
	if g := mustGet(t, s, "alice").Generation; g != 1 {
		t.Fatalf("new user's Generation = %d, want 1", g)
	}

	gen, err := s.ChangePassword(ctx, "alice", hash("new"))
	if err != nil || gen != 2 {
		t.Fatalf("ChangePassword = %d, %v; want 2", gen, err)
	}
	alice.PasswordHash, alice.Generation = hash("new"), 2
	checkUser(t, mustGet(t, s, "alice"), alice)

	gen, err = s.BumpGeneration(ctx, "alice", "logout_all")
	if err != nil || gen != 3 {
		t.Fatalf("BumpGeneration = %d, %v; want 3", gen, err)
	}
	alice.Generation = 3
	checkUser(t, mustGet(t, s, "alice"), alice)

	// A re-hash changes nothing else.
	if err := s.SetPasswordHash(ctx, "alice", hash("rehash")); err != nil {
		t.Fatal(err)
	}
	alice.PasswordHash = hash("rehash")
	checkUser(t, mustGet(t, s, "alice"), alice)

	gen, err = s.BumpGeneration(ctx, "carol", "")
	if err != nil || gen != 8 {
		t.Fatalf("BumpGeneration(carol) = %d, %v; want 8", gen, err)
	}
	carol.Generation = 8
	checkUser(t, mustGet(t, s, "carol"), carol)
	checkUser(t, mustGet(t, s, "bob"), bob)
}

func testSetDisabled(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob := newUser("alice", store.RoleUser), newUser("bob", store.RoleUser)
	mustCreate(t, s, alice, bob)
	for _, disabled := range []bool{true, true, false, false, true} { // repeats are fine
		if err := s.SetDisabled(ctx, "alice", disabled); err != nil {
			t.Fatalf("SetDisabled(%v): %v", disabled, err)
		}
		alice.Disabled = disabled
		checkUser(t, mustGet(t, s, "alice"), alice)
		checkUser(t, mustGet(t, s, "bob"), bob)
	}
}

// demotions are the calls that take an enabled admin away.
func demotions(s store.Store, ctx context.Context, name string) map[string]func() error {
	return map[string]func() error{
		"SetRole(user)":     func() error { return s.SetRole(ctx, name, store.RoleUser) },
		"SetDisabled(true)": func() error { return s.SetDisabled(ctx, name, true) },
		"DeleteUser":        func() error { return s.DeleteUser(ctx, name) },
	}
}

func checkLastAdmin(t *testing.T, s store.Store, name string) {
	t.Helper()
	for call, f := range demotions(s, t.Context(), name) {
		if err := f(); !errors.Is(err, store.ErrLastAdmin) {
			t.Errorf("%s of %s = %v, want ErrLastAdmin", call, name, err)
		}
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func testLastAdmin(t *testing.T, s store.Store) {
	ctx := t.Context()
	// A missing user is not found, even where there is no admin at all.
	for call, f := range demotions(s, ctx, "nobody") {
		if err := f(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s of nobody = %v, want ErrNotFound", call, err)
		}
	}

	root := newUser("root", store.RoleAdmin)
	retired := newUser("retired", store.RoleAdmin)
	retired.Disabled = true // a disabled admin does not count
	alice := newUser("alice", store.RoleUser)
	mustCreate(t, s, root, retired, alice)

	checkLastAdmin(t, s, "root")
	checkUser(t, mustGet(t, s, "root"), root)
	checkLatest(t, s, 0) // refused calls record no change

	// What takes no enabled admin away is never refused.
	must(t, "SetRole(root, admin)", s.SetRole(ctx, "root", store.RoleAdmin))
	must(t, "SetDisabled(root, false)", s.SetDisabled(ctx, "root", false))
	must(t, "SetDisabled(alice, true)", s.SetDisabled(ctx, "alice", true))
	must(t, "SetDisabled(alice, false)", s.SetDisabled(ctx, "alice", false))
	must(t, "SetRole(retired, user)", s.SetRole(ctx, "retired", store.RoleUser))
	must(t, "SetRole(retired, admin)", s.SetRole(ctx, "retired", store.RoleAdmin))
	must(t, "SetDisabled(retired, true)", s.SetDisabled(ctx, "retired", true))
	checkUser(t, mustGet(t, s, "retired"), retired)

	// A second enabled admin lifts the rule, and then it guards them.
	must(t, "SetRole(alice, admin)", s.SetRole(ctx, "alice", store.RoleAdmin))
	must(t, "SetRole(root, user)", s.SetRole(ctx, "root", store.RoleUser))
	checkLastAdmin(t, s, "alice")
	must(t, "SetDisabled(retired, false)", s.SetDisabled(ctx, "retired", false))
	must(t, "SetDisabled(alice, true)", s.SetDisabled(ctx, "alice", true))
	checkLastAdmin(t, s, "retired")
	// alice is a disabled admin now: deleting her takes no enabled admin.
	must(t, "DeleteUser(alice)", s.DeleteUser(ctx, "alice"))
	must(t, "DeleteUser(root)", s.DeleteUser(ctx, "root"))

	users, err := s.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 {
		t.Fatalf("ListUsers = %+v, want only retired", users)
	}
	retired.Disabled = false
	checkUser(t, users[0], retired)
}

// Two admins demoted at once from two goroutines: the store must not let
// both go. Each round pairs two of the three demotions.
func testConcurrentLastAdmin(t *testing.T, s store.Store) {
	ctx := t.Context()
	names := [2]string{"a1", "a2"}
	mustCreate(t, s, newUser(names[0], store.RoleAdmin), newUser(names[1], store.RoleAdmin))
	calls := []string{"SetRole(user)", "SetDisabled(true)", "DeleteUser"}
	for round := range 30 {
		pair := [2]string{calls[round%3], calls[round/3%3]}
		var errs [2]error
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 2 {
			f := demotions(s, ctx, names[i])[pair[i]]
			wg.Go(func() { <-start; errs[i] = f() })
		}
		close(start)
		wg.Wait()

		ok := 0
		for i, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, store.ErrLastAdmin):
				t.Fatalf("round %d: %s of %s = %v, want nil or ErrLastAdmin", round, pair[i], names[i], err)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %s and %s: %d succeeded, want 1", round, pair[0], pair[1], ok)
		}
		users, err := s.ListUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		enabled := 0
		for _, u := range users {
			if u.Role == store.RoleAdmin && !u.Disabled {
				enabled++
			}
		}
		if enabled != 1 {
			t.Fatalf("round %d: %d enabled admins left, want 1: %+v", round, enabled, users)
		}

		// Restore both admins; promoting and enabling are never refused.
		for _, n := range names {
			if _, err := s.GetUser(ctx, n); errors.Is(err, store.ErrNotFound) {
				mustCreate(t, s, newUser(n, store.RoleAdmin))
				continue
			}
			must(t, "SetRole(admin)", s.SetRole(ctx, n, store.RoleAdmin))
			must(t, "SetDisabled(false)", s.SetDisabled(ctx, n, false))
		}
	}
}

// Each call that changes a user or revokes a token records one change, in
// order; nothing else does.
func testChangeFeed(t *testing.T, s store.Store) {
	ctx := t.Context()
	checkLatest(t, s, 0)
	if cs := mustChanges(t, s, 0, 100); len(cs) != 0 {
		t.Fatalf("Changes of a new store = %+v, want none", cs)
	}

	mustCreate(t, s, newUser("root", store.RoleAdmin), newUser("alice", store.RoleUser), newUser("bob", store.RoleUser))
	now := time.Now()
	must(t, "SetPasswordHash", s.SetPasswordHash(ctx, "alice", hash("rehash")))
	must(t, "SetLastLogin", s.SetLastLogin(ctx, "alice", now))
	mustCreateRefresh(t, s, refreshToken("t", "fam", "alice", now.Add(time.Hour)))
	mustUse(t, s, refreshHash("t"), now)
	must(t, "RevokeRefreshFamily", s.RevokeRefreshFamily(ctx, "fam"))
	if _, err := s.AddLoginFailure(ctx, store.FailureKey{Username: "alice"}, now, time.Hour); err != nil {
		t.Fatal(err)
	}
	// Refused calls record nothing either.
	if err := s.SetRole(ctx, "root", store.RoleUser); !errors.Is(err, store.ErrLastAdmin) {
		t.Fatalf("SetRole(last admin) = %v, want ErrLastAdmin", err)
	}
	if _, err := s.BumpGeneration(ctx, "nobody", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("BumpGeneration(nobody) = %v, want ErrNotFound", err)
	}
	if err := s.RetireSigningKey(ctx, "no-such-kid", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RetireSigningKey(no-such-kid) = %v, want ErrNotFound", err)
	}
	if _, err := s.SigningKeys(ctx); err != nil {
		t.Fatal(err)
	}
	checkLatest(t, s, 0)

	exp := secondNow().Add(time.Hour)
	steps := []struct {
		name string
		call func() error
		want store.Change
	}{
		{"SetRole", func() error { return s.SetRole(ctx, "alice", store.RoleAdmin) }, userChange("alice", "role_changed")},
		{"SetDisabled(true)", func() error { return s.SetDisabled(ctx, "alice", true) }, userChange("alice", "disabled")},
		{"SetDisabled(false)", func() error { return s.SetDisabled(ctx, "alice", false) }, userChange("alice", "enabled")},
		{"ChangePassword", func() error { _, err := s.ChangePassword(ctx, "bob", hash("new")); return err }, userChange("bob", "password_changed")},
		{"BumpGeneration", func() error { _, err := s.BumpGeneration(ctx, "bob", "logout_all"); return err }, userChange("bob", "logout_all")},
		{"BumpGeneration(no reason)", func() error { _, err := s.BumpGeneration(ctx, "alice", ""); return err }, userChange("alice", "")},
		{"RevokeToken", func() error { return s.RevokeToken(ctx, "jti-1", exp) }, store.Change{Kind: store.ChangeRevoke, JTI: "jti-1", Expires: exp}},
		{"DeleteUser", func() error { return s.DeleteUser(ctx, "bob") }, userChange("bob", "deleted")},
		{"SetRole(demote)", func() error { return s.SetRole(ctx, "alice", store.RoleUser) }, userChange("alice", "role_changed")},
		{"AddSigningKey", func() error { return s.AddSigningKey(ctx, hmacKey("kid-1", now)) }, store.Change{Kind: store.ChangeKeys}},
		{"RetireSigningKey", func() error { return s.RetireSigningKey(ctx, "kid-1", now) }, store.Change{Kind: store.ChangeKeys}},
	}
	var prev int64
	for _, step := range steps {
		must(t, step.name, step.call())
		cs := mustChanges(t, s, prev, 100)
		if len(cs) != 1 {
			t.Fatalf("after %s: Changes(%d) = %+v, want one change", step.name, prev, cs)
		}
		checkChange(t, cs[0], step.want)
		if cs[0].Seq <= prev {
			t.Errorf("after %s: Seq %d, not after %d", step.name, cs[0].Seq, prev)
		}
		prev = cs[0].Seq
		checkLatest(t, s, prev)
	}

	all := mustChanges(t, s, 0, 100)
	if len(all) != len(steps) {
		t.Fatalf("Changes(0) = %d changes, want %d", len(all), len(steps))
	}
	for i, c := range all {
		checkChange(t, c, steps[i].want)
		if i > 0 && c.Seq <= all[i-1].Seq {
			t.Errorf("Changes(0): Seq %d after %d", c.Seq, all[i-1].Seq)
		}
	}
}

func testChangesPaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreate(t, s, newUser("alice", store.RoleUser))
	const n = 10
	for i := range n {
		if _, err := s.BumpGeneration(ctx, "alice", fmt.Sprint("r", i)); err != nil {
			t.Fatal(err)
		}
	}
	all := mustChanges(t, s, 0, 100)
	if len(all) != n {
		t.Fatalf("Changes(0, 100) = %d changes, want %d", len(all), n)
	}
	for i, c := range all {
		checkChange(t, c, userChange("alice", fmt.Sprint("r", i)))
	}

	var got []store.Change
	after := int64(0)
	for _, size := range []int{3, 3, 3, 1, 0} {
		page := mustChanges(t, s, after, 3)
		if len(page) != size {
			t.Fatalf("Changes(%d, 3) = %d changes, want %d", after, len(page), size)
		}
		got = append(got, page...)
		if size > 0 {
			after = page[len(page)-1].Seq
		}
	}
	if !slices.Equal(got, all) {
		t.Errorf("pages = %+v, want %+v", got, all)
	}
	if page := mustChanges(t, s, all[4].Seq, 2); !slices.Equal(page, all[5:7]) {
		t.Errorf("Changes(#4, 2) = %+v, want %+v", page, all[5:7])
	}
	checkLatest(t, s, all[n-1].Seq)
	if page := mustChanges(t, s, all[n-1].Seq+1000, 10); len(page) != 0 {
		t.Errorf("Changes(past the end) = %+v, want none", page)
	}
}

// PurgeChanges goes by the time the store wrote the change, on the clock
// of the process (a backend that stamps changes with another clock must
// keep it within a few milliseconds of it).
func testPurgeChanges(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreate(t, s, newUser("alice", store.RoleUser))
	bump := func(reason string) {
		t.Helper()
		if _, err := s.BumpGeneration(ctx, "alice", reason); err != nil {
			t.Fatal(err)
		}
	}
	purge := func(before time.Time, want int) {
		t.Helper()
		n, err := s.PurgeChanges(ctx, before)
		if err != nil {
			t.Fatalf("PurgeChanges: %v", err)
		}
		if n != want {
			t.Errorf("PurgeChanges = %d, want %d", n, want)
		}
	}

	bump("old")
	time.Sleep(20 * time.Millisecond)
	mid := time.Now()
	time.Sleep(20 * time.Millisecond)
	bump("new")
	all := mustChanges(t, s, 0, 10)
	if len(all) != 2 {
		t.Fatalf("Changes = %+v, want 2", all)
	}

	purge(mid.Add(-time.Hour), 0)
	purge(mid, 1)
	purge(mid, 0)
	if cs := mustChanges(t, s, 0, 10); !slices.Equal(cs, all[1:]) {
		t.Errorf("Changes after purge = %+v, want %+v", cs, all[1:])
	}
	checkLatest(t, s, all[1].Seq)

	// Purging everything does not restart the sequence.
	purge(time.Now().Add(time.Hour), 1)
	if cs := mustChanges(t, s, 0, 10); len(cs) != 0 {
		t.Errorf("Changes after purging all = %+v, want none", cs)
	}
	bump("after")
	cs := mustChanges(t, s, 0, 10)
	if len(cs) != 1 || cs[0].Seq <= all[1].Seq {
		t.Fatalf("Changes after a purge = %+v, want one with Seq > %d", cs, all[1].Seq)
	}
	checkChange(t, cs[0], userChange("alice", "after"))
	checkLatest(t, s, cs[0].Seq)
}

func testRefreshToken(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := secondNow()
	rt := refreshToken("t1", "fam-1", "alice", now.Add(time.Hour))
	rt.Generation = 3
	mustCreateRefresh(t, s, rt)
	dup := refreshToken("t1", "fam-2", "bob", now.Add(2*time.Hour))
	if err := s.CreateRefreshToken(ctx, dup); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CreateRefreshToken(same hash) = %v, want ErrConflict", err)
	}
	checkUseFails(t, s, refreshHash("unknown"), now, store.ErrNotFound)

	// The returned token is the stored one (not dup); its UsedAt may be
	// zero or the time of this use.
	got := mustUse(t, s, rt.Hash, now)
	checkToken(t, got, rt)
	if !got.UsedAt.IsZero() && !got.UsedAt.Equal(now) {
		t.Errorf("UsedAt = %v, want zero or %v", got.UsedAt, now)
	}

	// Every later use is a reuse, and reports the first use.
	for i := range 2 {
		got, err := s.UseRefreshToken(ctx, rt.Hash, now.Add(time.Duration(i+1)*time.Minute))
		if !errors.Is(err, store.ErrReused) {
			t.Fatalf("UseRefreshToken again = %v, want ErrReused", err)
		}
		checkToken(t, got, rt)
		if !got.UsedAt.Equal(now) {
			t.Errorf("reused token's UsedAt = %v, want %v", got.UsedAt, now)
		}
	}

	// Stored as used: reused at once, even before its first use's time.
	used := refreshToken("t2", "fam-1", "alice", now.Add(time.Hour))
	used.UsedAt = now.Add(-time.Minute)
	mustCreateRefresh(t, s, used)
	got, err := s.UseRefreshToken(ctx, used.Hash, now)
	if !errors.Is(err, store.ErrReused) || !got.UsedAt.Equal(used.UsedAt) {
		t.Errorf("UseRefreshToken(stored used) = %+v, %v; want ErrReused used at %v", got, err, used.UsedAt)
	}
}

func testRefreshTokenExpiry(t *testing.T, s store.Store) {
	now := secondNow()
	atNow := refreshToken("at-now", "f1", "alice", now)
	gone := refreshToken("gone", "f2", "alice", now.Add(-time.Second))
	usedGone := refreshToken("used-gone", "f3", "alice", now.Add(-time.Hour))
	mustCreateRefresh(t, s, atNow, gone, usedGone)

	mustUse(t, s, atNow.Hash, now) // "expired before now" is strict
	checkUseFails(t, s, gone.Hash, now, store.ErrNotFound)
	mustUse(t, s, gone.Hash, now.Add(-2*time.Second)) // still stored: it was good then
	mustUse(t, s, usedGone.Hash, now.Add(-2*time.Hour))
	// Expired comes before reused.
	checkUseFails(t, s, usedGone.Hash, now, store.ErrNotFound)
}

func testRevokeRefreshFamily(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := secondNow()
	a1 := refreshToken("a1", "fam-a", "alice", now.Add(time.Hour))
	a2 := refreshToken("a2", "fam-a", "alice", now.Add(time.Hour))
	b1 := refreshToken("b1", "fam-b", "alice", now.Add(time.Hour))
	mustCreateRefresh(t, s, a1, a2, b1)
	mustUse(t, s, a1.Hash, now)

	for range 2 { // twice is fine
		must(t, "RevokeRefreshFamily", s.RevokeRefreshFamily(ctx, "fam-a"))
	}
	must(t, "RevokeRefreshFamily(none)", s.RevokeRefreshFamily(ctx, "fam-none"))
	// Gone, used or not: not found rather than reused.
	checkUseFails(t, s, a1.Hash, now, store.ErrNotFound)
	checkUseFails(t, s, a2.Hash, now, store.ErrNotFound)
	checkToken(t, mustUse(t, s, b1.Hash, now), b1)
}

func testPurgeRefreshTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := secondNow()
	tokens := []struct {
		rt      store.RefreshToken
		expired bool
	}{
		{refreshToken("long-gone", "f", "alice", now.Add(-24*time.Hour)), true},
		{refreshToken("just-gone", "f", "alice", now.Add(-time.Second)), true},
		{refreshToken("at-now", "f", "alice", now), false}, // "before now" is strict
		{refreshToken("live", "f", "alice", now.Add(time.Hour)), false},
	}
	for _, tok := range tokens {
		mustCreateRefresh(t, s, tok.rt)
	}
	for i, want := range []int{2, 0} { // the second purge finds nothing
		n, err := s.PurgeRefreshTokens(ctx, now)
		if err != nil {
			t.Fatalf("PurgeRefreshTokens #%d: %v", i+1, err)
		}
		if n != want {
			t.Errorf("PurgeRefreshTokens #%d = %d, want %d", i+1, n, want)
		}
	}
	for _, tok := range tokens {
		// Used at a time when each was good: only the purged ones fail.
		at := now.Add(-48 * time.Hour)
		if tok.expired {
			checkUseFails(t, s, tok.rt.Hash, at, store.ErrNotFound)
		} else {
			mustUse(t, s, tok.rt.Hash, at)
		}
	}
}

func testDeleteUserRefreshTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := secondNow()
	mustCreate(t, s, newUser("root", store.RoleAdmin), newUser("alice", store.RoleUser), newUser("bob", store.RoleUser))
	a1 := refreshToken("a1", "fam-a1", "alice", now.Add(time.Hour))
	a2 := refreshToken("a2", "fam-a2", "alice", now.Add(time.Hour))
	b1 := refreshToken("b1", "fam-b1", "bob", now.Add(time.Hour))
	r1 := refreshToken("r1", "fam-r1", "root", now.Add(time.Hour))
	mustCreateRefresh(t, s, a1, a2, b1, r1)

	must(t, "DeleteUser", s.DeleteUser(ctx, "alice"))
	mustCreate(t, s, newUser("alice", store.RoleUser)) // a new alice gets none of them
	checkUseFails(t, s, a1.Hash, now, store.ErrNotFound)
	checkUseFails(t, s, a2.Hash, now, store.ErrNotFound)
	mustUse(t, s, b1.Hash, now)

	// A refused delete keeps them.
	if err := s.DeleteUser(ctx, "root"); !errors.Is(err, store.ErrLastAdmin) {
		t.Fatalf("DeleteUser(last admin) = %v, want ErrLastAdmin", err)
	}
	mustUse(t, s, r1.Hash, now)
}

// Of many concurrent uses of one token, exactly one succeeds.
func testConcurrentUseRefreshToken(t *testing.T, s store.Store) {
	now := secondNow()
	rt := refreshToken("race", "fam", "alice", now.Add(time.Hour))
	mustCreateRefresh(t, s, rt)
	got := make([]store.RefreshToken, goroutines)
	errs := run(func(i int) error {
		var err error
		got[i], err = s.UseRefreshToken(t.Context(), rt.Hash, now)
		return err
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("UseRefreshToken #%d and #%d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrReused):
			t.Errorf("UseRefreshToken #%d = %v, want nil or ErrReused", i, err)
		default:
			checkToken(t, got[i], rt)
			if !got[i].UsedAt.Equal(now) {
				t.Errorf("UseRefreshToken #%d: reused token's UsedAt = %v, want %v", i, got[i].UsedAt, now)
			}
		}
	}
	if winner < 0 {
		t.Fatal("no UseRefreshToken succeeded")
	}
	checkToken(t, got[winner], rt)
}

// keyBytes is fake key material, n bytes holding a NUL and non-UTF-8
// bytes, so a backend that stores it as text fails.
func keyBytes(seed string, n int) []byte {
	b := make([]byte, 0, n)
	for len(b) < n {
		h := sha256.Sum256([]byte(fmt.Sprint(seed, len(b))))
		b = append(b, h[:]...)
	}
	b = b[:n]
	b[0], b[1], b[2] = 0x00, 0xff, '\n'
	return b
}

// hmacKey and edKey are signing keys as the store sees them. Times are
// sub-millisecond and non-UTC on purpose: only the instant, to the
// millisecond, must round-trip.
func hmacKey(kid string, created time.Time) store.SigningKey {
	return store.SigningKey{KID: kid, Alg: store.AlgHS256, Private: keyBytes(kid, 32), CreatedAt: created}
}

func edKey(kid string, created time.Time) store.SigningKey {
	return store.SigningKey{KID: kid, Alg: store.AlgEdDSA, Private: keyBytes(kid, 64), Public: keyBytes(kid+"/pub", 32), CreatedAt: created}
}

func mustAddKey(t *testing.T, s store.Store, keys ...store.SigningKey) {
	t.Helper()
	for _, k := range keys {
		if err := s.AddSigningKey(t.Context(), k); err != nil {
			t.Fatalf("AddSigningKey(%s): %v", k.KID, err)
		}
	}
}

func mustKeys(t *testing.T, s store.Store) []store.SigningKey {
	t.Helper()
	keys, err := s.SigningKeys(t.Context())
	if err != nil {
		t.Fatalf("SigningKeys: %v", err)
	}
	return keys
}

// checkKIDs checks the kids SigningKeys returns, in order.
func checkKIDs(t *testing.T, s store.Store, want ...string) {
	t.Helper()
	var got []string
	for _, k := range mustKeys(t, s) {
		got = append(got, k.KID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("SigningKeys = %q, want %q", got, want)
	}
}

// checkKey compares a key with the one stored as want.
func checkKey(t *testing.T, got, want store.SigningKey) {
	t.Helper()
	if got.KID != want.KID || got.Alg != want.Alg || !bytes.Equal(got.Private, want.Private) ||
		!bytes.Equal(got.Public, want.Public) || (got.Public == nil) != (len(want.Public) == 0) {
		t.Errorf("key %s = %+v, want %+v", want.KID, got, want)
	}
	if w := want.CreatedAt.Truncate(time.Millisecond); !got.CreatedAt.Equal(w) {
		t.Errorf("key %s: CreatedAt = %v, want %v", want.KID, got.CreatedAt, w)
	}
}

func testSigningKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	if keys := mustKeys(t, s); len(keys) != 0 {
		t.Fatalf("SigningKeys of a new store = %+v, want none", keys)
	}
	base := time.Date(2025, 6, 1, 10, 0, 0, 123456789, time.FixedZone("Z", -3*3600))
	k1 := hmacKey("kid-1", base)
	k2 := edKey("kid-2", base.Add(time.Minute))
	k0 := hmacKey("kid-0", base.Add(-time.Hour)) // added last, oldest
	mustAddKey(t, s, k1, k2, k0)
	keys := mustKeys(t, s)
	if len(keys) != 3 {
		t.Fatalf("SigningKeys = %d keys, want 3", len(keys))
	}
	for i, want := range []store.SigningKey{k0, k1, k2} {
		checkKey(t, keys[i], want)
	}

	// A kid is unique: a second key under it is refused and changes
	// nothing.
	latest := mustLatest(t, s)
	dup := edKey("kid-1", base.Add(time.Hour))
	if err := s.AddSigningKey(ctx, dup); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("AddSigningKey(duplicate kid) = %v, want ErrConflict", err)
	}
	checkLatest(t, s, latest)
	keys = mustKeys(t, s)
	if len(keys) != 3 {
		t.Fatalf("SigningKeys after a refused add = %d keys, want 3", len(keys))
	}
	checkKey(t, keys[1], k1)
}

// Keys created in the same millisecond come in kid order, so every
// instance agrees on which one is the newest.
func testSigningKeysOrder(t *testing.T, s store.Store) {
	at := time.UnixMilli(time.Now().UnixMilli())
	mustAddKey(t, s, hmacKey("kid-c", at), hmacKey("kid-a", at), edKey("kid-b", at), hmacKey("kid-0", at.Add(time.Millisecond)))
	checkKIDs(t, s, "kid-a", "kid-b", "kid-c", "kid-0")
}

func testSigningKeyInvalid(t *testing.T, s store.Store) {
	now := time.Now()
	noPublic := edKey("kid-nopub", now)
	noPublic.Public = nil
	withPublic := hmacKey("kid-pub", now)
	withPublic.Public = keyBytes("p", 32)
	noPrivate := hmacKey("kid-nopriv", now)
	noPrivate.Private = nil
	for name, k := range map[string]store.SigningKey{
		"alg RS256":              {KID: "kid-rs", Alg: "RS256", Private: keyBytes("x", 32), CreatedAt: now},
		"alg hs256":              {KID: "kid-lower", Alg: "hs256", Private: keyBytes("x", 32), CreatedAt: now},
		"no alg":                 {KID: "kid-none", Private: keyBytes("x", 32), CreatedAt: now},
		"no kid":                 hmacKey("", now),
		"EdDSA without a public": noPublic,
		"HS256 with a public":    withPublic,
		"no private key":         noPrivate,
	} {
		if err := s.AddSigningKey(t.Context(), k); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("AddSigningKey(%s) = %v, want a non-conflict error", name, err)
		}
	}
	checkKIDs(t, s)
	checkLatest(t, s, 0)
}

func testRetireSigningKey(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Now()
	mustAddKey(t, s, hmacKey("kid-1", now.Add(-2*time.Hour)), edKey("kid-2", now.Add(-time.Hour)), hmacKey("kid-3", now))
	must(t, "RetireSigningKey(kid-2)", s.RetireSigningKey(ctx, "kid-2", now))
	checkKIDs(t, s, "kid-1", "kid-3")

	latest := mustLatest(t, s)
	for _, kid := range []string{"kid-2", "kid-9", "", "KID-1"} {
		if err := s.RetireSigningKey(ctx, kid, now); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RetireSigningKey(%q) = %v, want ErrNotFound", kid, err)
		}
	}
	checkLatest(t, s, latest) // refused calls record nothing
	// A retired kid stays taken: its tokens must never verify again.
	if err := s.AddSigningKey(ctx, edKey("kid-2", now)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("AddSigningKey(retired kid) = %v, want ErrConflict", err)
	}
	// Every key can go, the last one too: which keys must stay is the
	// caller's policy.
	must(t, "RetireSigningKey(kid-3)", s.RetireSigningKey(ctx, "kid-3", now))
	must(t, "RetireSigningKey(kid-1)", s.RetireSigningKey(ctx, "kid-1", now))
	checkKIDs(t, s)
	mustAddKey(t, s, hmacKey("kid-4", now))
	checkKIDs(t, s, "kid-4")
}

// Of many concurrent retirements of one key, exactly one succeeds and
// records a change.
func testConcurrentRetireSigningKey(t *testing.T, s store.Store) {
	mustAddKey(t, s, hmacKey("kid-1", time.Now()), hmacKey("kid-2", time.Now()))
	before := mustLatest(t, s)
	ok := 0
	for i, err := range run(func(int) error { return s.RetireSigningKey(t.Context(), "kid-1", time.Now()) }) {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("RetireSigningKey #%d = %v, want nil or ErrNotFound", i, err)
		}
	}
	if ok != 1 {
		t.Errorf("%d RetireSigningKey calls succeeded, want 1", ok)
	}
	checkKIDs(t, s, "kid-2")
	if cs := mustChanges(t, s, before, 100); len(cs) != 1 {
		t.Errorf("changes after the retirements = %+v, want one", cs)
	}
}

// --- the methods that copy a store into another (authlined migrate) ---

func testCountUsers(t *testing.T, s store.Store) {
	count := func(want int) {
		t.Helper()
		n, err := s.CountUsers(t.Context())
		if err != nil || n != want {
			t.Fatalf("CountUsers = %d, %v; want %d", n, err, want)
		}
	}
	count(0)
	root := newUser("root", store.RoleAdmin)
	root.Disabled = true // disabled users count
	mustCreate(t, s, newUser("alice", store.RoleUser), newUser("bob", store.RoleUser), root)
	count(3)
	must(t, "DeleteUser(bob)", s.DeleteUser(t.Context(), "bob"))
	count(2)
}

func testReplaceUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := newUser("alice", store.RoleUser)
	alice.Generation = 5
	root := newUser("root", store.RoleAdmin)
	mustCreate(t, s, alice, root)
	mustCreateRefresh(t, s, refreshToken("a1", "fam-a", "alice", time.Now().Add(time.Hour)))
	latest := mustLatest(t, s)

	// Every field is replaced, times to the second.
	repl := store.User{
		Username:     "alice",
		PasswordHash: hash("replaced"),
		Role:         store.RoleAdmin,
		CreatedAt:    time.Date(2020, 2, 3, 4, 5, 6, 700000000, time.FixedZone("W", -2*3600)),
		LastLogin:    time.Date(2024, 12, 24, 18, 0, 1, 999999999, time.UTC),
		Disabled:     true,
		Generation:   1 << 52,
	}
	must(t, "ReplaceUser", s.ReplaceUser(ctx, repl))
	checkUser(t, mustGet(t, s, "alice"), repl)
	checkUser(t, mustGet(t, s, "root"), root)
	cs := mustChanges(t, s, latest, 10)
	if len(cs) != 1 {
		t.Fatalf("changes after ReplaceUser = %+v, want one", cs)
	}
	checkChange(t, cs[0], userChange("alice", "replaced"))
	// The user's refresh tokens are the caller's business.
	mustUse(t, s, refreshHash("a1"), time.Now())

	// Back to never logged in, enabled, and generation 0, stored as 1.
	again := newUser("alice", store.RoleUser)
	must(t, "ReplaceUser(again)", s.ReplaceUser(ctx, again))
	checkUser(t, mustGet(t, s, "alice"), again)

	// A missing user, and an invalid role, change nothing.
	latest = mustLatest(t, s)
	if err := s.ReplaceUser(ctx, newUser("ghost", store.RoleUser)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ReplaceUser(ghost) = %v, want ErrNotFound", err)
	}
	if _, err := s.GetUser(ctx, "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ReplaceUser(ghost) created the user: GetUser = %v", err)
	}
	bad := newUser("alice", "superuser")
	if err := s.ReplaceUser(ctx, bad); err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		t.Errorf("ReplaceUser(role superuser) = %v, want a validation error", err)
	}
	checkUser(t, mustGet(t, s, "alice"), again)
	checkLatest(t, s, latest)
}

// ReplaceUser keeps the last-admin rule of SetRole and SetDisabled.
func testReplaceUserLastAdmin(t *testing.T, s store.Store) {
	ctx := t.Context()
	root := newUser("root", store.RoleAdmin)
	off := newUser("off", store.RoleAdmin)
	off.Disabled = true
	mustCreate(t, s, root, off, newUser("alice", store.RoleUser))
	latest := mustLatest(t, s)

	demoted := root
	demoted.Role = store.RoleUser
	disabled := root
	disabled.Disabled = true
	for name, u := range map[string]store.User{"demoted": demoted, "disabled": disabled} {
		if err := s.ReplaceUser(ctx, u); !errors.Is(err, store.ErrLastAdmin) {
			t.Errorf("ReplaceUser(last admin %s) = %v, want ErrLastAdmin", name, err)
		}
	}
	checkUser(t, mustGet(t, s, "root"), root)
	checkLatest(t, s, latest)

	// Other changes to the last admin are fine.
	rehashed := root
	rehashed.PasswordHash = hash("rehashed")
	rehashed.Generation = 9
	must(t, "ReplaceUser(last admin, new hash)", s.ReplaceUser(ctx, rehashed))
	checkUser(t, mustGet(t, s, "root"), rehashed)

	// With another enabled admin, the first may go.
	enabled := off
	enabled.Disabled = false
	must(t, "ReplaceUser(enable off)", s.ReplaceUser(ctx, enabled))
	must(t, "ReplaceUser(demote root)", s.ReplaceUser(ctx, demoted))
	checkUser(t, mustGet(t, s, "root"), demoted)
	checkCount(t, s, 1)
}

func mustRevocations(t *testing.T, s store.Store, now time.Time) []store.Revocation {
	t.Helper()
	rs, err := s.ListRevocations(t.Context(), now)
	if err != nil {
		t.Fatalf("ListRevocations: %v", err)
	}
	return rs
}

func testListRevocations(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := secondNow().Add(500 * time.Millisecond)
	if rs := mustRevocations(t, s, now); len(rs) != 0 {
		t.Fatalf("ListRevocations of a new store = %+v, want none", rs)
	}
	for _, r := range []struct {
		jti string
		exp time.Time
	}{
		{"jti-b", now.Add(time.Hour)},
		{"jti-past", now.Add(-time.Second)},
		{"jti-A", now.Add(2 * time.Hour)},
		{"jti-now", now.Add(-400 * time.Millisecond)}, // within now's second: kept
		{"jti-a", now.Add(time.Minute)},
		{"jti-a", now.Add(-time.Hour)}, // again, earlier: the later expiry stays
	} {
		must(t, "RevokeToken("+r.jti+")", s.RevokeToken(ctx, r.jti, r.exp))
	}
	want := []store.Revocation{
		{JTI: "jti-A", ExpiresAt: now.Add(2 * time.Hour)},
		{JTI: "jti-a", ExpiresAt: now.Add(time.Minute)},
		{JTI: "jti-b", ExpiresAt: now.Add(time.Hour)},
		{JTI: "jti-now", ExpiresAt: now.Add(-400 * time.Millisecond)},
	}
	check := func(got []store.Revocation) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("ListRevocations = %+v, want %+v", got, want)
		}
		for i, w := range want {
			if got[i].JTI != w.JTI || !got[i].ExpiresAt.Equal(w.ExpiresAt.Truncate(time.Second)) {
				t.Errorf("ListRevocations[%d] = %+v, want %+v (to the second)", i, got[i], w)
			}
		}
	}
	check(mustRevocations(t, s, now))
	// What it lists is what PurgeRevocations keeps.
	if n, err := s.PurgeRevocations(ctx, now); err != nil || n != 1 {
		t.Fatalf("PurgeRevocations = %d, %v; want 1", n, err)
	}
	check(mustRevocations(t, s, now))
	if rs := mustRevocations(t, s, now.Add(3*time.Hour)); len(rs) != 0 {
		t.Errorf("ListRevocations(later than every expiry) = %+v, want none", rs)
	}
}

func mustAllKeys(t *testing.T, s store.Store) []store.StoredSigningKey {
	t.Helper()
	keys, err := s.AllSigningKeys(t.Context())
	if err != nil {
		t.Fatalf("AllSigningKeys: %v", err)
	}
	return keys
}

// checkStoredKeys compares AllSigningKeys with want, in order.
func checkStoredKeys(t *testing.T, s store.Store, want ...store.StoredSigningKey) {
	t.Helper()
	got := mustAllKeys(t, s)
	if len(got) != len(want) {
		t.Fatalf("AllSigningKeys = %d keys, want %d", len(got), len(want))
	}
	for i, w := range want {
		checkKey(t, got[i].SigningKey, w.SigningKey)
		if r := w.RetiredAt.Truncate(time.Millisecond); !got[i].RetiredAt.Equal(r) || got[i].RetiredAt.IsZero() != r.IsZero() {
			t.Errorf("key %s: RetiredAt = %v, want %v", w.KID, got[i].RetiredAt, r)
		}
	}
}

func testAllSigningKeys(t *testing.T, s store.Store) {
	if keys := mustAllKeys(t, s); len(keys) != 0 {
		t.Fatalf("AllSigningKeys of a new store = %+v, want none", keys)
	}
	base := time.Date(2025, 6, 1, 10, 0, 0, 123456789, time.FixedZone("Z", -3*3600))
	k1, k2, k3 := hmacKey("kid-1", base), edKey("kid-2", base.Add(time.Minute)), hmacKey("kid-3", base.Add(time.Hour))
	k0 := edKey("kid-0", base.Add(-time.Hour))
	mustAddKey(t, s, k1, k2, k3, k0)
	retired := base.Add(2*time.Hour + 456789*time.Nanosecond)
	must(t, "RetireSigningKey(kid-2)", s.RetireSigningKey(t.Context(), "kid-2", retired))
	must(t, "RetireSigningKey(kid-0)", s.RetireSigningKey(t.Context(), "kid-0", retired.Add(time.Second)))
	checkStoredKeys(t, s,
		store.StoredSigningKey{SigningKey: k0, RetiredAt: retired.Add(time.Second)},
		store.StoredSigningKey{SigningKey: k1},
		store.StoredSigningKey{SigningKey: k2, RetiredAt: retired},
		store.StoredSigningKey{SigningKey: k3})
	checkKIDs(t, s, "kid-1", "kid-3")
}

func testImportSigningKey(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := time.Date(2025, 7, 1, 9, 0, 0, 987654321, time.FixedZone("V", 3600))
	retired := base.Add(30*time.Minute + 123456*time.Nanosecond)
	active, old := edKey("kid-active", base), hmacKey("kid-old", base.Add(-time.Hour))
	added := hmacKey("kid-added", base.Add(time.Minute))
	mustAddKey(t, s, added)
	latest := mustLatest(t, s)
	must(t, "ImportSigningKey(active)", s.ImportSigningKey(ctx, active, time.Time{}))
	must(t, "ImportSigningKey(retired)", s.ImportSigningKey(ctx, old, retired))
	cs := mustChanges(t, s, latest, 10)
	if len(cs) != 2 || cs[0].Kind != store.ChangeKeys || cs[1].Kind != store.ChangeKeys {
		t.Fatalf("changes after two imports = %+v, want two ChangeKeys", cs)
	}
	checkStoredKeys(t, s,
		store.StoredSigningKey{SigningKey: old, RetiredAt: retired},
		store.StoredSigningKey{SigningKey: active},
		store.StoredSigningKey{SigningKey: added})
	checkKIDs(t, s, "kid-active", "kid-added") // a retired key never signs nor verifies

	// A kid is taken, retired or not, by an import or an add.
	latest = mustLatest(t, s)
	for _, kid := range []string{"kid-active", "kid-old", "kid-added"} {
		if err := s.ImportSigningKey(ctx, hmacKey(kid, base), time.Time{}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("ImportSigningKey(existing %s) = %v, want ErrConflict", kid, err)
		}
	}
	if err := s.AddSigningKey(ctx, hmacKey("kid-old", base)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("AddSigningKey(imported retired kid) = %v, want ErrConflict", err)
	}
	// Imports are checked like adds.
	noPublic := edKey("kid-nopub", base)
	noPublic.Public = nil
	for name, k := range map[string]store.SigningKey{
		"no kid":                 hmacKey("", base),
		"alg RS256":              {KID: "kid-rs", Alg: "RS256", Private: keyBytes("x", 32), CreatedAt: base},
		"EdDSA without a public": noPublic,
	} {
		if err := s.ImportSigningKey(ctx, k, retired); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("ImportSigningKey(%s) = %v, want a non-conflict error", name, err)
		}
	}
	checkLatest(t, s, latest)

	// An imported retired key is retired for good; an active one can be
	// retired as any other.
	if err := s.RetireSigningKey(ctx, "kid-old", time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RetireSigningKey(imported retired key) = %v, want ErrNotFound", err)
	}
	must(t, "RetireSigningKey(kid-active)", s.RetireSigningKey(ctx, "kid-active", retired))
	checkKIDs(t, s, "kid-added")
}

func mustRefreshAfter(t *testing.T, s store.Store, after []byte, limit int, now time.Time) []store.RefreshToken {
	t.Helper()
	rts, err := s.ListRefreshTokensAfter(t.Context(), after, limit, now)
	if err != nil {
		t.Fatalf("ListRefreshTokensAfter(%x, %d): %v", after, limit, err)
	}
	return rts
}

func testListRefreshTokensAfter(t *testing.T, s store.Store) {
	now := time.Now().Truncate(time.Millisecond)
	if rts := mustRefreshAfter(t, s, nil, 10, now); len(rts) != 0 {
		t.Fatalf("ListRefreshTokensAfter of a new store = %+v, want none", rts)
	}
	want := map[string]store.RefreshToken{} // by hash
	for i := range 11 {
		rt := refreshToken(fmt.Sprint("list", i), fmt.Sprint("fam-", i%3), fmt.Sprint("user", i%4), now.Add(time.Duration(i+1)*time.Hour))
		rt.Generation = int64(i) << 40
		mustCreateRefresh(t, s, rt)
		want[string(rt.Hash)] = rt
	}
	// Used tokens are listed, with the time of their use.
	used := mustUse(t, s, refreshHash("list4"), now.Add(1500*time.Microsecond))
	want[string(used.Hash)] = used
	// Expired ones are not: the same as PurgeRefreshTokens deletes.
	expired := refreshToken("gone", "fam-gone", "user0", now.Add(-time.Millisecond))
	atNow := refreshToken("at-now", "fam-now", "user0", now) // good at its ExpiresAt
	mustCreateRefresh(t, s, expired, atNow)
	want[string(atNow.Hash)] = atNow
	// A token whose hash is a prefix of another's sorts before it, as
	// bytes do.
	short := refreshToken("short", "fam-s", "user1", now.Add(time.Hour))
	short.Hash = refreshHash("list0")[:8]
	mustCreateRefresh(t, s, short)
	want[string(short.Hash)] = short

	wantHashes := slices.Sorted(func(yield func(string) bool) {
		for h := range want {
			if !yield(h) {
				return
			}
		}
	})
	var got []string
	var after []byte
	for {
		page := mustRefreshAfter(t, s, after, 4, now)
		if len(page) > 4 {
			t.Fatalf("ListRefreshTokensAfter(limit 4) = %d tokens", len(page))
		}
		for _, rt := range page {
			w, ok := want[string(rt.Hash)]
			if !ok {
				t.Fatalf("ListRefreshTokensAfter listed %x (expired or unknown)", rt.Hash)
			}
			checkToken(t, rt, w)
			if !rt.UsedAt.Equal(w.UsedAt) || rt.UsedAt.IsZero() != w.UsedAt.IsZero() {
				t.Errorf("token %x: UsedAt = %v, want %v", rt.Hash[:4], rt.UsedAt, w.UsedAt)
			}
			got = append(got, string(rt.Hash))
		}
		if len(page) < 4 {
			break
		}
		after = page[len(page)-1].Hash
	}
	if !slices.Equal(got, wantHashes) {
		t.Errorf("pages list %d tokens in this order:\n%x\nwant %d:\n%x", len(got), got, len(wantHashes), wantHashes)
	}
	if rts := mustRefreshAfter(t, s, []byte{}, 100, now); len(rts) != len(want) {
		t.Errorf("ListRefreshTokensAfter(empty, 100) = %d tokens, want %d", len(rts), len(want))
	}
	if rts := mustRefreshAfter(t, s, nil, 0, now); len(rts) != 0 {
		t.Errorf("ListRefreshTokensAfter(limit 0) = %d tokens, want none", len(rts))
	}
	// Later, only the longer-lived ones are left.
	if rts := mustRefreshAfter(t, s, nil, 100, now.Add(10*time.Hour)); len(rts) != 2 {
		t.Errorf("ListRefreshTokensAfter(in 10 hours) = %d tokens, want 2", len(rts))
	}
}

// migrationCalls calls each of the migration methods of s with ctx.
func migrationCalls(s store.Store, ctx context.Context) map[string]func() error {
	return map[string]func() error{
		"CountUsers":  func() error { _, err := s.CountUsers(ctx); return err },
		"ReplaceUser": func() error { u := newUser("alice", store.RoleAdmin); return s.ReplaceUser(ctx, u) },
		"ListRevocations": func() error {
			_, err := s.ListRevocations(ctx, time.Now())
			return err
		},
		"AllSigningKeys": func() error { _, err := s.AllSigningKeys(ctx); return err },
		"ImportSigningKey": func() error {
			return s.ImportSigningKey(ctx, hmacKey("kid-imported", time.Now()), time.Time{})
		},
		"ListRefreshTokensAfter": func() error {
			_, err := s.ListRefreshTokensAfter(ctx, nil, 10, time.Now())
			return err
		},
	}
}

// The migration methods fail as the others do with an expired context
// (changing nothing) and after Close.
func testMigrationCallsUnavailable(t *testing.T, s store.Store) {
	seed(t, s)
	latest := mustLatest(t, s)
	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	for name, call := range migrationCalls(s, ctx) {
		if err := call(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with expired context = %v, want ErrUnavailable", name, err)
		}
	}
	checkUser(t, mustGet(t, s, "alice"), newUser("alice", store.RoleUser))
	checkKIDs(t, s, "kid-seed")
	checkLatest(t, s, latest)

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for name, call := range migrationCalls(s, t.Context()) {
		if err := call(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s after Close = %v, want ErrUnavailable", name, err)
		}
	}
}
