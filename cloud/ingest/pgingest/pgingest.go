// Package pgingest is the ingest.Store on PostgreSQL: what parts upload,
// exactly once, shared by any number of stateless cloud replicas.
//
// It is one of the PostgreSQL packages, the only ones that may import the
// driver, pgx (docs/ARCHITECTURE.md; deptest checks it). No pgx type leaves
// it: callers see ingest.Store and ingest.BlobStore, and it passes the same
// ingesttest suites as badgeringest.
//
// Exactly once across replicas: every write to a stream holds the stream's
// transaction-scoped advisory lock, taken in one order by every writer, so
// the existence checks of a put and its inserts see one state, whichever
// replica runs it; the records' primary key backs that up. Transactions
// are READ COMMITTED on purpose: each statement after the lock sees what
// the lock's previous holder committed (a REPEATABLE READ snapshot would
// predate the lock). Locks rather than SERIALIZABLE because writers of one
// stream always collide, and aborting and resending a 1 MiB batch for each
// collision would be the common case, not the exception. A batch, its
// losses included, is one transaction: one durable commit. An advisory
// lock writes nothing, so a batch already held (a part repeating what it
// sent before its outage) commits no write at all.
//
// Blobs: each blob's chunks are serialized by a session advisory lock
// held across the blob store's write, since that write is the blob
// store's own (a folder, PostgreSQL, an object store), outside this
// store's transactions.
//
// PostgreSQL text holds neither NUL nor invalid UTF-8: ingest.ValidateID
// keeps both out of ids already, and the free text a part sends (a lost
// range's reason, a blob's name) is stored with such bytes replaced by
// U+FFFD rather than refused, since refusing it would refuse the upload
// it came with for ever. Sequences and sizes past 2^63-1, which no part
// reaches, are ErrInvalid: the database's integers are signed.
package pgingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/pgmigrate"
)

const (
	maxReasonLen = 1 << 10
	// advancePage is how many sequences a watermark walk reads at once.
	advancePage = 4096
	// maxAttempts bounds retries of a transaction PostgreSQL aborted for a
	// deadlock (locks are ordered, so this is a backstop).
	maxAttempts = 5
)

//go:embed migrations
var migrationFiles embed.FS

// Migrations are the ingest store's schema versions, applied by Open.
func Migrations() pgmigrate.Set {
	return pgmigrate.Embedded("ingest", migrationFiles, "migrations/ingest")
}

// Options configures Open.
type Options struct {
	// URL is the database's postgres:// URL or connection string; required.
	URL string
	// Blobs receives blob bytes; required.
	Blobs ingest.BlobStore
	// Clock dates blob chunks, for expiring abandoned incomplete blobs;
	// nil means the machine's clock.
	Clock clock.Clock
	// PartialBlobQuota bounds the declared bytes of one part's incomplete
	// blobs; 0 means ingest.DefaultPartialBlobQuota.
	PartialBlobQuota uint64
	// MaxPartialBlobs bounds how many incomplete blobs one part has; 0
	// means ingest.DefaultMaxPartialBlobs.
	MaxPartialBlobs int
	// PartialBlobTTL is how long an incomplete blob is kept without a
	// chunk; 0 means ingest.DefaultPartialBlobTTL.
	PartialBlobTTL time.Duration
}

// Store is the PostgreSQL implementation of ingest.Store.
type Store struct {
	pool   *pgxpool.Pool
	blobs  ingest.BlobStore
	clock  clock.Clock
	limits ingest.PartialLimits
}

var (
	_ ingest.Store        = (*Store)(nil)
	_ ingest.PartialBlobs = (*Store)(nil)
)

// Open connects to the database, applies the migrations it lacks and
// returns the store. Replicas may open the same database at once.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.URL == "" || opts.Blobs == nil {
		return nil, errors.New("open ingest store: URL and Blobs are required")
	}
	pool, err := pgmigrate.Connect(ctx, opts.URL, Migrations())
	if err != nil {
		return nil, fmt.Errorf("open ingest store: %w", err)
	}
	s := &Store{pool: pool, blobs: opts.Blobs, clock: opts.Clock, limits: ingest.PartialLimits{
		Quota: opts.PartialBlobQuota, MaxCount: opts.MaxPartialBlobs, TTL: opts.PartialBlobTTL}.WithDefaults()}
	if s.clock == nil {
		s.clock = clock.NewReal()
	}
	if err := s.EnsurePartitions(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open ingest store: %w", err)
	}
	return s, nil
}

