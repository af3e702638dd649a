// Package auth is authlined's application logic: accounts with bcrypt
// passwords, access tokens (JWTs, HS256 or EdDSA, with keys kept in the
// store) with revocation, and the resources that GET serves. Service
// implements server.Backend.
package auth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/text/unicode/norm"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server"
	"github.com/authline/authline/server/store"
)

// DefaultBcryptCost is the bcrypt work factor for new hashes.
const DefaultBcryptCost = 12

// Config configures a Service. Zero values take the defaults.
type Config struct {
	Store      store.Store
	Tokens     *Tokens
	BcryptCost int // DefaultBcryptCost when 0

	Throttle    *ThrottlePolicy // DefaultThrottlePolicy when nil
	IPRateLimit *IPRateLimit    // DefaultIPRateLimit when nil
	// HashWorkers is how many bcrypt hashes run at once (default: the
	// number of CPUs); HashQueue how many more may wait (default 32).
	HashWorkers int
	HashQueue   int
	Now         func() time.Time // time.Now when nil

	// RefreshTTL is the lifetime of refresh tokens (DefaultRefreshTTL).
	RefreshTTL time.Duration
	// SyncInterval is how often Run reads the store's change feed, the
	// longest another process's change can go unnoticed
	// (DefaultSyncInterval).
	SyncInterval time.Duration
	// StoreTimeout bounds every store call (DefaultStoreTimeout; negative:
	// no bound), so a hung database costs a request a 503, not forever.
	StoreTimeout time.Duration

	// Logger records key set changes; nil discards.
	Logger *slog.Logger
	// Observer, if set, is told about LOGIN outcomes, throttling, limits
	// and the hash pool (for metrics; see Observer).
	Observer Observer
}

// Defaults of Config.
const (
	DefaultRefreshTTL   = 7 * 24 * time.Hour
	DefaultSyncInterval = 250 * time.Millisecond
	DefaultStoreTimeout = 2 * time.Second
)

// DefaultHashQueue is how many LOGIN/REGISTER hashes may wait for a worker.
const DefaultHashQueue = 32

// Service implements server.Backend on a store.
type Service struct {
	store    store.Store
	tokens   *Tokens
	cost     int
	throttle ThrottlePolicy
	ipLimit  *ipLimiter
	hashing  *hashPool
	now      func() time.Time
	// dummyHash is compared against when a user does not exist, so that a
	// LOGIN for an unknown user costs the same as a wrong password. It is
	// computed in the background from New on: at cost 12 it takes a
	// quarter of a second, which the server's start need not wait for.
	dummyHash func() []byte

	cache        *cache
	refreshTTL   time.Duration
	syncInterval time.Duration
	syncMu       sync.Mutex // one Sync at a time
	seq          int64      // the last change applied; under syncMu
	// keysStale: a key change was read and the key set not yet reloaded
	// (the reload failed); under syncMu.
	keysStale bool
	// lastKeyRefresh is when a token with an unknown kid last made
	// VerifyToken read the change feed (unix nanoseconds).
	lastKeyRefresh atomic.Int64
	log            *slog.Logger
	obs            Observer // nil: none
	watchMu        sync.RWMutex
	watchers       []func(username string)
}

var _ server.Backend = (*Service)(nil)

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Tokens == nil {
		return nil, errors.New("auth: Store and Tokens are required")
	}
	cost := cfg.BcryptCost
	if cost == 0 {
		cost = DefaultBcryptCost
	}
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("auth: bcrypt cost %d is outside %d..%d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	dummy := sync.OnceValue(func() []byte {
		h, err := bcrypt.GenerateFromPassword([]byte("authline dummy password"), cost)
		if err != nil { // only for a cost out of range, checked above
			panic(fmt.Sprintf("auth: dummy hash: %v", err))
		}
		return h
	})
	go dummy()
	st := cfg.Store
	if d := cmp.Or(cfg.StoreTimeout, DefaultStoreTimeout); d > 0 {
		st = store.WithTimeout(st, d)
	}
	svc := &Service{store: st, tokens: cfg.Tokens, cost: cost, dummyHash: dummy, now: cfg.Now}
	if svc.now == nil {
		svc.now = time.Now
	}
	svc.throttle = DefaultThrottlePolicy
	if cfg.Throttle != nil {
		svc.throttle = *cfg.Throttle
	}
	ipLimit := DefaultIPRateLimit
	if cfg.IPRateLimit != nil {
		ipLimit = *cfg.IPRateLimit
	}
	svc.ipLimit = newIPLimiter(ipLimit)
	workers, queue := cfg.HashWorkers, cfg.HashQueue
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	if queue == 0 {
		queue = DefaultHashQueue
	}
	svc.hashing = newHashPool(workers, max(queue, 0))
	svc.obs, svc.hashing.obs = cfg.Observer, cfg.Observer
	svc.cache = newCache()
	svc.refreshTTL = cmp.Or(cfg.RefreshTTL, DefaultRefreshTTL)
	svc.syncInterval = cmp.Or(cfg.SyncInterval, DefaultSyncInterval)
	svc.log = orDiscard(cfg.Logger)
	// Changes before now are already in the store; follow from here.
	var err error
	if svc.seq, err = st.LatestChange(context.Background()); err != nil {
		return nil, fmt.Errorf("auth: read change feed: %w", err)
	}
	if cfg.Tokens.synced {
		// The keys were read before the feed's position: read them again,
		// so that a change in between is not missed.
		if err := svc.reloadKeys(context.Background()); err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
	}
	return svc, nil
}

