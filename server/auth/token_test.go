package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server/store"
)

// testNow is the fixed clock of the token tests.
var testNow = time.Unix(1_750_000_000, 0)

const testTTL = 30 * time.Minute

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, keyBytes) }

func newTestTokens(t testing.TB, key []byte, now func() time.Time) *Tokens {
	t.Helper()
	if now == nil {
		now = func() time.Time { return testNow }
	}
	tk, err := NewTokens(key, "", testTTL, now)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// b64json is the base64url of v's JSON; a string v is taken as JSON text
// already, so that tests can write malformed JSON.
func b64json(t testing.TB, v any) string {
	t.Helper()
	if s, ok := v.(string); ok {
		return base64.RawURLEncoding.EncodeToString([]byte(s))
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// craft builds a JWS from a header and claims (maps, or JSON text) and
// signs it with HMAC under key, with the hash the header's alg names
// (SHA-256 for anything but HS384 and HS512).
func craft(t testing.TB, key []byte, header, claims any) string {
	t.Helper()
	input := b64json(t, header) + "." + b64json(t, claims)
	return input + "." + hmacSig(key, header, input)
}

func hmacSig(key []byte, header any, input string) string {
	h := sha256.New
	if m, ok := header.(map[string]any); ok {
		switch m["alg"] {
		case "HS384":
			h = sha512.New384
		case "HS512":
			h = sha512.New
		}
	}
	return base64.RawURLEncoding.EncodeToString(mac(h, key, input))
}

func mac(h func() hash.Hash, key []byte, input string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(input))
	return m.Sum(nil)
}

// goodHeader and goodClaims are what Issue would produce at testNow.
func goodHeader(tk *Tokens) map[string]any {
	return map[string]any{"alg": "HS256", "typ": "JWT", "kid": tk.KeyID()}
}

func goodClaims() map[string]any {
	return map[string]any{
		"iss": DefaultIssuer, "sub": "alice", "role": "user", "jti": "AAAAAAAAAAAAAAAAAAAAAA",
		"iat": testNow.Unix(), "exp": testNow.Add(testTTL).Unix(),
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m)+len(kv)/2)
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func without(m map[string]any, keys ...string) map[string]any {
	out := with(m)
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

// flip changes the character at i of a base64url string to another one
// that changes the decoded bytes.
func flip(s string, i int) string {
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'Q'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func segments(tok string) (header, payload, sig string) {
	p := strings.Split(tok, ".")
	return p[0], p[1], p[2]
}

// wantCode checks that err is a *protocol.Error with the code and, if
// cause is not nil, that it wraps cause.
func wantCode(t *testing.T, err error, code protocol.Code, cause error) {
	t.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *protocol.Error", err, err)
	}
	if pe.Code != code {
		t.Fatalf("code %q (%v), want %q", pe.Code, err, code)
	}
	if cause != nil && !errors.Is(err, cause) {
		t.Fatalf("error %v does not wrap %v", err, cause)
	}
}

func TestIssueParse(t *testing.T) {
	tk := newTestTokens(t, testKey(1), nil)
	signed, issued, err := tk.Issue("alice", "admin", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(signed) > 400 {
		t.Errorf("token is %d bytes; expected a few hundred", len(signed))
	}
	h, _, _ := segments(signed)
	hb, _ := base64.RawURLEncoding.DecodeString(h)
	var header map[string]any
	if err := json.Unmarshal(hb, &header); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"alg": "HS256", "typ": "JWT", "kid": KeyID(testKey(1))}
	if len(header) != len(want) {
		t.Errorf("header %v, want %v", header, want)
	}
	for k, v := range want {
		if header[k] != v {
			t.Errorf("header %s = %v, want %v", k, header[k], v)
		}
	}

	c, err := tk.Parse(signed)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.Subject != "alice" || c.Role != "admin" || c.Issuer != DefaultIssuer || c.ID != issued.ID || len(c.ID) != 22 ||
		!c.IssuedAt.Equal(testNow) || !c.ExpiresAt.Equal(testNow.Add(testTTL)) || c.NotBefore != nil {
		t.Fatalf("claims %+v, issued %+v", c, issued)
	}

	other, _, _ := tk.Issue("alice", "admin", 1)
	if _, _, s1 := segments(signed); strings.HasSuffix(other, "."+s1) {
		t.Fatal("two tokens with the same signature: jti is not random")
	}
}

func TestNewTokens(t *testing.T) {
	if _, err := NewTokens(make([]byte, keyBytes-1), "", time.Minute, nil); err == nil {
		t.Error("a 31-byte key was accepted")
	}
	if _, err := NewTokens(testKey(1), "", 0, nil); err == nil {
		t.Error("a zero TTL was accepted")
	}
	tk, err := NewTokens(testKey(1), "", time.Minute, nil)
	if err != nil || tk.issuer != DefaultIssuer || tk.TTL() != time.Minute {
		t.Fatalf("defaults: %v %+v", err, tk)
	}
	// The key is copied: the caller's later writes do not change it.
	key := testKey(2)
	tk = newTestTokens(t, key, nil)
	signed, _, _ := tk.Issue("alice", "user", 1)
	clear(key)
	if _, err := tk.Parse(signed); err != nil {
		t.Fatalf("token refused after the caller cleared its key slice: %v", err)
	}
}

func TestKeyID(t *testing.T) {
	a, b := newTestTokens(t, testKey(1), nil), newTestTokens(t, testKey(1), nil)
	if a.KeyID() != b.KeyID() || a.KeyID() != KeyID(testKey(1)) {
		t.Fatalf("kid differs for the same key: %q %q", a.KeyID(), b.KeyID())
	}
	if len(a.KeyID()) != 16 {
		t.Fatalf("kid %q is not 16 characters", a.KeyID())
	}
	sum := sha256.Sum256(testKey(1))
	if want := base64.RawURLEncoding.EncodeToString(sum[:12]); a.KeyID() != want {
		t.Fatalf("kid %q, want %q", a.KeyID(), want)
	}
	// A restart with the same key accepts the old tokens.
	signed, _, _ := a.Issue("alice", "user", 1)
	if _, err := b.Parse(signed); err != nil {
		t.Fatalf("token of an equal Tokens refused: %v", err)
	}
	// Another key has another kid, and its tokens are refused by kid.
	c := newTestTokens(t, testKey(2), nil)
	if c.KeyID() == a.KeyID() {
		t.Fatal("different keys, same kid")
	}
	_, err := c.Parse(signed)
	wantCode(t, err, protocol.CodeInvalidToken, errUnknownKID)
}

func TestParseRejects(t *testing.T) {
	tk := newTestTokens(t, testKey(1), nil)
	key := testKey(1)
	good, _, err := tk.Issue("alice", "user", 1)
	if err != nil {
		t.Fatal(err)
	}
	gh, gp, gs := segments(good)
	hdr, cl := goodHeader(tk), goodClaims()
	// Sanity: the crafting helpers make tokens Parse accepts.
	if _, err := tk.Parse(craft(t, key, hdr, cl)); err != nil {
		t.Fatalf("crafted good token refused: %v", err)
	}
	// A token whose header names another algorithm but whose signature is
	// HMAC-SHA256 under the key (key confusion).
	hs256sig := func(h map[string]any) string {
		input := b64json(t, h) + "." + b64json(t, cl)
		return input + "." + base64.RawURLEncoding.EncodeToString(mac(sha256.New, key, input))
	}
	lastSig := gs[len(gs)-1]
	// The signature is 32 bytes in 43 characters: the last one carries 4
	// bits and 2 unused ones, which must be zero.
	nonCanonical := gh + "." + gp + "." + gs[:len(gs)-1] + string(base64url[strings.IndexByte(base64url, lastSig)^1])

	cases := []struct {
		name  string
		token string
		cause error // nil: any
	}{
		{"empty", "", nil},
		{"alg none", none(t, with(hdr, "alg", "none"), cl), jwt.ErrTokenSignatureInvalid},
		{"alg None", none(t, with(hdr, "alg", "None"), cl), jwt.ErrTokenUnverifiable},
		{"alg NONE", none(t, with(hdr, "alg", "NONE"), cl), jwt.ErrTokenUnverifiable},
		{"alg none with a signature", hs256sig(with(hdr, "alg", "none")), jwt.ErrTokenSignatureInvalid},
		{"no alg", craft(t, key, without(hdr, "alg"), cl), jwt.ErrTokenUnverifiable},
		{"alg hs256", hs256sig(with(hdr, "alg", "hs256")), jwt.ErrTokenUnverifiable},
		{"alg HS384", craft(t, key, with(hdr, "alg", "HS384"), cl), jwt.ErrTokenSignatureInvalid},
		{"alg HS512", craft(t, key, with(hdr, "alg", "HS512"), cl), jwt.ErrTokenSignatureInvalid},
		{"alg RS256, HMAC signature", hs256sig(with(hdr, "alg", "RS256")), jwt.ErrTokenSignatureInvalid},
		// EdDSA is allowed, but not under an HS256 key's kid.
		{"alg EdDSA, HMAC signature", hs256sig(with(hdr, "alg", "EdDSA")), errAlgMismatch},
		{"alg ES256, HMAC signature", hs256sig(with(hdr, "alg", "ES256")), jwt.ErrTokenSignatureInvalid},
		{"alg PS256, HMAC signature", hs256sig(with(hdr, "alg", "PS256")), jwt.ErrTokenSignatureInvalid},
		{"no kid", craft(t, key, without(hdr, "kid"), cl), errUnknownKID},
		{"unknown kid", craft(t, key, with(hdr, "kid", KeyID(testKey(2))), cl), errUnknownKID},
		{"empty kid", craft(t, key, with(hdr, "kid", ""), cl), errUnknownKID},
		{"kid a number", craft(t, key, with(hdr, "kid", 1), cl), errUnknownKID},
		{"kid a path", craft(t, key, with(hdr, "kid", "../../../dev/null"), cl), errUnknownKID},
		{"kid in other case", craft(t, key, with(hdr, "kid", strings.ToUpper(tk.KeyID())), cl), errUnknownKID},
		{"jku", craft(t, key, with(hdr, "jku", "https://attacker.example/jwks.json"), cl), errHeaderForbidden},
		{"jwk", craft(t, key, with(hdr, "jwk", map[string]any{"kty": "oct", "k": "AAAA"}), cl), errHeaderForbidden},
		{"x5u", craft(t, key, with(hdr, "x5u", "https://attacker.example/cert.pem"), cl), errHeaderForbidden},
		{"x5c", craft(t, key, with(hdr, "x5c", []string{"MIIB"}), cl), errHeaderForbidden},
		{"x5t", craft(t, key, with(hdr, "x5t", "AAAA"), cl), errHeaderForbidden},
		{"x5t#S256", craft(t, key, with(hdr, "x5t#S256", "AAAA"), cl), errHeaderForbidden},
		{"crit", craft(t, key, with(hdr, "crit", []string{"exp"}), cl), errHeaderForbidden},
		{"jku null", craft(t, key, with(hdr, "jku", nil), cl), errHeaderForbidden},
		{"typ jwt", craft(t, key, with(hdr, "typ", "jwt"), cl), errHeaderTyp},
		{"typ JWS", craft(t, key, with(hdr, "typ", "JWS"), cl), errHeaderTyp},
		{"typ number", craft(t, key, with(hdr, "typ", 1), cl), errHeaderTyp},
		{"typ null", craft(t, key, with(hdr, "typ", nil), cl), errHeaderTyp},
		{"header null", craft(t, key, "null", cl), jwt.ErrTokenUnverifiable},
		{"header array", craft(t, key, "[]", cl), jwt.ErrTokenMalformed},
		{"header not JSON", craft(t, key, `{"alg":"HS256"`, cl), jwt.ErrTokenMalformed},
		{"claims not JSON", craft(t, key, hdr, `{"sub":"alice"`), jwt.ErrTokenMalformed},
		{"claims null", craft(t, key, hdr, "null"), errClaimMissing},
		{"claims array", craft(t, key, hdr, "[]"), jwt.ErrTokenMalformed},
		{"claims number", craft(t, key, hdr, "1"), jwt.ErrTokenMalformed},
		{"missing iss", craft(t, key, hdr, without(cl, "iss")), errClaimMissing},
		{"wrong iss", craft(t, key, hdr, with(cl, "iss", "someone-else")), errIssuer},
		{"iss in other case", craft(t, key, hdr, with(cl, "iss", "AUTHLINED")), errIssuer},
		{"iss a number", craft(t, key, hdr, with(cl, "iss", 1)), jwt.ErrTokenMalformed},
		{"missing sub", craft(t, key, hdr, without(cl, "sub")), errClaimMissing},
		{"empty sub", craft(t, key, hdr, with(cl, "sub", "")), errClaimMissing},
		{"sub a number", craft(t, key, hdr, with(cl, "sub", 42)), jwt.ErrTokenMalformed},
		{"missing jti", craft(t, key, hdr, without(cl, "jti")), errClaimMissing},
		{"missing iat", craft(t, key, hdr, without(cl, "iat")), errClaimMissing},
		{"iat null", craft(t, key, hdr, with(cl, "iat", nil)), errClaimMissing},
		{"missing exp", craft(t, key, hdr, without(cl, "exp")), errClaimMissing},
		{"exp 0", craft(t, key, hdr, with(cl, "exp", 0)), errLifetime},
		{"exp a string", craft(t, key, hdr, with(cl, "exp", "1750001800")), errBadNumericDate},
		{"iat a string", craft(t, key, hdr, with(cl, "iat", "1750000000")), errBadNumericDate},
		{"nbf a string", craft(t, key, hdr, with(cl, "nbf", "1750000000")), errBadNumericDate},
		{"exp true", craft(t, key, hdr, with(cl, "exp", true)), errBadNumericDate},
		{"exp negative", craft(t, key, hdr, with(cl, "exp", -1)), errBadNumericDate},
		{"exp 1e300", craft(t, key, hdr, with(cl, "exp", 1e300)), errBadNumericDate},
		{"exp 1e400", craft(t, key, hdr, `{"iss":"authlined","sub":"alice","jti":"x","iat":1750000000,"exp":1e400}`), nil},
		{"exp far beyond the TTL", craft(t, key, hdr, with(cl, "exp", testNow.Add(100*365*24*time.Hour).Unix())), errLifetime},
		{"lifetime TTL+slack+1s", craft(t, key, hdr, with(cl, "exp", testNow.Add(testTTL+lifetimeSlack+time.Second).Unix())), errLifetime},
		{"exp equals iat", craft(t, key, hdr, with(cl, "exp", testNow.Unix())), errLifetime},
		{"exp before iat", craft(t, key, hdr, with(cl, "exp", testNow.Unix()-1)), errLifetime},
		{"iat in the future", craft(t, key, hdr, with(cl, "iat", testNow.Add(10*time.Minute).Unix(), "exp", testNow.Add(20*time.Minute).Unix())), errIssuedInFuture},
		{"iat just beyond the skew", craft(t, key, hdr, with(cl, "iat", testNow.Add(clockSkew+time.Second).Unix())), errIssuedInFuture},
		{"nbf in the future", craft(t, key, hdr, with(cl, "nbf", testNow.Add(10*time.Minute).Unix())), errNotYetValid},
		{"nbf just beyond the skew", craft(t, key, hdr, with(cl, "nbf", testNow.Add(clockSkew+time.Second).Unix())), errNotYetValid},
		{"tampered header", flip(gh, 5) + "." + gp + "." + gs, nil},
		{"tampered payload", gh + "." + flip(gp, 10) + "." + gs, nil},
		{"payload of another user", gh + "." + b64json(t, with(cl, "sub", "root")) + "." + gs, jwt.ErrTokenSignatureInvalid},
		{"tampered signature", gh + "." + gp + "." + flip(gs, 0), jwt.ErrTokenSignatureInvalid},
		{"signature of another key", craft(t, testKey(2), hdr, cl), jwt.ErrTokenSignatureInvalid},
		{"no signature", gh + "." + gp + ".", jwt.ErrTokenSignatureInvalid},
		{"non-canonical base64 signature", nonCanonical, jwt.ErrTokenMalformed},
		{"padded signature", good + "=", errTokenChars},
		{"standard base64 alphabet", gh + "." + gp + "." + strings.NewReplacer("-", "+", "_", "/").Replace(gs) + "+/", errTokenChars},
		{"newline in signature", gh + "." + gp + "." + gs[:10] + "\n" + gs[10:], errTokenChars},
		{"CRLF in signature", gh + "." + gp + "." + gs[:10] + "\r\n" + gs[10:], errTokenChars},
		{"space in payload", gh + "." + gp[:10] + " " + gp[10:] + "." + gs, errTokenChars},
		{"leading space", " " + good, errTokenChars},
		{"trailing newline", good + "\n", errTokenChars},
		{"Bearer prefix", "Bearer " + good, errTokenChars},
		{"NUL byte", good[:20] + "\x00" + good[20:], errTokenChars},
		{"non-ASCII", good[:20] + "é" + good[20:], errTokenChars},
		{"one segment", gh, jwt.ErrTokenMalformed},
		{"two segments", gh + "." + gp, jwt.ErrTokenMalformed},
		{"four segments", good + "." + gs, jwt.ErrTokenMalformed},
		{"five segments (JWE)", gh + "." + gp + "." + gs + "." + gs + "." + gs, jwt.ErrTokenMalformed},
		{"empty segments", "..", jwt.ErrTokenMalformed},
		{"non-base64 header", "!!!." + gp + "." + gs, errTokenChars},
		{"undecodable header", "A." + gp + "." + gs, jwt.ErrTokenMalformed},
		{"undecodable payload", gh + ".A." + gs, jwt.ErrTokenMalformed},
		{"undecodable signature", gh + "." + gp + ".A", jwt.ErrTokenMalformed},
		{"non-JSON segments", b64json(t, "hello") + "." + b64json(t, "world") + "." + gs, jwt.ErrTokenMalformed},
		{"too long", good + strings.Repeat("A", MaxTokenBytes), nil},
		{"100 KB", strings.Repeat("A", 100<<10), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			claims, err := tk.Parse(c.token)
			if claims != nil {
				t.Errorf("claims returned with error %v", err)
			}
			wantCode(t, err, protocol.CodeInvalidToken, c.cause)
		})
	}
}

const base64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// TestParseAccepts covers the edges that must still pass.
func TestParseAccepts(t *testing.T) {
	tk := newTestTokens(t, testKey(1), nil)
	key := testKey(1)
	hdr, cl := goodHeader(tk), goodClaims()
	cases := []struct {
		name   string
		header map[string]any
		claims map[string]any
	}{
		{"as issued", hdr, cl},
		{"no typ", without(hdr, "typ"), cl},
		{"lifetime TTL+slack", hdr, with(cl, "exp", testNow.Add(testTTL+lifetimeSlack).Unix())},
		{"lifetime 1s", hdr, with(cl, "exp", testNow.Add(time.Second).Unix())},
		{"iat within the skew", hdr, with(cl, "iat", testNow.Add(clockSkew).Unix(), "exp", testNow.Add(clockSkew+testTTL).Unix())},
		{"nbf now", hdr, with(cl, "nbf", testNow.Unix())},
		{"nbf within the skew", hdr, with(cl, "nbf", testNow.Add(clockSkew).Unix())},
		{"fractional dates", hdr, with(cl, "iat", float64(testNow.Unix())+0.5, "exp", float64(testNow.Add(testTTL).Unix())+0.5)},
		{"unknown claim", hdr, with(cl, "foo", []int{1})},
		{"aud", hdr, with(cl, "aud", "someone")},
		{"unknown harmless header", with(hdr, "cty", "JWT"), cl},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := tk.Parse(craft(t, key, c.header, c.claims))
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if got.Subject != "alice" || got.ID != cl["jti"] || got.IssuedAt == nil || got.ExpiresAt == nil {
				t.Fatalf("claims %+v", got)
			}
		})
	}
}