// Close closes the store's connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// lockKey is the advisory lock of what parts name: a 64-bit hash, so two
// names sharing one only wait on each other.
func lockKey(kind byte, parts ...string) int64 {
	h := fnv.New64a()
	h.Write([]byte{kind})
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return int64(h.Sum64())
}

// inTx runs fn in a READ COMMITTED transaction, again after a deadlock or
// a failure on a pooled connection the server had closed before anything
// was sent on it (PostgreSQL restarted).
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	var err error
	for range maxAttempts {
		err = pgx.BeginFunc(ctx, s.pool, fn)
		var pe *pgconn.PgError
		conflict := errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
		if !conflict && (!pgconn.SafeToRetry(err) || ctx.Err() != nil) {
			return err
		}
	}
	return err
}

// lockStreams takes the advisory locks of keys in one order, so two puts
// that share streams cannot deadlock.
func lockStreams(ctx context.Context, tx pgx.Tx, keys []ingest.StreamKey) error {
	ids := make([]int64, 0, len(keys))
	for _, k := range keys {
		ids = append(ids, lockKey('s', k.PartID, k.StoreID, k.Stream))
	}
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", id); err != nil {
			return fmt.Errorf("lock stream: %w", err)
		}
	}
	return nil
}

// text makes a part's free text storable: at most n bytes, valid UTF-8,
// no NUL.
func text(s string, n int) string {
	if n > 0 && len(s) > n {
		s = s[:n]
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func checkSeq(key ingest.StreamKey, seq uint64) error {
	if seq == 0 || seq > math.MaxInt64 {
		return fmt.Errorf("put records of %s: sequence %d: want 1 to 2^63-1: %w", key, seq, ingest.ErrInvalid)
	}
	return nil
}

// checkLoss validates a declared-lost range.
func checkLoss(key ingest.StreamKey, first, last uint64) error {
	if err := key.Validate(); err != nil {
		return fmt.Errorf("declare lost: %w", err)
	}
	if first == 0 || first > last || last > math.MaxInt64 {
		return fmt.Errorf("declare %d..%d of %s lost: want 0 < first <= last < 2^63: %w", first, last, key, ingest.ErrInvalid)
	}
	return nil
}

// nanos is t in Unix nanoseconds, clamped to what they can say (the years
// 1678 to 2262), or nil for the zero time.
func nanos(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	var n int64
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		n = math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		n = math.MaxInt64
	default:
		n = t.UnixNano()
	}
	return &n
}

type meta struct {
	watermark, records, bytes, conflicts int64
	dirty                                bool
}

// Records.

// PutRecords stores the records not held yet and advances the watermark.
func (s *Store) PutRecords(ctx context.Context, key ingest.StreamKey, recs []ingest.Record) (ingest.PutResult, error) {
	return s.PutBatch(ctx, key, recs, nil)
}

// PutBatch declares the losses, stores the records not held yet and
// advances the watermarks, in one transaction; see ingest.Store.
func (s *Store) PutBatch(ctx context.Context, key ingest.StreamKey, recs []ingest.Record, losses []ingest.Loss) (ingest.PutResult, error) {
	if err := key.Validate(); err != nil {
		return ingest.PutResult{}, fmt.Errorf("put records: %w", err)
	}
	for _, r := range recs {
		if err := checkSeq(key, r.Seq); err != nil {
			return ingest.PutResult{}, err
		}
	}
	keys := []ingest.StreamKey{key}
	for _, l := range losses {
		lk := ingest.StreamKey{PartID: key.PartID, StoreID: key.StoreID, Stream: l.Stream}
		if err := checkLoss(lk, l.First, l.Last); err != nil {
			return ingest.PutResult{}, err
		}
		keys = append(keys, lk)
	}
	var res ingest.PutResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		res = ingest.PutResult{}
		if err := lockStreams(ctx, tx, keys); err != nil {
			return err
		}
		metas, err := loadMetas(ctx, tx, key, keys)
		if err != nil {
			return err
		}
		// Losses first: they commit no later than the records they come with.
		if err := declare(ctx, tx, key, losses); err != nil {
			return err
		}
		if err := putRecords(ctx, tx, key, recs, s.clock.Now(), metas[key.Stream], &res); err != nil {
			return err
		}
		streams := make([]string, 0, len(metas))
		for st := range metas {
			streams = append(streams, st)
		}
		slices.Sort(streams)
		for _, st := range streams {
			m := metas[st]
			sk := ingest.StreamKey{PartID: key.PartID, StoreID: key.StoreID, Stream: st}
			w, err := advance(ctx, tx, sk, m.watermark)
			if err != nil {
				return err
			}
			if w != m.watermark {
				m.watermark, m.dirty = w, true
			}
			if err := saveMeta(ctx, tx, sk, m); err != nil {
				return err
			}
		}
		res.AckedThrough = uint64(metas[key.Stream].watermark)
		return nil
	})
	if err != nil {
		return ingest.PutResult{}, fmt.Errorf("put records of %s: %w", key, err)
	}
	return res, nil
}

