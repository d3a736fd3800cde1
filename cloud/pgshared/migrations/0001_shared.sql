-- What replicas share beyond the stores.

-- Relayed WebRTC offers between a client's call on one replica and its
-- part's poll on another (cloud/relay's Board). Unlogged: an offer lives
-- for one call of at most half a minute, and a database crash that empties
-- the table fails only the calls waiting then, which the clients retry.
CREATE UNLOGGED TABLE relay_offers (
	id         text COLLATE "C" PRIMARY KEY,
	part_id    text COLLATE "C" NOT NULL,
	msg        bytea NOT NULL,
	posted_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
	expires_ns bigint NOT NULL,
	taken      boolean NOT NULL DEFAULT false,
	answer     bytea
);
CREATE INDEX relay_offers_waiting ON relay_offers (part_id, posted_at) WHERE NOT taken;

-- The sign-in throttle's counts (authz.Limiter's policy), shared so a
-- guesser gains nothing by spreading attempts over replicas.
CREATE TABLE signin_throttle (
	name     text COLLATE "C" PRIMARY KEY,
	failures integer NOT NULL,
	next_ns  bigint NOT NULL,
	last_ns  bigint NOT NULL
);
CREATE INDEX signin_throttle_last ON signin_throttle (last_ns);

-- Account and address pairs that signed in, so the owner is never slowed
-- from an address it used.
CREATE TABLE signin_known (
	pair  text COLLATE "C" PRIMARY KEY,
	at_ns bigint NOT NULL
);
CREATE INDEX signin_known_at ON signin_known (at_ns);
