package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server"
	"github.com/authline/authline/server/store"
)

// refreshBytes is the entropy of a refresh token: 256 bits.
const refreshBytes = 32

// NewGeneration returns the starting generation of a new account: random,
// so that the tokens of a deleted account never match a new account that
// takes the same name.
func NewGeneration() int64 {
	var b [8]byte
	rand.Read(b[:])
	return int64(binary.BigEndian.Uint64(b[:])>>11) + 1 // 1 .. 2^53, exact in JSON numbers
}

// newRefreshToken returns an opaque refresh token and the hash under
// which it is stored; the token itself is never stored.
func newRefreshToken() (string, []byte, error) {
	b := make([]byte, refreshBytes)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("refresh token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	return tok, hashRefresh(tok), nil
}

func hashRefresh(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

var (
	errRefreshInvalid = protocol.Errorf(protocol.CodeInvalidToken, "refresh token is invalid or expired")
	errRefreshReused  = protocol.Errorf(protocol.CodeInvalidToken, "refresh token was already used: every refresh token of this login has been revoked")
)

// Refresh implements server.Backend, with rotation: the presented token
// is retired and a new one of the same family issued. A retired token
// presented again means it was stolen (or the client lost its answer):
// the whole family is revoked.
func (s *Service) Refresh(ctx context.Context, _ server.Peer, refreshToken string) (server.Identity, server.IssuedToken, error) {
	if len(refreshToken) > 256 {
		return server.Identity{}, server.IssuedToken{}, errRefreshInvalid
	}
	rt, err := s.store.UseRefreshToken(ctx, hashRefresh(refreshToken), s.now())
	switch {
	case errors.Is(err, store.ErrReused):
		if err := s.store.RevokeRefreshFamily(ctx, rt.Family); err != nil {
			return server.Identity{}, server.IssuedToken{}, storeError(err)
		}
		return server.Identity{Username: rt.Username}, server.IssuedToken{}, errRefreshReused
	case errors.Is(err, store.ErrNotFound):
		return server.Identity{}, server.IssuedToken{}, errRefreshInvalid
	case err != nil:
		return server.Identity{}, server.IssuedToken{}, storeError(err)
	}
	u, err := s.cache.user(ctx, s.store, rt.Username)
	if err != nil && !isNotFound(err) {
		return server.Identity{}, server.IssuedToken{}, storeError(err)
	}
	if err != nil || u.Disabled || u.Gen != rt.Generation {
		// The login is over (user deleted, disabled, or their tokens
		// ended): drop its whole family, so that a later try with this
		// token is "invalid", not taken for a theft.
		if err := s.store.RevokeRefreshFamily(ctx, rt.Family); err != nil {
			return server.Identity{}, server.IssuedToken{}, storeError(err)
		}
		return server.Identity{}, server.IssuedToken{}, errRefreshInvalid
	}
	id := server.Identity{Username: u.Username, Role: u.Role, Auth: protocol.AuthToken, Gen: u.Gen}
	issued, err := s.issue(ctx, id, rt.Family)
	return id, issued, err
}

// CheckSession implements server.Backend.
func (s *Service) CheckSession(ctx context.Context, id server.Identity) (server.Identity, error) {
	u, err := s.cache.user(ctx, s.store, id.Username)
	switch {
	case isNotFound(err):
		return id, &server.SessionEndedError{Reason: protocol.SessionEndedDeleted}
	case err != nil:
		return id, storeError(err)
	case u.Disabled:
		return id, &server.SessionEndedError{Reason: protocol.SessionEndedDisabled}
	case u.Gen != id.Gen:
		reason := s.cache.reason(id.Username)
		if reason == "" || reason == "role_changed" || reason == "enabled" {
			reason = protocol.SessionEndedRevoked
		}
		return id, &server.SessionEndedError{Reason: reason}
	}
	id.Role = u.Role
	return id, nil
}

// Passwd implements server.Backend. The old password is checked like a
// LOGIN (throttled, counted on failure), the new one like a REGISTER.
func (s *Service) Passwd(ctx context.Context, peer server.Peer, id server.Identity, oldPassword, newPassword string) (server.Identity, error) {
	ip := peer.Addr.Addr()
	if _, err := s.checkThrottle(ctx, id.Username, ip); err != nil {
		return id, err
	}
	newPW, err := NormalizePassword(newPassword)
	if err != nil {
		return id, err
	}
	if err := CheckPasswordPolicy(id.Username, string(newPW)); err != nil {
		return id, err
	}
	user, err := s.store.GetUser(ctx, id.Username)
	if err != nil {
		return id, storeError(err)
	}
	oldPW := []byte(normalizeForCompare(oldPassword))
	var match bool
	var hash []byte
	var hashErr error
	if err := s.hashing.do(ctx, func() {
		if match = bcrypt.CompareHashAndPassword(user.PasswordHash, oldPW) == nil; match {
			hash, hashErr = bcrypt.GenerateFromPassword(newPW, s.cost)
		}
	}); err != nil {
		return id, err
	}
	if !match {
		if err := s.recordFailure(ctx, id.Username, ip); err != nil {
			return id, err
		}
		return id, protocol.Errorf(protocol.CodeInvalidCredentials, "the old password is wrong")
	}
	if hashErr != nil {
		return id, fmt.Errorf("bcrypt: %w", hashErr)
	}
	gen, err := s.store.ChangePassword(ctx, id.Username, hash)
	if err != nil {
		return id, storeError(err)
	}
	s.changed(id.Username, protocol.SessionEndedPasswordChanged)
	id.Gen = gen
	return id, nil
}

// normalizeForCompare is the LOGIN-side normalisation: NFKC, no length
// rule (a too long old password simply does not match).
func normalizeForCompare(p string) string {
	pw, err := NormalizePassword(p)
	if err != nil {
		return p
	}
	return string(pw)
}

// LogoutAll implements server.Backend.
func (s *Service) LogoutAll(ctx context.Context, id server.Identity) error {
	if _, err := s.store.BumpGeneration(ctx, id.Username, protocol.SessionEndedLogoutAll); err != nil {
		return storeError(err)
	}
	s.changed(id.Username, protocol.SessionEndedLogoutAll)
	return nil
}

// WatchUsers implements server.Backend.
func (s *Service) WatchUsers(fn func(username string)) {
	s.watchMu.Lock()
	s.watchers = append(s.watchers, fn)
	s.watchMu.Unlock()
}

// changed applies a user change made here at once: drop the cached state
// and tell the watchers. The change feed brings the same change back
// later; applying it twice is harmless.
func (s *Service) changed(username, reason string) {
	s.cache.invalidate(username, reason)
	s.watchMu.RLock()
	defer s.watchMu.RUnlock()
	for _, fn := range s.watchers {
		fn(username)
	}
}

// Sync applies the store's change feed since the last call: changes made
// by other instances or by `authlined user` and `authlined keys` on the
// same store. Key changes reload the token key set (once per Sync).
func (s *Service) Sync(ctx context.Context) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	for {
		changes, err := s.store.Changes(ctx, s.seq, 1000)
		if err != nil {
			return err
		}
		for _, c := range changes {
			switch c.Kind {
			case store.ChangeUser:
				s.changed(c.Username, c.Reason)
			case store.ChangeRevoke:
				s.cache.revoke(c.JTI, c.Expires)
			case store.ChangeKeys:
				s.keysStale = true
			}
			s.seq = c.Seq
		}
		if len(changes) < 1000 {
			break
		}
	}
	if s.keysStale && s.tokens.synced {
		// Once for any number of key changes; retried at the next Sync
		// if it fails.
		if err := s.reloadKeys(ctx); err != nil {
			return err
		}
	}
	s.keysStale = false
	return nil
}

// Run follows the change feed until ctx ends. A failing store is retried
// at the same pace; meanwhile the cache keeps serving what it knows.
//
// If the store can tell when the feed grows (store.ChangeNotifier, as the
// PostgreSQL store does with LISTEN/NOTIFY), Run also reads the feed as
// soon as it is told, so that changes made by other processes apply
// within moments instead of within the sync interval. The interval's poll
// stays, as the fallback for notices lost with their connection. Notices
// that come while a Sync runs fold into one more Sync. While waiting for
// notices fails (say, the database is down), Run polls only, and tries
// again after a pause that doubles from 1s up to 10s. Run returns once the
// goroutine that waits has ended.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.syncInterval)
	defer t.Stop()
	var wake chan struct{} // stays nil, never ready, without notices
	if n, ok := s.store.(store.ChangeNotifier); ok {
		wake = make(chan struct{}, 1)
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		defer func() {
			cancel()
			<-done
		}()
		go func() {
			defer close(done)
			const minPause, maxPause = time.Second, 10 * time.Second
			pause, failing := minPause, false
			for {
				err := n.WaitForChange(ctx)
				if ctx.Err() != nil {
					return
				}
				if err == nil {
					if failing {
						s.log.Info("store change notices work again")
						failing = false
					}
					pause = minPause
					select {
					case wake <- struct{}{}:
					default: // a Sync is due already; it reads this change too
					}
					continue
				}
				if !failing {
					s.log.Warn("cannot wait for store change notices; polling the change feed only until they work again",
						"err", err, "sync_interval", s.syncInterval)
					failing = true
				}
				timer := time.NewTimer(pause)
				select {
				case <-ctx.Done():
					timer.Stop()
					return
				case <-timer.C:
				}
				pause = min(2*pause, maxPause)
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Sync(ctx)
		case <-wake:
			s.Sync(ctx)
			// The feed was just read: the next poll is due an interval
			// from now.
			t.Reset(s.syncInterval)
		}
	}
}
