package pgingest

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
)

// Partitions: ingest_payloads holds one partition per UTC day of
// received_at, named ingest_payloads_pYYYYMMDD, and a default partition
// for what arrives outside them. The store creates the days around now
// ahead of time (at Open and at each ApplyRetention), and carves out of
// the default partition every day it holds, so all data ends up in a
// partition retention can drop.

// partitionsAhead is how many days past today have partitions ready.
const partitionsAhead = 3

// partitionLock serializes partition changes across replicas (a
// transaction advisory lock in the migrations' two-number class).
const partitionLock = 2

var partitionName = regexp.MustCompile(`^ingest_payloads_p([0-9]{8})$`)

func dayOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func partitionOf(day time.Time) string { return "ingest_payloads_p" + day.Format("20060102") }

// EnsurePartitions creates the partitions of yesterday to partitionsAhead
// days after now, and of every day the default partition holds rows of,
// moving those rows into them.
func (s *Store) EnsurePartitions(ctx context.Context) error {
	today := dayOf(s.clock.Now())
	days := map[time.Time]bool{}
	for d := -1; d <= partitionsAhead; d++ {
		days[today.AddDate(0, 0, d)] = true
	}
	rows, _ := s.pool.Query(ctx, "SELECT DISTINCT floor(extract(epoch FROM received_at) / 86400)::bigint FROM ingest_payloads_default")
	held, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("read the default partition's days: %w", err)
	}
	for _, d := range held {
		days[time.Unix(d*86400, 0).UTC()] = true
	}
	for day := range days {
		if err := s.inTx(ctx, func(tx pgx.Tx) error { return createPartition(ctx, tx, day) }); err != nil {
			return fmt.Errorf("create the partition of %s: %w", day.Format(time.DateOnly), err)
		}
	}
	return nil
}

// createPartition attaches day's partition unless it exists, with the rows
// of that day the default partition held.
func createPartition(ctx context.Context, tx pgx.Tx, day time.Time) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", lockClassOut, partitionLock); err != nil {
		return err
	}
	name := partitionOf(day)
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&exists); err != nil || exists {
		return err
	}
	ident := pgx.Identifier{name}.Sanitize()
	lo, hi := day, day.AddDate(0, 0, 1)
	// The bounds are literals of times this code formats: DDL takes no
	// parameters.
	bounds := "FROM ('" + lo.Format(time.RFC3339) + "') TO ('" + hi.Format(time.RFC3339) + "')"
	for _, st := range []struct {
		sql     string
		inRange bool
	}{
		{"CREATE TABLE " + ident + " (LIKE ingest_payloads INCLUDING ALL)", false},
		{"INSERT INTO " + ident + " SELECT * FROM ingest_payloads_default WHERE received_at >= $1 AND received_at < $2", true},
		{"DELETE FROM ingest_payloads_default WHERE received_at >= $1 AND received_at < $2", true},
		{"ALTER TABLE ingest_payloads ATTACH PARTITION " + ident + " FOR VALUES " + bounds, false},
	} {
		var args []any
		if st.inRange {
			args = []any{lo, hi}
		}
		if _, err := tx.Exec(ctx, st.sql, args...); err != nil {
			return err
		}
	}
	return nil
}

// RetentionResult is what ApplyRetention did.
type RetentionResult struct {
	// Dropped names the partitions dropped whole.
	Dropped []string
	// Pruned counts records erased row by row from partitions that also
	// hold records still kept.
	Pruned int64
}

