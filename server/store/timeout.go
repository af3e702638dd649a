package store

import (
	"context"
	"time"
)

// WithTimeout wraps st so that every call gets at most d, whatever the
// caller's context allows: a store that hangs (a frozen database, packets
// dropped on the way) then costs a request d and a 503, not a connection
// stuck for good. Calls are mapped to ErrUnavailable by the backends when
// their deadline passes. WaitForChange, if st has it, is passed through
// without a deadline: it is meant to wait.
func WithTimeout(st Store, d time.Duration) Store {
	t := &timeoutStore{st: st, d: d}
	if n, ok := st.(ChangeNotifier); ok {
		return &timeoutNotifierStore{timeoutStore: t, n: n}
	}
	return t
}

type timeoutStore struct {
	st Store
	d  time.Duration
}

type timeoutNotifierStore struct {
	*timeoutStore
	n ChangeNotifier
}

func (t *timeoutNotifierStore) WaitForChange(ctx context.Context) error {
	return t.n.WaitForChange(ctx)
}

func (s *timeoutStore) Close() error { return s.st.Close() }

func (s *timeoutStore) CreateUser(ctx context.Context, u User) error {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.CreateUser(ctx, u)
}

func (s *timeoutStore) GetUser(ctx context.Context, username string) (User, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.GetUser(ctx, username)
}

func (s *timeoutStore) ListUsers(ctx context.Context) ([]User, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.ListUsers(ctx)
}

func (s *timeoutStore) ListUsersAfter(ctx context.Context, after string, limit int) ([]User, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.ListUsersAfter(ctx, after, limit)
}

func (s *timeoutStore) SetRole(ctx context.Context, username, role string) error {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.SetRole(ctx, username, role)
}

func (s *timeoutStore) SetPasswordHash(ctx context.Context, username string, hash []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.SetPasswordHash(ctx, username, hash)
}

func (s *timeoutStore) ChangePassword(ctx context.Context, username string, hash []byte) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.ChangePassword(ctx, username, hash)
}

func (s *timeoutStore) SetDisabled(ctx context.Context, username string, disabled bool) error {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.SetDisabled(ctx, username, disabled)
}

func (s *timeoutStore) BumpGeneration(ctx context.Context, username, reason string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.BumpGeneration(ctx, username, reason)
}

func (s *timeoutStore) SetLastLogin(ctx context.Context, username string, at time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.SetLastLogin(ctx, username, at)
}

func (s *timeoutStore) DeleteUser(ctx context.Context, username string) error {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.DeleteUser(ctx, username)
}

func (s *timeoutStore) CountAdmins(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.CountAdmins(ctx)
}

func (s *timeoutStore) CreateRefreshToken(ctx context.Context, t RefreshToken) error {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.CreateRefreshToken(ctx, t)
}

func (s *timeoutStore) UseRefreshToken(ctx context.Context, hash []byte, now time.Time) (RefreshToken, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.UseRefreshToken(ctx, hash, now)
}

func (s *timeoutStore) RevokeRefreshFamily(ctx context.Context, family string) error {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.RevokeRefreshFamily(ctx, family)
}

func (s *timeoutStore) PurgeRefreshTokens(ctx context.Context, now time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.PurgeRefreshTokens(ctx, now)
}

func (s *timeoutStore) LatestChange(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.LatestChange(ctx)
}

func (s *timeoutStore) Changes(ctx context.Context, after int64, limit int) ([]Change, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.Changes(ctx, after, limit)
}

func (s *timeoutStore) PurgeChanges(ctx context.Context, before time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.PurgeChanges(ctx, before)
}

func (s *timeoutStore) RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.RevokeToken(ctx, jti, expiresAt)
}

func (s *timeoutStore) IsRevoked(ctx context.Context, jti string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.IsRevoked(ctx, jti)
}

func (s *timeoutStore) PurgeRevocations(ctx context.Context, now time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.PurgeRevocations(ctx, now)
}

func (s *timeoutStore) AddSigningKey(ctx context.Context, k SigningKey) error {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.AddSigningKey(ctx, k)
}

func (s *timeoutStore) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.SigningKeys(ctx)
}

func (s *timeoutStore) RetireSigningKey(ctx context.Context, kid string, at time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.RetireSigningKey(ctx, kid, at)
}

func (s *timeoutStore) AddLoginFailure(ctx context.Context, k FailureKey, now time.Time, window time.Duration) (Failures, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.AddLoginFailure(ctx, k, now, window)
}

func (s *timeoutStore) LoginFailures(ctx context.Context, k FailureKey) (Failures, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.LoginFailures(ctx, k)
}

func (s *timeoutStore) ResetLoginFailures(ctx context.Context, k FailureKey) error {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.ResetLoginFailures(ctx, k)
}

func (s *timeoutStore) ClearLoginFailures(ctx context.Context, username string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.ClearLoginFailures(ctx, username)
}

func (s *timeoutStore) PurgeLoginFailures(ctx context.Context, before time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.PurgeLoginFailures(ctx, before)
}

func (s *timeoutStore) CountUsers(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.CountUsers(ctx)
}

func (s *timeoutStore) ReplaceUser(ctx context.Context, u User) error {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.ReplaceUser(ctx, u)
}

func (s *timeoutStore) ListRevocations(ctx context.Context, now time.Time) ([]Revocation, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.ListRevocations(ctx, now)
}

func (s *timeoutStore) AllSigningKeys(ctx context.Context) ([]StoredSigningKey, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.AllSigningKeys(ctx)
}

func (s *timeoutStore) ImportSigningKey(ctx context.Context, k SigningKey, retiredAt time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.ImportSigningKey(ctx, k, retiredAt)
}

func (s *timeoutStore) ListRefreshTokensAfter(ctx context.Context, after []byte, limit int, now time.Time) ([]RefreshToken, error) {
	ctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.st.ListRefreshTokensAfter(ctx, after, limit, now)
}
