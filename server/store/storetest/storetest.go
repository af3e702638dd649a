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
		{"RevokeToken", testRevokeToken},
		{"RevokeTokenKeepsLaterExpiry", testRevokeTokenKeepsLaterExpiry},
		{"PurgeRevocations", testPurgeRevocations},
		{"LoginFailures", testLoginFailures},
		{"LoginFailuresWindow", testLoginFailuresWindow},
		{"ConcurrentLoginFailures", testConcurrentLoginFailures},
		{"ExpiredContext", testExpiredContext},
		{"Closed", testClosed},
		{"ConcurrentCreateSameName", testConcurrentCreateSameName},
		{"ConcurrentCreateDistinct", testConcurrentCreateDistinct},
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
		{"SetPasswordHash", func() error { return s.SetPasswordHash(ctx, "nobody", hash("x")) }},
		{"DeleteUser", func() error { return s.DeleteUser(ctx, "nobody") }},
	} {
		if err := tc.call(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s(nobody) = %v, want ErrNotFound", tc.name, err)
		}
	}
	if _, err := s.GetUser(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetRole/SetPasswordHash created the missing user: GetUser = %v", err)
	}
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
	mustCreate(t, s, alice, bob)

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
		"CreateUser":       func() error { return s.CreateUser(ctx, newUser("carol", store.RoleUser)) },
		"GetUser":          func() error { _, err := s.GetUser(ctx, "alice"); return err },
		"ListUsers":        func() error { _, err := s.ListUsers(ctx); return err },
		"SetRole":          func() error { return s.SetRole(ctx, "alice", store.RoleAdmin) },
		"SetPasswordHash":  func() error { return s.SetPasswordHash(ctx, "alice", hash("x")) },
		"DeleteUser":       func() error { return s.DeleteUser(ctx, "alice") },
		"CountAdmins":      func() error { _, err := s.CountAdmins(ctx); return err },
		"RevokeToken":      func() error { return s.RevokeToken(ctx, "jti-2", time.Now().Add(time.Hour)) },
		"IsRevoked":        func() error { _, err := s.IsRevoked(ctx, "jti-1"); return err },
		"PurgeRevocations": func() error { _, err := s.PurgeRevocations(ctx, time.Now()); return err },
		"AddLoginFailure": func() error {
			_, err := s.AddLoginFailure(ctx, store.FailureKey{Username: "alice"}, time.Now(), time.Minute)
			return err
		},
		"LoginFailures":      func() error { _, err := s.LoginFailures(ctx, store.FailureKey{Username: "alice"}); return err },
		"ResetLoginFailures": func() error { return s.ResetLoginFailures(ctx, store.FailureKey{Username: "alice"}) },
		"ClearLoginFailures": func() error { _, err := s.ClearLoginFailures(ctx, "alice"); return err },
		"PurgeLoginFailures": func() error { _, err := s.PurgeLoginFailures(ctx, time.Now()); return err },
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

func seed(t *testing.T, s store.Store) {
	t.Helper()
	mustCreate(t, s, newUser("alice", store.RoleUser))
	if err := s.RevokeToken(t.Context(), "jti-1", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

// A request whose deadline has passed gets ErrUnavailable (a 503), and
// changes nothing.
func testExpiredContext(t *testing.T, s store.Store) {
	seed(t, s)
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