// ApplyRetention erases the payloads of records received before their
// part's cutoff (ok false: kept for ever), leaving their keys as
// tombstones, so a part sending one again stores nothing. A day's
// partition whose every record is past its part's cutoff is dropped whole,
// which costs one statement whatever it holds; one that mixes parts kept
// longer with parts past their cutoff has the latter's rows deleted.
// Today's partition and later ones are never touched.
func (s *Store) ApplyRetention(ctx context.Context, cutoff func(partID string) (time.Time, bool)) (RetentionResult, error) {
	var res RetentionResult
	if err := s.EnsurePartitions(ctx); err != nil {
		return res, err
	}
	rows, _ := s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'ingest_payloads'::regclass ORDER BY c.relname`)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return res, fmt.Errorf("list the partitions: %w", err)
	}
	today := dayOf(s.clock.Now())
	for _, name := range names {
		m := partitionName.FindStringSubmatch(name)
		if m == nil {
			continue // the default partition
		}
		day, err := time.Parse("20060102", m[1])
		if err != nil {
			continue
		}
		end := day.AddDate(0, 0, 1)
		if end.After(today) {
			continue // today or later
		}
		ident := pgx.Identifier{name}.Sanitize()
		rows, _ := s.pool.Query(ctx, "SELECT DISTINCT part_id FROM "+ident)
		parts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return res, fmt.Errorf("read the parts of %s: %w", name, err)
		}
		var expired []string
		for _, p := range parts {
			if c, ok := cutoff(p); ok && !c.Before(end) {
				expired = append(expired, p)
			}
		}
		switch {
		case len(parts) == 0 && !end.Before(today):
			// Yesterday's, empty: a late put may still need it.
		case len(expired) == len(parts):
			if err := s.inTx(ctx, func(tx pgx.Tx) error { return dropPartition(ctx, tx, name) }); err != nil {
				return res, fmt.Errorf("drop partition %s: %w", name, err)
			}
			res.Dropped = append(res.Dropped, name)
		case len(expired) > 0:
			var n int64
			err := s.inTx(ctx, func(tx pgx.Tx) error {
				var err error
				n, err = pruneRows(ctx, tx, ident, expired)
				return err
			})
			if err != nil {
				return res, fmt.Errorf("prune partition %s: %w", name, err)
			}
			res.Pruned += n
		}
	}
	return res, nil
}

// uncount takes the records of what (a partition's rows, or some of them)
// off their streams' counters.
const uncount = `UPDATE ingest_streams s SET records = s.records - g.n, bytes = s.bytes - g.b
	FROM (SELECT part_id, store_id, stream, count(*) AS n, coalesce(sum(length(payload)), 0) AS b FROM %s GROUP BY 1, 2, 3) g
	WHERE s.part_id = g.part_id AND s.store_id = g.store_id AND s.stream = g.stream`

// dropPartition uncounts a partition's records and drops it: the lock
// first, so a delete of its records waits and finds them gone.
func dropPartition(ctx context.Context, tx pgx.Tx, name string) error {
	ident := pgx.Identifier{name}.Sanitize()
	var n int64
	for _, step := range []func() error{
		func() error {
			_, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", lockClassOut, partitionLock)
			return err
		},
		func() error { _, err := tx.Exec(ctx, "LOCK TABLE "+ident+" IN ACCESS EXCLUSIVE MODE"); return err },
		func() error { return tx.QueryRow(ctx, "SELECT count(*) FROM "+ident).Scan(&n) },
		func() error { _, err := tx.Exec(ctx, fmt.Sprintf(uncount, ident)); return err },
		func() error { _, err := tx.Exec(ctx, "DROP TABLE "+ident); return err },
		func() error {
			_, err := tx.Exec(ctx, `INSERT INTO ingest_retention_runs (partition, records) VALUES ($1, $2)
				ON CONFLICT (partition) DO UPDATE SET dropped_at = now(), records = excluded.records`, name, n)
			return err
		},
	} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// pruneRows erases the rows of parts from one partition, uncounting them.
func pruneRows(ctx context.Context, tx pgx.Tx, ident string, parts []string) (int64, error) {
	if _, err := tx.Exec(ctx, "LOCK TABLE "+ident+" IN SHARE ROW EXCLUSIVE MODE"); err != nil {
		return 0, err
	}
	sub := "(SELECT * FROM " + ident + " WHERE part_id = ANY($1))"
	if _, err := tx.Exec(ctx, fmt.Sprintf(uncount, sub+" AS x"), parts); err != nil {
		return 0, err
	}
	tag, err := tx.Exec(ctx, "DELETE FROM "+ident+" WHERE part_id = ANY($1)", parts)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// lockClassOut is pgmigrate's advisory lock class ("out"), whose second
// numbers this store's partition changes share.
const lockClassOut = 0x6f7574
