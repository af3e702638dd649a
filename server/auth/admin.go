package auth

import (
	"context"
	"errors"
	"time"

	"github.com/authline/authline/protocol"
	"github.com/authline/authline/server"
	"github.com/authline/authline/server/store"
)

var (
	errAdminUnauthenticated = protocol.Errorf(protocol.CodeUnauthenticated, "authentication required: LOGIN first or send a token")
	errAdminForbidden       = protocol.Errorf(protocol.CodeForbidden, "admin commands require the admin role")
	errLastAdmin            = protocol.Errorf(protocol.CodeConflict, "refused: that would leave no enabled admin")
	errNoSuchUser           = protocol.Errorf(protocol.CodeNotFound, "no such user")
)

// Admin implements server.Backend: the account management commands,
// for admins only. Every change goes through the store's change feed,
// which ends affected sessions and tokens everywhere.
func (s *Service) Admin(ctx context.Context, id *server.Identity, req *protocol.Request) (protocol.Data, string, error) {
	if id == nil {
		return nil, "", errAdminUnauthenticated
	}
	if id.Role != store.RoleAdmin {
		return nil, "", errAdminForbidden
	}
	if req.Cmd == protocol.CmdUsers {
		return s.listUsers(ctx, req.After, req.Limit)
	}
	name := lowerASCII(req.Username)
	var err error
	var reason, msg string
	switch req.Cmd {
	case protocol.CmdUser:
		msg = "ok"
	case protocol.CmdSetRole:
		err, reason, msg = s.store.SetRole(ctx, name, req.Role), "role_changed", "role set to "+req.Role
	case protocol.CmdDisable:
		// Disabling also ends every token and session for good: enabling
		// again lets the user log in, it does not bring old tokens back.
		err, reason, msg = s.store.SetDisabled(ctx, name, true), protocol.SessionEndedDisabled, "user disabled"
		if err == nil {
			_, err = s.store.BumpGeneration(ctx, name, protocol.SessionEndedDisabled)
		}
	case protocol.CmdEnable:
		err, reason, msg = s.store.SetDisabled(ctx, name, false), "enabled", "user enabled"
	case protocol.CmdRevoke:
		_, err = s.store.BumpGeneration(ctx, name, protocol.SessionEndedRevoked)
		reason, msg = protocol.SessionEndedRevoked, "every token and session of the user ended"
	case protocol.CmdUnlock:
		_, err = s.store.ClearLoginFailures(ctx, name)
		msg = "failed-login counters cleared"
	case protocol.CmdDelete:
		u, gerr := s.store.GetUser(ctx, name)
		if gerr != nil {
			return nil, "", adminStoreError(gerr)
		}
		if err := s.store.DeleteUser(ctx, name); err != nil {
			return nil, "", adminStoreError(err)
		}
		s.changed(name, protocol.SessionEndedDeleted)
		return &protocol.UserData{Username: u.Username, Role: u.Role}, "user deleted", nil
	default:
		return nil, "", protocol.Errorf(protocol.CodeInternal, "admin command %s not implemented", req.Cmd)
	}
	if err != nil {
		return nil, "", adminStoreError(err)
	}
	if reason != "" {
		s.changed(name, reason)
	}
	info, err := s.userInfo(ctx, name)
	return info, msg, err
}

func adminStoreError(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errNoSuchUser
	case errors.Is(err, store.ErrLastAdmin):
		return errLastAdmin
	}
	return storeError(err)
}

func (s *Service) userInfo(ctx context.Context, name string) (*protocol.UserInfo, error) {
	u, err := s.store.GetUser(ctx, name)
	if err != nil {
		return nil, adminStoreError(err)
	}
	info := toUserInfo(u)
	// Throttled as seen from an address with no failures of its own: the
	// per-username counter, which every address shares.
	f, err := s.store.LoginFailures(ctx, store.FailureKey{Username: name})
	if err != nil {
		return nil, storeError(err)
	}
	if d := s.throttle.lockedFor(store.Failures{}, f, s.now()); d > 0 && !s.throttle.Disabled {
		info.Throttled = true
		info.RetryAfter = int64((d + time.Second - 1) / time.Second)
	}
	return &info, nil
}

func toUserInfo(u store.User) protocol.UserInfo {
	return protocol.UserInfo{
		Username:  u.Username,
		Role:      u.Role,
		CreatedAt: u.CreatedAt,
		LastLogin: u.LastLogin,
		Disabled:  u.Disabled,
	}
}

func (s *Service) listUsers(ctx context.Context, after string, limit int) (protocol.Data, string, error) {
	// One more than asked tells whether there is a next page.
	users, err := s.store.ListUsersAfter(ctx, lowerASCII(after), limit+1)
	if err != nil {
		return nil, "", storeError(err)
	}
	d := &protocol.UsersData{Users: make([]protocol.UserInfo, 0, min(len(users), limit))}
	for i, u := range users {
		if i == limit {
			d.Next = d.Users[limit-1].Username
			break
		}
		d.Users = append(d.Users, toUserInfo(u))
	}
	return d, "ok", nil
}
