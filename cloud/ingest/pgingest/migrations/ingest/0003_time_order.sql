-- The fleet-wide lists read one stream over many parts in time order
-- (RecordsByTime): by time, then part, store and sequence. With the whole
-- order in the index, a page is an index range on each day's partition,
-- merged, however many records the stream holds; the former index on
-- (stream, time_ns) alone made PostgreSQL sort every record of a time.
CREATE INDEX ingest_payloads_time_order ON ingest_payloads (stream, time_ns, part_id, store_id, seq);
DROP INDEX ingest_payloads_stream_time;
