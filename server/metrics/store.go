package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/authline/authline/server/store"
)

// WrapStore returns st with every call timed into
// authline_store_duration_seconds{op} and every failure counted in
// authline_store_errors_total{op}, op being the method's name in
// snake_case (get_user, add_login_failure ...). Give the wrapped store to
// auth.Config.Store. If st can wait for changes (store.ChangeNotifier), so
// can the result; that wait is not timed, it is meant to block. Close is
// not timed either.
func (m *Metrics) WrapStore(st store.Store) store.Store {
	o := &observedStore{st: st, m: m}
	if n, ok := st.(store.ChangeNotifier); ok {
		return &observedNotifierStore{observedStore: o, n: n}
	}
	return o
}

// isFailure tells a failed call from one that answered with one of the
// store's expected errors, which are answers, not failures.
func isFailure(err error) bool {
	for _, answer := range []error{store.ErrNotFound, store.ErrConflict, store.ErrLastAdmin, store.ErrReused} {
		if errors.Is(err, answer) {
			return false
		}
	}
	return true
}

type observedStore struct {
	st store.Store
	m  *Metrics
}

type observedNotifierStore struct {
	*observedStore
	n store.ChangeNotifier
}

func (s *observedNotifierStore) WaitForChange(ctx context.Context) error {
	return s.n.WaitForChange(ctx)
}

func (s *observedStore) Close() error { return s.st.Close() }

// storeOp indexes the store's operations.
type storeOp int

const (
	opCreateUser storeOp = iota
	opGetUser
	opListUsers
	opListUsersAfter
	opSetRole
	opSetPasswordHash
	opChangePassword
	opSetDisabled
	opBumpGeneration
	opSetLastLogin
	opDeleteUser
	opCountAdmins
	opCreateRefreshToken
	opUseRefreshToken
	opRevokeRefreshFamily
	opPurgeRefreshTokens
	opLatestChange
	opChanges
	opPurgeChanges
	opRevokeToken
	opIsRevoked
	opPurgeRevocations
	opAddSigningKey
	opSigningKeys
	opRetireSigningKey
	opAddLoginFailure
	opLoginFailures
	opResetLoginFailures
	opClearLoginFailures
	opPurgeLoginFailures
	opCountUsers
	opReplaceUser
	opListRevocations
	opAllSigningKeys
	opImportSigningKey
	opListRefreshTokensAfter
	numStoreOps
)

// storeOpNames are the op labels.
var storeOpNames = [numStoreOps]string{
	opCreateUser:             "create_user",
	opGetUser:                "get_user",
	opListUsers:              "list_users",
	opListUsersAfter:         "list_users_after",
	opSetRole:                "set_role",
	opSetPasswordHash:        "set_password_hash",
	opChangePassword:         "change_password",
	opSetDisabled:            "set_disabled",
	opBumpGeneration:         "bump_generation",
	opSetLastLogin:           "set_last_login",
	opDeleteUser:             "delete_user",
	opCountAdmins:            "count_admins",
	opCreateRefreshToken:     "create_refresh_token",
	opUseRefreshToken:        "use_refresh_token",
	opRevokeRefreshFamily:    "revoke_refresh_family",
	opPurgeRefreshTokens:     "purge_refresh_tokens",
	opLatestChange:           "latest_change",
	opChanges:                "changes",
	opPurgeChanges:           "purge_changes",
	opRevokeToken:            "revoke_token",
	opIsRevoked:              "is_revoked",
	opPurgeRevocations:       "purge_revocations",
	opAddSigningKey:          "add_signing_key",
	opSigningKeys:            "signing_keys",
	opRetireSigningKey:       "retire_signing_key",
	opAddLoginFailure:        "add_login_failure",
	opLoginFailures:          "login_failures",
	opResetLoginFailures:     "reset_login_failures",
	opClearLoginFailures:     "clear_login_failures",
	opPurgeLoginFailures:     "purge_login_failures",
	opCountUsers:             "count_users",
	opReplaceUser:            "replace_user",
	opListRevocations:        "list_revocations",
	opAllSigningKeys:         "all_signing_keys",
	opImportSigningKey:       "import_signing_key",
	opListRefreshTokensAfter: "list_refresh_tokens_after",
}

// One timing method per store.Store method follows; keep them in step
// with the interface (the compiler checks that observedStore implements
// it).

var _ store.Store = (*observedStore)(nil)

func (s *observedStore) CreateUser(ctx context.Context, u store.User) error {
	start := time.Now()
	err := s.st.CreateUser(ctx, u)
	s.m.storeDone(opCreateUser, start, err)
	return err
}

