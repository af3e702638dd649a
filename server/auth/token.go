package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
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

// Claims are the claims of an authline access token.
type Claims struct {
	Role string `json:"role"`
	jwt.RegisteredClaims
}

// Tokens issues and verifies HS256 JWTs with one secret key.
type Tokens struct {
	key    []byte
	issuer string
	ttl    time.Duration
	now    func() time.Time
	parser *jwt.Parser
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
	return &Tokens{
		key:    key,
		issuer: issuer,
		ttl:    ttl,
		now:    now,
		// golang-jwt accepts a token without exp and trusts the header's
		// alg unless told otherwise: pin both, and the issuer.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuer(issuer),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(now),
		),
	}, nil
}

// TTL is the lifetime of issued tokens.
func (t *Tokens) TTL() time.Duration { return t.ttl }

// Issue signs a token for the user.
func (t *Tokens) Issue(username, role string) (string, *Claims, error) {
	now := t.now().Truncate(time.Second)
	jti, err := randomID()
	if err != nil {
		return "", nil, err
	}
	claims := &Claims{
		Role: role,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.issuer,
			Subject:   username,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
			ID:        jti,
		},
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.key)
	if err != nil {
		return "", nil, fmt.Errorf("sign token: %w", err)
	}
	return signed, claims, nil
}

// Parse verifies a token and returns its claims. Errors are
// *protocol.Error: token_expired only for a token whose signature and other
// claims are good, invalid_token for everything else.
func (t *Tokens) Parse(token string) (*Claims, error) {
	if len(token) > MaxTokenBytes {
		return nil, protocol.Errorf(protocol.CodeInvalidToken, "token is too long")
	}
	var claims Claims
	_, err := t.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return t.key, nil })
	if err != nil {
		// golang-jwt v5 verifies the signature before any claim, so an
		// expired error here comes from a token we signed ourselves.
		if errors.Is(err, jwt.ErrTokenExpired) && !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
			return nil, protocol.Wrap(protocol.CodeTokenExpired, "token expired", err)
		}
		return nil, protocol.Wrap(protocol.CodeInvalidToken, "invalid token", err)
	}
	if claims.Subject == "" || claims.ID == "" || claims.IssuedAt == nil {
		return nil, protocol.Errorf(protocol.CodeInvalidToken, "invalid token")
	}
	return &claims, nil
}

func randomID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("token id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// LoadOrCreateKey reads the signing key from path, or generates a random
// one and writes it there with mode 0600 if the file does not exist. A key
// file that others can read is refused, as ssh refuses such private keys.
func LoadOrCreateKey(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("stat key file: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %v: it must not be readable by others (chmod 600 %s)", path, info.Mode().Perm(), path)
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

func createKey(path string) ([]byte, error) {
	key := make([]byte, keyBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	// O_EXCL: two processes starting at once must not overwrite each
	// other's key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadOrCreateKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("create key file: %w", err)
	}
	_, err = f.WriteString(base64.RawURLEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("write key file: %w", err)
	}
	return key, nil
}
