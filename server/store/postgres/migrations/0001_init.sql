-- 0001: users and token revocations. The PostgreSQL twin of
-- sqlite/migrations/0001_init.sql: the same tables, columns and units.
--
-- Times are integers in the units SQLite keeps (unix seconds or
-- milliseconds), so both backends round and compare them the same way.
-- Usernames are COLLATE "C": they sort by their bytes, as in SQLite,
-- whatever the database's default collation.

CREATE TABLE users (
	username      TEXT COLLATE "C" PRIMARY KEY,
	password_hash BYTEA  NOT NULL,
	role          TEXT   NOT NULL CHECK (role IN ('user', 'admin')),
	created_at    BIGINT NOT NULL -- unix seconds
);

CREATE TABLE revoked_tokens (
	jti        TEXT COLLATE "C" PRIMARY KEY,
	expires_at BIGINT NOT NULL -- unix seconds
);

-- PurgeRevocations deletes by expiry.
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);