func TestParseExpired(t *testing.T) {
	now := testNow
	clock := func() time.Time { return now }
	tk := newTestTokens(t, testKey(1), clock)
	key := testKey(1)
	signed, _, _ := tk.Issue("alice", "user", 1)

	now = testNow.Add(testTTL - time.Second)
	if _, err := tk.Parse(signed); err != nil {
		t.Fatalf("refused a second before expiry: %v", err)
	}
	// exp is when the token stops working: no leeway.
	now = testNow.Add(testTTL)
	_, err := tk.Parse(signed)
	wantCode(t, err, protocol.CodeTokenExpired, jwt.ErrTokenExpired)

	now = testNow.Add(24 * time.Hour)
	_, err = tk.Parse(signed)
	wantCode(t, err, protocol.CodeTokenExpired, nil)

	// Expired and badly signed is invalid, not expired (CVE-2024-51744):
	// only an authentic token learns that it expired.
	h, p, s := segments(signed)
	_, err = tk.Parse(h + "." + p + "." + flip(s, 0))
	wantCode(t, err, protocol.CodeInvalidToken, jwt.ErrTokenSignatureInvalid)
	_, err = tk.Parse(craft(t, testKey(2), goodHeader(tk), goodClaims()))
	wantCode(t, err, protocol.CodeInvalidToken, jwt.ErrTokenSignatureInvalid)
	_, err = tk.Parse(h + "." + p + ".")
	wantCode(t, err, protocol.CodeInvalidToken, nil)
	_, err = tk.Parse(none(t, with(goodHeader(tk), "alg", "none"), goodClaims()))
	wantCode(t, err, protocol.CodeInvalidToken, nil)

	// Expired and failing any other check is invalid too.
	for name, tok := range map[string]string{
		"unknown kid":     craft(t, key, with(goodHeader(tk), "kid", "nope"), goodClaims()),
		"jku":             craft(t, key, with(goodHeader(tk), "jku", "https://x"), goodClaims()),
		"wrong iss":       craft(t, key, goodHeader(tk), with(goodClaims(), "iss", "x")),
		"missing jti":     craft(t, key, goodHeader(tk), without(goodClaims(), "jti")),
		"long lifetime":   craft(t, key, goodHeader(tk), with(goodClaims(), "exp", testNow.Add(2*time.Hour).Unix())),
		"exp as a string": craft(t, key, goodHeader(tk), with(goodClaims(), "exp", "1750001800")),
	} {
		_, err := tk.Parse(tok)
		if pe, ok := err.(*protocol.Error); !ok || pe.Code != protocol.CodeInvalidToken {
			t.Errorf("expired and %s: %v, want invalid_token", name, err)
		}
	}
}