// HashQueueLen is how many password hashes are running or waiting.
func (s *Service) HashQueueLen() int { return s.hashing.queued() }

// HashPoolStats returns how many password hashes are running and how many
// wait for a worker (for metrics).
func (s *Service) HashPoolStats() (running, waiting int) { return s.hashing.stats() }

// observeLimit tells the Observer, if any, that a limit refused a request.
func (s *Service) observeLimit(limit string) {
	if s.obs != nil {
		s.obs.LimitHit(limit)
	}
}

// HashPassword normalises and checks a password and returns its bcrypt
// hash at the given cost. Used by REGISTER and by `authlined user add`.
func HashPassword(password string, cost int) ([]byte, error) {
	pw, err := NormalizePassword(password)
	if err != nil {
		return nil, err
	}
	hash, err := bcrypt.GenerateFromPassword(pw, cost)
	if err != nil {
		return nil, fmt.Errorf("bcrypt: %w", err)
	}
	return hash, nil
}

// Register implements server.Backend.
func (s *Service) Register(ctx context.Context, peer server.Peer, username, password string) (server.Identity, error) {
	if ok, wait := s.ipLimit.allow(peer.Addr.Addr(), s.now()); !ok {
		s.observeLimit(LimitIPAuthRate)
		return server.Identity{}, errIPRateLimited(wait)
	}
	name, err := NormalizeUsername(username)
	if err != nil {
		return server.Identity{}, err
	}
	pw, err := NormalizePassword(password)
	if err != nil {
		return server.Identity{}, err
	}
	if err := CheckPasswordPolicy(name, string(pw)); err != nil {
		return server.Identity{}, err
	}
	// Spare the bcrypt work for a name that is taken; CreateUser still
	// settles races between concurrent REGISTERs.
	if _, err := s.store.GetUser(ctx, name); err == nil {
		return server.Identity{}, errConflict
	} else if !errors.Is(err, store.ErrNotFound) {
		return server.Identity{}, storeError(err)
	}
	var hash []byte
	if perr := s.hashing.do(ctx, func() { hash, err = bcrypt.GenerateFromPassword(pw, s.cost) }); perr != nil {
		return server.Identity{}, perr
	}
	if err != nil {
		return server.Identity{}, fmt.Errorf("bcrypt: %w", err)
	}
	u := store.User{Username: name, PasswordHash: hash, Role: store.RoleUser, CreatedAt: time.Now(), Generation: NewGeneration()}
	if err := s.store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return server.Identity{}, errConflict
		}
		return server.Identity{}, storeError(err)
	}
	return server.Identity{Username: name, Role: store.RoleUser}, nil
}

var (
	errConflict           = protocol.Errorf(protocol.CodeConflict, "username is already taken")
	errInvalidCredentials = protocol.Errorf(protocol.CodeInvalidCredentials, "invalid username or password")
)

// Login implements server.Backend. Unknown users, malformed names and
// wrong passwords all answer the same error after the same work: the same
// store reads, a bcrypt compare (against a dummy hash when there is no
// user) and the same failure counting.
func (s *Service) Login(ctx context.Context, peer server.Peer, username, password string) (server.Identity, error) {
	id, err := s.login(ctx, peer, username, password)
	if s.obs != nil {
		s.obs.Login(loginOutcome(err))
	}
	return id, err
}

