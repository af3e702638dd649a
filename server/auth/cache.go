package auth

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/authline/authline/server/store"
)

// userState is what a request needs to know about its user, cached so
// that token and session checks need no store round-trip.
type userState struct {
	Username string
	Role     string
	Gen      int64
	Disabled bool
}

// cache holds user states and revocation verdicts. It is kept fresh by the
// store's change feed (see Service.Sync): every change drops the user's
// entry or records the revocation, so an entry is never trusted past the
// next change. Missing users are not cached: creating one writes no change.
type cache struct {
	mu      sync.RWMutex
	users   map[string]userState
	version uint64 // bumped by every invalidation, to spot loads that raced one
	// reasons remembers why each user last changed, for session_ended.
	reasons map[string]string
	// revoked: true for a revoked token id, false for one the store said
	// was not revoked (safe to keep: a later revocation arrives through
	// the feed and overwrites it).
	revoked map[string]revocation
}

type revocation struct {
	revoked bool
	expires time.Time
}

// maxCached bounds each map; past it, new entries are not cached (the
// store still answers correctly, just slower).
const maxCached = 1 << 20

func newCache() *cache {
	return &cache{users: map[string]userState{}, reasons: map[string]string{}, revoked: map[string]revocation{}}
}

// user returns the user's state, loading it from the store on a miss.
func (c *cache) user(ctx context.Context, st store.Store, name string) (userState, error) {
	c.mu.RLock()
	u, ok := c.users[name]
	v := c.version
	c.mu.RUnlock()
	if ok {
		return u, nil
	}
	su, err := st.GetUser(ctx, name)
	if err != nil {
		return userState{}, err
	}
	u = stateOf(su)
	c.put(u, v) // unless a change seen while loading is newer than what was read
	return u, nil
}

// put caches a user state just read from the store, unless a change came
// in since version v was read.
func (c *cache) put(u userState, v uint64) {
	c.mu.Lock()
	if c.version == v && len(c.users) < maxCached {
		c.users[u.Username] = u
	}
	c.mu.Unlock()
}

// snapshot returns the version to pass to put for a state about to be read.
func (c *cache) snapshot() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.version
}

// invalidate drops a user's entry after a change.
func (c *cache) invalidate(name, reason string) {
	c.mu.Lock()
	delete(c.users, name)
	c.version++
	if reason != "" {
		if len(c.reasons) >= maxCached {
			clear(c.reasons)
		}
		c.reasons[name] = reason
	}
	c.mu.Unlock()
}

// reason returns why the user last changed, if known.
func (c *cache) reason(name string) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.reasons[name]
}

// isRevoked answers from memory, asking the store on a miss.
func (c *cache) isRevoked(ctx context.Context, st store.Store, jti string, expires time.Time) (bool, error) {
	c.mu.RLock()
	r, ok := c.revoked[jti]
	c.mu.RUnlock()
	if ok {
		return r.revoked, nil
	}
	revoked, err := st.IsRevoked(ctx, jti)
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	if _, raced := c.revoked[jti]; !raced && len(c.revoked) < maxCached {
		c.revoked[jti] = revocation{revoked: revoked, expires: expires}
	}
	c.mu.Unlock()
	return revoked, nil
}

// revoke records a revocation seen locally or in the feed.
func (c *cache) revoke(jti string, expires time.Time) {
	c.mu.Lock()
	c.revoked[jti] = revocation{revoked: true, expires: expires}
	c.mu.Unlock()
}

// purge forgets revocation verdicts of tokens that have expired anyway.
func (c *cache) purge(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for jti, r := range c.revoked {
		if r.expires.Before(now) {
			delete(c.revoked, jti)
		}
	}
}

func stateOf(u store.User) userState {
	return userState{Username: u.Username, Role: u.Role, Gen: u.Generation, Disabled: u.Disabled}
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
