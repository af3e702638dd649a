-- 0002: failed-login counters for throttling, kept across restarts.
-- ip is '' for the counter of a username across all addresses.

CREATE TABLE login_failures (
	username     TEXT    NOT NULL,
	ip           TEXT    NOT NULL,
	count        INTEGER NOT NULL,
	last_failure INTEGER NOT NULL, -- unix milliseconds
	PRIMARY KEY (username, ip)
);

-- PurgeLoginFailures deletes by age.
CREATE INDEX login_failures_last_failure ON login_failures (last_failure);