func (s *observedStore) GetUser(ctx context.Context, username string) (store.User, error) {
	start := time.Now()
	v, err := s.st.GetUser(ctx, username)
	s.m.storeDone(opGetUser, start, err)
	return v, err
}

func (s *observedStore) ListUsers(ctx context.Context) ([]store.User, error) {
	start := time.Now()
	v, err := s.st.ListUsers(ctx)
	s.m.storeDone(opListUsers, start, err)
	return v, err
}

func (s *observedStore) ListUsersAfter(ctx context.Context, after string, limit int) ([]store.User, error) {
	start := time.Now()
	v, err := s.st.ListUsersAfter(ctx, after, limit)
	s.m.storeDone(opListUsersAfter, start, err)
	return v, err
}

func (s *observedStore) SetRole(ctx context.Context, username string, role string) error {
	start := time.Now()
	err := s.st.SetRole(ctx, username, role)
	s.m.storeDone(opSetRole, start, err)
	return err
}

func (s *observedStore) SetPasswordHash(ctx context.Context, username string, hash []byte) error {
	start := time.Now()
	err := s.st.SetPasswordHash(ctx, username, hash)
	s.m.storeDone(opSetPasswordHash, start, err)
	return err
}

func (s *observedStore) ChangePassword(ctx context.Context, username string, hash []byte) (int64, error) {
	start := time.Now()
	v, err := s.st.ChangePassword(ctx, username, hash)
	s.m.storeDone(opChangePassword, start, err)
	return v, err
}

func (s *observedStore) SetDisabled(ctx context.Context, username string, disabled bool) error {
	start := time.Now()
	err := s.st.SetDisabled(ctx, username, disabled)
	s.m.storeDone(opSetDisabled, start, err)
	return err
}

func (s *observedStore) BumpGeneration(ctx context.Context, username string, reason string) (int64, error) {
	start := time.Now()
	v, err := s.st.BumpGeneration(ctx, username, reason)
	s.m.storeDone(opBumpGeneration, start, err)
	return v, err
}

func (s *observedStore) SetLastLogin(ctx context.Context, username string, at time.Time) error {
	start := time.Now()
	err := s.st.SetLastLogin(ctx, username, at)
	s.m.storeDone(opSetLastLogin, start, err)
	return err
}

func (s *observedStore) DeleteUser(ctx context.Context, username string) error {
	start := time.Now()
	err := s.st.DeleteUser(ctx, username)
	s.m.storeDone(opDeleteUser, start, err)
	return err
}

func (s *observedStore) CountAdmins(ctx context.Context) (int, error) {
	start := time.Now()
	v, err := s.st.CountAdmins(ctx)
	s.m.storeDone(opCountAdmins, start, err)
	return v, err
}

func (s *observedStore) CreateRefreshToken(ctx context.Context, t store.RefreshToken) error {
	start := time.Now()
	err := s.st.CreateRefreshToken(ctx, t)
	s.m.storeDone(opCreateRefreshToken, start, err)
	return err
}

func (s *observedStore) UseRefreshToken(ctx context.Context, hash []byte, now time.Time) (store.RefreshToken, error) {
	start := time.Now()
	v, err := s.st.UseRefreshToken(ctx, hash, now)
	s.m.storeDone(opUseRefreshToken, start, err)
	return v, err
}

func (s *observedStore) RevokeRefreshFamily(ctx context.Context, family string) error {
	start := time.Now()
	err := s.st.RevokeRefreshFamily(ctx, family)
	s.m.storeDone(opRevokeRefreshFamily, start, err)
	return err
}

func (s *observedStore) PurgeRefreshTokens(ctx context.Context, now time.Time) (int, error) {
	start := time.Now()
	v, err := s.st.PurgeRefreshTokens(ctx, now)
	s.m.storeDone(opPurgeRefreshTokens, start, err)
	return v, err
}

func (s *observedStore) LatestChange(ctx context.Context) (int64, error) {
	start := time.Now()
	v, err := s.st.LatestChange(ctx)
	s.m.storeDone(opLatestChange, start, err)
	return v, err
}

func (s *observedStore) Changes(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	start := time.Now()
	v, err := s.st.Changes(ctx, after, limit)
	s.m.storeDone(opChanges, start, err)
	return v, err
}

func (s *observedStore) PurgeChanges(ctx context.Context, before time.Time) (int, error) {
	start := time.Now()
	v, err := s.st.PurgeChanges(ctx, before)
	s.m.storeDone(opPurgeChanges, start, err)
	return v, err
}

