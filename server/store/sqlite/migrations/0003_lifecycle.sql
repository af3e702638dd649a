-- 0003: account lifecycle (disabled accounts, token generations, last
-- login), refresh tokens, and the change feed that instances follow to keep
-- their caches fresh.

-- Existing users get the defaults: enabled, generation 1, never logged in.
ALTER TABLE users ADD COLUMN disabled   INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1));
ALTER TABLE users ADD COLUMN generation INTEGER NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN last_login INTEGER; -- unix seconds, NULL = never

CREATE TABLE refresh_tokens (
	hash       BLOB    PRIMARY KEY, -- SHA-256 of the token
	family     TEXT    NOT NULL,
	username   TEXT    NOT NULL,
	generation INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,    -- unix milliseconds
	used_at    INTEGER              -- unix milliseconds, NULL = unused
);

-- RevokeRefreshFamily deletes by family, PurgeRefreshTokens by expiry,
-- DeleteUser by username.
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_username ON refresh_tokens (username);

-- AUTOINCREMENT: a seq is never reused, even after PurgeChanges deleted
-- the newest rows, so a follower never mistakes a new change for one it
-- has seen.
CREATE TABLE changes (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	kind       TEXT    NOT NULL, -- 'user' or 'revoke'; unchecked, so new kinds need no table rebuild
	username   TEXT    NOT NULL DEFAULT '',
	reason     TEXT    NOT NULL DEFAULT '',
	jti        TEXT    NOT NULL DEFAULT '',
	expires    INTEGER NOT NULL DEFAULT 0, -- unix seconds, 0 = none
	created_at INTEGER NOT NULL            -- unix milliseconds
);

-- PurgeChanges deletes by age.
CREATE INDEX changes_created_at ON changes (created_at);