func (s *Service) login(ctx context.Context, peer server.Peer, username, password string) (server.Identity, error) {
	pw := norm.NFKC.String(password)
	if len(pw) > MaxPassword {
		// Refused outright: bcrypt would compare only the first 72 bytes
		// and let a longer, different password in.
		return server.Identity{}, errPasswordTooLong
	}
	ip := peer.Addr.Addr()
	if ok, wait := s.ipLimit.allow(ip, s.now()); !ok {
		s.observeLimit(LimitIPAuthRate)
		return server.Identity{}, errIPRateLimited(wait)
	}
	// Counters are kept for the name as typed, whether or not it exists,
	// so a 429 says nothing about existence. Malformed names cannot exist,
	// so they are not counted.
	name, nameErr := NormalizeUsername(username)
	var pair store.Failures
	var hash []byte
	var user store.User
	found := false
	var version uint64
	if nameErr == nil {
		var err error
		if pair, err = s.checkThrottle(ctx, name, ip); err != nil {
			return server.Identity{}, err
		}
		version = s.cache.snapshot()
		user, err = s.store.GetUser(ctx, name)
		switch {
		case err == nil:
			hash, found = user.PasswordHash, true
		case !errors.Is(err, store.ErrNotFound):
			return server.Identity{}, storeError(err)
		}
	}
	if !found {
		hash = s.dummyHash()
	}
	var match bool
	if err := s.hashing.do(ctx, func() { match = bcrypt.CompareHashAndPassword(hash, []byte(pw)) == nil }); err != nil {
		return server.Identity{}, err
	}
	if !match || !found {
		if nameErr == nil {
			if err := s.recordFailure(ctx, name, ip); err != nil {
				return server.Identity{}, err
			}
		}
		return server.Identity{}, errInvalidCredentials
	}
	if pair.Count > 0 {
		if err := s.resetPair(ctx, name, ip); err != nil {
			return server.Identity{}, err
		}
	}
	if user.Disabled {
		// Said only to whoever knows the password.
		return server.Identity{}, errDisabled
	}
	s.rehashIfNeeded(ctx, user, []byte(pw))
	if err := s.store.SetLastLogin(ctx, user.Username, s.now()); err != nil {
		return server.Identity{}, storeError(err)
	}
	// The session or token about to start will be checked against this
	// state: cache it now, so those checks need no store.
	s.cache.put(stateOf(user), version)
	return server.Identity{Username: user.Username, Role: user.Role, Gen: user.Generation}, nil
}

var errDisabled = protocol.Errorf(protocol.CodeInvalidCredentials, "this account is disabled")

// rehashIfNeeded re-hashes a password whose stored hash has another cost
// than the configured one, now that the plain password is at hand. A
// failure is not the login's failure: the old hash still works.
func (s *Service) rehashIfNeeded(ctx context.Context, user store.User, pw []byte) {
	if cost, err := bcrypt.Cost(user.PasswordHash); err != nil || cost == s.cost {
		return
	}
	var hash []byte
	var err error
	if s.hashing.do(ctx, func() { hash, err = bcrypt.GenerateFromPassword(pw, s.cost) }) != nil || err != nil {
		return
	}
	s.store.SetPasswordHash(ctx, user.Username, hash)
}

// IssueToken implements server.Backend: an access token and the first
// refresh token of a new family.
func (s *Service) IssueToken(ctx context.Context, id server.Identity) (server.IssuedToken, error) {
	family, err := randomID()
	if err != nil {
		return server.IssuedToken{}, err
	}
	return s.issue(ctx, id, family)
}

// issue signs an access token and stores a refresh token of the family.
func (s *Service) issue(ctx context.Context, id server.Identity, family string) (server.IssuedToken, error) {
	signed, claims, err := s.tokens.IssueForLogin(id.Username, id.Role, id.Gen, family)
	if err != nil {
		return server.IssuedToken{}, err
	}
	refresh, hash, err := newRefreshToken()
	if err != nil {
		return server.IssuedToken{}, err
	}
	refreshExp := s.now().Add(s.refreshTTL).Truncate(time.Second)
	rt := store.RefreshToken{Hash: hash, Family: family, Username: id.Username, Generation: id.Gen, ExpiresAt: refreshExp}
	if err := s.store.CreateRefreshToken(ctx, rt); err != nil {
		return server.IssuedToken{}, storeError(err)
	}
	return server.IssuedToken{
		Token:            signed,
		ExpiresAt:        claims.ExpiresAt.Time,
		TTL:              s.tokens.TTL(),
		RefreshToken:     refresh,
		RefreshExpiresAt: refreshExp,
	}, nil
}

