package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server/store"
)

// DefaultIssuer is the iss claim of authline tokens.
const DefaultIssuer = "authlined"

// keyBytes is the HS256 secret size: 256 bits, the hash's output size.
const keyBytes = 32

// MaxTokenBytes bounds the tokens that are parsed at all; authline's own
// tokens are a few hundred bytes.
const MaxTokenBytes = 4096

const (
	// clockSkew is how far in the future iat and nbf may be, for servers
	// that share the key but whose clocks differ slightly. It is not
	// applied to exp (jwt.WithLeeway would apply it there too): exp was set
	// by a server's clock and told to the client as expires_at, and
	// honouring the token past it would only lengthen its life.
	clockSkew = 30 * time.Second
	// lifetimeSlack is how much longer than the TTL exp - iat may be. Our
	// own tokens have exp - iat == TTL exactly; a longer lifetime means the
	// token was not minted by Issue (or the TTL was lowered since, and then
	// the new, shorter policy wins).
	lifetimeSlack = time.Minute
	// maxNumericDate bounds iat, nbf and exp (about the year 36812), so the
	// conversion to time.Time never overflows.
	maxNumericDate = 1 << 40
)

// forbiddenHeaders are JOSE header parameters that point a verifier at
// another key (jku, jwk, x5u, x5c, x5t, x5t#S256) or change how the token
// must be processed (crit). authline never sets them, and a verifier that
// honours them lets the token choose its own key; a token carrying one is
// refused, before its signature is even checked.
var forbiddenHeaders = []string{"jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "crit"}

// Reasons a token is refused, wrapped in the *protocol.Error that Parse
// returns (the client sees only "invalid token").
var (
	errTokenChars      = errors.New("token contains a character outside base64url and '.'")
	errHeaderForbidden = errors.New("token header has a forbidden parameter (jku, jwk, x5u, x5c, x5t, x5t#S256 or crit)")
	errHeaderTyp       = errors.New(`token header typ is not "JWT"`)
	errUnknownKID      = errors.New("token header kid is missing or names no key of this server")
	errAlgMismatch     = errors.New("token header alg is not the alg of the key its kid names")
	errClaimMissing    = errors.New("token lacks one of iss, sub, jti, iat, exp")
	errIssuer          = errors.New("token has the wrong issuer")
	errLifetime        = errors.New("token lifetime exp - iat is not positive or exceeds the TTL")
	errIssuedInFuture  = errors.New("token iat is in the future")
	errNotYetValid     = errors.New("token nbf is in the future")
	errBadNumericDate  = errors.New("iat, nbf or exp is not a JSON number in range")
)

// Claims are the claims of an authline access token.
type Claims struct {
	Role string `json:"role"`
	// Gen is the user's generation when the token was issued; a token
	// whose gen is older than the user's current one was ended by a
	// password change, a logout everywhere or a revoke.
	Gen int64 `json:"gen"`
	// Fam names the login (refresh-token family) the token came from, so
	// that a LOGOUT with the token can end the login's refresh tokens too.
	Fam string `json:"fam,omitempty"`
	jwt.RegisteredClaims
}

// signingKey is one key of a key set, ready to sign or to verify.
type signingKey struct {
	kid     string
	alg     string // store.AlgHS256 or store.AlgEdDSA
	method  jwt.SigningMethod
	sign    any // []byte (HS256) or ed25519.PrivateKey
	created time.Time
	// verify is what the keyfunc returns: the HS256 secret or the
	// ed25519.PublicKey, boxed once so that looking a key up does not
	// allocate.
	verify any
}

// newSigningKey checks a stored key and prepares it. Key material is
// copied: the caller may reuse its slices.
func newSigningKey(k store.SigningKey) (*signingKey, error) {
	if k.KID == "" {
		return nil, errors.New("signing key without kid")
	}
	sk := &signingKey{kid: k.KID, alg: k.Alg, created: k.CreatedAt}
	switch k.Alg {
	case store.AlgHS256:
		if len(k.Private) < keyBytes {
			return nil, fmt.Errorf("signing key %s: HS256 secret is %d bytes, need at least %d", k.KID, len(k.Private), keyBytes)
		}
		secret := bytes.Clone(k.Private)
		sk.method, sk.sign, sk.verify = jwt.SigningMethodHS256, secret, secret
	case store.AlgEdDSA:
		if len(k.Private) != ed25519.PrivateKeySize || len(k.Public) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("signing key %s: Ed25519 keys are %d and %d bytes, not %d and %d",
				k.KID, ed25519.PrivateKeySize, ed25519.PublicKeySize, len(k.Private), len(k.Public))
		}
		// The public key must be the one the private key's seed makes:
		// a mismatch would issue tokens that the published key refuses.
		priv := ed25519.NewKeyFromSeed(ed25519.PrivateKey(k.Private).Seed())
		pub := priv.Public().(ed25519.PublicKey)
		if !bytes.Equal(pub, k.Public) {
			return nil, fmt.Errorf("signing key %s: the Ed25519 public key does not belong to the private key", k.KID)
		}
		sk.method, sk.sign, sk.verify = jwt.SigningMethodEdDSA, priv, pub
	default:
		return nil, fmt.Errorf("signing key %s: unknown alg %q", k.KID, k.Alg)
	}
	return sk, nil
}