// loadMetas reads the metas of keys (all of key's part and store), with a
// zero one for a stream never written.
func loadMetas(ctx context.Context, tx pgx.Tx, key ingest.StreamKey, keys []ingest.StreamKey) (map[string]*meta, error) {
	metas := map[string]*meta{}
	var streams []string
	for _, k := range keys {
		if metas[k.Stream] == nil {
			metas[k.Stream] = &meta{}
			streams = append(streams, k.Stream)
		}
	}
	rows, _ := tx.Query(ctx, `SELECT stream, watermark, records, bytes, conflicts FROM ingest_streams
		WHERE part_id = $1 AND store_id = $2 AND stream = ANY($3)`, key.PartID, key.StoreID, streams)
	var st string
	var m meta
	_, err := pgx.ForEachRow(rows, []any{&st, &m.watermark, &m.records, &m.bytes, &m.conflicts}, func() error {
		*metas[st] = m
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read stream metas: %w", err)
	}
	return metas, nil
}

// saveMeta writes a changed meta.
func saveMeta(ctx context.Context, tx pgx.Tx, key ingest.StreamKey, m *meta) error {
	if !m.dirty {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO ingest_streams (part_id, store_id, stream, watermark, records, bytes, conflicts)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (part_id, store_id, stream) DO UPDATE SET watermark = excluded.watermark,
			records = excluded.records, bytes = excluded.bytes, conflicts = excluded.conflicts`,
		key.PartID, key.StoreID, key.Stream, m.watermark, m.records, m.bytes, m.conflicts)
	if err != nil {
		return fmt.Errorf("write meta of %s: %w", key, err)
	}
	return nil
}

// declare keeps the lost ranges, merging those that end together as one
// declared after the other would be: the widest wins.
func declare(ctx context.Context, tx pgx.Tx, key ingest.StreamKey, losses []ingest.Loss) error {
	if len(losses) == 0 {
		return nil
	}
	type end struct {
		stream string
		last   uint64
	}
	merged := map[end]ingest.Loss{}
	var order []end
	for _, l := range losses {
		e := end{l.Stream, l.Last}
		held, ok := merged[e]
		switch {
		case !ok:
			order = append(order, e)
		case held.First <= l.First:
			continue
		case l.Reason == "":
			l.Reason = held.Reason
		}
		merged[e] = l
	}
	var streams, reasons []string
	var lasts, firsts []int64
	for _, e := range order {
		l := merged[e]
		streams = append(streams, l.Stream)
		lasts = append(lasts, int64(l.Last))
		firsts = append(firsts, int64(l.First))
		reasons = append(reasons, text(l.Reason, maxReasonLen))
	}
	_, err := tx.Exec(ctx, `INSERT INTO ingest_lost AS l (part_id, store_id, stream, last, first, reason)
		SELECT $1, $2, u.stream, u.last, u.first, u.reason FROM unnest($3::text[], $4::bigint[], $5::bigint[], $6::text[]) AS u(stream, last, first, reason)
		ON CONFLICT (part_id, store_id, stream, last) DO UPDATE
		SET first = excluded.first, reason = CASE WHEN excluded.reason = '' THEN l.reason ELSE excluded.reason END
		WHERE excluded.first < l.first`,
		key.PartID, key.StoreID, streams, lasts, firsts, reasons)
	if err != nil {
		return fmt.Errorf("declare lost ranges: %w", err)
	}
	return nil
}

// putRecords stores the records of recs not held yet, counting repeats
// and conflicts as the contract says, the first copy winning.
func putRecords(ctx context.Context, tx pgx.Tx, key ingest.StreamKey, recs []ingest.Record, now time.Time, m *meta, res *ingest.PutResult) error {
	if len(recs) == 0 {
		return nil
	}
	seqs := make([]int64, 0, len(recs))
	for _, r := range recs {
		seqs = append(seqs, int64(r.Seq))
	}
	// What is held of these sequences: whether deleted, and a digest to
	// compare a repeat's bytes with, so a repeated batch is not sent back.
	type heldRec struct {
		deleted bool
		sum     [sha256.Size]byte
	}
	held := map[uint64]heldRec{}
	// A key without a payload is a tombstone (deleted, or its partition
	// dropped by retention).
	rows, _ := tx.Query(ctx, `SELECT r.seq, p.payload IS NULL, coalesce(sha256(p.payload), ''::bytea) FROM ingest_records r
		LEFT JOIN ingest_payloads p ON p.part_id = r.part_id AND p.store_id = r.store_id AND p.stream = r.stream
			AND p.seq = r.seq AND p.received_at = r.received_at
		WHERE r.part_id = $1 AND r.store_id = $2 AND r.stream = $3 AND r.seq = ANY($4)`,
		key.PartID, key.StoreID, key.Stream, seqs)
	var seq int64
	var deleted bool
	var sum []byte
	if _, err := pgx.ForEachRow(rows, []any{&seq, &deleted, &sum}, func() error {
		h := heldRec{deleted: deleted}
		copy(h.sum[:], sum)
		held[uint64(seq)] = h
		return nil
	}); err != nil {
		return fmt.Errorf("look up held records: %w", err)
	}
	var newSeqs []int64
	var newTimes []*int64
	var newPayloads [][]byte
	for _, r := range recs {
		digest := sha256.Sum256(r.Payload)
		if h, ok := held[r.Seq]; ok {
			// A deleted record stays deleted: its repeat is a no-op.
			if h.deleted || h.sum == digest {
				res.Duplicates++
			} else {
				res.Conflicts = append(res.Conflicts, r.Seq)
				m.conflicts++
				m.dirty = true
			}
			continue
		}
		held[r.Seq] = heldRec{sum: digest} // a repeat later in the batch
		payload := r.Payload
		if payload == nil {
			payload = []byte{} // NULL is a deleted record
		}
		newSeqs = append(newSeqs, int64(r.Seq))
		newTimes = append(newTimes, nanos(r.Time))
		newPayloads = append(newPayloads, payload)
		m.records++
		m.bytes += int64(len(payload))
		m.dirty = true
		res.Stored++
	}
	if len(newSeqs) == 0 {
		return nil
	}
	// Under the stream's lock nothing else inserts these keys: a
	// conflict here is a bug, and fails the put rather than miscount.
	_, err := tx.Exec(ctx, `INSERT INTO ingest_records (part_id, store_id, stream, seq, received_at)
		SELECT $1, $2, $3, u.seq, $5 FROM unnest($4::bigint[]) AS u(seq)`,
		key.PartID, key.StoreID, key.Stream, newSeqs, now)
	if err != nil {
		return fmt.Errorf("store record keys: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO ingest_payloads (part_id, store_id, stream, seq, received_at, time_ns, payload)
		SELECT $1, $2, $3, u.seq, $7, u.time_ns, u.payload FROM unnest($4::bigint[], $5::bigint[], $6::bytea[]) AS u(seq, time_ns, payload)`,
		key.PartID, key.StoreID, key.Stream, newSeqs, newTimes, newPayloads, now)
	if err != nil {
		return fmt.Errorf("store records: %w", err)
	}
	return nil
}

type lostRange struct{ first, last uint64 }

// advance moves the watermark w over the sequences held or declared lost
// after it, reading them a page at a time, and stops at the first that is
// neither: a stream with a hole costs one page per put.
func advance(ctx context.Context, tx pgx.Tx, key ingest.StreamKey, w int64) (int64, error) {
	rows, _ := tx.Query(ctx, `SELECT first, last FROM ingest_lost
		WHERE part_id = $1 AND store_id = $2 AND stream = $3 AND last > $4 ORDER BY first`,
		key.PartID, key.StoreID, key.Stream, w)
	var ranges []lostRange
	var f, l int64
	if _, err := pgx.ForEachRow(rows, []any{&f, &l}, func() error {
		ranges = append(ranges, lostRange{uint64(f), uint64(l)})
		return nil
	}); err != nil {
		return w, fmt.Errorf("advance watermark of %s: %w", key, err)
	}
	at := uint64(w)
	ri := 0
	for {
		rows, _ := tx.Query(ctx, `SELECT seq FROM ingest_records
			WHERE part_id = $1 AND store_id = $2 AND stream = $3 AND seq > $4 ORDER BY seq LIMIT $5`,
			key.PartID, key.StoreID, key.Stream, int64(at), advancePage)
		page, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return w, fmt.Errorf("advance watermark of %s: %w", key, err)
		}
		i := 0
		for at < math.MaxInt64 {
			next := at + 1
			for i < len(page) && uint64(page[i]) <= at {
				i++
			}
			if i < len(page) && uint64(page[i]) == next {
				at, i = next, i+1
				continue
			}
			// A lost range holding next: the one reaching furthest.
			best := uint64(0)
			for ; ri < len(ranges) && ranges[ri].first <= next; ri++ {
				best = max(best, ranges[ri].last)
			}
			if best >= next {
				at = best
				continue
			}
			break
		}
		if i < len(page) || len(page) < advancePage || at >= math.MaxInt64 {
			return int64(at), nil
		}
	}
}

