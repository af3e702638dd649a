-- 0001: users and token revocations.

CREATE TABLE users (
	username      TEXT    PRIMARY KEY,
	password_hash BLOB    NOT NULL,
	role          TEXT    NOT NULL CHECK (role IN ('user', 'admin')),
	created_at    INTEGER NOT NULL -- unix seconds
);

CREATE TABLE revoked_tokens (
	jti        TEXT    PRIMARY KEY,
	expires_at INTEGER NOT NULL -- unix seconds
);

-- PurgeRevocations deletes by expiry.
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);
