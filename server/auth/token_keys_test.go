package auth

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server/store"
)

// Tests of key sets: EdDSA tokens, several keys, algorithm confusion and
// replacing the set.

// testEdKey is a fixed Ed25519 key made from seed byte b.
func testEdKey(b byte, created time.Time) store.SigningKey {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	return store.SigningKey{KID: KeyID(pub), Alg: store.AlgEdDSA, Private: priv, Public: pub, CreatedAt: created}
}

func testHMACKey(b byte, created time.Time) store.SigningKey {
	k := testKey(b)
	return store.SigningKey{KID: KeyID(k), Alg: store.AlgHS256, Private: k, CreatedAt: created}
}

// testKeys is a set with an older HS256 key and an EdDSA key.
func testKeys(t testing.TB) []store.SigningKey {
	return []store.SigningKey{testHMACKey(1, testNow.Add(-time.Hour)), testEdKey(2, testNow.Add(-time.Minute))}
}

func edTestTokens(t testing.TB, alg string, now func() time.Time, keys ...store.SigningKey) *Tokens {
	t.Helper()
	if now == nil {
		now = func() time.Time { return testNow }
	}
	tk, err := NewTokensFromKeys(alg, keys, "", testTTL, now)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// craftEd builds a JWS signed with Ed25519 under priv, whatever the
// header says.
func craftEd(t testing.TB, priv ed25519.PrivateKey, header, claims any) string {
	t.Helper()
	input := b64json(t, header) + "." + b64json(t, claims)
	return input + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(input)))
}

func headerOf(t testing.TB, token string) map[string]any {
	t.Helper()
	h, _, _ := segments(token)
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestIssueParseEdDSA(t *testing.T) {
	keys := testKeys(t)
	hs, ed := keys[0], keys[1]
	tk := edTestTokens(t, store.AlgEdDSA, nil, keys...)
	if tk.KeyID() != ed.KID || tk.Alg() != store.AlgEdDSA {
		t.Fatalf("current key %s (%s), want the EdDSA key %s", tk.KeyID(), tk.Alg(), ed.KID)
	}
	signed, issued, err := tk.Issue("alice", "admin", 3)
	if err != nil {
		t.Fatal(err)
	}
	h := headerOf(t, signed)
	if len(h) != 3 || h["alg"] != "EdDSA" || h["typ"] != "JWT" || h["kid"] != ed.KID {
		t.Fatalf("header %v, want alg EdDSA, typ JWT, kid %s", h, ed.KID)
	}
	// An independent check: the signature is Ed25519 over header.payload
	// under the public key.
	hh, pp, ss := segments(signed)
	sig, err := base64.RawURLEncoding.DecodeString(ss)
	if err != nil || !ed25519.Verify(ed.Public, []byte(hh+"."+pp), sig) {
		t.Fatalf("signature does not verify with the public key (%v)", err)
	}
	c, err := tk.Parse(signed)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.Subject != "alice" || c.Role != "admin" || c.Gen != 3 || c.ID != issued.ID || !c.ExpiresAt.Equal(testNow.Add(testTTL)) {
		t.Fatalf("claims %+v, issued %+v", c, issued)
	}

	// The HS256 key, not the signing one, still verifies its tokens.
	hsTok := craft(t, hs.Private, map[string]any{"alg": "HS256", "typ": "JWT", "kid": hs.KID}, goodClaims())
	if _, err := tk.Parse(hsTok); err != nil {
		t.Fatalf("HS256 token of an older key: %v", err)
	}

	// Every check of HS256 tokens applies to EdDSA ones too.
	hdr := map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": ed.KID}
	priv := ed25519.PrivateKey(ed.Private)
	for name, c := range map[string]struct {
		token string
		cause error
	}{
		"tampered payload":  {hh + "." + flip(pp, 10) + "." + ss, nil},
		"tampered sig":      {hh + "." + pp + "." + flip(ss, 3), jwt.ErrTokenSignatureInvalid},
		"no signature":      {hh + "." + pp + ".", jwt.ErrTokenSignatureInvalid},
		"jku":               {craftEd(t, priv, with(hdr, "jku", "https://x.example/"), goodClaims()), errHeaderForbidden},
		"typ jwt":           {craftEd(t, priv, with(hdr, "typ", "jwt"), goodClaims()), errHeaderTyp},
		"wrong iss":         {craftEd(t, priv, hdr, with(goodClaims(), "iss", "x")), errIssuer},
		"long lifetime":     {craftEd(t, priv, hdr, with(goodClaims(), "exp", testNow.Add(2*time.Hour).Unix())), errLifetime},
		"exp as a string":   {craftEd(t, priv, hdr, with(goodClaims(), "exp", "1750001800")), errBadNumericDate},
		"unknown kid":       {craftEd(t, priv, with(hdr, "kid", "nope"), goodClaims()), errUnknownKID},
		"another Ed25519":   {craftEd(t, ed25519.PrivateKey(testEdKey(9, testNow).Private), hdr, goodClaims()), jwt.ErrTokenSignatureInvalid},
		"non-canonical sig": {hh + "." + pp + "." + ss[:len(ss)-1] + string(base64url[strings.IndexByte(base64url, ss[len(ss)-1])^1]), jwt.ErrTokenMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tk.Parse(c.token)
			wantCode(t, err, protocol.CodeInvalidToken, c.cause)
		})
	}

	// Expired: token_expired only when authentic.
	late := edTestTokens(t, store.AlgEdDSA, func() time.Time { return testNow.Add(testTTL) }, keys...)
	_, err = late.Parse(signed)
	wantCode(t, err, protocol.CodeTokenExpired, jwt.ErrTokenExpired)
	_, err = late.Parse(hh + "." + pp + "." + flip(ss, 3))
	wantCode(t, err, protocol.CodeInvalidToken, jwt.ErrTokenSignatureInvalid)
}

