-- Rows as version 1 of the ingest schema holds them, written by hand as an
-- older cloud would have: a record, and one people deleted (NULL payload).
INSERT INTO ingest_streams (part_id, store_id, stream, watermark, records, bytes) VALUES ('seed-part', 's1', 'logs.info', 2, 1, 5);
INSERT INTO ingest_records (part_id, store_id, stream, seq, time_ns, payload, received_at) VALUES
  ('seed-part', 's1', 'logs.info', 1, 1700000000000000000, 'hello', '2026-01-02T03:04:05Z'),
  ('seed-part', 's1', 'logs.info', 2, NULL, NULL, '2026-01-02T03:04:06Z');
