-- 0004: token signing keys, shared by every instance on the store. A key
-- is never changed once added; retiring it sets retired_at, and the row
-- stays so that its kid is never reused.

CREATE TABLE signing_keys (
	kid        TEXT    PRIMARY KEY,
	alg        TEXT    NOT NULL CHECK (alg IN ('HS256', 'EdDSA')),
	private    BLOB    NOT NULL, -- HS256 secret, or Ed25519 private key
	public     BLOB,             -- Ed25519 public key; NULL for HS256
	created_at INTEGER NOT NULL, -- unix milliseconds
	retired_at INTEGER,          -- unix milliseconds, NULL = active
	CHECK ((alg = 'EdDSA') = (public IS NOT NULL))
);
