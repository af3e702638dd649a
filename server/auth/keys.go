package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server/store"
)

// Signing keys live in the store, so that every instance on it signs with
// the same key and verifies the same set. Adding or retiring one writes a
// change to the store's change feed, and every Service reloads its key set
// when it reads that change: a rotation needs no restart.

// ErrLastSigningKey refuses to retire the only key left that can sign
// new tokens with the configured algorithm.
var ErrLastSigningKey = errors.New("the last key that signs new tokens cannot be retired; run `authlined keys rotate` first")

// ParseAlg returns the canonical name of a token algorithm given on the
// command line: HS256 or EdDSA, in any letter case.
func ParseAlg(s string) (string, error) {
	for _, alg := range []string{store.AlgHS256, store.AlgEdDSA} {
		if strings.EqualFold(s, alg) {
			return alg, nil
		}
	}
	return "", fmt.Errorf("token algorithm must be %s or %s, not %q", store.AlgHS256, store.AlgEdDSA, s)
}

// GenerateSigningKey returns a new random key of alg created at now: a
// 256-bit HS256 secret, or an Ed25519 key pair. Its kid is KeyID of the
// secret, or of the Ed25519 public key; it starts with a letter or a
// digit (a key whose kid would start with '-' or '_' is drawn again), so
// that it never reads as a flag on a command line.
func GenerateSigningKey(alg string, now time.Time) (store.SigningKey, error) {
	for {
		k, err := generateKey(alg, now)
		if err != nil || plainKID(k.KID) {
			return k, err
		}
	}
}

func plainKID(kid string) bool {
	return kid != "" && kid[0] != '-' && kid[0] != '_'
}

func generateKey(alg string, now time.Time) (store.SigningKey, error) {
	switch alg {
	case store.AlgHS256:
		secret := make([]byte, keyBytes)
		if _, err := rand.Read(secret); err != nil {
			return store.SigningKey{}, fmt.Errorf("generate key: %w", err)
		}
		return store.SigningKey{KID: KeyID(secret), Alg: alg, Private: secret, CreatedAt: now}, nil
	case store.AlgEdDSA:
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return store.SigningKey{}, fmt.Errorf("generate key: %w", err)
		}
		return store.SigningKey{KID: KeyID(pub), Alg: alg, Private: priv, Public: pub, CreatedAt: now}, nil
	}
	return store.SigningKey{}, fmt.Errorf("generate key: unknown alg %q", alg)
}

// PrepareSigningKeys makes sure the store holds a key that signs with
// alg and returns the store's keys, for NewTokensFromKeys. A store with no
// key at all first gets legacy, when not nil: the HS256 secret of the key
// file that signed tokens before keys lived in the store, under its old
// kid (KeyID(legacy)), so those tokens keep verifying. If no key of alg is
// left after that, a new one is generated. log may be nil.
func PrepareSigningKeys(ctx context.Context, st store.Store, alg string, legacy []byte, log *slog.Logger) ([]store.SigningKey, error) {
	log = orDiscard(log)
	if legacy != nil {
		if err := ImportKeyFileKey(ctx, st, legacy, log); err != nil {
			return nil, err
		}
	}
	keys, _, err := ensureSigningKey(ctx, st, alg, time.Now(), log)
	return keys, err
}

// ImportKeyFileKey adds the key file's HS256 secret to a store that has
// no active key at all, under kid KeyID(secret); a store with keys is left
// alone. Anything that adds the first key to the store must call it
// first, or the tokens signed with the key file would stop verifying.
// log may be nil.
func ImportKeyFileKey(ctx context.Context, st store.Store, secret []byte, log *slog.Logger) error {
	keys, err := st.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("read signing keys: %w", err)
	}
	if len(keys) > 0 {
		return nil
	}
	if len(secret) < keyBytes {
		return fmt.Errorf("key file key is %d bytes, need at least %d", len(secret), keyBytes)
	}
	k := store.SigningKey{KID: KeyID(secret), Alg: store.AlgHS256, Private: secret, CreatedAt: time.Now()}
	// ErrConflict: another instance imported it meanwhile, or it was
	// imported before and retired since (then it stays retired).
	switch err := st.AddSigningKey(ctx, k); {
	case err == nil:
		orDiscard(log).Info("imported the key file's key into the store", "kid", k.KID, "alg", k.Alg)
	case !errors.Is(err, store.ErrConflict):
		return fmt.Errorf("import the key file's key: %w", err)
	}
	return nil
}

