package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/authline/authline/server/store"
	"github.com/authline/authline/server/store/postgres/pgtest"
)

// wakeBound is how soon after a commit a waiter must wake.
const wakeBound = time.Second

// listening makes s listen for change notices: the first WaitForChange
// starts listening and returns at once.
func listening(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := s.WaitForChange(ctx); err != nil {
		t.Fatalf("first WaitForChange: %v", err)
	}
}

// waitAsync runs WaitForChange in a goroutine, ended with the test's
// context (or the Store's Close) at the latest.
func waitAsync(t *testing.T, s *Store, ctx context.Context) <-chan error {
	t.Helper()
	ch := make(chan error, 1)
	go func() { ch <- s.WaitForChange(ctx) }()
	return ch
}

// waitErr returns the result of a waiter started with waitAsync, failing
// the test if it does not come within bound.
func waitErr(t *testing.T, ch <-chan error, bound time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(bound):
		t.Fatalf("%s: WaitForChange did not return within %v", what, bound)
		return nil
	}
}

// notWoken checks that the waiter stays asleep for a while.
func notWoken(t *testing.T, ch <-chan error, d time.Duration, what string) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("%s: WaitForChange returned %v, want it still waiting", what, err)
	case <-time.After(d):
	}
}

func revokeOne(t *testing.T, s *Store, jti string) time.Time {
	t.Helper()
	if err := s.RevokeToken(t.Context(), jti, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	return time.Now()
}

// channelOf reads the change channel's name the way the store does.
func channelOf(t *testing.T, dsn string) string {
	t.Helper()
	var ch string
	if err := pgtest.Connect(t, dsn).QueryRow(t.Context(), `SELECT `+channelSQL).Scan(&ch); err != nil {
		t.Fatal(err)
	}
	return ch
}

// A change committed by another Store on the schema wakes a waiter within
// a second, for each change, whatever kind it is.
func TestWaitForChangeWakes(t *testing.T) {
	schema, dsn := pgtest.NewSchema(t)
	waiter, writer := openTest(t, dsn), openTest(t, dsn)
	ctx := t.Context()
	if got, want := channelOf(t, dsn), "authline_changes_"+schema; got != want {
		t.Errorf("channel = %q, want %q", got, want)
	}
	if err := writer.CreateUser(ctx, store.User{Username: "alice", PasswordHash: []byte("h"), Role: store.RoleUser}); err != nil {
		t.Fatal(err)
	}
	listening(t, waiter)

	changes := []struct {
		name string
		do   func() error
	}{
		{"RevokeToken", func() error { return writer.RevokeToken(ctx, "jti-1", time.Now().Add(time.Hour)) }},
		{"BumpGeneration", func() error { _, err := writer.BumpGeneration(ctx, "alice", "test"); return err }},
		{"SetRole", func() error { return writer.SetRole(ctx, "alice", store.RoleAdmin) }},
		{"AddSigningKey", func() error {
			return writer.AddSigningKey(ctx, store.SigningKey{KID: "k1", Alg: store.AlgHS256, Private: []byte("secret"), CreatedAt: time.Now()})
		}},
	}
	for _, c := range changes {
		ch := waitAsync(t, waiter, ctx)
		start := time.Now()
		if err := c.do(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := waitErr(t, ch, wakeBound, c.name); err != nil {
			t.Fatalf("%s: WaitForChange = %v", c.name, err)
		}
		t.Logf("%s: committed and woken in %v", c.name, time.Since(start))
	}

	// A notice that comes while nobody waits is kept for the next call.
	revokeOne(t, writer, "jti-2")
	if err := waitErr(t, waitAsync(t, waiter, ctx), wakeBound, "change made before the call"); err != nil {
		t.Fatal(err)
	}

	// The writer's own changes notify too (its own follower counts on it).
	listening(t, writer)
	ch := waitAsync(t, writer, ctx)
	revokeOne(t, waiter, "jti-3")
	if err := waitErr(t, ch, wakeBound, "change by the waiter's peer"); err != nil {
		t.Fatal(err)
	}
}

// Stores in different schemas of one database have channels of their own:
// a change in one does not wake the other's waiters.
func TestWaitForChangeOtherSchema(t *testing.T) {
	_, dsnA := pgtest.NewSchema(t)
	_, dsnB := pgtest.NewSchema(t)
	a, b := openTest(t, dsnA), openTest(t, dsnB)
	ctx := t.Context()
	if chA, chB := channelOf(t, dsnA), channelOf(t, dsnB); chA == chB {
		t.Fatalf("schemas share the channel %q", chA)
	}
	listening(t, a)
	ch := waitAsync(t, a, ctx)
	revokeOne(t, b, "jti-b")
	notWoken(t, ch, 300*time.Millisecond, "a change in another schema")
	revokeOne(t, a, "jti-a")
	if err := waitErr(t, ch, wakeBound, "a change in the waiter's schema"); err != nil {
		t.Fatal(err)
	}
}

// Schema names of any case and punctuation, and those too long for a
// channel name (63 bytes), get channels of their own that work.
func TestWaitForChangeSchemaNames(t *testing.T) {
	tag := hex.EncodeToString(randBytes(t, 4))
	names := []string{
		"Authline-T_" + tag,
		// The longest names a schema can have (63 bytes).
		strings.Repeat("l", 63-len(tag)) + tag,
		strings.Repeat("m", 63-len(tag)) + tag,
	}
	seen := map[string]string{}
	for _, name := range names {
		dsn := pgtest.Schema(t, name)
		ch := channelOf(t, dsn)
		if len(ch) > 63 || !strings.HasPrefix(ch, "authline_changes_") {
			t.Errorf("schema %q: channel %q", name, ch)
		}
		if other, ok := seen[ch]; ok {
			t.Errorf("schemas %q and %q share the channel %q", name, other, ch)
		}
		seen[ch] = name

		waiter, writer := openTest(t, dsn), openTest(t, dsn)
		listening(t, waiter)
		wait := waitAsync(t, waiter, t.Context())
		revokeOne(t, writer, "jti-1")
		if err := waitErr(t, wait, wakeBound, "schema "+name); err != nil {
			t.Fatalf("schema %q: %v", name, err)
		}
	}
}

// A waiter whose context ends returns promptly; the connection keeps
// listening, so that a change made before the next call is not lost.
func TestWaitForChangeCancel(t *testing.T) {
	_, dsn := pgtest.NewSchema(t)
	waiter, writer := openTest(t, dsn), openTest(t, dsn)
	listening(t, waiter)

	ctx, cancel := context.WithCancel(t.Context())
	ch := waitAsync(t, waiter, ctx)
	notWoken(t, ch, 50*time.Millisecond, "no change")
	cancel()
	start := time.Now()
	err := waitErr(t, ch, time.Second, "cancelled")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitForChange after cancel = %v, want context.Canceled", err)
	}
	t.Logf("returned %v after the cancel", time.Since(start))

	dctx, dcancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer dcancel()
	if err := waiter.WaitForChange(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitForChange past its deadline = %v, want context.DeadlineExceeded", err)
	}
	if err := waiter.WaitForChange(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitForChange with a context done already = %v, want context.DeadlineExceeded", err)
	}

	revokeOne(t, writer, "jti-1")
	if err := waitErr(t, waitAsync(t, waiter, t.Context()), wakeBound, "change made between calls"); err != nil {
		t.Fatalf("WaitForChange after a cancelled one = %v", err)
	}
}

// listenerPIDs returns the server pids of the sessions listening for the
// store in schema (pgtest.Schema sets the application_name to the schema).
func listenerPIDs(t *testing.T, schema string) []int32 {
	t.Helper()
	rows, err := pgtest.Connect(t, pgtest.BaseDSN(t)).Query(t.Context(), `SELECT pid FROM pg_stat_activity
		WHERE application_name = $1 AND query LIKE 'LISTEN %'`, schema)
	if err != nil {
		t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

// When the server ends the listening session, the waiter fails with
// ErrUnavailable; the next call listens on a new connection (and returns
// at once, as notices may have been missed), and notices come again.
func TestWaitForChangeTerminated(t *testing.T) {
	schema, dsn := pgtest.NewSchema(t)
	waiter, writer := openTest(t, dsn), openTest(t, dsn)
	ctx := t.Context()
	listening(t, waiter)
	pids := listenerPIDs(t, schema)
	if len(pids) != 1 {
		t.Fatalf("%d listening sessions, want 1", len(pids))
	}

	ch := waitAsync(t, waiter, ctx)
	admin := pgtest.Connect(t, pgtest.BaseDSN(t))
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend($1)`, pids[0]); err != nil {
		t.Fatal(err)
	}
	err := waitErr(t, ch, 5*time.Second, "session terminated")
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("WaitForChange when its session ended = %v, want ErrUnavailable", err)
	}
	t.Logf("WaitForChange: %v", err)

	listening(t, waiter) // listens again, and returns at once
	if again := listenerPIDs(t, schema); len(again) != 1 || again[0] == pids[0] {
		t.Fatalf("listening sessions after the new call: %v (the ended one was %d)", again, pids[0])
	}
	ch = waitAsync(t, waiter, ctx)
	revokeOne(t, writer, "jti-1")
	if err := waitErr(t, ch, wakeBound, "after listening again"); err != nil {
		t.Fatal(err)
	}
	// The rest of the pool was not disturbed.
	if _, err := waiter.IsRevoked(ctx, "jti-1"); err != nil {
		t.Errorf("IsRevoked: %v", err)
	}
}

// Close ends a waiter at once, gives the listening connection back (the
// pool's Close would wait for it otherwise), and later calls fail with
// ErrUnavailable.
func TestWaitForChangeClose(t *testing.T) {
	_, dsn := pgtest.NewSchema(t)

	// Closed while a call waits.
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	listening(t, s)
	ch := waitAsync(t, s, t.Context())
	notWoken(t, ch, 50*time.Millisecond, "before Close")
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	if err := waitErr(t, ch, time.Second, "Close"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("WaitForChange cut short by Close = %v, want ErrUnavailable", err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := s.WaitForChange(t.Context()); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("WaitForChange after Close = %v, want ErrUnavailable", err)
	}

	// Closed while listening between calls.
	s, err = Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	listening(t, s)
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close of a listening store did not return")
	}
}

// A quiet connection is checked every pingInterval; the checks neither
// wake the waiter nor lose notices.
func TestWaitForChangePing(t *testing.T) {
	schema, dsn := pgtest.NewSchema(t)
	waiter, writer := openTest(t, dsn), openTest(t, dsn)
	old := pingInterval
	pingInterval = 20 * time.Millisecond
	t.Cleanup(func() { pingInterval = old })
	listening(t, waiter)
	ch := waitAsync(t, waiter, t.Context())
	notWoken(t, ch, 200*time.Millisecond, "quiet, checked every 20ms")
	var pinged bool
	err := pgtest.Connect(t, pgtest.BaseDSN(t)).QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
		WHERE application_name = $1 AND query = '-- ping')`, schema).Scan(&pinged)
	if err != nil {
		t.Fatal(err)
	}
	if !pinged {
		t.Error("the listening session was not checked (no ping)")
	}
	revokeOne(t, writer, "jti-1")
	if err := waitErr(t, ch, wakeBound, "after the checks"); err != nil {
		t.Fatal(err)
	}
}

// The listening connection is not one of the pool's: a pool of one
// connection still serves the store's calls while a call waits.
func TestWaitForChangeSmallPool(t *testing.T) {
	_, dsn := pgtest.NewSchema(t)
	s := openTest(t, pgtest.WithParams(t, dsn, map[string]string{"pool_max_conns": "1"}))
	writer := openTest(t, dsn)
	listening(t, s)
	ch := waitAsync(t, s, t.Context())
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := s.RevokeToken(ctx, "jti-1", time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("RevokeToken on a pool of one while listening: %v", err)
	}
	if err := waitErr(t, ch, wakeBound, "own change"); err != nil {
		t.Fatal(err)
	}
	ch = waitAsync(t, s, t.Context())
	revokeOne(t, writer, "jti-2")
	if err := waitErr(t, ch, wakeBound, "other store's change"); err != nil {
		t.Fatal(err)
	}
	if revoked, err := s.IsRevoked(ctx, "jti-2"); err != nil || !revoked {
		t.Errorf("IsRevoked = %v, %v", revoked, err)
	}
	if n := s.pool.Stat().TotalConns(); n > 1 {
		t.Errorf("the pool holds %d connections, want at most 1", n)
	}
}
