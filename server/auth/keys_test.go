package auth

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server/store"
	"github.com/authline/authline/server/store/sqlite"
)

func openTestStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func kids(keys []store.SigningKey) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.KID)
	}
	return out
}

func storeKeys(t *testing.T, st store.Store) []store.SigningKey {
	t.Helper()
	keys, err := st.SigningKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestPrepareSigningKeys(t *testing.T) {
	legacy := testKey(7)
	t.Run("HS256 imports the key file", func(t *testing.T) {
		st := openTestStore(t)
		for range 2 { // the second start changes nothing
			keys, err := PrepareSigningKeys(t.Context(), st, store.AlgHS256, legacy, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 1 || keys[0].KID != KeyID(legacy) || keys[0].Alg != store.AlgHS256 || string(keys[0].Private) != string(legacy) {
				t.Fatalf("keys %+v, want the key file's under kid %s", keys, KeyID(legacy))
			}
		}
		// A token signed with the key file before the upgrade verifies.
		old := newTestTokens(t, legacy, nil)
		signed, _, _ := old.Issue("alice", "user", 1)
		tk := edTestTokens(t, store.AlgHS256, nil, storeKeys(t, st)...)
		if _, err := tk.Parse(signed); err != nil {
			t.Fatalf("pre-upgrade token: %v", err)
		}
	})
	t.Run("EdDSA adds a key beside the key file's", func(t *testing.T) {
		st := openTestStore(t)
		keys, err := PrepareSigningKeys(t.Context(), st, store.AlgEdDSA, legacy, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 2 || keys[0].KID != KeyID(legacy) || keys[1].Alg != store.AlgEdDSA {
			t.Fatalf("keys %+v, want the key file's and an EdDSA key", keys)
		}
		if keys[1].KID != KeyID(keys[1].Public) || len(keys[1].Public) != ed25519.PublicKeySize {
			t.Fatalf("EdDSA key %+v", keys[1])
		}
		again, err := PrepareSigningKeys(t.Context(), st, store.AlgEdDSA, legacy, nil)
		if err != nil || !slices.Equal(kids(again), kids(keys)) {
			t.Fatalf("second start: %v, %v; want the same keys", kids(again), err)
		}
		// Back to HS256: the key file's key signs again, EdDSA verifies.
		hs, err := PrepareSigningKeys(t.Context(), st, store.AlgHS256, legacy, nil)
		if err != nil || !slices.Equal(kids(hs), kids(keys)) {
			t.Fatalf("HS256 start: %v, %v", kids(hs), err)
		}
	})
	t.Run("the key file is ignored once the store has keys", func(t *testing.T) {
		st := openTestStore(t)
		if _, err := PrepareSigningKeys(t.Context(), st, store.AlgHS256, legacy, nil); err != nil {
			t.Fatal(err)
		}
		keys, err := PrepareSigningKeys(t.Context(), st, store.AlgHS256, testKey(8), nil)
		if err != nil || !slices.Equal(kids(keys), []string{KeyID(legacy)}) {
			t.Fatalf("keys %v, %v; want only the first key file's", kids(keys), err)
		}
	})
	t.Run("a retired key file key stays retired", func(t *testing.T) {
		st := openTestStore(t)
		if _, err := PrepareSigningKeys(t.Context(), st, store.AlgHS256, legacy, nil); err != nil {
			t.Fatal(err)
		}
		// Retired behind the back of the policy (the store allows it).
		if err := st.RetireSigningKey(t.Context(), KeyID(legacy), time.Now()); err != nil {
			t.Fatal(err)
		}
		keys, err := PrepareSigningKeys(t.Context(), st, store.AlgHS256, legacy, nil)
		if err != nil || len(keys) != 1 || keys[0].KID == KeyID(legacy) {
			t.Fatalf("keys %v, %v; want one new key", kids(keys), err)
		}
	})
	t.Run("no key file", func(t *testing.T) {
		st := openTestStore(t)
		keys, err := PrepareSigningKeys(t.Context(), st, store.AlgHS256, nil, nil)
		if err != nil || len(keys) != 1 || len(keys[0].Private) != keyBytes {
			t.Fatalf("keys %+v, %v", keys, err)
		}
	})
}

func TestRotateRetireSigningKey(t *testing.T) {
	ctx := t.Context()
	st := openTestStore(t)
	keys, err := PrepareSigningKeys(ctx, st, store.AlgHS256, testKey(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	first := keys[0]

	// A rotation on a clock an hour behind still makes the newest key.
	k, err := RotateSigningKey(ctx, st, store.AlgHS256, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !k.CreatedAt.After(first.CreatedAt) {
		t.Fatalf("rotated key created %v, not after %v", k.CreatedAt, first.CreatedAt)
	}
	if got := kids(storeKeys(t, st)); !slices.Equal(got, []string{first.KID, k.KID}) {
		t.Fatalf("keys %v", got)
	}
	tk := edTestTokens(t, store.AlgHS256, nil, storeKeys(t, st)...)
	if tk.KeyID() != k.KID {
		t.Fatalf("current %s, want the rotated key %s", tk.KeyID(), k.KID)
	}

	ed, err := RotateSigningKey(ctx, st, store.AlgEdDSA, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Retiring: an unknown kid, the last key of the signing alg refused;
	// other algs' last keys may go.
	if err := RetireSigningKey(ctx, st, "nope", store.AlgHS256, time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("retire unknown: %v", err)
	}
	if err := RetireSigningKey(ctx, st, first.KID, store.AlgHS256, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := RetireSigningKey(ctx, st, first.KID, store.AlgHS256, time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("retire twice: %v", err)
	}
	err = RetireSigningKey(ctx, st, k.KID, store.AlgHS256, time.Now())
	if !errors.Is(err, ErrLastSigningKey) {
		t.Fatalf("retire the last HS256 key with HS256 configured: %v", err)
	}
	if err := RetireSigningKey(ctx, st, ed.KID, store.AlgEdDSA, time.Now()); !errors.Is(err, ErrLastSigningKey) {
		t.Fatalf("retire the last EdDSA key with EdDSA configured: %v", err)
	}
	if err := RetireSigningKey(ctx, st, ed.KID, store.AlgHS256, time.Now()); err != nil {
		t.Fatalf("retire the last EdDSA key with HS256 configured: %v", err)
	}
	if got := kids(storeKeys(t, st)); !slices.Equal(got, []string{k.KID}) {
		t.Fatalf("keys %v, want %s", got, k.KID)
	}
}

func TestJWKS(t *testing.T) {
	keys := []store.SigningKey{testHMACKey(1, testNow), testEdKey(2, testNow), testEdKey(3, testNow)}
	d := JWKS(keys)
	if len(d.Keys) != 2 {
		t.Fatalf("JWKS %+v, want the two EdDSA keys", d)
	}
	for i, k := range d.Keys {
		src := keys[i+1]
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || string(x) != string(src.Public) {
			t.Errorf("key %d: x %q does not decode to the public key (%v)", i, k.X, err)
		}
		if k != (protocol.JWK{Kty: "OKP", Crv: "Ed25519", X: k.X, Kid: src.KID, Alg: "EdDSA", Use: "sig"}) {
			t.Errorf("key %d: %+v", i, k)
		}
	}
	if got := string(JWKS(keys[:1]).AppendJSON(nil)); got != `{"keys":[]}` {
		t.Errorf("JWKS of HS256 keys = %s", got)
	}
}

func TestParseAlg(t *testing.T) {
	for in, want := range map[string]string{"HS256": "HS256", "hs256": "HS256", "EdDSA": "EdDSA", "eddsa": "EdDSA", "EDDSA": "EdDSA"} {
		if got, err := ParseAlg(in); err != nil || got != want {
			t.Errorf("ParseAlg(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "RS256", "none", "HS512", "Ed25519"} {
		if _, err := ParseAlg(in); err == nil {
			t.Errorf("ParseAlg(%q) accepted", in)
		}
	}
}

// newKeyedService is a Service whose tokens follow the store.
func newKeyedService(t *testing.T, st store.Store, alg string) *Service {
	t.Helper()
	keys, err := PrepareSigningKeys(t.Context(), st, alg, testKey(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := NewTokensFromKeys(alg, keys, "", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Store: st, Tokens: tk, BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// TestServiceFollowsKeys: the key set follows the store through the
// change feed.
func TestServiceFollowsKeys(t *testing.T) {
	ctx := context.Background()
	st := openTestStore(t)
	svc := newKeyedService(t, st, store.AlgEdDSA)
	first := svc.tokens.KeyID()
	old, _, _ := svc.tokens.Issue("alice", "user", 1)

	// Another process rotates: nothing changes until Sync.
	k, err := RotateSigningKey(ctx, st, store.AlgEdDSA, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if svc.tokens.KeyID() != first {
		t.Fatal("the key changed before Sync")
	}
	if err := svc.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if svc.tokens.KeyID() != k.KID {
		t.Fatalf("after Sync the current key is %s, want %s", svc.tokens.KeyID(), k.KID)
	}
	if _, err := svc.tokens.Parse(old); err != nil {
		t.Fatalf("token of the previous key: %v", err)
	}
	if d := svc.tokens.JWKS(); len(d.Keys) != 2 {
		t.Fatalf("JWKS %+v, want both EdDSA keys", d)
	}

	// Retired: refused after Sync.
	if err := RetireSigningKey(ctx, st, first, store.AlgEdDSA, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := svc.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = svc.tokens.Parse(old)
	wantCode(t, err, protocol.CodeInvalidToken, errUnknownKID)

	// Every EdDSA key retired behind the policy's back: the service makes
	// a new one rather than sign with a retired key.
	if err := st.RetireSigningKey(ctx, k.KID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := svc.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if cur := svc.tokens.KeyID(); cur == k.KID || cur == first {
		t.Fatalf("current key %s is retired", cur)
	}
	if got := storeKeys(t, st); len(got) != 2 || got[1].KID != svc.tokens.KeyID() {
		t.Fatalf("store keys %v, want the key file's and the new one", kids(got))
	}

	// Rotate and retire through the service apply here at once.
	k2, err := svc.RotateKey(ctx)
	if err != nil || svc.tokens.KeyID() != k2.KID {
		t.Fatalf("RotateKey: %v; current %s, want %s", err, svc.tokens.KeyID(), k2.KID)
	}
	tok2, _, _ := svc.tokens.Issue("alice", "user", 1)
	if err := svc.RetireKey(ctx, k2.KID); err != nil {
		t.Fatal(err)
	}
	_, err = svc.tokens.Parse(tok2)
	wantCode(t, err, protocol.CodeInvalidToken, errUnknownKID)
	if err := svc.RetireKey(ctx, svc.tokens.KeyID()); !errors.Is(err, ErrLastSigningKey) {
		t.Fatalf("RetireKey of the last EdDSA key: %v", err)
	}
}

// TestServiceKeysNotFromStore: tokens made with NewTokens keep their key.
func TestServiceKeysNotFromStore(t *testing.T) {
	st := openTestStore(t)
	tk := newTestTokens(t, testKey(5), nil)
	svc, err := New(Config{Store: st, Tokens: tk, BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RotateSigningKey(t.Context(), st, store.AlgHS256, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := svc.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if tk.KeyID() != KeyID(testKey(5)) {
		t.Fatal("the key changed")
	}
	if _, err := svc.RotateKey(t.Context()); err == nil {
		t.Fatal("RotateKey without store keys succeeded")
	}
}
