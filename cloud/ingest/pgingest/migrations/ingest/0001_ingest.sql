-- What parts hand over. Identifiers sort by byte (the C collation), so
-- records come in the contract's key order on any database locale.
-- Sequences and sizes are bigint: the store refuses the uint64 values past
-- 2^63-1 that a part never reaches. Times are Unix nanoseconds, exactly as
-- the part or the cloud's clock gave them.

-- One row per stream of a store incarnation of a part: its watermark and
-- the counters Count sums. Writers of a stream hold its advisory lock.
CREATE TABLE ingest_streams (
	part_id   text COLLATE "C" NOT NULL,
	store_id  text COLLATE "C" NOT NULL,
	stream    text COLLATE "C" NOT NULL,
	watermark bigint NOT NULL DEFAULT 0,
	records   bigint NOT NULL DEFAULT 0,
	bytes     bigint NOT NULL DEFAULT 0,
	conflicts bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (part_id, store_id, stream)
);

-- The records. The primary key is what makes a record exactly once, so it
-- must stay unique across the whole table. Partitioning by time, for
-- retention that drops old data cheaply, therefore splits the table in
-- two: the key (part, store, stream, seq) stays here, unpartitioned and
-- small, and the payload and time move to a table partitioned by range of
-- received_at (the cloud's clock, never the part's, so a wrong part clock
-- cannot file a record in a dropped partition). Dropping a partition then
-- leaves the keys behind as tombstones, as DeleteRecords does, and a part
-- sending an old record again stores nothing. received_at is recorded
-- from the start so that split has every row's date.
CREATE TABLE ingest_records (
	part_id     text COLLATE "C" NOT NULL,
	store_id    text COLLATE "C" NOT NULL,
	stream      text COLLATE "C" NOT NULL,
	seq         bigint NOT NULL CHECK (seq > 0),
	time_ns     bigint,      -- the part's time; NULL when it gave none
	payload     bytea,       -- NULL once people deleted the record
	received_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (part_id, store_id, stream, seq)
);

-- Ranges parts declared lost, keyed as the contract says by their last
-- sequence.
CREATE TABLE ingest_lost (
	part_id  text COLLATE "C" NOT NULL,
	store_id text COLLATE "C" NOT NULL,
	stream   text COLLATE "C" NOT NULL,
	last     bigint NOT NULL,
	first    bigint NOT NULL CHECK (first > 0 AND first <= last),
	reason   text NOT NULL,
	PRIMARY KEY (part_id, store_id, stream, last)
);

-- Each blob's progress; its bytes are the blob store's.
CREATE TABLE ingest_blobs (
	part_id    text COLLATE "C" NOT NULL,
	blob_id    text COLLATE "C" NOT NULL,
	size       bigint NOT NULL,
	sha256     bytea NOT NULL,
	name       text NOT NULL,
	meta       bytea,
	received   bigint NOT NULL,
	complete   boolean NOT NULL,
	deleted    boolean NOT NULL,
	hash_state bytea,        -- SHA-256 state over the bytes received
	touched_ns bigint NOT NULL, -- the last chunk, by the cloud's clock
	PRIMARY KEY (part_id, blob_id)
);
-- The quota and the expiry sweep read only incomplete blobs.
CREATE INDEX ingest_blobs_partial ON ingest_blobs (part_id) WHERE NOT complete AND NOT deleted;
CREATE INDEX ingest_blobs_touched ON ingest_blobs (touched_ns) WHERE NOT complete AND NOT deleted;

CREATE TABLE ingest_status (
	part_id text COLLATE "C" PRIMARY KEY,
	at_ns   bigint NOT NULL,
	status  bytea NOT NULL
);
