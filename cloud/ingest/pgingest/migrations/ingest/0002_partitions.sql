-- Records partitioned by time, for retention that drops old data cheaply
-- (the split 0001 prepared): ingest_records keeps the keys, unpartitioned,
-- so a record stays exactly once; payloads and the part's times move to
-- ingest_payloads, partitioned by day of received_at (the cloud's clock).
-- A key without a payload is a tombstone, whether people deleted the
-- record or retention dropped its partition: a part sending it again
-- stores nothing. The store creates each day's partition ahead of time;
-- the default partition takes what arrives outside them.
CREATE TABLE ingest_payloads (
	part_id     text COLLATE "C" NOT NULL,
	store_id    text COLLATE "C" NOT NULL,
	stream      text COLLATE "C" NOT NULL,
	seq         bigint NOT NULL,
	received_at timestamptz NOT NULL,
	time_ns     bigint,
	payload     bytea NOT NULL,
	PRIMARY KEY (part_id, store_id, stream, seq, received_at)
) PARTITION BY RANGE (received_at);
CREATE TABLE ingest_payloads_default PARTITION OF ingest_payloads DEFAULT;

INSERT INTO ingest_payloads (part_id, store_id, stream, seq, received_at, time_ns, payload)
	SELECT part_id, store_id, stream, seq, received_at, time_ns, payload FROM ingest_records WHERE payload IS NOT NULL;
ALTER TABLE ingest_records DROP COLUMN payload, DROP COLUMN time_ns, ALTER COLUMN received_at DROP DEFAULT;

-- The fleet-wide capture query reads one stream over many parts by the
-- part's time.
CREATE INDEX ingest_payloads_stream_time ON ingest_payloads (stream, time_ns);

-- What retention dropped, partition by partition, for people auditing it.
CREATE TABLE ingest_retention_runs (
	partition   text COLLATE "C" PRIMARY KEY,
	dropped_at  timestamptz NOT NULL DEFAULT now(),
	records     bigint NOT NULL
);
