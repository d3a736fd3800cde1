-- The fleet store's tables. Each record is its store type's JSON in doc;
-- the columns beside it are what lookups, lists and uniqueness need, so a
-- later migration can add a column (and its index) for a new query without
-- rewriting the rows. doc is json, not jsonb: json keeps any string Go
-- encodes (jsonb refuses \u0000), so every record the embedded store
-- holds, this one holds too. Identifiers sort by byte (the C collation),
-- which is what the contract's "sorted by ID" means on every engine,
-- whatever the database's own locale.

-- generation is one row, bumped by every transaction that changes the
-- hierarchy (orgs, locations, machines, parts).
CREATE TABLE generation (
	one   boolean PRIMARY KEY DEFAULT true CHECK (one),
	value bigint NOT NULL
);
INSERT INTO generation (value) VALUES (0);

CREATE TABLE orgs (
	id  text COLLATE "C" PRIMARY KEY,
	doc json NOT NULL
);

CREATE TABLE locations (
	id        text COLLATE "C" PRIMARY KEY,
	org_id    text COLLATE "C" NOT NULL,
	parent_id text COLLATE "C" NOT NULL,
	doc       json NOT NULL
);
CREATE INDEX locations_org ON locations (org_id, id);
CREATE INDEX locations_parent ON locations (parent_id, id);

CREATE TABLE machines (
	id          text COLLATE "C" PRIMARY KEY,
	location_id text COLLATE "C" NOT NULL,
	doc         json NOT NULL
);
CREATE INDEX machines_location ON machines (location_id, id);

CREATE TABLE parts (
	id         text COLLATE "C" PRIMARY KEY,
	machine_id text COLLATE "C" NOT NULL,
	doc        json NOT NULL
);
CREATE INDEX parts_machine ON parts (machine_id, id);

CREATE TABLE users (
	id    text COLLATE "C" PRIMARY KEY,
	email text COLLATE "C" NOT NULL UNIQUE,
	doc   json NOT NULL
);

CREATE TABLE api_keys (
	id     text COLLATE "C" PRIMARY KEY,
	org_id text COLLATE "C" NOT NULL,
	doc    json NOT NULL
);
CREATE INDEX api_keys_org ON api_keys (org_id, id);

CREATE TABLE grants (
	subject text COLLATE "C" NOT NULL,
	scope   text COLLATE "C" NOT NULL,
	org_id  text COLLATE "C" NOT NULL,
	doc     json NOT NULL,
	PRIMARY KEY (subject, scope)
);
CREATE INDEX grants_scope ON grants (scope, subject);
CREATE INDEX grants_org ON grants (org_id, subject, scope);

CREATE TABLE invites (
	id        text COLLATE "C" PRIMARY KEY,
	code_hash bytea NOT NULL UNIQUE,
	doc       json NOT NULL
);

CREATE TABLE audit_events (
	id     text COLLATE "C" PRIMARY KEY,
	org_id text COLLATE "C" NOT NULL,
	doc    json NOT NULL
);
CREATE INDEX audit_events_org ON audit_events (org_id, id);

CREATE TABLE config_revisions (
	machine_id text COLLATE "C" NOT NULL,
	revision   bigint NOT NULL CHECK (revision > 0),
	doc        json NOT NULL,
	PRIMARY KEY (machine_id, revision)
);

CREATE TABLE fragments (
	id     text COLLATE "C" PRIMARY KEY,
	org_id text COLLATE "C" NOT NULL,
	doc    json NOT NULL
);
CREATE INDEX fragments_org ON fragments (org_id, id);

CREATE TABLE fragment_revisions (
	fragment_id text COLLATE "C" NOT NULL,
	revision    bigint NOT NULL CHECK (revision > 0),
	doc         json NOT NULL,
	PRIMARY KEY (fragment_id, revision)
);

CREATE TABLE part_documents (
	part_id text COLLATE "C" PRIMARY KEY,
	doc     json NOT NULL
);

CREATE TABLE proposals (
	id         text COLLATE "C" PRIMARY KEY,
	machine_id text COLLATE "C" NOT NULL,
	doc        json NOT NULL
);
CREATE INDEX proposals_machine ON proposals (machine_id, id);

CREATE TABLE capture_tags (
	id  text COLLATE "C" PRIMARY KEY,
	doc json NOT NULL
);

CREATE TABLE meta (
	key   text COLLATE "C" PRIMARY KEY,
	value bytea NOT NULL
);