func none(t testing.TB, header, claims map[string]any) string {
	return b64json(t, header) + "." + b64json(t, claims) + "."
}

// TestLifetimeFollowsTTL: tokens issued under a longer TTL stop working
// when the server restarts with a shorter one.
func TestLifetimeFollowsTTL(t *testing.T) {
	long, err := NewTokens(testKey(1), "", 2*time.Hour, func() time.Time { return testNow })
	if err != nil {
		t.Fatal(err)
	}
	signed, _, _ := long.Issue("alice", "user", 1)
	_, err = newTestTokens(t, testKey(1), nil).Parse(signed)
	wantCode(t, err, protocol.CodeInvalidToken, errLifetime)
}

func TestIssuer(t *testing.T) {
	a, err := NewTokens(testKey(1), "other", testTTL, func() time.Time { return testNow })
	if err != nil {
		t.Fatal(err)
	}
	signed, c, _ := a.Issue("alice", "user", 1)
	if c.Issuer != "other" {
		t.Fatalf("iss %q", c.Issuer)
	}
	if _, err := a.Parse(signed); err != nil {
		t.Fatal(err)
	}
	_, err = newTestTokens(t, testKey(1), nil).Parse(signed)
	wantCode(t, err, protocol.CodeInvalidToken, errIssuer)
}

