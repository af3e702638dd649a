package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/authline/authline/protocol"
)

// fuzzKey and the fixed clock testNow make the seed tokens in
// testdata/fuzz/FuzzParseToken valid for ever: a seed issued at testNow
// parses, one issued an hour earlier is expired.
func fuzzKey() []byte { return testKey(1) }

// FuzzParseToken feeds arbitrary strings to Tokens.Parse. Parse must not
// panic; it must fail with invalid_token or token_expired, and may only
// accept, or call expired, a token that an independent check finds
// authentic: a canonical HMAC-SHA256 signature under the key, and the
// header Issue writes.
func FuzzParseToken(f *testing.F) {
	tk := newTestTokens(f, fuzzKey(), nil)
	key := fuzzKey()
	good, _, err := tk.Issue("alice", "user", 1)
	if err != nil {
		f.Fatal(err)
	}
	past, err := NewTokens(key, "", testTTL, func() time.Time { return testNow.Add(-time.Hour) })
	if err != nil {
		f.Fatal(err)
	}
	expired, _, _ := past.Issue("bob", "admin", 1)
	hdr, cl := goodHeader(tk), goodClaims()
	gh, gp, gs := segments(good)

	seeds := []string{
		good,
		expired,
		craft(f, key, hdr, cl),
		"",
		".",
		"..",
		"...",
		gh,
		gh + "." + gp,
		good + "." + gs,
		good + "\n",
		gh + "." + gp + "." + gs[:10] + "\n" + gs[10:],
		gh + "." + gp + ".",
		gh + "." + flip(gp, 3) + "." + gs,
		gh + "." + gp + "." + flip(gs, 0),
		flip(gh, 7) + "." + gp + "." + gs,
		good[:len(good)-1],
		none(f, with(hdr, "alg", "none"), cl),
		none(f, with(hdr, "alg", "None"), cl),
		craft(f, key, with(hdr, "alg", "HS384"), cl),
		craft(f, key, with(hdr, "alg", "HS512"), cl),
		craft(f, key, with(hdr, "alg", "RS256"), cl),
		craft(f, key, with(hdr, "alg", "EdDSA"), cl),
		craft(f, key, without(hdr, "kid"), cl),
		craft(f, key, with(hdr, "kid", "../../dev/null"), cl),
		craft(f, key, with(hdr, "jku", "https://attacker.example/"), cl),
		craft(f, key, with(hdr, "jwk", map[string]any{"kty": "oct", "k": "AAAA"}), cl),
		craft(f, key, with(hdr, "x5u", "https://attacker.example/"), cl),
		craft(f, key, with(hdr, "crit", []string{"exp"}), cl),
		craft(f, key, with(hdr, "typ", "jwt"), cl),
		craft(f, key, hdr, without(cl, "iss")),
		craft(f, key, hdr, with(cl, "iss", "evil")),
		craft(f, key, hdr, without(cl, "exp")),
		craft(f, key, hdr, with(cl, "exp", 0)),
		craft(f, key, hdr, with(cl, "exp", "1750001800")),
		craft(f, key, hdr, with(cl, "exp", 1e300)),
		craft(f, key, hdr, with(cl, "exp", testNow.Add(1000*time.Hour).Unix())),
		craft(f, key, hdr, with(cl, "iat", testNow.Add(time.Hour).Unix())),
		craft(f, key, hdr, with(cl, "nbf", testNow.Add(time.Hour).Unix())),
		craft(f, key, hdr, with(cl, "iat", testNow.Add(-time.Hour).Unix(), "exp", testNow.Add(-time.Hour+testTTL).Unix())),
		craft(f, key, hdr, "null"),
		craft(f, key, "null", cl),
		craft(f, testKey(2), hdr, cl),
		strings.Repeat("A", MaxTokenBytes+1),
	}
	// The seeds reach both outcomes that need an authentic token.
	if _, err := tk.Parse(good); err != nil {
		f.Fatalf("issued token refused: %v", err)
	}
	if _, err := tk.Parse(expired); !errors.Is(err, &protocol.Error{Code: protocol.CodeTokenExpired}) {
		f.Fatalf("expired token: %v, want token_expired", err)
	}
	for _, s := range seeds {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, token string) {
		claims, err := tk.Parse(token)
		if err != nil {
			if claims != nil {
				t.Fatalf("claims and error %v", err)
			}
			var pe *protocol.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *protocol.Error", err, err)
			}
			switch pe.Code {
			case protocol.CodeInvalidToken:
				return
			case protocol.CodeTokenExpired:
				// Only an authentic token learns it expired.
				if why := authentic(tk, key, token); why != "" {
					t.Fatalf("token_expired for a token that is not authentic: %s", why)
				}
				if exp, ok := payloadExp(token); !ok || exp > testNow.Unix() {
					t.Fatalf("token_expired for a token whose exp is %d (ok %v), clock %d", exp, ok, testNow.Unix())
				}
				return
			default:
				t.Fatalf("code %q: %v", pe.Code, err)
			}
		}
		if why := authentic(tk, key, token); why != "" {
			t.Fatalf("accepted a token that is not authentic: %s", why)
		}
		if claims == nil || claims.Subject == "" || claims.ID == "" || claims.Issuer != DefaultIssuer ||
			claims.IssuedAt == nil || claims.ExpiresAt == nil || !testNow.Before(claims.ExpiresAt.Time) ||
			claims.IssuedAt.After(testNow.Add(clockSkew)) || claims.ExpiresAt.Sub(claims.IssuedAt.Time) > testTTL+lifetimeSlack {
			t.Fatalf("accepted claims %+v", claims)
		}
	})
}

// authentic checks a token without golang-jwt: three segments, a header
// of alg HS256, our kid and at most typ "JWT", and a signature that is the
// canonical base64url of HMAC-SHA256(key, header.payload). It returns why
// not, or "".
func authentic(tk *Tokens, key []byte, token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "not three segments"
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(parts[0] + "." + parts[1]))
	if want := base64.RawURLEncoding.EncodeToString(m.Sum(nil)); parts[2] != want {
		return "signature is not the canonical HMAC-SHA256 of header.payload"
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	if err != nil || strings.ContainsAny(parts[0]+parts[1], "\r\n") {
		return "header is not canonical base64url"
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		return "header is not a JSON object"
	}
	if h["alg"] != "HS256" || h["kid"] != tk.KeyID() {
		return "header alg or kid"
	}
	for k, v := range h {
		switch k {
		case "alg", "kid":
		case "typ":
			if v != "JWT" {
				return "typ"
			}
		default:
			if strings.HasPrefix(k, "x5") || k == "jku" || k == "jwk" || k == "crit" {
				return "forbidden header " + k
			}
		}
	}
	return ""
}

// payloadExp is the exp claim of a token, read without golang-jwt.
func payloadExp(token string) (int64, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return 0, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return 0, false
	}
	var c struct {
		Exp *float64 `json:"exp"`
	}
	if json.Unmarshal(raw, &c) != nil || c.Exp == nil {
		return 0, false
	}
	return int64(*c.Exp), true
}