func (s *observedStore) RevokeToken(ctx context.Context, jti string, expiresAt time.Time) error {
	start := time.Now()
	err := s.st.RevokeToken(ctx, jti, expiresAt)
	s.m.storeDone(opRevokeToken, start, err)
	return err
}

func (s *observedStore) IsRevoked(ctx context.Context, jti string) (bool, error) {
	start := time.Now()
	v, err := s.st.IsRevoked(ctx, jti)
	s.m.storeDone(opIsRevoked, start, err)
	return v, err
}

func (s *observedStore) PurgeRevocations(ctx context.Context, now time.Time) (int, error) {
	start := time.Now()
	v, err := s.st.PurgeRevocations(ctx, now)
	s.m.storeDone(opPurgeRevocations, start, err)
	return v, err
}

func (s *observedStore) AddSigningKey(ctx context.Context, k store.SigningKey) error {
	start := time.Now()
	err := s.st.AddSigningKey(ctx, k)
	s.m.storeDone(opAddSigningKey, start, err)
	return err
}

func (s *observedStore) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	start := time.Now()
	v, err := s.st.SigningKeys(ctx)
	s.m.storeDone(opSigningKeys, start, err)
	return v, err
}

func (s *observedStore) RetireSigningKey(ctx context.Context, kid string, at time.Time) error {
	start := time.Now()
	err := s.st.RetireSigningKey(ctx, kid, at)
	s.m.storeDone(opRetireSigningKey, start, err)
	return err
}

func (s *observedStore) AddLoginFailure(ctx context.Context, k store.FailureKey, now time.Time, window time.Duration) (store.Failures, error) {
	start := time.Now()
	v, err := s.st.AddLoginFailure(ctx, k, now, window)
	s.m.storeDone(opAddLoginFailure, start, err)
	return v, err
}

func (s *observedStore) LoginFailures(ctx context.Context, k store.FailureKey) (store.Failures, error) {
	start := time.Now()
	v, err := s.st.LoginFailures(ctx, k)
	s.m.storeDone(opLoginFailures, start, err)
	return v, err
}

func (s *observedStore) ResetLoginFailures(ctx context.Context, k store.FailureKey) error {
	start := time.Now()
	err := s.st.ResetLoginFailures(ctx, k)
	s.m.storeDone(opResetLoginFailures, start, err)
	return err
}

func (s *observedStore) ClearLoginFailures(ctx context.Context, username string) (int, error) {
	start := time.Now()
	v, err := s.st.ClearLoginFailures(ctx, username)
	s.m.storeDone(opClearLoginFailures, start, err)
	return v, err
}

func (s *observedStore) PurgeLoginFailures(ctx context.Context, before time.Time) (int, error) {
	start := time.Now()
	v, err := s.st.PurgeLoginFailures(ctx, before)
	s.m.storeDone(opPurgeLoginFailures, start, err)
	return v, err
}

func (s *observedStore) CountUsers(ctx context.Context) (int, error) {
	start := time.Now()
	v, err := s.st.CountUsers(ctx)
	s.m.storeDone(opCountUsers, start, err)
	return v, err
}

func (s *observedStore) ReplaceUser(ctx context.Context, u store.User) error {
	start := time.Now()
	err := s.st.ReplaceUser(ctx, u)
	s.m.storeDone(opReplaceUser, start, err)
	return err
}

func (s *observedStore) ListRevocations(ctx context.Context, now time.Time) ([]store.Revocation, error) {
	start := time.Now()
	v, err := s.st.ListRevocations(ctx, now)
	s.m.storeDone(opListRevocations, start, err)
	return v, err
}

func (s *observedStore) AllSigningKeys(ctx context.Context) ([]store.StoredSigningKey, error) {
	start := time.Now()
	v, err := s.st.AllSigningKeys(ctx)
	s.m.storeDone(opAllSigningKeys, start, err)
	return v, err
}

func (s *observedStore) ImportSigningKey(ctx context.Context, k store.SigningKey, retiredAt time.Time) error {
	start := time.Now()
	err := s.st.ImportSigningKey(ctx, k, retiredAt)
	s.m.storeDone(opImportSigningKey, start, err)
	return err
}

func (s *observedStore) ListRefreshTokensAfter(ctx context.Context, after []byte, limit int, now time.Time) ([]store.RefreshToken, error) {
	start := time.Now()
	v, err := s.st.ListRefreshTokensAfter(ctx, after, limit, now)
	s.m.storeDone(opListRefreshTokensAfter, start, err)
	return v, err
}