// VerifyToken implements server.Backend. Besides the signature and claims
// it checks that the token was not revoked, that its user still exists,
// is enabled and has not moved to a newer generation, and takes the role
// from the user's current state, so changes apply at once. All of it is
// answered from the cache in the steady state.
func (s *Service) VerifyToken(ctx context.Context, _ server.Peer, token string) (server.Identity, error) {
	claims, err := s.tokens.Parse(token)
	if err != nil && errors.Is(err, errUnknownKID) && s.refreshKeys(ctx) {
		claims, err = s.tokens.Parse(token)
	}
	if err != nil {
		return server.Identity{}, err
	}
	revoked, err := s.cache.isRevoked(ctx, s.store, claims.ID, claims.ExpiresAt.Time)
	if err != nil {
		return server.Identity{}, storeError(err)
	}
	if revoked {
		return server.Identity{}, protocol.Errorf(protocol.CodeInvalidToken, "token has been revoked")
	}
	u, err := s.cache.user(ctx, s.store, claims.Subject)
	if isNotFound(err) {
		return server.Identity{}, protocol.Errorf(protocol.CodeInvalidToken, "token's user no longer exists")
	}
	if err != nil {
		return server.Identity{}, storeError(err)
	}
	if u.Disabled {
		return server.Identity{}, protocol.Errorf(protocol.CodeInvalidToken, "token's user is disabled")
	}
	if claims.Gen != u.Gen {
		return server.Identity{}, protocol.Errorf(protocol.CodeInvalidToken, "token has been revoked")
	}
	return server.Identity{
		Username:  u.Username,
		Role:      u.Role,
		Auth:      protocol.AuthToken,
		Gen:       u.Gen,
		TokenID:   claims.ID,
		Family:    claims.Fam,
		ExpiresAt: claims.ExpiresAt.Time,
	}, nil
}

// RevokeToken implements server.Backend.
func (s *Service) RevokeToken(ctx context.Context, id server.Identity) error {
	if id.TokenID == "" {
		return protocol.Errorf(protocol.CodeBadRequest, "not a token identity")
	}
	if err := s.store.RevokeToken(ctx, id.TokenID, id.ExpiresAt); err != nil {
		return storeError(err)
	}
	s.cache.revoke(id.TokenID, id.ExpiresAt)
	// Logging out with a token ends its whole login: the refresh tokens
	// of its family could otherwise mint new access tokens for a week.
	if id.Family != "" {
		if err := s.store.RevokeRefreshFamily(ctx, id.Family); err != nil {
			return storeError(err)
		}
	}
	return nil
}

// Resource implements server.Backend: "protected" for any authenticated
// user, "admin" for admins only.
func (s *Service) Resource(_ context.Context, id *server.Identity, name string) (string, error) {
	switch name {
	case protocol.ResourceProtected, protocol.ResourceAdmin:
	default: // ParseRequest refuses unknown resources; this guards other callers
		return "", protocol.Errorf(protocol.CodeNotFound, "unknown resource")
	}
	if id == nil {
		return "", protocol.Errorf(protocol.CodeUnauthenticated, "authentication required: LOGIN first or send a token")
	}
	if name == protocol.ResourceAdmin {
		if id.Role != store.RoleAdmin {
			return "", protocol.Errorf(protocol.CodeForbidden, "the admin resource requires the admin role")
		}
		return "Welcome to the admin area, " + id.Username + ".", nil
	}
	return "Hello " + id.Username + ", this is protected content.", nil
}

// Purge drops what can no longer matter: revocations and refresh tokens
// that expired, failed-login counters older than the throttle window, and
// change-feed entries old enough that every follower has read them.
func (s *Service) Purge(ctx context.Context) (int, error) {
	now := s.now()
	s.cache.purge(now)
	var total int
	for _, purge := range []func() (int, error){
		func() (int, error) { return s.store.PurgeRevocations(ctx, now) },
		func() (int, error) { return s.store.PurgeLoginFailures(ctx, now.Add(-s.throttle.Window)) },
		func() (int, error) { return s.store.PurgeRefreshTokens(ctx, now) },
		func() (int, error) { return s.store.PurgeChanges(ctx, now.Add(-changeRetention)) },
	} {
		n, err := purge()
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// changeRetention is how long change-feed entries are kept: far longer
// than any follower lags, even one paused by a store outage.
const changeRetention = 24 * time.Hour

// storeError turns a store failure into a wire error: unavailable when
// the store says so (the client may retry), internal otherwise.
func storeError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, store.ErrUnavailable) {
		return protocol.Wrap(protocol.CodeUnavailable, "store unavailable, try again", err)
	}
	return protocol.Wrap(protocol.CodeInternal, "internal error", err)
}