// keySet is an immutable set of keys: Tokens replaces it whole.
type keySet struct {
	current *signingKey            // signs new tokens
	byKID   map[string]*signingKey // every key that verifies
	jwks    *protocol.JWKSData     // the public keys (EdDSA)
	// verified remembers tokens this set verified, so that a token used
	// again costs a map lookup instead of a parse and a signature check.
	// It belongs to the set: a new set (a key retired) starts empty.
	verified verifiedTokens
}

// verifiedTokens maps a token, verbatim, to its claims. Only a token that
// passed every check is stored; expiry is checked again on every hit.
type verifiedTokens struct {
	mu sync.RWMutex
	m  map[string]*Claims
}

// maxVerifiedTokens bounds the cache; past it, expired entries are swept
// and, if that frees nothing, new tokens are simply not cached.
const maxVerifiedTokens = 1 << 17

func (v *verifiedTokens) get(token string) *Claims {
	v.mu.RLock()
	c := v.m[token]
	v.mu.RUnlock()
	return c
}

func (v *verifiedTokens) put(token string, c *Claims, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = make(map[string]*Claims)
	}
	if len(v.m) >= maxVerifiedTokens {
		for tok, old := range v.m {
			if !now.Before(old.ExpiresAt.Time) {
				delete(v.m, tok)
			}
		}
		if len(v.m) >= maxVerifiedTokens {
			return
		}
	}
	v.m[token] = c
}

// newKeySet prepares keys; the current key is the newest of alg (by
// creation time, then kid, as store.SigningKeys orders them).
func newKeySet(alg string, keys []store.SigningKey) (*keySet, error) {
	set := &keySet{byKID: make(map[string]*signingKey, len(keys))}
	for _, k := range keys {
		sk, err := newSigningKey(k)
		if err != nil {
			return nil, err
		}
		if set.byKID[sk.kid] != nil {
			return nil, fmt.Errorf("two signing keys with kid %s", sk.kid)
		}
		set.byKID[sk.kid] = sk
		if sk.alg == alg && (set.current == nil || newer(sk, set.current)) {
			set.current = sk
		}
	}
	if set.current == nil {
		return nil, fmt.Errorf("no %s signing key among the %d keys", alg, len(keys))
	}
	set.jwks = JWKS(keys)
	return set, nil
}

func newer(a, b *signingKey) bool {
	if c := a.created.Compare(b.created); c != 0 {
		return c > 0
	}
	return a.kid > b.kid
}

// KeyID is the kid header of tokens signed with key: the first 12 bytes of
// the key's SHA-256, base64url (16 characters). It is stable across
// restarts and changes with the key, and reveals nothing usable about a
// 256-bit random key. Ed25519 keys get the KeyID of their public key.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// Tokens issues and verifies JWTs, HS256 or EdDSA. Tokens are signed with
// the current key and verified with the key their kid header names, which
// must be of the alg the header says. The key set is replaced whole
// (SetKeys) while tokens are issued and parsed.
type Tokens struct {
	alg string // signs with the newest key of this alg
	set atomic.Pointer[keySet]
	// synced: the keys came from the store, and the Service keeps them in
	// step with it (NewTokensFromKeys).
	synced  bool
	issuer  string
	ttl     time.Duration
	now     func() time.Time
	parser  *jwt.Parser
	keyFunc jwt.Keyfunc // t.lookupKey, bound once so Parse does not allocate a closure
}

