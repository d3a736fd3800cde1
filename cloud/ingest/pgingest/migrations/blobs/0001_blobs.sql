-- Blob bytes in chunks of 1 MiB: a copy is the rows 0..n of its key, every
-- one full but the last, and an empty copy is one empty row. A partial
-- copy and the committed blob are told apart by committed, and Commit
-- flips it in one transaction, so a reader sees the whole blob or none.
CREATE TABLE blob_chunks (
	part_id   text COLLATE "C" NOT NULL,
	blob_id   text COLLATE "C" NOT NULL,
	committed boolean NOT NULL,
	idx       integer NOT NULL CHECK (idx >= 0),
	data      bytea NOT NULL,
	PRIMARY KEY (part_id, blob_id, committed, idx)
);
-- Captures are mostly compressed already: stored out of line, uncompressed,
-- rather than spending CPU on a compression attempt per chunk.
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