// DeclareLost keeps a lost range and advances the watermark over it.
func (s *Store) DeclareLost(ctx context.Context, key ingest.StreamKey, first, last uint64, reason string) (uint64, error) {
	if err := checkLoss(key, first, last); err != nil {
		return 0, err
	}
	res, err := s.PutBatch(ctx, key, nil, []ingest.Loss{{Stream: key.Stream, First: first, Last: last, Reason: reason}})
	if err != nil {
		return 0, fmt.Errorf("declare %d..%d of %s lost: %w", first, last, key, err)
	}
	return res.AckedThrough, nil
}

// AckedThrough returns the stream's watermark.
func (s *Store) AckedThrough(ctx context.Context, key ingest.StreamKey) (uint64, error) {
	if err := key.Validate(); err != nil {
		return 0, fmt.Errorf("read watermark: %w", err)
	}
	var w int64
	err := s.pool.QueryRow(ctx, "SELECT watermark FROM ingest_streams WHERE part_id = $1 AND store_id = $2 AND stream = $3",
		key.PartID, key.StoreID, key.Stream).Scan(&w)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read watermark of %s: %w", key, err)
	}
	return uint64(w), nil
}

// Lost returns the stream's lost ranges.
func (s *Store) Lost(ctx context.Context, key ingest.StreamKey) ([]ingest.LostRange, error) {
	if err := key.Validate(); err != nil {
		return nil, fmt.Errorf("read lost ranges: %w", err)
	}
	rows, _ := s.pool.Query(ctx, "SELECT first, last, reason FROM ingest_lost WHERE part_id = $1 AND store_id = $2 AND stream = $3 ORDER BY last",
		key.PartID, key.StoreID, key.Stream)
	var out []ingest.LostRange
	var f, l int64
	var reason string
	if _, err := pgx.ForEachRow(rows, []any{&f, &l, &reason}, func() error {
		out = append(out, ingest.LostRange{First: uint64(f), Last: uint64(l), Reason: reason})
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read lost ranges of %s: %w", key, err)
	}
	return out, nil
}

// DeleteRecords erases the records' payloads and keeps their keys; see
// ingest.Store.
func (s *Store) DeleteRecords(ctx context.Context, key ingest.StreamKey, seqs []uint64) (int, error) {
	if err := key.Validate(); err != nil {
		return 0, fmt.Errorf("delete records: %w", err)
	}
	var ids []int64
	for _, q := range seqs {
		if q > 0 && q <= math.MaxInt64 { // others are never held
			ids = append(ids, int64(q))
		}
	}
	n := 0
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockStreams(ctx, tx, []ingest.StreamKey{key}); err != nil {
			return err
		}
		var size int64
		err := tx.QueryRow(ctx, `WITH gone AS (
				DELETE FROM ingest_payloads WHERE part_id = $1 AND store_id = $2 AND stream = $3 AND seq = ANY($4)
				RETURNING length(payload) AS size)
			SELECT count(*), coalesce(sum(size), 0) FROM gone`,
			key.PartID, key.StoreID, key.Stream, ids).Scan(&n, &size)
		if err != nil || n == 0 {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE ingest_streams SET records = records - $4, bytes = bytes - $5 WHERE part_id = $1 AND store_id = $2 AND stream = $3",
			key.PartID, key.StoreID, key.Stream, n, size)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete records of %s: %w", key, err)
	}
	return n, nil
}