func TestParseConcurrent(t *testing.T) {
	tk := newTestTokens(t, testKey(1), nil)
	signed, _, _ := tk.Issue("alice", "user", 1)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if _, err := tk.Parse(signed); err != nil {
					t.Error(err)
					return
				}
				if _, _, err := tk.Issue("bob", "user", 1); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "authline.key")
	key, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != keyBytes || bytes.Equal(key, make([]byte, keyBytes)) {
		t.Fatalf("key %x", key)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", info.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	if got := strings.TrimSuffix(string(raw), "\n"); got != base64.RawURLEncoding.EncodeToString(key) {
		t.Fatalf("key file holds %q", raw)
	}
	again, err := LoadOrCreateKey(path)
	if err != nil || !bytes.Equal(again, key) {
		t.Fatalf("second load: %x, %v; want the same key", again, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want the key file only", len(entries))
	}

	// A key written by hand, without the newline, with spaces around.
	hand := filepath.Join(dir, "hand.key")
	want := testKey(7)
	os.WriteFile(hand, []byte("  "+base64.RawURLEncoding.EncodeToString(want)+"\r\n\n"), 0o600)
	if got, err := LoadOrCreateKey(hand); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("hand-written key: %x, %v", got, err)
	}
	// A symlink to a key file, as Kubernetes mounts secrets, is followed.
	link := filepath.Join(dir, "link.key")
	if err := os.Symlink(hand, link); err == nil {
		if got, err := LoadOrCreateKey(link); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("symlinked key: %x, %v", got, err)
		}
	}
	// Longer keys are fine.
	long := filepath.Join(dir, "long.key")
	os.WriteFile(long, []byte(base64.RawURLEncoding.EncodeToString(make([]byte, 64))), 0o600)
	if got, err := LoadOrCreateKey(long); err != nil || len(got) != 64 {
		t.Fatalf("64-byte key: %d bytes, %v", len(got), err)
	}
}

