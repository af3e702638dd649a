package server

import "time"

// SetRenewAfter sets how long connections wait idle before they are
// renewed (conn.renew) and returns the setting it replaced; for tests.
func SetRenewAfter(d time.Duration) time.Duration {
	return time.Duration(renewAfter.Swap(int64(d)))
}