// A cursor is the last record's key: base64url of part, store and stream
// ids and the decimal sequence, NUL-separated (ids hold no NUL).
func encodeCursor(k ingest.StreamKey, seq uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(k.PartID + "\x00" + k.StoreID + "\x00" + k.Stream + "\x00" + strconv.FormatUint(seq, 10)))
}

func decodeCursor(c string) (ingest.StreamKey, uint64, error) {
	bad := fmt.Errorf("malformed cursor: %w", ingest.ErrInvalid)
	// Only the one encoding of a cursor is one: base64 decoding skips
	// newlines, which would make many strings name one page.
	b, err := base64.RawURLEncoding.Strict().DecodeString(c)
	if err != nil || base64.RawURLEncoding.EncodeToString(b) != c {
		return ingest.StreamKey{}, 0, bad
	}
	parts := strings.Split(string(b), "\x00")
	if len(parts) != 4 {
		return ingest.StreamKey{}, 0, bad
	}
	k := ingest.StreamKey{PartID: parts[0], StoreID: parts[1], Stream: parts[2]}
	seq, err := strconv.ParseUint(parts[3], 10, 63)
	if err != nil || k.Validate() != nil || seq == 0 || parts[3] != strconv.FormatUint(seq, 10) {
		return ingest.StreamKey{}, 0, bad
	}
	return k, seq, nil
}

