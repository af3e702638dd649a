-- 0005: an index on the users' role, so that counting the admins (at start,
-- to warn when there is none) and checking that another admin remains
-- (before demoting, disabling or deleting one) read the few admins rather
-- than every user.

CREATE INDEX users_role ON users (role);