// TestAlgorithmConfusion: a key verifies tokens of its own algorithm
// only. The Ed25519 public key is published, so an HS256 token "signed"
// with it as the HMAC secret must fail, as must the reverse.
func TestAlgorithmConfusion(t *testing.T) {
	keys := testKeys(t)
	hs, ed := keys[0], keys[1]
	for _, alg := range []string{store.AlgHS256, store.AlgEdDSA} {
		tk := edTestTokens(t, alg, nil, keys...)
		cl := goodClaims()
		hsUnderEd := map[string]any{"alg": "HS256", "typ": "JWT", "kid": ed.KID}
		edUnderHS := map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": hs.KID}
		x := base64.RawURLEncoding.EncodeToString(ed.Public)
		cases := map[string]string{
			"HS256 under the Ed25519 kid, HMAC with the public key":        craft(t, ed.Public, hsUnderEd, cl),
			"HS256 under the Ed25519 kid, HMAC with the JWK x":             craft(t, []byte(x), hsUnderEd, cl),
			"HS256 under the Ed25519 kid, HMAC with the private key":       craft(t, ed.Private, hsUnderEd, cl),
			"HS256 under the Ed25519 kid, HMAC with the HS256 secret":      craft(t, hs.Private, hsUnderEd, cl),
			"EdDSA under the HS256 kid, signed with the Ed25519 key":       craftEd(t, ed25519.PrivateKey(ed.Private), edUnderHS, cl),
			"EdDSA under the HS256 kid, HMAC with the secret":              craft(t, hs.Private, edUnderHS, cl),
			"EdDSA under the HS256 kid, Ed25519 key from the secret bytes": craftEd(t, ed25519.NewKeyFromSeed(hs.Private), edUnderHS, cl),
		}
		for name, tok := range cases {
			_, err := tk.Parse(tok)
			if err == nil {
				t.Fatalf("%s (signing alg %s): accepted", name, alg)
			}
			wantCode(t, err, protocol.CodeInvalidToken, errAlgMismatch)
		}
		// The same tokens, each under the kid of its own algorithm, pass:
		// what failed above is the pairing only.
		if _, err := tk.Parse(craft(t, hs.Private, with(edUnderHS, "alg", "HS256"), cl)); err != nil {
			t.Fatalf("HS256 token under its own kid: %v", err)
		}
		if _, err := tk.Parse(craftEd(t, ed25519.PrivateKey(ed.Private), with(hsUnderEd, "alg", "EdDSA"), cl)); err != nil {
			t.Fatalf("EdDSA token under its own kid: %v", err)
		}
	}
}