// Records pages through stored records in key order.
func (s *Store) Records(ctx context.Context, q ingest.Query) ([]ingest.StoredRecord, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = ingest.DefaultLimit
	}
	limit = min(limit, ingest.MaxLimit)
	// Payloads alone: a tombstone has none.
	where := []string{"true"}
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.After != "" {
		k, seq, err := decodeCursor(q.After)
		if err != nil {
			return nil, "", fmt.Errorf("read records: %w", err)
		}
		where = append(where, fmt.Sprintf("(part_id, store_id, stream, seq) > (%s, %s, %s, %s)", arg(k.PartID), arg(k.StoreID), arg(k.Stream), arg(int64(seq))))
	}
	if len(q.PartIDs) > 0 {
		for _, p := range q.PartIDs {
			if err := ingest.ValidateID("part id", p); err != nil {
				return nil, "", fmt.Errorf("read records: %w", err)
			}
		}
		where = append(where, "part_id = ANY("+arg(q.PartIDs)+")")
	}
	if q.Stream != "" {
		if !utf8.ValidString(q.Stream) || strings.IndexByte(q.Stream, 0) >= 0 {
			return nil, "", nil // no stream of that name can be held
		}
		where = append(where, "stream = "+arg(q.Stream))
	}
	if !q.From.IsZero() || !q.To.IsZero() {
		// A record without a time is at the zero time, before any From.
		var zero time.Time
		nullOK := (q.From.IsZero() || !zero.Before(q.From)) && (q.To.IsZero() || zero.Before(q.To))
		cond := "time_ns IS NOT NULL"
		if !q.From.IsZero() {
			cond += " AND time_ns >= " + arg(*nanos(q.From))
		}
		if !q.To.IsZero() {
			cond += " AND time_ns < " + arg(*nanos(q.To))
		}
		where = append(where, "(("+cond+") OR (time_ns IS NULL AND "+arg(nullOK)+"))")
	}
	sql := "SELECT part_id, store_id, stream, seq, time_ns, payload FROM ingest_payloads WHERE " + strings.Join(where, " AND ") +
		" ORDER BY part_id, store_id, stream, seq LIMIT " + arg(limit+1)
	rows, _ := s.pool.Query(ctx, sql, args...)
	var out []ingest.StoredRecord
	var r ingest.StoredRecord
	var seq int64
	var tn *int64
	var payload []byte
	_, err := pgx.ForEachRow(rows, []any{&r.PartID, &r.StoreID, &r.Stream, &seq, &tn, &payload}, func() error {
		rec := ingest.StoredRecord{StreamKey: r.StreamKey, Record: ingest.Record{Seq: uint64(seq), Payload: bytes.Clone(payload)}}
		if tn != nil {
			rec.Time = time.Unix(0, *tn).UTC()
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("read records: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = encodeCursor(last.StreamKey, last.Seq)
	}
	return out, next, nil
}

// Count sums the stream's counters over the part's stores.
func (s *Store) Count(ctx context.Context, partID, stream string) (ingest.Count, error) {
	if err := ingest.ValidateID("part id", partID); err != nil {
		return ingest.Count{}, fmt.Errorf("count records: %w", err)
	}
	if !utf8.ValidString(stream) || strings.IndexByte(stream, 0) >= 0 {
		return ingest.Count{}, nil
	}
	var c [3]int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(records), 0)::bigint, coalesce(sum(bytes), 0)::bigint, coalesce(sum(conflicts), 0)::bigint
		FROM ingest_streams WHERE part_id = $1 AND stream = $2`, partID, stream).Scan(&c[0], &c[1], &c[2])
	if err != nil {
		return ingest.Count{}, fmt.Errorf("count records of %s/%s: %w", partID, stream, err)
	}
	return ingest.Count{Records: uint64(c[0]), Bytes: uint64(c[1]), Conflicts: uint64(c[2])}, nil
}

// Status.

// PutStatus keeps the part's status.
func (s *Store) PutStatus(ctx context.Context, partID string, st *syncv1.PartStatus, at time.Time) error {
	if err := ingest.ValidateID("part id", partID); err != nil {
		return fmt.Errorf("put status: %w", err)
	}
	raw, err := proto.Marshal(st)
	if err != nil {
		return fmt.Errorf("put status of %s: encode: %w", partID, err)
	}
	if raw == nil {
		raw = []byte{}
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO ingest_status (part_id, at_ns, status) VALUES ($1, $2, $3)
		ON CONFLICT (part_id) DO UPDATE SET at_ns = excluded.at_ns, status = excluded.status`, partID, at.UnixNano(), raw)
	if err != nil {
		return fmt.Errorf("put status of %s: %w", partID, err)
	}
	return nil
}

