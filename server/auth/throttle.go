package auth

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server/store"
)

// ThrottlePolicy sets how failed LOGINs slow down further attempts, in
// the style of Authelia's regulation and Keycloak's brute-force detection.
// Failures are counted per (username, client IP) and per username across
// all addresses. Once a counter reaches its free attempts, the next
// attempt must wait BaseDelay after the last failure, doubling with each
// further failure up to the counter's maximum.
type ThrottlePolicy struct {
	Disabled bool
	// Window: a counter whose last failure is older than this starts over.
	Window    time.Duration
	BaseDelay time.Duration
	// PairFree and PairMaxDelay apply to one username from one address:
	// the attacker's own line of attack, slowed hard.
	PairFree     int
	PairMaxDelay time.Duration
	// UserFree and UserMaxDelay apply to one username from everywhere.
	// They are looser on purpose: this counter also slows the real user
	// logging in from elsewhere, so throttling must not become a way to
	// lock people out.
	UserFree     int
	UserMaxDelay time.Duration
}

// DefaultThrottlePolicy: 5 free failures per address, then 1s, 2s, 4s ...
// up to 15 minutes; 20 free failures per username, then up to 1 minute.
var DefaultThrottlePolicy = ThrottlePolicy{
	Window:       15 * time.Minute,
	BaseDelay:    time.Second,
	PairFree:     5,
	PairMaxDelay: 15 * time.Minute,
	UserFree:     20,
	UserMaxDelay: time.Minute,
}

// backoff is how long after the last of count failures the next attempt
// must wait.
func (p *ThrottlePolicy) backoff(count, free int, maxDelay time.Duration) time.Duration {
	if count < free {
		return 0
	}
	d := p.BaseDelay
	for i := free; i < count && d < maxDelay; i++ {
		d *= 2
	}
	return min(d, maxDelay)
}

// lockedFor returns how long a LOGIN must still wait, given the two
// counters, or zero.
func (p *ThrottlePolicy) lockedFor(pair, user store.Failures, now time.Time) time.Duration {
	until := pair.Last.Add(p.backoff(pair.Count, p.PairFree, p.PairMaxDelay))
	if u := user.Last.Add(p.backoff(user.Count, p.UserFree, p.UserMaxDelay)); u.After(until) {
		until = u
	}
	return max(until.Sub(now), 0)
}

func failureKeys(username string, ip netip.Addr) (pair, user store.FailureKey) {
	return store.FailureKey{Username: username, IP: ip.String()}, store.FailureKey{Username: username}
}

// errThrottling is the cause of a throttled LOGIN's 429, which tells it
// from a rate-limited one (errors.Is).
var errThrottling = errors.New("failed-login throttling")

func errThrottled(retryAfter time.Duration) error {
	return &protocol.Error{
		Code:       protocol.CodeRateLimited,
		Message:    "too many failed logins for this account; try again later",
		RetryAfter: retryAfter,
		Err:        errThrottling,
	}
}

// checkThrottle answers 429 if the username is throttled for this address.
// It also returns the (username, address) counter, which a successful
// LOGIN resets.
func (s *Service) checkThrottle(ctx context.Context, username string, ip netip.Addr) (store.Failures, error) {
	if s.throttle.Disabled {
		return store.Failures{}, nil
	}
	pk, uk := failureKeys(username, ip)
	pair, err := s.store.LoginFailures(ctx, pk)
	if err != nil {
		return pair, storeError(err)
	}
	user, err := s.store.LoginFailures(ctx, uk)
	if err != nil {
		return pair, storeError(err)
	}
	if d := s.throttle.lockedFor(pair, user, s.now()); d > 0 {
		if s.obs != nil {
			s.obs.Throttled()
		}
		return pair, errThrottled(d)
	}
	return pair, nil
}

// resetPair forgets the (username, address) counter after a success.
func (s *Service) resetPair(ctx context.Context, username string, ip netip.Addr) error {
	pk, _ := failureKeys(username, ip)
	return storeError(s.store.ResetLoginFailures(ctx, pk))
}

// recordFailure counts a failed LOGIN on both counters.
func (s *Service) recordFailure(ctx context.Context, username string, ip netip.Addr) error {
	if s.throttle.Disabled {
		return nil
	}
	pk, uk := failureKeys(username, ip)
	now := s.now()
	if _, err := s.store.AddLoginFailure(ctx, pk, now, s.throttle.Window); err != nil {
		return storeError(err)
	}
	if _, err := s.store.AddLoginFailure(ctx, uk, now, s.throttle.Window); err != nil {
		return storeError(err)
	}
	return nil
}

// Unlock clears every failed-login counter of a username.
func (s *Service) Unlock(ctx context.Context, username string) (int, error) {
	return s.store.ClearLoginFailures(ctx, lowerASCII(username))
}

// IPRateLimit bounds LOGIN and REGISTER attempts per client address, so
// one address spraying a password across many usernames is slowed even
// though no single username's counter grows.
type IPRateLimit struct {
	PerSecond float64 // 0 switches the limit off
	Burst     int
}

// DefaultIPRateLimit allows bursts of 10 attempts, then one a second.
var DefaultIPRateLimit = IPRateLimit{PerSecond: 1, Burst: 10}

// ipLimiter keeps a token bucket per address, in memory: it needs no
// durability, only to slow a flood.
type ipLimiter struct {
	cfg      IPRateLimit
	mu       sync.Mutex
	limiters map[netip.Addr]*rate.Limiter
	// sweepAt is the map size at which full (idle) buckets are dropped.
	sweepAt int
}

func newIPLimiter(cfg IPRateLimit) *ipLimiter {
	return &ipLimiter{cfg: cfg, limiters: make(map[netip.Addr]*rate.Limiter), sweepAt: 1024}
}

// allow takes one attempt from ip's bucket, or says how long to wait.
func (l *ipLimiter) allow(ip netip.Addr, now time.Time) (ok bool, retryAfter time.Duration) {
	if l == nil || l.cfg.PerSecond <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.limiters[ip]
	if lim == nil {
		if len(l.limiters) >= l.sweepAt {
			l.sweep(now)
		}
		lim = rate.NewLimiter(rate.Limit(l.cfg.PerSecond), l.cfg.Burst)
		l.limiters[ip] = lim
	}
	if lim.AllowN(now, 1) {
		return true, 0
	}
	r := lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return false, d
}

// sweep drops buckets that have refilled: they hold no state worth
// keeping. If most are still busy, the threshold grows so sweeps stay rare.
func (l *ipLimiter) sweep(now time.Time) {
	for ip, lim := range l.limiters {
		if lim.TokensAt(now) >= float64(l.cfg.Burst) {
			delete(l.limiters, ip)
		}
	}
	if len(l.limiters) >= l.sweepAt/2 {
		l.sweepAt *= 2
	}
}

func errIPRateLimited(retryAfter time.Duration) error {
	return &protocol.Error{
		Code:       protocol.CodeRateLimited,
		Message:    "too many login and register attempts from your address; slow down",
		RetryAfter: retryAfter,
	}
}
