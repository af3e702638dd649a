package auth

import (
	"bytes"
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
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authline/authline/protocol"
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
	jwt.RegisteredClaims
}

// hmacKey is one HS256 secret and its key id.
type hmacKey struct {
	kid    string
	secret []byte
	// verify is secret as the keyfunc returns it, boxed once so that
	// looking a key up does not allocate.
	verify any
}

func newHMACKey(secret []byte) *hmacKey {
	s := bytes.Clone(secret)
	return &hmacKey{kid: KeyID(s), secret: s, verify: s}
}

// KeyID is the kid header of tokens signed with key: the first 12 bytes of
// the key's SHA-256, base64url (16 characters). It is stable across
// restarts and changes with the key, and reveals nothing usable about a
// 256-bit random key.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// Tokens issues and verifies HS256 JWTs. Tokens are signed with the
// current key and verified with the key their kid header names. There is
// one key for now; keys is a map so that rotation can add the previous
// keys as verify-only entries.
type Tokens struct {
	current *hmacKey
	keys    map[string]*hmacKey // kid → key, every key that verifies
	issuer  string
	ttl     time.Duration
	now     func() time.Time
	parser  *jwt.Parser
	keyFunc jwt.Keyfunc // t.lookupKey, bound once so Parse does not allocate a closure
}

// NewTokens returns a token issuer and verifier. now may be nil
// (time.Now).
func NewTokens(key []byte, issuer string, ttl time.Duration, now func() time.Time) (*Tokens, error) {
	if len(key) < keyBytes {
		return nil, fmt.Errorf("signing key is %d bytes, need at least %d", len(key), keyBytes)
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
	k := newHMACKey(key)
	t := &Tokens{
		current: k,
		keys:    map[string]*hmacKey{k.kid: k},
		issuer:  issuer,
		ttl:     ttl,
		now:     now,
		// The parser pins the algorithm (golang-jwt otherwise trusts the
		// header's alg) and refuses non-canonical base64 (so a token has
		// one spelling only). Parse validates the claims itself: golang-jwt
		// would apply one leeway to exp as well as to iat and nbf, and
		// report an expired token that also fails another claim check as
		// expired (its errors are joined, and ErrTokenExpired matches).
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithStrictDecoding(),
			jwt.WithoutClaimsValidation(),
		),
	}
	t.keyFunc = t.lookupKey
	return t, nil
}

// TTL is the lifetime of issued tokens.
func (t *Tokens) TTL() time.Duration { return t.ttl }

// KeyID is the kid of the key that signs new tokens.
func (t *Tokens) KeyID() string { return t.current.kid }

// Issue signs a token for the user at their current generation.
func (t *Tokens) Issue(username, role string, gen int64) (string, *Claims, error) {
	now := t.now().Truncate(time.Second)
	jti, err := randomID()
	if err != nil {
		return "", nil, err
	}
	claims := &Claims{
		Role: role,
		Gen:  gen,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.issuer,
			Subject:   username,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
			ID:        jti,
		},
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims) // header: alg, typ "JWT"
	tok.Header["kid"] = t.current.kid
	signed, err := tok.SignedString(t.current.secret)
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
	k := t.keys[kid]
	if k == nil {
		return nil, errUnknownKID
	}
	return k.verify, nil
}

// Parse verifies a token and returns its claims. Errors are
// *protocol.Error: token_expired only for a token whose signature, header
// and other claims are all good, invalid_token for everything else.
func (t *Tokens) Parse(token string) (*Claims, error) {
	if len(token) > MaxTokenBytes {
		return nil, protocol.Errorf(protocol.CodeInvalidToken, "token is too long")
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
	return wc.claims(), nil
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
