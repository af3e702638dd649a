package server_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server/auth"
	"github.com/authline/authline/server/servertest"
)

// craftPW is the password of the accounts of TestCraftedTokens: long and
// unlike any username, whatever password policy applies.
const craftPW = "lantern-Orbit-7-quarry"

// craftSeg is the base64url of v's JSON; a string v is JSON text already,
// so that a case can carry malformed JSON.
func craftSeg(t testing.TB, v any) string {
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

// craftHMAC signs input with HMAC under key and returns the base64url
// signature.
func craftHMAC(h func() hash.Hash, key []byte, input string) string {
	m := hmac.New(h, key)
	m.Write([]byte(input))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// craftToken builds header.claims.signature, with an HMAC-SHA256
// signature under key whatever the header's alg says.
func craftToken(t testing.TB, key []byte, header, claims any) string {
	t.Helper()
	return craftTokenHash(t, sha256.New, key, header, claims)
}

func craftTokenHash(t testing.TB, h func() hash.Hash, key []byte, header, claims any) string {
	t.Helper()
	input := craftSeg(t, header) + "." + craftSeg(t, claims)
	return input + "." + craftHMAC(h, key, input)
}

// craftUnsigned is an alg-none style token: no signature at all.
func craftUnsigned(t testing.TB, header, claims any) string {
	t.Helper()
	return craftSeg(t, header) + "." + craftSeg(t, claims) + "."
}

// flipCharAt replaces the character at i with another base64url one.
func flipCharAt(s string, i int) string {
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func withKV(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m)+len(kv)/2)
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func withoutK(m map[string]any, keys ...string) map[string]any {
	out := withKV(m)
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

// syncLog is a log sink that tests read while the server writes.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// getWithToken is GET protected with the token in the JSON form, which
// carries any string, whitespace and control characters included.
func getWithToken(t testing.TB, tok string) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{"cmd": "GET", "resource": "protected", "token": tok})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCraftedTokens sends hostile tokens to a real server: every one must
// be refused with 401 (invalid_token, token_expired only for an authentic
// expired token), without a panic, on a connection that stays usable.
func TestCraftedTokens(t *testing.T) {
	const ttl = 30 * time.Minute
	var logs syncLog
	srv := servertest.Start(t, servertest.Options{
		// The 100 KB token must reach the parser, not the line limit.
		MaxLineBytes: 256 << 10,
		TokenTTL:     ttl,
		Logger:       slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	key, err := auth.LoadOrCreateKey(srv.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	kid := auth.KeyID(key)
	otherKey := make([]byte, 32)
	rand.Read(otherKey)

	w := openWire(t, srv.Addr)
	w.expect("REGISTER alice "+craftPW, 201, "")
	w.expect("REGISTER ghost "+craftPW, 201, "")
	good := tokenOf(t, w, "alice", craftPW)
	ghost := tokenOf(t, w, "ghost", craftPW)
	// A valid token lifts the pre-authentication line limit (a few KB)
	// without opening a session, so that the 100 KB token reaches the
	// parser and the empty token finds no session to fall back on.
	w.expect(getWithToken(t, good), 200, "")
	w.expect(getWithToken(t, ghost), 200, "")
	if err := srv.Store.DeleteUser(context.Background(), "ghost"); err != nil {
		t.Fatal(err)
	}
	// Deleted behind the server's back: the change feed tells it soon.
	waitFor(t, func() bool { return w.do(getWithToken(t, ghost)).Error == protocol.CodeInvalidToken })

	before := userNames(t, srv)
	if !slices.Contains(before, "alice") || slices.Contains(before, "ghost") {
		t.Fatalf("users before the table: %v", before)
	}

	parts := strings.Split(good, ".")
	rh, rp, rs := parts[0], parts[1], parts[2]
	now := time.Now().Truncate(time.Second)
	hdr := map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}
	cl := map[string]any{
		"iss": auth.DefaultIssuer, "sub": "alice", "role": "user", "gen": genOf(t, good), "jti": "crafted-token-id-0001",
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(),
	}
	// Sanity: the helpers sign the way the server does.
	w.expect(getWithToken(t, craftToken(t, key, hdr, cl)), 200, "")

	expiredClaims := withKV(cl, "iat", now.Add(-2*time.Hour).Unix(), "exp", now.Add(-2*time.Hour+ttl).Unix())
	expired := craftToken(t, key, hdr, expiredClaims)
	ep := strings.Split(expired, ".")
	hs256With := func(h map[string]any) string { return craftToken(t, key, h, cl) }

	cases := []struct {
		name  string
		token string
		code  protocol.Code // invalid_token when empty
	}{
		{"alg none", craftUnsigned(t, withKV(hdr, "alg", "none"), cl), ""},
		{"alg None", craftUnsigned(t, withKV(hdr, "alg", "None"), cl), ""},
		{"alg NONE", craftUnsigned(t, withKV(hdr, "alg", "NONE"), cl), ""},
		{"alg none with the real signature", craftSeg(t, withKV(hdr, "alg", "none")) + "." + rp + "." + rs, ""},
		{"HS384 with the real key", craftTokenHash(t, sha512.New384, key, withKV(hdr, "alg", "HS384"), cl), ""},
		{"HS512 with the real key", craftTokenHash(t, sha512.New, key, withKV(hdr, "alg", "HS512"), cl), ""},
		{"RS256 header, HMAC signature", hs256With(withKV(hdr, "alg", "RS256")), ""},
		{"EdDSA header, HMAC signature", hs256With(withKV(hdr, "alg", "EdDSA")), ""},
		{"ES256 header, HMAC signature", hs256With(withKV(hdr, "alg", "ES256")), ""},
		{"kid pointing at a file", hs256With(withKV(hdr, "kid", "../../../../dev/null")), ""},
		{"kid with SQL", hs256With(withKV(hdr, "kid", "x' UNION SELECT 'secret")), ""},
		{"kid pointing at a URL", hs256With(withKV(hdr, "kid", "https://attacker.example/key")), ""},
		{"unknown kid", hs256With(withKV(hdr, "kid", auth.KeyID(otherKey))), ""},
		{"unknown kid, signed with its key", craftToken(t, otherKey, withKV(hdr, "kid", auth.KeyID(otherKey)), cl), ""},
		{"missing kid", hs256With(withoutK(hdr, "kid")), ""},
		{"kid not a string", hs256With(withKV(hdr, "kid", 0)), ""},
		{"jku", hs256With(withKV(hdr, "jku", "https://attacker.example/jwks.json")), ""},
		{"jwk", hs256With(withKV(hdr, "jwk", map[string]any{"kty": "oct", "k": base64.RawURLEncoding.EncodeToString(otherKey)})), ""},
		{"jwk with its key's signature", craftToken(t, otherKey, withKV(hdr, "jwk", map[string]any{"kty": "oct", "k": base64.RawURLEncoding.EncodeToString(otherKey)}), cl), ""},
		{"x5u", hs256With(withKV(hdr, "x5u", "https://attacker.example/cert.pem")), ""},
		{"x5c", hs256With(withKV(hdr, "x5c", []string{"MIIBszCCAVmgAwIBAgIU"})), ""},
		{"crit", hs256With(withKV(hdr, "crit", []string{"exp"})), ""},
		{"typ not JWT", hs256With(withKV(hdr, "typ", "at+jwt")), ""},
		{"tampered header", flipCharAt(rh, 3) + "." + rp + "." + rs, ""},
		{"tampered payload", rh + "." + flipCharAt(rp, 20) + "." + rs, ""},
		{"tampered signature", rh + "." + rp + "." + flipCharAt(rs, 5), ""},
		{"payload of another user, real signature", rh + "." + craftSeg(t, withKV(cl, "sub", "ghost")) + "." + rs, ""},
		{"missing iss", craftToken(t, key, hdr, withoutK(cl, "iss")), ""},
		{"wrong iss", craftToken(t, key, hdr, withKV(cl, "iss", "evil")), ""},
		{"missing sub", craftToken(t, key, hdr, withoutK(cl, "sub")), ""},
		{"missing jti", craftToken(t, key, hdr, withoutK(cl, "jti")), ""},
		{"missing iat", craftToken(t, key, hdr, withoutK(cl, "iat")), ""},
		{"missing exp", craftToken(t, key, hdr, withoutK(cl, "exp")), ""},
		{"exp far beyond the TTL", craftToken(t, key, hdr, withKV(cl, "exp", now.Add(10*365*24*time.Hour).Unix())), ""},
		{"exp year 9999", craftToken(t, key, hdr, withKV(cl, "exp", 253402300799)), ""},
		{"nbf in the future", craftToken(t, key, hdr, withKV(cl, "nbf", now.Add(time.Hour).Unix())), ""},
		{"iat in the future", craftToken(t, key, hdr, withKV(cl, "iat", now.Add(time.Hour).Unix(), "exp", now.Add(time.Hour+ttl).Unix())), ""},
		{"sub that never existed", craftToken(t, key, hdr, withKV(cl, "sub", "nobody")), ""},
		{"sub of a deleted user", ghost, ""},
		{"exp 0", craftToken(t, key, hdr, withKV(cl, "exp", 0)), ""},
		{"exp as a string", craftToken(t, key, hdr, withKV(cl, "exp", jsonNumberString(now.Add(ttl).Unix()))), ""},
		{"exp null", craftToken(t, key, hdr, withKV(cl, "exp", nil)), ""},
		{"expired, correctly signed", expired, protocol.CodeTokenExpired},
		{"expired, badly signed", ep[0] + "." + ep[1] + "." + flipCharAt(ep[2], 0), ""},
		{"expired, signed with another key", craftToken(t, otherKey, hdr, expiredClaims), ""},
		{"expired, unsigned", craftUnsigned(t, withKV(hdr, "alg", "none"), expiredClaims), ""},
		{"expired, unknown kid", craftToken(t, key, withKV(hdr, "kid", "nope"), expiredClaims), ""},
		{"expired, wrong iss", craftToken(t, key, hdr, withKV(expiredClaims, "iss", "evil")), ""},
		{"100 KB token", rh + "." + strings.Repeat("A", 100<<10) + "." + rs, ""},
		{"non-base64 segments", "$$$.%%%.&&&", ""},
		{"non-base64 signature", rh + "." + rp + "." + rs[:10] + "*" + rs[11:], ""},
		{"non-JSON segments", craftSeg(t, "not json") + "." + craftSeg(t, "{also not") + "." + rs, ""},
		{"JSON array header", craftToken(t, key, "[1,2]", cl), ""},
		{"two segments", rh + "." + rp, ""},
		{"four segments", good + "." + rs, ""},
		{"one segment", rh, ""},
		{"only dots", "..", ""},
		{"space inside", rh + "." + rp[:8] + " " + rp[8:] + "." + rs, ""},
		{"newline inside the signature", rh + "." + rp + "." + rs[:8] + "\n" + rs[8:], ""},
		{"tab inside", rh + "\t." + rp + "." + rs, ""},
		{"trailing space", good + " ", ""},
		{"Bearer prefix", "Bearer " + good, ""},
		{"padded signature", good + "=", ""},
		{"NUL inside", rh + "." + rp + "\x00." + rs, ""},
	}
	for _, c := range cases {
		code := c.code
		if code == "" {
			code = protocol.CodeInvalidToken
		}
		m := w.do(getWithToken(t, c.token))
		if m.Status != 401 || m.Error != code || m.OK {
			t.Errorf("%s: got %d %q (%s), want 401 %q", c.name, m.Status, m.Error, m.Message, code)
		}
		if m.Message == "" || strings.Contains(m.Message, "alice") {
			t.Errorf("%s: message %q", c.name, m.Message)
		}
		w.expect("PING", 200, "")
	}

	// An empty token is no token: with no session, unauthenticated.
	w.expect(`{"cmd":"GET","resource":"protected","token":""}`, 401, protocol.CodeUnauthenticated)
	w.expect("PING", 200, "")

	if strings.Contains(strings.ToLower(logs.String()), "panic") {
		t.Fatalf("the server logged a panic:\n%s", logs.String())
	}

	// The server still works: the real token, a new account, logins.
	w.expect(getWithToken(t, good), 200, "")
	w2 := openWire(t, srv.Addr)
	w2.expect("REGISTER bob "+craftPW, 201, "")
	bob := tokenOf(t, w2, "bob", craftPW)
	if m := w2.expect(getWithToken(t, bob), 200, ""); data[protocol.ResourceData](t, m).Username != "bob" {
		t.Fatalf("bob's token: %s", m.Data)
	}
	w2.expect("LOGIN alice "+craftPW, 200, "")
	w2.expect("GET protected", 200, "")
	after := userNames(t, srv)
	if want := slices.Sorted(slices.Values(slices.Concat(before, []string{"bob"}))); !slices.Equal(after, want) {
		t.Fatalf("users %v after the table, want %v and bob", after, before)
	}
}

// jsonNumberString is n as a JSON string, "1750001800": a NumericDate
// must be a number.
func jsonNumberString(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// userNames lists the store's users, sorted.
func userNames(t testing.TB, srv *servertest.Server) []string {
	t.Helper()
	users, err := srv.Store.ListUsers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Username)
	}
	slices.Sort(names)
	return names
}

// genOf reads the gen claim of a real token, so crafted ones can carry
// the user's current generation.
func genOf(t *testing.T, token string) int64 {
	t.Helper()
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Gen int64 `json:"gen"`
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.Gen == 0 {
		t.Fatalf("no gen claim in %s: %v", payload, err)
	}
	return c.Gen
}
