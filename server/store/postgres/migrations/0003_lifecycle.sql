-- 0003: account lifecycle (disabled accounts, token generations, last
-- login), refresh tokens, and the change feed that instances follow to keep
-- their caches fresh.

-- Existing users get the defaults: enabled, generation 1, never logged in.
ALTER TABLE users ADD COLUMN disabled   BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE users ADD COLUMN generation BIGINT  NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN last_login BIGINT; -- unix seconds, NULL = never

CREATE TABLE refresh_tokens (
	hash       BYTEA  PRIMARY KEY, -- SHA-256 of the token
	family     TEXT COLLATE "C" NOT NULL,
	username   TEXT COLLATE "C" NOT NULL,
	generation BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,    -- unix milliseconds
	used_at    BIGINT              -- unix milliseconds, NULL = unused
);

-- RevokeRefreshFamily deletes by family, PurgeRefreshTokens by expiry,
-- DeleteUser by username.
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_username ON refresh_tokens (username);

-- An identity column: its sequence never goes back, even after
-- PurgeChanges deleted the newest rows, so a follower never mistakes a new
-- change for one it has seen. A sequence hands out numbers in the order
-- transactions ask, not the order they commit; the store takes a lock
-- before each insert and holds it to commit (see appendChange), so that
-- changes become visible in seq order and a follower that read up to N
-- never misses a smaller seq committed later.
CREATE TABLE changes (
	seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind       TEXT   NOT NULL, -- 'user' or 'revoke'; unchecked, so new kinds need no migration
	username   TEXT COLLATE "C" NOT NULL DEFAULT '',
	reason     TEXT   NOT NULL DEFAULT '',
	jti        TEXT COLLATE "C" NOT NULL DEFAULT '',
	expires    BIGINT NOT NULL DEFAULT 0, -- unix seconds, 0 = none
	created_at BIGINT NOT NULL            -- unix milliseconds
);

-- PurgeChanges deletes by age.
CREATE INDEX changes_created_at ON changes (created_at);
