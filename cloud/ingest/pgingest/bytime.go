package pgingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outpost-robotics/outpost/cloud/ingest"
)

// RecordsByTime reads each stream's page in the order of the
// ingest_payloads_time_order index and merges them; see ingest.Store.
func (s *Store) RecordsByTime(ctx context.Context, q ingest.TimeQuery) ([]ingest.StoredRecord, string, error) {
	limit, after, err := ingest.CheckTimeQuery(q)
	if err != nil {
		return nil, "", err
	}
	streams := slices.Clone(q.Streams)
	slices.Sort(streams)
	streams = slices.Compact(streams)
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	var common []string
	if !q.From.IsZero() {
		common = append(common, "time_ns >= "+arg(*nanos(q.From)))
	}
	if !q.To.IsZero() {
		common = append(common, "time_ns < "+arg(*nanos(q.To)))
	}
	if len(q.PartIDs) > 0 {
		common = append(common, "part_id = ANY("+arg(q.PartIDs)+")")
	}
	var subs []string
	for _, st := range streams {
		where := append([]string{"stream = " + arg(st), "time_ns IS NOT NULL"}, common...)
		if after != nil {
			// After (T, P, S, STREAM, Q) in the order time, part, store,
			// stream, seq, said for this one stream.
			switch c := strings.Compare(st, after.Stream); {
			case c == 0:
				where = append(where, fmt.Sprintf("(time_ns, part_id, store_id, seq) > (%s, %s, %s, %s)",
					arg(after.Time.UnixNano()), arg(after.PartID), arg(after.StoreID), arg(int64(after.Seq))))
			default:
				op := ">"
				if c > 0 {
					op = ">="
				}
				where = append(where, fmt.Sprintf("(time_ns, part_id, store_id) %s (%s, %s, %s)", op, arg(after.Time.UnixNano()), arg(after.PartID), arg(after.StoreID)))
			}
		}
		subs = append(subs, "(SELECT part_id, store_id, stream, seq, time_ns, payload FROM ingest_payloads WHERE "+
			strings.Join(where, " AND ")+" ORDER BY time_ns, part_id, store_id, seq LIMIT "+arg(limit+1)+")")
	}
	sql := strings.Join(subs, " UNION ALL ")
	if len(subs) > 1 {
		sql = "SELECT * FROM (" + sql + ") u ORDER BY time_ns, part_id, store_id, stream, seq LIMIT " + arg(limit+1)
	}
	rows, _ := s.pool.Query(ctx, sql, args...)
	var out []ingest.StoredRecord
	var r ingest.StoredRecord
	var seq, tn int64
	var payload []byte
	_, err = pgx.ForEachRow(rows, []any{&r.PartID, &r.StoreID, &r.Stream, &seq, &tn, &payload}, func() error {
		out = append(out, ingest.StoredRecord{StreamKey: r.StreamKey,
			Record: ingest.Record{Seq: uint64(seq), Time: time.Unix(0, tn).UTC(), Payload: bytes.Clone(payload)}})
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("read records by time: %w", err)
	}
	if len(out) <= limit {
		return out, "", nil
	}
	out = out[:limit]
	return out, ingest.EncodeTimeCursor(ingest.TimeKeyOf(out[limit-1])), nil
}

// Record reads one record; see ingest.Store.
func (s *Store) Record(ctx context.Context, key ingest.StreamKey, seq uint64) (ingest.StoredRecord, error) {
	if err := key.Validate(); err != nil {
		return ingest.StoredRecord{}, fmt.Errorf("read record: %w", err)
	}
	if seq == 0 || seq > 1<<63-1 {
		return ingest.StoredRecord{}, fmt.Errorf("read record %s/%d: %w", key, seq, ingest.ErrNotFound)
	}
	var tn *int64
	var payload []byte
	err := s.pool.QueryRow(ctx, "SELECT time_ns, payload FROM ingest_payloads WHERE part_id = $1 AND store_id = $2 AND stream = $3 AND seq = $4",
		key.PartID, key.StoreID, key.Stream, int64(seq)).Scan(&tn, &payload)
	if errors.Is(err, pgx.ErrNoRows) {
		return ingest.StoredRecord{}, fmt.Errorf("read record %s/%d: %w", key, seq, ingest.ErrNotFound)
	}
	if err != nil {
		return ingest.StoredRecord{}, fmt.Errorf("read record %s/%d: %w", key, seq, err)
	}
	rec := ingest.StoredRecord{StreamKey: key, Record: ingest.Record{Seq: seq, Payload: payload}}
	if tn != nil {
		rec.Time = time.Unix(0, *tn).UTC()
	}
	return rec, nil
}

// BulkLoad writes fresh streams whole with COPY, for loading a
// benchmark's or a demo's millions of records in seconds. Each stream
// must be new and its records in sequence order from 1; nothing checks
// it, so it is never for what a part sends.
func (s *Store) BulkLoad(ctx context.Context, streams []ingest.Bulk) error {
	if err := s.EnsurePartitions(ctx); err != nil {
		return fmt.Errorf("bulk load: %w", err)
	}
	now := s.clock.Now()
	var keys, payloads, metas [][]any
	for _, b := range streams {
		if err := b.Key.Validate(); err != nil {
			return fmt.Errorf("bulk load: %w", err)
		}
		var n, size, last int64
		for _, r := range b.Records {
			keys = append(keys, []any{b.Key.PartID, b.Key.StoreID, b.Key.Stream, int64(r.Seq), now})
			payloads = append(payloads, []any{b.Key.PartID, b.Key.StoreID, b.Key.Stream, int64(r.Seq), now, nanos(r.Time), r.Payload})
			n, size, last = n+1, size+int64(len(r.Payload)), int64(r.Seq)
		}
		metas = append(metas, []any{b.Key.PartID, b.Key.StoreID, b.Key.Stream, last, n, size, int64(0)})
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		for _, c := range []struct {
			table string
			cols  []string
			rows  [][]any
		}{
			{"ingest_streams", []string{"part_id", "store_id", "stream", "watermark", "records", "bytes", "conflicts"}, metas},
			{"ingest_records", []string{"part_id", "store_id", "stream", "seq", "received_at"}, keys},
			{"ingest_payloads", []string{"part_id", "store_id", "stream", "seq", "received_at", "time_ns", "payload"}, payloads},
		} {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
				return fmt.Errorf("bulk load %s: %w", c.table, err)
			}
		}
		return nil
	})
}
