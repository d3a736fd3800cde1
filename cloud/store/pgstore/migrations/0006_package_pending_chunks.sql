-- Chunks an organization uploaded that no version names yet: counted
-- against its quota of such chunks, and collected after an age.
CREATE TABLE package_pending_chunks (
	org_id      text COLLATE "C" NOT NULL,
	sha256      bytea NOT NULL CHECK (length(sha256) = 32),
	size        bigint NOT NULL CHECK (size >= 0),
	uploaded_at timestamptz NOT NULL,
	PRIMARY KEY (org_id, sha256)
);
CREATE INDEX package_pending_chunks_age ON package_pending_chunks (org_id, uploaded_at);