func TestLoadOrCreateKeyRefuses(t *testing.T) {
	dir := t.TempDir()
	good := base64.RawURLEncoding.EncodeToString(testKey(3))
	cases := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string // in the error
	}{
		{"mode 0644", good, 0o644, "must not be readable by others"},
		{"mode 0640", good, 0o640, "must not be readable by others"},
		{"mode 0604", good, 0o604, "must not be readable by others"},
		{"short key", base64.RawURLEncoding.EncodeToString(make([]byte, keyBytes-1)), 0o600, "need at least 32"},
		{"empty", "", 0o600, "need at least 32"},
		{"not base64", strings.Repeat("!", 43), 0o600, "not a base64url key"},
		{"standard base64 with padding", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 0o600, "not a base64url key"},
		{"huge", strings.Repeat("A", 1<<20), 0o600, "longer than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
			if err := os.WriteFile(path, []byte(c.content), c.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, c.mode) // past the umask
			key, err := LoadOrCreateKey(path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got key %x, err %v; want an error containing %q", key, err, c.want)
			}
			// The file is left as it was.
			if raw, _ := os.ReadFile(path); string(raw) != c.content {
				t.Fatal("key file changed")
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		d := filepath.Join(dir, "adir")
		os.Mkdir(d, 0o700)
		if _, err := LoadOrCreateKey(d); err == nil {
			t.Fatal("a directory was accepted as key file")
		}
	})
	t.Run("dangling symlink", func(t *testing.T) {
		link := filepath.Join(dir, "dangling.key")
		if err := os.Symlink(filepath.Join(dir, "nowhere"), link); err != nil {
			t.Skip(err)
		}
		done := make(chan error, 1)
		go func() { _, err := LoadOrCreateKey(link); done <- err }()
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("no error for a dangling symlink")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("LoadOrCreateKey loops on a dangling symlink")
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		if _, err := LoadOrCreateKey(filepath.Join(dir, "nope", "authline.key")); err == nil {
			t.Fatal("no error for a key file in a missing directory")
		}
	})
}

