package auth

import (
	"errors"
	"time"

	"github.com/authline/authline/protocol"
)

// Observer is told what a Service does, so that it can be measured
// (server/metrics implements it with Prometheus). Set it in
// Config.Observer; nil observes nothing. Store latency and errors are not
// its business: wrap the store given to Config.Store for those (see
// metrics.Metrics.WrapStore).
//
// The methods are called on the request goroutines: they must be safe for
// concurrent use and must not block. Their strings come from the fixed
// sets below.
type Observer interface {
	// Login: a LOGIN ended with outcome, one of LoginOutcomes.
	Login(outcome string)
	// Throttled: a LOGIN was refused by failed-login throttling (the
	// per-account back-off of ThrottlePolicy).
	Throttled()
	// LimitHit: a LOGIN or REGISTER was refused by a limit,
	// LimitIPAuthRate or LimitHashQueue.
	LimitHit(limit string)
	// HashWait: a bcrypt hash waited d for a worker of the hash pool.
	HashWait(d time.Duration)
}

// Outcomes of a LOGIN, for Observer.Login.
const (
	LoginOK             = "ok"              // logged in
	LoginBadCredentials = "bad_credentials" // unknown user or wrong password
	LoginDisabled       = "disabled"        // right password, disabled account
	LoginThrottled      = "throttled"       // refused by failed-login throttling
	LoginRateLimited    = "rate_limited"    // refused by the per-address rate limit
	LoginBusy           = "busy"            // refused: the hash queue is full
	LoginUnavailable    = "unavailable"     // the store failed or timed out
	LoginBadRequest     = "bad_request"     // a password longer than bcrypt takes
	LoginError          = "error"           // anything else (an internal error)
)

// LoginOutcomes lists every LOGIN outcome.
var LoginOutcomes = []string{
	LoginOK, LoginBadCredentials, LoginDisabled, LoginThrottled, LoginRateLimited,
	LoginBusy, LoginUnavailable, LoginBadRequest, LoginError,
}

// The limits a Service tells its Observer about.
const (
	LimitIPAuthRate = "ip_auth_rate" // IPRateLimit refused a LOGIN or REGISTER
	LimitHashQueue  = "hash_queue"   // the hash queue was full (503)
)

// ObservedLimits lists every limit an Observer can be told about.
var ObservedLimits = []string{LimitIPAuthRate, LimitHashQueue}

// loginOutcome classifies the result of a LOGIN.
func loginOutcome(err error) string {
	switch err {
	case nil:
		return LoginOK
	case errInvalidCredentials:
		return LoginBadCredentials
	case errDisabled:
		return LoginDisabled
	case errHashBusy:
		return LoginBusy
	}
	var e *protocol.Error
	if !errors.As(err, &e) {
		return LoginError
	}
	switch e.Code {
	case protocol.CodeRateLimited:
		if errors.Is(err, errThrottling) {
			return LoginThrottled
		}
		return LoginRateLimited
	case protocol.CodeUnavailable:
		return LoginUnavailable
	case protocol.CodeBadRequest:
		return LoginBadRequest
	case protocol.CodeInvalidCredentials:
		return LoginBadCredentials
	}
	return LoginError
}