// NewTokens returns a token issuer and verifier with one HS256 key whose
// kid is KeyID(key). now may be nil (time.Now).
func NewTokens(key []byte, issuer string, ttl time.Duration, now func() time.Time) (*Tokens, error) {
	if len(key) < keyBytes {
		return nil, fmt.Errorf("signing key is %d bytes, need at least %d", len(key), keyBytes)
	}
	return newTokens(store.AlgHS256, []store.SigningKey{{KID: KeyID(key), Alg: store.AlgHS256, Private: key}}, issuer, ttl, now)
}

// NewTokensFromKeys returns a token issuer and verifier with the store's
// signing keys: it signs with the newest key of alg and verifies with all
// of them. A Service keeps its key set in step with the store (keys added
// and retired by `authlined keys` or another instance). now may be nil.
func NewTokensFromKeys(alg string, keys []store.SigningKey, issuer string, ttl time.Duration, now func() time.Time) (*Tokens, error) {
	t, err := newTokens(alg, keys, issuer, ttl, now)
	if err != nil {
		return nil, err
	}
	t.synced = true
	return t, nil
}

func newTokens(alg string, keys []store.SigningKey, issuer string, ttl time.Duration, now func() time.Time) (*Tokens, error) {
	if !store.ValidAlg(alg) {
		return nil, fmt.Errorf("token alg must be %s or %s, not %q", store.AlgHS256, store.AlgEdDSA, alg)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("token TTL must be positive, got %v", ttl)
	}
	if issuer == "" {
		issuer = DefaultIssuer
	}
	if now == nil {
		now = time.Now
	}
	t := &Tokens{
		alg:    alg,
		issuer: issuer,
		ttl:    ttl,
		now:    now,
		// The parser pins the algorithms (golang-jwt otherwise trusts the
		// header's alg; lookupKey then requires the named key's own alg)
		// and refuses non-canonical base64 (so a token has one spelling
		// only). Parse validates the claims itself: golang-jwt would apply
		// one leeway to exp as well as to iat and nbf, and report an
		// expired token that also fails another claim check as expired
		// (its errors are joined, and ErrTokenExpired matches).
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg(), jwt.SigningMethodEdDSA.Alg()}),
			jwt.WithStrictDecoding(),
			jwt.WithoutClaimsValidation(),
		),
	}
	if err := t.SetKeys(keys); err != nil {
		return nil, err
	}
	t.keyFunc = t.lookupKey
	return t, nil
}

// SetKeys replaces the key set at once: tokens of keys not in keys stop
// verifying, and the newest key of the Tokens' alg signs from now on. keys
// must hold one of that alg; on error the set is left as it was.
func (t *Tokens) SetKeys(keys []store.SigningKey) error {
	set, err := newKeySet(t.alg, keys)
	if err != nil {
		return err
	}
	t.set.Store(set)
	return nil
}

// TTL is the lifetime of issued tokens.
func (t *Tokens) TTL() time.Duration { return t.ttl }

// Alg is the algorithm of new tokens.
func (t *Tokens) Alg() string { return t.alg }

// KeyID is the kid of the key that signs new tokens.
func (t *Tokens) KeyID() string { return t.set.Load().current.kid }

// JWKS returns the public keys of the current set (EdDSA keys only); the
// value is shared and must not be changed.
func (t *Tokens) JWKS() *protocol.JWKSData { return t.set.Load().jwks }

// Issue signs a token for the user at their current generation.
func (t *Tokens) Issue(username, role string, gen int64) (string, *Claims, error) {
	return t.IssueForLogin(username, role, gen, "")
}

// IssueForLogin signs a token that also names its login's refresh-token
// family (fam).
func (t *Tokens) IssueForLogin(username, role string, gen int64, family string) (string, *Claims, error) {
	now := t.now().Truncate(time.Second)
	jti, err := randomID()
	if err != nil {
		return "", nil, err
	}
	claims := &Claims{
		Role: role,
		Gen:  gen,
		Fam:  family,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.issuer,
			Subject:   username,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
			ID:        jti,
		},
	}
	k := t.set.Load().current
	tok := jwt.NewWithClaims(k.method, claims) // header: alg, typ "JWT"
	tok.Header["kid"] = k.kid
	signed, err := tok.SignedString(k.sign)
	if err != nil {
		return "", nil, fmt.Errorf("sign token: %w", err)
	}
	return signed, claims, nil
}