// TestLoadOrCreateKeyConcurrent: processes (here goroutines) that start
// at once all end up with the one key that was written.
func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	for round := range 20 {
		dir := t.TempDir()
		path := filepath.Join(dir, "authline.key")
		const n = 8
		keys := make([][]byte, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { keys[i], errs[i] = LoadOrCreateKey(path) })
		}
		wg.Wait()
		onDisk, err := LoadOrCreateKey(path)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d: caller %d: %v", round, i, errs[i])
			}
			if !bytes.Equal(keys[i], onDisk) {
				t.Fatalf("round %d: caller %d got a key that is not the one on disk", round, i)
			}
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Fatalf("round %d: %d entries left in the directory", round, len(entries))
		}
	}
}

// BenchmarkParseToken is the cost of verifying a good token, for each
// algorithm (an Ed25519 verification costs far more than an HMAC).
func BenchmarkParseToken(b *testing.B) {
	for _, alg := range []string{store.AlgHS256, store.AlgEdDSA} {
		for _, cached := range []bool{false, true} {
			name := alg + "/first-use"
			if cached {
				name = alg + "/cached"
			}
			b.Run(name, func(b *testing.B) {
				tk := edTestTokens(b, alg, nil, testKeys(b)...)
				tk.now = time.Now
				signed, _, err := tk.Issue("alice", "user", 1)
				if err != nil {
					b.Fatal(err)
				}
				set := tk.set.Load()
				b.ReportAllocs()
				for b.Loop() {
					if !cached {
						set.verified.m = nil // every parse verifies in full
					}
					if _, err := tk.Parse(signed); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestVerifiedTokenCache: a cached token is still refused once expired,
// and a new key set (a key retired) starts with an empty cache.
func TestVerifiedTokenCache(t *testing.T) {
	clock := time.Now()
	tk, err := NewTokens(testKey(1), "", testTTL, func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	signed, _, err := tk.Issue("alice", "user", 1)
	if err != nil {
		t.Fatal(err)
	}
	first, err := tk.Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := tk.Parse(signed); err != nil || again != first {
		t.Fatalf("second Parse = %p, %v; want the cached claims %p", again, err, first)
	}
	clock = clock.Add(testTTL)
	if _, err := tk.Parse(signed); !isCode(err, protocol.CodeTokenExpired) {
		t.Fatalf("cached token after expiry: %v, want token_expired", err)
	}
	clock = clock.Add(-testTTL)
	other, err := NewTokens(testKey(2), "", testTTL, nil)
	if err != nil {
		t.Fatal(err)
	}
	tk.set.Store(other.set.Load()) // the old key is gone
	if _, err := tk.Parse(signed); !isCode(err, protocol.CodeInvalidToken) {
		t.Fatalf("cached token after its key went: %v, want invalid_token", err)
	}
}

func isCode(err error, code protocol.Code) bool {
	var pe *protocol.Error
	return errors.As(err, &pe) && pe.Code == code
}

// BenchmarkParseTokenUnknownKID is the cost of refusing a token by its
// header, before any HMAC.
func BenchmarkParseTokenUnknownKID(b *testing.B) {
	tk, err := NewTokens(testKey(1), "", testTTL, nil)
	if err != nil {
		b.Fatal(err)
	}
	other, _ := NewTokens(testKey(2), "", testTTL, nil)
	signed, _, _ := other.Issue("alice", "user", 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tk.Parse(signed); err == nil {
			b.Fatal("accepted")
		}
	}
}