// Status returns the part's last status.
// Statuses reads every status asked for in one query.
func (s *Store) Statuses(ctx context.Context, partIDs []string) (map[string]ingest.PartStatus, error) {
	ids := make([]string, 0, len(partIDs))
	for _, id := range partIDs {
		if ingest.ValidateID("part id", id) == nil {
			ids = append(ids, id)
		}
	}
	out := make(map[string]ingest.PartStatus, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, "SELECT part_id, at_ns, status FROM ingest_status WHERE part_id = ANY($1)", ids)
	if err != nil {
		return nil, fmt.Errorf("read statuses: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var at int64
		var raw []byte
		if err := rows.Scan(&id, &at, &raw); err != nil {
			return nil, fmt.Errorf("read statuses: %w", err)
		}
		st := &syncv1.PartStatus{}
		if err := proto.Unmarshal(raw, st); err != nil {
			return nil, fmt.Errorf("read status of %s: decode: %w", id, err)
		}
		out[id] = ingest.PartStatus{Status: st, At: time.Unix(0, at).UTC()}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read statuses: %w", err)
	}
	return out, nil
}

func (s *Store) Status(ctx context.Context, partID string) (ingest.PartStatus, error) {
	if err := ingest.ValidateID("part id", partID); err != nil {
		return ingest.PartStatus{}, fmt.Errorf("read status: %w", err)
	}
	var at int64
	var raw []byte
	err := s.pool.QueryRow(ctx, "SELECT at_ns, status FROM ingest_status WHERE part_id = $1", partID).Scan(&at, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return ingest.PartStatus{}, fmt.Errorf("read status of %s: %w", partID, ingest.ErrNotFound)
	}
	if err != nil {
		return ingest.PartStatus{}, fmt.Errorf("read status of %s: %w", partID, err)
	}
	st := &syncv1.PartStatus{}
	if err := proto.Unmarshal(raw, st); err != nil {
		return ingest.PartStatus{}, fmt.Errorf("read status of %s: decode: %w", partID, err)
	}
	return ingest.PartStatus{Status: st, At: time.Unix(0, at).UTC()}, nil
}
