package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server/auth"
	"github.com/authline/authline/server/servertest"
	"github.com/authline/authline/server/store"
)

// Signing keys over the wire: rotation and retirement while serving, the
// JWKS command, and verifying authline tokens elsewhere with the JWKS only.

const keysPW = "kitten-orbit-4-lantern"

// tokenHeader decodes a token's JOSE header.
func tokenHeader(t testing.TB, token string) map[string]any {
	t.Helper()
	seg, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("token header: %v", err)
	}
	return h
}

func kidOf(t testing.TB, token string) string {
	t.Helper()
	kid, _ := tokenHeader(t, token)["kid"].(string)
	return kid
}

// TestKeyRotationOverTheWire: keys rotated and retired in the store, as
// `authlined keys` does beside a running server, apply without a restart.
func TestKeyRotationOverTheWire(t *testing.T) {
	ctx := context.Background()
	srv := servertest.Start(t, servertest.Options{})
	srv.AddUser(t, "alice", keysPW, "user")
	w := openWire(t, srv.Addr)
	old := tokenOf(t, w, "alice", keysPW)
	key, err := auth.LoadOrCreateKey(srv.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	// The key file's key was imported under its old kid.
	if h := tokenHeader(t, old); h["kid"] != auth.KeyID(key) || h["alg"] != "HS256" {
		t.Fatalf("header %v, want HS256 with the key file's kid %s", h, auth.KeyID(key))
	}

	k, err := auth.RotateSigningKey(ctx, srv.Store, store.AlgHS256, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var fresh string
	waitFor(t, func() bool { fresh = tokenOf(t, w, "alice", keysPW); return kidOf(t, fresh) == k.KID })
	for _, tok := range []string{old, fresh} {
		w.expect("GET protected "+tok, 200, "")
	}

	// The old key may go, and its tokens stop working at once...
	if err := auth.RetireSigningKey(ctx, srv.Store, auth.KeyID(key), store.AlgHS256, time.Now()); err != nil {
		t.Fatal(err)
	}
	// ...but not the only HS256 key left, which signs.
	if err := auth.RetireSigningKey(ctx, srv.Store, k.KID, store.AlgHS256, time.Now()); !errors.Is(err, auth.ErrLastSigningKey) {
		t.Fatalf("retiring the key that signs: %v, want ErrLastSigningKey", err)
	}
	waitFor(t, func() bool { return w.do("GET protected "+old).Error == protocol.CodeInvalidToken })
	m := w.expect("WHOAMI "+old, 401, protocol.CodeInvalidToken)
	if m.Message != "invalid token" {
		t.Errorf("message %q", m.Message)
	}
	w.expect("GET protected "+fresh, 200, "")
	if kid := kidOf(t, tokenOf(t, w, "alice", keysPW)); kid != k.KID {
		t.Fatalf("new token kid %s, want %s", kid, k.KID)
	}
}

// TestKeyChangesThroughService: the Service applies its own rotation at
// once.
func TestKeyChangesThroughService(t *testing.T) {
	ctx := context.Background()
	srv := servertest.Start(t, servertest.Options{})
	srv.AddUser(t, "alice", keysPW, "user")
	w := openWire(t, srv.Addr)
	old := tokenOf(t, w, "alice", keysPW)
	k, err := srv.Service.RotateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fresh := tokenOf(t, w, "alice", keysPW) // no wait
	if kid := kidOf(t, fresh); kid != k.KID {
		t.Fatalf("kid %s right after RotateKey, want %s", kid, k.KID)
	}
	if err := srv.Service.RetireKey(ctx, kidOf(t, old)); err != nil {
		t.Fatal(err)
	}
	w.expect("GET protected "+old, 401, protocol.CodeInvalidToken)
	w.expect("GET protected "+fresh, 200, "")
}

func TestJWKSCommand(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	w := openWire(t, srv.Addr) // not logged in: JWKS needs no one
	for _, line := range []string{"JWKS", "jwks", `{"id":"k","cmd":"jwks"}`, `{"cmd":"JWKS","token":"ignored"}`} {
		m := w.expect(line, 200, "")
		if string(m.Data) != `{"keys":[]}` {
			t.Errorf("%s: data %s, want an empty key set (HS256 keys are secret)", line, m.Data)
		}
	}
	m := w.expect("JWKS now", 400, protocol.CodeBadRequest)
	if m.Message != "usage: JWKS" {
		t.Errorf("message %q", m.Message)
	}
	// The pre-authentication limits still hold: JWKS does not log in.
	w.expect("GET protected", 401, protocol.CodeUnauthenticated)
}

// jwksKeyfunc is how another Go service verifies authline tokens: it
// fetched the JWKS document (the JWKS command, or `authlined keys
// export`) and looks the token's kid up in it. It is the example of the
// documentation.
func jwksKeyfunc(jwksJSON []byte) (jwt.Keyfunc, error) {
	var set struct {
		Keys []struct {
			Kty, Crv, X, Kid, Alg, Use string
		} `json:"keys"`
	}
	if err := json.Unmarshal(jwksJSON, &set); err != nil {
		return nil, err
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Alg != "EdDSA" {
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("key %s: bad x", k.Kid)
		}
		keys[k.Kid] = ed25519.PublicKey(x)
	}
	return func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		if key, ok := keys[kid]; ok {
			return key, nil
		}
		return nil, fmt.Errorf("unknown kid %q", kid)
	}, nil
}

// verifyWithJWKS checks an authline token with nothing but the JWKS.
func verifyWithJWKS(jwksJSON []byte, token string) (*jwt.RegisteredClaims, error) {
	keyfunc, err := jwksKeyfunc(jwksJSON)
	if err != nil {
		return nil, err
	}
	var claims jwt.RegisteredClaims
	_, err = jwt.ParseWithClaims(token, &claims, keyfunc,
		jwt.WithValidMethods([]string{"EdDSA"}), // never let the token pick HS256
		jwt.WithIssuer("authlined"),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	)
	if err != nil {
		return nil, err
	}
	return &claims, nil
}

func TestVerifyWithJWKSOnly(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{TokenAlg: store.AlgEdDSA})
	srv.AddUser(t, "alice", keysPW, "user")
	w := openWire(t, srv.Addr)
	tok := tokenOf(t, w, "alice", keysPW)
	if h := tokenHeader(t, tok); h["alg"] != "EdDSA" || h["typ"] != "JWT" {
		t.Fatalf("header %v, want alg EdDSA", h)
	}
	jwks := w.expect("JWKS", 200, "").Data
	var set protocol.JWKSData
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 || set.Keys[0].Kid != kidOf(t, tok) || set.Keys[0].Kty != "OKP" ||
		set.Keys[0].Crv != "Ed25519" || set.Keys[0].Alg != "EdDSA" || set.Keys[0].Use != "sig" {
		t.Fatalf("JWKS %s: want the one EdDSA key %s", jwks, kidOf(t, tok))
	}

	claims, err := verifyWithJWKS(jwks, tok)
	if err != nil {
		t.Fatalf("verify with the JWKS: %v", err)
	}
	if claims.Subject != "alice" || claims.ID == "" {
		t.Fatalf("claims %+v", claims)
	}

	// Tampered, or an HS256 token "signed" with the public key as the
	// secret (algorithm confusion): refused by the verifier, and by the
	// server.
	parts := strings.Split(tok, ".")
	tampered := parts[0] + "." + flipCharAt(parts[1], 12) + "." + parts[2]
	pub, _ := base64.RawURLEncoding.DecodeString(set.Keys[0].X)
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"` + set.Keys[0].Kid + `","typ":"JWT"}`))
	mac := hmac.New(sha256.New, pub)
	mac.Write([]byte(hdr + "." + parts[1]))
	confused := hdr + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	for name, bad := range map[string]string{"tampered": tampered, "HS256 with the public key": confused} {
		if _, err := verifyWithJWKS(jwks, bad); err == nil {
			t.Errorf("%s: the JWKS verifier accepted it", name)
		}
		w.expect("GET protected "+bad, 401, protocol.CodeInvalidToken)
	}

	// After a rotation the JWKS has both keys; each token verifies with it.
	k, err := srv.Service.RotateKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fresh := tokenOf(t, w, "alice", keysPW)
	if kidOf(t, fresh) != k.KID {
		t.Fatalf("kid %s, want %s", kidOf(t, fresh), k.KID)
	}
	jwks = w.expect(`{"cmd":"JWKS"}`, 200, "").Data
	for _, tk := range []string{tok, fresh} {
		if _, err := verifyWithJWKS(jwks, tk); err != nil {
			t.Fatalf("after the rotation: %v (JWKS %s)", err, jwks)
		}
	}
	// The old JWKS does not know the new key: verifiers must fetch the
	// JWKS again when they meet an unknown kid.
	if _, err := verifyWithJWKS(w.expect("JWKS", 200, "").Data, fresh); err != nil {
		t.Fatal(err)
	}
	// The HS256 key imported from the key file verifies HS256 tokens but
	// never shows in the JWKS.
	if strings.Contains(string(jwks), `"HS256"`) || strings.Count(string(jwks), `"kid"`) != 2 {
		t.Fatalf("JWKS %s, want exactly the two EdDSA keys", jwks)
	}
}

// TestUnknownKIDReadsFeed: a token signed by another instance with a key
// it just added verifies here before the next regular sync.
func TestUnknownKIDReadsFeed(t *testing.T) {
	dir := t.TempDir()
	a := servertest.Start(t, servertest.Options{Dir: dir, TokenAlg: store.AlgEdDSA})
	b := servertest.Start(t, servertest.Options{Dir: dir, TokenAlg: store.AlgEdDSA, SyncInterval: time.Hour})
	a.AddUser(t, "alice", keysPW, "user")
	wa, wb := openWire(t, a.Addr), openWire(t, b.Addr)
	tok := tokenOf(t, wa, "alice", keysPW)
	wb.expect("GET protected "+tok, 200, "")

	k, err := a.Service.RotateKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fresh := tokenOf(t, wa, "alice", keysPW)
	if kidOf(t, fresh) != k.KID {
		t.Fatalf("kid %s, want %s", kidOf(t, fresh), k.KID)
	}
	wb.expect("GET protected "+fresh, 200, "")
	if kid := kidOf(t, tokenOf(t, wb, "alice", keysPW)); kid != k.KID {
		t.Fatalf("b signs with %s, want %s", kid, k.KID)
	}
}
