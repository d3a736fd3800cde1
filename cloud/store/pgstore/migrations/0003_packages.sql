-- The package registry: packages by (organization, name), their versions
-- by platform, and content chunks held once per organization, raw bytes
-- keyed by their SHA-256 within it (never across organizations).
CREATE TABLE packages (
	org_id text COLLATE "C" NOT NULL,
	name   text COLLATE "C" NOT NULL,
	doc    json NOT NULL,
	PRIMARY KEY (org_id, name)
);

CREATE TABLE package_versions (
	package_key text COLLATE "C" NOT NULL,
	version     text COLLATE "C" NOT NULL,
	platform    text COLLATE "C" NOT NULL,
	doc         json NOT NULL,
	PRIMARY KEY (package_key, version, platform)
);

CREATE TABLE package_chunks (
	org_id text COLLATE "C" NOT NULL,
	sha256 bytea NOT NULL CHECK (length(sha256) = 32),
	data   bytea NOT NULL,
	PRIMARY KEY (org_id, sha256)
);