// lookupKey is the parser's keyfunc: it runs after the alg check and
// before the signature check, so a token with a header we refuse is never
// verified with any key.
func (t *Tokens) lookupKey(tok *jwt.Token) (any, error) {
	h := tok.Header
	for _, name := range forbiddenHeaders {
		if _, ok := h[name]; ok {
			return nil, errHeaderForbidden
		}
	}
	if typ, ok := h["typ"]; ok {
		if s, _ := typ.(string); s != "JWT" {
			return nil, errHeaderTyp
		}
	}
	kid, _ := h["kid"].(string)
	k := t.set.Load().byKID[kid]
	if k == nil {
		return nil, errUnknownKID
	}
	// Each key verifies its own alg only: an HS256 token under an Ed25519
	// key's kid (whose public key is no secret: HMAC with it as the
	// secret is the classic algorithm confusion) or the reverse is
	// refused before any signature check.
	if tok.Method.Alg() != k.alg {
		return nil, errAlgMismatch
	}
	return k.verify, nil
}

// Parse verifies a token and returns its claims. Errors are
// *protocol.Error: token_expired only for a token whose signature, header
// and other claims are all good, invalid_token for everything else.
//
// The returned claims may be shared with other callers: do not modify them.
func (t *Tokens) Parse(token string) (*Claims, error) {
	if len(token) > MaxTokenBytes {
		return nil, protocol.Errorf(protocol.CodeInvalidToken, "token is too long")
	}
	set := t.set.Load()
	if c := set.verified.get(token); c != nil {
		if !t.now().Before(c.ExpiresAt.Time) {
			return nil, protocol.Wrap(protocol.CodeTokenExpired, "token expired", jwt.ErrTokenExpired)
		}
		return c, nil
	}
	// encoding/base64 skips '\r' and '\n', so "sig\nnature" would decode
	// like "signature"; a token has one spelling only.
	if !tokenChars(token) {
		return nil, invalidToken(errTokenChars)
	}
	var wc wireClaims
	if _, err := t.parser.ParseWithClaims(token, &wc, t.keyFunc); err != nil {
		return nil, invalidToken(err)
	}
	// The signature is good: from here on the claims are ours, unless the
	// key leaked. Expiry is checked last so that token_expired means
	// "authentic and otherwise valid" (CVE-2024-51744).
	if wc.Issuer == "" || wc.Subject == "" || wc.ID == "" || !wc.IssuedAt.set || !wc.ExpiresAt.set {
		return nil, invalidToken(errClaimMissing)
	}
	if wc.Issuer != t.issuer {
		return nil, invalidToken(errIssuer)
	}
	iat, exp := wc.IssuedAt.t, wc.ExpiresAt.t
	if life := exp.Sub(iat); life <= 0 || life > t.ttl+lifetimeSlack {
		return nil, invalidToken(errLifetime)
	}
	now := t.now()
	horizon := now.Add(clockSkew)
	if iat.After(horizon) {
		return nil, invalidToken(errIssuedInFuture)
	}
	if wc.NotBefore.set && wc.NotBefore.t.After(horizon) {
		return nil, invalidToken(errNotYetValid)
	}
	if !now.Before(exp) {
		return nil, protocol.Wrap(protocol.CodeTokenExpired, "token expired", jwt.ErrTokenExpired)
	}
	claims := wc.claims()
	set.verified.put(token, claims, now)
	return claims, nil
}

func invalidToken(err error) *protocol.Error {
	return protocol.Wrap(protocol.CodeInvalidToken, "invalid token", err)
}

// tokenChars reports whether s is made of base64url characters and dots.
func tokenChars(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// wireClaims is what Parse decodes a token's payload into. It differs
// from Claims in its dates, which must be JSON numbers: golang-jwt's
// NumericDate also takes a string such as "1700000000".
type wireClaims struct {
	Role      string           `json:"role"`
	Gen       int64            `json:"gen"`
	Fam       string           `json:"fam"`
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  jwt.ClaimStrings `json:"aud"`
	ExpiresAt numericDate      `json:"exp"`
	NotBefore numericDate      `json:"nbf"`
	IssuedAt  numericDate      `json:"iat"`
	ID        string           `json:"jti"`
}

func (c *wireClaims) claims() *Claims {
	return &Claims{
		Role: c.Role,
		Gen:  c.Gen,
		Fam:  c.Fam,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    c.Issuer,
			Subject:   c.Subject,
			Audience:  c.Audience,
			ExpiresAt: c.ExpiresAt.numeric(),
			NotBefore: c.NotBefore.numeric(),
			IssuedAt:  c.IssuedAt.numeric(),
			ID:        c.ID,
		},
	}
}