// ensureSigningKey returns the store's keys, after adding a new key of
// alg if there is none (then also returned).
func ensureSigningKey(ctx context.Context, st store.Store, alg string, now time.Time, log *slog.Logger) ([]store.SigningKey, *store.SigningKey, error) {
	keys, err := st.SigningKeys(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("read signing keys: %w", err)
	}
	for _, k := range keys {
		if k.Alg == alg {
			return keys, nil, nil
		}
	}
	k, err := GenerateSigningKey(alg, after(keys, now))
	if err != nil {
		return nil, nil, err
	}
	if err := st.AddSigningKey(ctx, k); err != nil {
		return nil, nil, fmt.Errorf("add signing key: %w", err)
	}
	log.Info("created a signing key: the store had none for this algorithm", "kid", k.KID, "alg", k.Alg)
	// Read again: another instance may have added one too.
	keys, err = st.SigningKeys(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("read signing keys: %w", err)
	}
	return keys, &k, nil
}

// RotateSigningKey adds a new key of alg to the store. It is newer than
// every key there (even if this clock is behind the one that made the
// newest), so it signs new tokens of alg as soon as each server has
// reloaded its keys; the older keys go on verifying until retired.
func RotateSigningKey(ctx context.Context, st store.Store, alg string, now time.Time) (store.SigningKey, error) {
	keys, err := st.SigningKeys(ctx)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("read signing keys: %w", err)
	}
	k, err := GenerateSigningKey(alg, after(keys, now))
	if err != nil {
		return store.SigningKey{}, err
	}
	if err := st.AddSigningKey(ctx, k); err != nil {
		return store.SigningKey{}, fmt.Errorf("add signing key: %w", err)
	}
	return k, nil
}

// after returns now, or a later time that is after the creation of every
// key in keys, to the millisecond as the store keeps it: a new key is the
// newest even when this clock is behind the one that made the others, and
// the store lists keys in the order they were added.
func after(keys []store.SigningKey, now time.Time) time.Time {
	now = now.Truncate(time.Millisecond)
	for _, k := range keys {
		if !now.After(k.CreatedAt) {
			now = k.CreatedAt.Add(time.Millisecond)
		}
	}
	return now
}

// RetireSigningKey retires the key kid: from the next reload on, tokens
// it signed are refused. It refuses (ErrLastSigningKey) to retire the last
// key of alg, the algorithm that signs new tokens, and answers
// store.ErrNotFound for a kid that is not an active key.
func RetireSigningKey(ctx context.Context, st store.Store, kid, alg string, now time.Time) error {
	keys, err := st.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("read signing keys: %w", err)
	}
	var key *store.SigningKey
	same := 0
	for i, k := range keys {
		if k.KID == kid {
			key = &keys[i]
		}
		if k.Alg == alg {
			same++
		}
	}
	if key == nil {
		return fmt.Errorf("no active signing key %s: %w", kid, store.ErrNotFound)
	}
	if key.Alg == alg && same == 1 {
		return fmt.Errorf("refusing to retire %s, the only %s key: %w", kid, alg, ErrLastSigningKey)
	}
	if err := st.RetireSigningKey(ctx, kid, now); err != nil {
		return fmt.Errorf("retire signing key %s: %w", kid, err)
	}
	return nil
}

