-- 0004: token signing keys, shared by every instance on the store. A key
-- is never changed once added; retiring it sets retired_at, and the row
-- stays so that its kid is never reused.

CREATE TABLE signing_keys (
	kid        TEXT COLLATE "C" PRIMARY KEY, -- "C": SigningKeys breaks ties by kid, in byte order
	alg        TEXT   NOT NULL CHECK (alg IN ('HS256', 'EdDSA')),
	private    BYTEA  NOT NULL, -- HS256 secret, or Ed25519 private key
	public     BYTEA,           -- Ed25519 public key; NULL for HS256
	created_at BIGINT NOT NULL, -- unix milliseconds
	retired_at BIGINT,          -- unix milliseconds, NULL = active
	CHECK ((alg = 'EdDSA') = (public IS NOT NULL))
);