// wireClaims implements jwt.Claims, which ParseWithClaims requires; with
// WithoutClaimsValidation the parser does not call these.
var _ jwt.Claims = (*wireClaims)(nil)

func (c *wireClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt.numeric(), nil }
func (c *wireClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.IssuedAt.numeric(), nil }
func (c *wireClaims) GetNotBefore() (*jwt.NumericDate, error)      { return c.NotBefore.numeric(), nil }
func (c *wireClaims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *wireClaims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c *wireClaims) GetAudience() (jwt.ClaimStrings, error)       { return c.Audience, nil }

// numericDate is an RFC 7519 NumericDate: a JSON number of seconds since
// the epoch, here between 0 and maxNumericDate. null counts as absent.
type numericDate struct {
	set bool
	t   time.Time
}

func (d *numericDate) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*d = numericDate{}
		return nil
	}
	// encoding/json hands over one valid JSON value; of those, ParseFloat
	// accepts numbers only.
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f < 0 || f > maxNumericDate {
		return errBadNumericDate
	}
	sec, frac := math.Modf(f)
	*d = numericDate{set: true, t: time.Unix(int64(sec), int64(frac*1e9)).Truncate(jwt.TimePrecision)}
	return nil
}

func (d numericDate) numeric() *jwt.NumericDate {
	if !d.set {
		return nil
	}
	return jwt.NewNumericDate(d.t)
}

func randomID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("token id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// maxKeyFile bounds how much of a key file is read; a key is 43 characters.
const maxKeyFile = 4096

// LoadOrCreateKey reads the signing key from path, or generates a random
// one and writes it there with mode 0600 if the file does not exist. A key
// file that others can read is refused, as ssh refuses such private keys.
func LoadOrCreateKey(path string) ([]byte, error) {
	// Normally one round: the file exists, or it does not and is created.
	// Another round when another process created it meanwhile; bounded,
	// because a dangling symbolic link is both "not there" to open and
	// "there" to create.
	for range 3 {
		key, err := loadKey(path)
		if !errors.Is(err, fs.ErrNotExist) {
			return key, err
		}
		key, err = createKey(path)
		if !errors.Is(err, fs.ErrExist) {
			return key, err
		}
	}
	return nil, fmt.Errorf("key file %s exists but cannot be opened (a dangling symbolic link?)", path)
}

// LoadKeyFile reads an existing key file with the checks of
// LoadOrCreateKey, but never creates one: the error wraps fs.ErrNotExist
// if there is none.
func LoadKeyFile(path string) ([]byte, error) { return loadKey(path) }

// loadKey reads and checks the key file; the error wraps fs.ErrNotExist
// if there is none.
func loadKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	defer f.Close()
	// Check the mode of the file that is read, not of the path again.
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat key file: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %v: it must not be readable by others (chmod 600 %s)", path, info.Mode().Perm(), path)
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %v", path, err) // %v: not an fs.ErrNotExist
	}
	if len(raw) > maxKeyFile {
		return nil, fmt.Errorf("key file %s: longer than %d bytes, not a key", path, maxKeyFile)
	}
	key, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("key file %s: not a base64url key: %w", path, err)
	}
	if len(key) < keyBytes {
		return nil, fmt.Errorf("key file %s: key is %d bytes, need at least %d", path, len(key), keyBytes)
	}
	return key, nil
}

// createKey generates a key, writes it to a temporary file and hard-links
// that to path. The key file thus appears complete or not at all, and,
// unlike a rename, the link never replaces a key file that another process
// created meanwhile; then the error wraps fs.ErrExist and the caller loads
// that key. (Creating path with O_EXCL and then writing it, as before, let
// a second process read the file while it was still empty, and fail.)
func createKey(path string) ([]byte, error) {
	key := make([]byte, keyBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	data := base64.RawURLEncoding.EncodeToString(key) + "\n"
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".new-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("create key file: %v", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("write key file: %v", err)
	}
	err = os.Link(tmp.Name(), path)
	switch {
	case err == nil:
		return key, nil
	case errors.Is(err, fs.ErrExist):
		return nil, err
	default:
		// A file system without hard links: create path exclusively and
		// then write it, with the window described above.
		return createKeyExclusive(path, key, data)
	}
}

func createKeyExclusive(path string, key []byte, data string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("create key file: %v", err)
	}
	_, err = f.WriteString(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("write key file: %v", err)
	}
	return key, nil
}