// JWKS returns the JSON Web Key Set of the EdDSA keys among keys, in
// their order: the public keys that verify authline's EdDSA tokens. HS256
// keys are secrets and never appear.
func JWKS(keys []store.SigningKey) *protocol.JWKSData {
	d := &protocol.JWKSData{Keys: []protocol.JWK{}}
	for _, k := range keys {
		if k.Alg != store.AlgEdDSA {
			continue
		}
		d.Keys = append(d.Keys, protocol.JWK{
			Kty: "OKP",
			Crv: "Ed25519",
			X:   base64.RawURLEncoding.EncodeToString(k.Public),
			Kid: k.KID,
			Alg: store.AlgEdDSA,
			Use: "sig",
		})
	}
	return d
}

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

// reloadKeys replaces the token key set with the store's keys. Should
// the store hold no key of the signing algorithm any more (every one was
// retired, say by two `authlined keys retire` at once), it adds one
// rather than sign with a retired key.
func (s *Service) reloadKeys(ctx context.Context) error {
	before := s.tokens.KeyID()
	keys, _, err := ensureSigningKey(ctx, s.store, s.tokens.Alg(), s.now(), s.log)
	if err != nil {
		s.log.Error("reloading the signing keys failed; the old ones stay in use", "err", err)
		return err
	}
	if err := s.tokens.SetKeys(keys); err != nil {
		s.log.Error("the store's signing keys are unusable; the old ones stay in use", "err", err)
		return fmt.Errorf("signing keys: %w", err)
	}
	if cur := s.tokens.KeyID(); cur != before {
		s.log.Info("signing key changed", "kid", cur, "alg", s.tokens.Alg(), "keys", len(keys))
	} else {
		s.log.Debug("signing keys reloaded", "kid", cur, "alg", s.tokens.Alg(), "keys", len(keys))
	}
	return nil
}

// keyRefreshInterval bounds how often tokens with an unknown kid make
// VerifyToken read the change feed at once.
const keyRefreshInterval = time.Second

// refreshKeys applies the change feed now, for a token whose kid is not
// in the key set: it may have been signed by another instance with a key
// added since the last Sync. At most once per keyRefreshInterval, so that
// tokens with made-up kids cannot make every request read the store. It
// reports whether it ran and succeeded.
func (s *Service) refreshKeys(ctx context.Context) bool {
	if !s.tokens.synced {
		return false
	}
	now := time.Now().UnixNano()
	last := s.lastKeyRefresh.Load()
	if now-last < int64(keyRefreshInterval) || !s.lastKeyRefresh.CompareAndSwap(last, now) {
		return false
	}
	return s.Sync(ctx) == nil
}

// JWKS implements server.Backend: the public keys of the current key set,
// from memory.
func (s *Service) JWKS(context.Context) (protocol.Data, error) {
	return s.tokens.JWKS(), nil
}

var errNotSynced = errors.New("auth: the token keys do not come from the store (NewTokensFromKeys)")

// RotateKey adds a new signing key of the configured algorithm to the
// store and starts signing with it here at once; other instances follow
// within their sync interval.
func (s *Service) RotateKey(ctx context.Context) (store.SigningKey, error) {
	if !s.tokens.synced {
		return store.SigningKey{}, errNotSynced
	}
	k, err := RotateSigningKey(ctx, s.store, s.tokens.Alg(), s.now())
	if err != nil {
		return store.SigningKey{}, err
	}
	return k, s.Sync(ctx)
}

// RetireKey retires a signing key (see RetireSigningKey); here its tokens
// are refused at once, elsewhere within the sync interval.
func (s *Service) RetireKey(ctx context.Context, kid string) error {
	if !s.tokens.synced {
		return errNotSynced
	}
	if err := RetireSigningKey(ctx, s.store, kid, s.tokens.Alg(), s.now()); err != nil {
		return err
	}
	return s.Sync(ctx)
}
