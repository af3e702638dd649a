-- 0002: failed-login counters for throttling, kept across restarts.
-- ip is '' for the counter of a username across all addresses.

CREATE TABLE login_failures (
	username     TEXT COLLATE "C" NOT NULL,
	ip           TEXT COLLATE "C" NOT NULL,
	count        INTEGER NOT NULL,
	last_failure BIGINT  NOT NULL, -- unix milliseconds
	PRIMARY KEY (username, ip)
);

-- PurgeLoginFailures deletes by age.
CREATE INDEX login_failures_last_failure ON login_failures (last_failure);