// TestSetKeys: a new set applies at once; a retired key's tokens stop
// verifying; the newest key of the alg signs.
func TestSetKeys(t *testing.T) {
	a := testHMACKey(1, testNow.Add(-2*time.Hour))
	b := testHMACKey(2, testNow.Add(-time.Hour))
	ed := testEdKey(3, testNow) // newest, but another alg
	tk := edTestTokens(t, store.AlgHS256, nil, a)
	tokA, _, _ := tk.Issue("alice", "user", 1)
	if h := headerOf(t, tokA); h["kid"] != a.KID || h["alg"] != "HS256" {
		t.Fatalf("header %v", h)
	}

	// Rotation: b is added and signs; a still verifies.
	if err := tk.SetKeys([]store.SigningKey{a, b, ed}); err != nil {
		t.Fatal(err)
	}
	tokB, _, _ := tk.Issue("alice", "user", 1)
	if kid := headerOf(t, tokB)["kid"]; kid != b.KID || tk.KeyID() != b.KID {
		t.Fatalf("after the rotation new tokens have kid %v (KeyID %s), want %s", kid, tk.KeyID(), b.KID)
	}
	for _, tok := range []string{tokA, tokB} {
		if _, err := tk.Parse(tok); err != nil {
			t.Fatalf("after the rotation: %v", err)
		}
	}
	if jwks := tk.JWKS(); len(jwks.Keys) != 1 || jwks.Keys[0].Kid != ed.KID {
		t.Fatalf("JWKS %+v, want the EdDSA key only", jwks)
	}

	// Retirement: a's tokens are refused at once.
	if err := tk.SetKeys([]store.SigningKey{b, ed}); err != nil {
		t.Fatal(err)
	}
	_, err := tk.Parse(tokA)
	wantCode(t, err, protocol.CodeInvalidToken, errUnknownKID)
	if _, err := tk.Parse(tokB); err != nil {
		t.Fatal(err)
	}

	// Sets that cannot sign, or hold a broken key, are refused and
	// change nothing.
	badPub := testEdKey(4, testNow)
	badPub.Public = testEdKey(5, testNow).Public
	short := testHMACKey(6, testNow)
	short.Private = short.Private[:keyBytes-1]
	for name, keys := range map[string][]store.SigningKey{
		"empty":                  nil,
		"no HS256 key":           {ed},
		"public key of another":  {b, badPub},
		"short secret":           {b, short},
		"two keys with one kid":  {b, b},
		"unknown alg":            {b, {KID: "x", Alg: "RS256", Private: testKey(7)}},
		"no kid":                 {b, {Alg: store.AlgHS256, Private: testKey(7)}},
		"Ed25519 key, short":     {b, {KID: "y", Alg: store.AlgEdDSA, Private: testKey(7), Public: testKey(7)}},
		"Ed25519 key, no public": {b, {KID: "z", Alg: store.AlgEdDSA, Private: testEdKey(8, testNow).Private}},
	} {
		if err := tk.SetKeys(keys); err == nil {
			t.Errorf("SetKeys(%s) accepted", name)
		}
		if tk.KeyID() != b.KID {
			t.Fatalf("SetKeys(%s) changed the current key", name)
		}
	}
	if _, err := tk.Parse(tokB); err != nil {
		t.Fatalf("after refused sets: %v", err)
	}
	if _, err := NewTokensFromKeys("RS256", []store.SigningKey{b}, "", testTTL, nil); err == nil {
		t.Fatal("alg RS256 accepted")
	}

	// The current key is the newest of the alg; equal times go by kid.
	c1, c2 := testHMACKey(10, testNow), testHMACKey(11, testNow)
	want := max(c1.KID, c2.KID)
	for _, keys := range [][]store.SigningKey{{c1, c2, b}, {c2, b, c1}} {
		if err := tk.SetKeys(keys); err != nil {
			t.Fatal(err)
		}
		if tk.KeyID() != want {
			t.Fatalf("current %s, want %s", tk.KeyID(), want)
		}
	}
}

// TestSetKeysCopies: the caller's slices may change after SetKeys.
func TestSetKeysCopies(t *testing.T) {
	ed := testEdKey(3, testNow)
	keys := []store.SigningKey{ed}
	keys[0].Private, keys[0].Public = bytes.Clone(ed.Private), bytes.Clone(ed.Public)
	tk := edTestTokens(t, store.AlgEdDSA, nil, keys...)
	signed, _, _ := tk.Issue("alice", "user", 1)
	clear(keys[0].Private)
	clear(keys[0].Public)
	if _, err := tk.Parse(signed); err != nil {
		t.Fatal(err)
	}
	if signed2, _, err := tk.Issue("alice", "user", 1); err != nil || headerOf(t, signed2)["kid"] != ed.KID {
		t.Fatal(err)
	} else if _, err := tk.Parse(signed2); err != nil {
		t.Fatal(err)
	}
}

// TestSetKeysConcurrent swaps sets while tokens are issued and parsed (run
// with -race).
func TestSetKeysConcurrent(t *testing.T) {
	a, b := testHMACKey(1, testNow.Add(-time.Hour)), testEdKey(2, testNow)
	tk := edTestTokens(t, store.AlgEdDSA, nil, a, b)
	hsTok := craft(t, a.Private, map[string]any{"alg": "HS256", "typ": "JWT", "kid": a.KID}, goodClaims())
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		sets := [][]store.SigningKey{{a, b}, {b}, {a, b, testEdKey(3, testNow.Add(time.Second))}}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := tk.SetKeys(sets[i%len(sets)]); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 4 {
		wg.Go(func() {
			for range 200 {
				signed, _, err := tk.Issue("alice", "user", 1)
				if err != nil {
					t.Error(err)
					return
				}
				tk.Parse(signed) // may fail: its key may be gone by now
				tk.Parse(hsTok)
				tk.JWKS()
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
}

// TestVerifyKeyTypes: the keyfunc hands golang-jwt the key type its
// method expects ([]byte for HS256, ed25519.PublicKey for EdDSA); with a
// mismatch golang-jwt would refuse the token anyway, but lookupKey
// refuses it first (TestAlgorithmConfusion) and must not rely on that.
func TestVerifyKeyTypes(t *testing.T) {
	tk := edTestTokens(t, store.AlgEdDSA, nil, testKeys(t)...)
	for kid, k := range tk.set.Load().byKID {
		switch k.alg {
		case store.AlgHS256:
			if _, ok := k.verify.([]byte); !ok {
				t.Errorf("%s: HS256 verify key is %T", kid, k.verify)
			}
		case store.AlgEdDSA:
			if _, ok := k.verify.(ed25519.PublicKey); !ok {
				t.Errorf("%s: EdDSA verify key is %T", kid, k.verify)
			}
		}
	}
}
