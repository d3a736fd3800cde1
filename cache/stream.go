package cache

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// Stream names an append-only stream. Sequence numbers are per stream, start
// at 1 and are never reused, even after ack, eviction or restart.
type Stream string

// The streams the daemon writes. Log streams are split by level class
// because eviction drops debug logs before info logs.
const (
	StreamLogsDebug Stream = "logs.debug" // debug logs: evicted first
	StreamLogsInfo  Stream = "logs.info"  // info logs: evicted second
	StreamLogsWarn  Stream = "logs.warn"  // warn and above: never evicted
	StreamCaptures  Stream = "captures"   // data captures: evicted third, lowest priority first
	StreamAudit     Stream = "audit"      // control audit events: never evicted
	StreamGaps      Stream = "gaps"       // gap records (payload: Gap as JSON): never evicted
	StreamProposals Stream = "proposals"  // offline config edits awaiting the cloud: never evicted
)

var allStreams = []Stream{StreamLogsDebug, StreamLogsInfo, StreamLogsWarn, StreamCaptures, StreamAudit, StreamGaps, StreamProposals}

// Valid reports whether st is one of the Stream constants.
func (st Stream) Valid() bool {
	for _, v := range allStreams {
		if st == v {
			return true
		}
	}
	return false
}

// Record is one entry of a stream.
type Record struct {
	// Payload is opaque to the store.
	Payload []byte
	// Priority orders captures for eviction: lower priorities go first.
	// It is ignored for other streams.
	Priority uint8
	// Time is when the record was made; zero means the store's clock at Append.
	Time time.Time
}

// Entry is a record read back with its sequence number.
type Entry struct {
	Seq uint64
	Record
}

// StreamStats describes a stream for status and metrics.
type StreamStats struct {
	Stream       Stream
	First        uint64 // oldest sequence present; 0 when empty
	Last         uint64 // last sequence assigned; 0 if none ever was
	AckedThrough uint64 // highest sequence acknowledged
	Count        uint64 // records present
	Bytes        uint64 // bytes of records present (keys and values)
}

// MaxRecordBytes is the largest payload one record may carry; larger data
// belongs in a blob.
const MaxRecordBytes = 4 << 20

// Limits of one Badger transaction, kept well under Badger's own (15% of the
// 8 MB memtable) so a commit never fails with ErrTxnTooBig.
const (
	txnMaxEntries = 4000
	txnMaxBytes   = 512 << 10
	// txnMaxValueBytes bounds the payload of one transaction, which the
	// value log writes and the transaction holds until it commits.
	txnMaxValueBytes = 8 << 20
)

// txnCost estimates what one entry costs against Badger's batch limits.
func txnCost(keyLen, valLen int) int64 {
	if valLen >= valueThreshold {
		valLen = 12 // only a value pointer goes into the LSM tree
	}
	return int64(keyLen+valLen) + 2 + 64
}

type appendReq struct {
	stream Stream
	recs   []Record
	bytes  int64 // accounted bytes (keys+values) as single records: an upper bound
	cost   int64 // transaction cost
	maxPri uint8
	first  uint64
	err    error
	done   chan struct{}
	// durable says the intake holds the append and its producer has its
	// answer, or that recovery read it back: committing it to Badger
	// answers nobody.
	durable bool
}

// account adds what rec costs to r, as a run of its own would take: groups
// make runs, which take less (one key, one header).
func (r *appendReq) account(rec Record, keyLen int) {
	valLen := 2 + varintLen(rec.Time.UnixNano()) + len(rec.Payload)
	r.bytes += int64(keyLen + valLen)
	r.cost += txnCost(keyLen, valLen)
	if r.stream == StreamCaptures {
		r.cost += txnCost(prioKeyLen, 0)
	}
	r.maxPri = max(r.maxPri, rec.Priority)
}

// Append durably appends rec to stream and returns its sequence number. It
// returns only after the record is synced to disk; concurrent appends share
// one sync. Once the record is queued, Append waits for the outcome even if
// ctx ends, so that a nil error always means durable and an error always
// means not written.
func (s *Store) Append(ctx context.Context, st Stream, rec Record) (uint64, error) {
	return s.AppendBatch(ctx, st, []Record{rec})
}

// AppendBatch durably and atomically appends recs to stream, which get
// consecutive sequence numbers starting at the one returned.
func (s *Store) AppendBatch(ctx context.Context, st Stream, recs []Record) (uint64, error) {
	p, err := s.QueueBatch(ctx, st, recs)
	if err != nil {
		return 0, err
	}
	return p.Wait()
}

// Pending is an append the store has queued and may not yet have written.
// The zero Pending is not one.
type Pending struct{ r *appendReq }

// Done is closed once the append's outcome is known.
func (p Pending) Done() <-chan struct{} { return p.r.done }

// Wait waits for the append's outcome: the first record's sequence number
// once the records are synced to disk, or the error that kept them from
// being written. Every call returns the same.
func (p Pending) Wait() (uint64, error) {
	<-p.r.done
	if p.r.err != nil {
		return 0, fmt.Errorf("append to %s: %w", p.r.stream, p.r.err)
	}
	return p.r.first, nil
}

// Queue queues rec for a durable append to stream and returns without
// waiting for the sync, so that a producer can go on while its records
// share syncs with its own later ones as well as other producers'. The
// records of one producer's queued appends are written in the order it
// queued them. A queued append is not durable, and nobody may count on it,
// until its Wait returns nil; the payload must not change until then. Once
// queued, the append is written or refused whatever ctx does; an error from
// Queue means nothing was queued.
func (s *Store) Queue(ctx context.Context, st Stream, rec Record) (Pending, error) {
	return s.QueueBatch(ctx, st, []Record{rec})
}

// QueueBatch is Queue for records appended atomically, which get
// consecutive sequence numbers.
func (s *Store) QueueBatch(ctx context.Context, st Stream, recs []Record) (Pending, error) {
	if !st.Valid() {
		return Pending{}, fmt.Errorf("append to %s: %w", st, ErrUnknownStream)
	}
	if len(recs) == 0 {
		return Pending{}, fmt.Errorf("append to %s: no records", st)
	}
	// A copy: the store fills in Time and must not write to the caller's slice.
	recs = append([]Record(nil), recs...)
	r := &appendReq{stream: st, recs: recs, done: make(chan struct{})}
	now := time.Time{}
	keyLen := recordKeyLen(st)
	for i, rec := range recs {
		if len(rec.Payload) > MaxRecordBytes {
			return Pending{}, fmt.Errorf("append to %s: record of %d bytes, max %d: %w", st, len(rec.Payload), MaxRecordBytes, ErrTooLarge)
		}
		if rec.Time.IsZero() {
			if now.IsZero() {
				now = s.clk.Now()
			}
			rec.Time = now
		}
		if st != StreamCaptures {
			rec.Priority = 0
		}
		recs[i] = rec
		r.account(rec, keyLen)
	}
	if r.cost > txnMaxBytes || len(recs)*2 > txnMaxEntries {
		return Pending{}, fmt.Errorf("append %d records to %s: %w", len(recs), st, ErrTooLarge)
	}
	// closeMu makes "not closed" and "queued" one step, so nothing is
	// queued after the committer drained the queue for the last time.
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed.Load() {
		return Pending{}, fmt.Errorf("append to %s: %w", st, ErrClosed)
	}
	select {
	case s.reqs <- r:
		return Pending{r: r}, nil
	case <-ctx.Done():
		return Pending{}, fmt.Errorf("append to %s: %w", st, ctx.Err())
	}
}

func (r *appendReq) finish(err error) {
	r.err = err
	close(r.done)
}

// Group limits: what one committer round takes from the queue.
const (
	groupMaxReqs  = 1024
	groupMaxBytes = 8 << 20
)

// committer is the single goroutine that commits appends in groups: it takes
// everything queued, writes it in as few transactions as possible (usually
// one), and releases all waiters after the synced commit.
func (s *Store) committer() {
	defer s.done.Done()
	var group []*appendReq
	for {
		select {
		case r := <-s.reqs:
			group = append(group[:0], r)
			bytes := r.bytes
			// Producers released by the previous group are often runnable
			// but not yet scheduled; yielding a few times lets them join
			// this group instead of the next, which makes groups larger
			// without any timer (a lone producer pays four yields, about a microsecond).
			for yields := 0; yields < 4; {
				select {
				case r := <-s.reqs:
					group = append(group, r)
					bytes += r.bytes
				default:
					runtime.Gosched()
					yields++
					continue
				}
				if len(group) >= groupMaxReqs || bytes >= groupMaxBytes {
					break
				}
			}
			s.commitGroup(group)
			s.noteWritten(bytes)
			clear(group)
		case <-s.quit:
			for {
				select {
				case r := <-s.reqs:
					r.finish(ErrClosed)
				default:
					return
				}
			}
		}
	}
}

func (s *Store) commitGroup(group []*appendReq) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkDisk(); err != nil {
		for _, r := range group {
			r.finish(err)
		}
		return
	}
	if s.intakeLocked(group) {
		return
	}
	if err := s.settleLocked(); err != nil {
		for _, r := range group {
			r.finish(err)
		}
		return
	}
	// Admission first: eviction commits its own transactions, so it must
	// happen before the group's batch takes copies of the stream metas.
	accepted := group[:0:0]
	var adding int64
	for _, r := range group {
		if err := s.admitLocked(r, adding); err != nil {
			r.finish(err)
			continue
		}
		adding += r.bytes
		accepted = append(accepted, r)
	}
	n, err := s.commitBatches(accepted)
	for i, r := range accepted {
		if i < n {
			r.finish(nil)
		} else {
			r.finish(err)
		}
	}
}

// commitBatches commits reqs in order, as many to a synced transaction as
// Badger's limits take, counting what commitRuns will write: a run per
// stretch of a stream's records of one priority up to runMaxBytes, each
// counted at the most a run can cost (its value in the LSM tree when it is
// under valueThreshold, a pointer to the value log otherwise), and at most
// txnMaxValueBytes of payload. Records of one stream that follow each
// other share runs, so the intake's settle of many small appends is one
// transaction, and one sync, instead of one per few thousand records. It
// stops at the first failure and returns how many of reqs are committed.
func (s *Store) commitBatches(reqs []*appendReq) (int, error) {
	var (
		start int
		tx    txnSize
		open  = map[Stream]openRun{}
	)
	for i, r := range reqs {
		add, o := runsOf(r, open[r.stream])
		if i > start && !tx.plus(add).fits() {
			if err := s.commitRuns(reqs[start:i]); err != nil {
				return start, err
			}
			start, tx = i, txnSize{}
			clear(open)
			add, o = runsOf(r, openRun{})
		}
		open[r.stream] = o
		tx = tx.plus(add)
	}
	if start < len(reqs) {
		if err := s.commitRuns(reqs[start:]); err != nil {
			return start, err
		}
	}
	return len(reqs), nil
}

// txnSize is what a transaction holds, against Badger's limits.
type txnSize struct {
	cost    int64
	entries int
	payload int
}

func (t txnSize) plus(u txnSize) txnSize {
	return txnSize{cost: t.cost + u.cost, entries: t.entries + u.entries, payload: t.payload + u.payload}
}

func (t txnSize) fits() bool {
	return t.cost <= txnMaxBytes && t.entries <= txnMaxEntries && t.payload <= txnMaxValueBytes
}

// openRun is the last run commitRuns has open in a stream: its priority
// and payload bytes; ok is false for none.
type openRun struct {
	ok    bool
	prio  uint8
	bytes int
}

// runsOf is what r adds to a transaction whose stream has o open, as
// commitRuns splits runs, and the run it leaves open. Each new run counts
// at the most a run can cost: its value in the LSM tree when under
// valueThreshold, a pointer to the value log otherwise.
func runsOf(r *appendReq, o openRun) (txnSize, openRun) {
	keyLen := recordKeyLen(r.stream)
	var add txnSize
	for _, rec := range r.recs {
		if !o.ok || o.prio != rec.Priority || o.bytes+len(rec.Payload) > runMaxBytes {
			o = openRun{ok: true, prio: rec.Priority}
			add.cost += txnCost(keyLen, valueThreshold-1)
			add.entries++
			if r.stream == StreamCaptures {
				add.cost += txnCost(prioKeyLen, 0)
				add.entries++
			}
		}
		o.bytes += len(rec.Payload)
		add.payload += len(rec.Payload)
	}
	return add, o
}

// commitRuns assigns sequence numbers to the records of reqs, in order,
// stores each stream's records (for captures, each stretch of one
// priority) as runs, and commits them in one synced transaction. An
// append the intake holds keeps the sequence it was given. The caller
// answers the producers.
func (s *Store) commitRuns(reqs []*appendReq) error {
	b := s.newBatch()
	defer b.discard()
	type pending struct {
		prio  uint8
		recs  []runRec
		bytes int
	}
	open := map[Stream]*pending{}
	var err error
	put := func(st Stream, p *pending) {
		if err == nil && p != nil && len(p.recs) > 0 {
			err = b.putRun(st, p.prio, p.recs)
		}
	}
	for _, r := range reqs {
		m := b.meta(r.stream)
		switch {
		case !r.durable:
			r.first = m.Last + 1
		case r.first != m.Last+1 && err == nil:
			// Its producer has r.first already; nothing may change it.
			err = fmt.Errorf("move %s from the intake: it holds sequence %d, the store's next is %d", r.stream, r.first, m.Last+1)
		}
		for _, rec := range r.recs {
			m.Last++
			p := open[r.stream]
			if p != nil && (p.prio != rec.Priority || p.bytes+len(rec.Payload) > runMaxBytes) {
				put(r.stream, p)
				p = nil
			}
			if p == nil {
				p = &pending{prio: rec.Priority}
				open[r.stream] = p
			}
			p.recs = append(p.recs, runRec{seq: m.Last, ns: recNanos(rec.Time), payload: rec.Payload})
			p.bytes += len(rec.Payload)
		}
	}
	for st, p := range open {
		put(st, p)
	}
	if err == nil {
		err = b.commit()
	}
	return err
}

// batch is one read-write transaction plus working copies of the stream
// metas it changes; the metas are written in the same transaction and
// published to the Store only after the commit succeeded.
type batch struct {
	s       *Store
	txn     *badger.Txn
	metas   map[Stream]*streamMeta
	entries int
	cost    int64
	blobs   int64 // change of blob bytes
}

func (s *Store) newBatch() *batch {
	return &batch{s: s, txn: s.db.NewTransaction(true), metas: map[Stream]*streamMeta{}}
}

func (b *batch) meta(st Stream) *streamMeta {
	m, ok := b.metas[st]
	if !ok {
		c := *b.s.meta[st]
		m = &c
		b.metas[st] = m
	}
	return m
}

func (b *batch) set(key, val []byte, userMeta byte) error {
	b.entries++
	b.cost += txnCost(len(key), len(val))
	return b.txn.SetEntry(badger.NewEntry(key, val).WithMeta(userMeta))
}

func (b *batch) del(key []byte) error {
	b.entries++
	b.cost += txnCost(len(key), 0)
	return b.txn.Delete(key)
}

// appendRecord assigns the next sequence number of st to the encoded value.
func (b *batch) appendRecord(st Stream, prio uint8, val []byte) (uint64, error) {
	m := b.meta(st)
	seq := m.Last + 1
	key := recordKey(st, seq, uint32(len(val)))
	if err := b.set(key, val, prio); err != nil {
		return 0, err
	}
	if st == StreamCaptures {
		if err := b.set(prioKey(prio, seq, uint32(len(val))), nil, 0); err != nil {
			return 0, err
		}
	}
	m.Last = seq
	m.Count++
	m.Bytes += uint64(len(key) + len(val))
	return seq, nil
}

// putRun writes recs (increasing sequences, all after the stream's ack
// cursor) as one run, with its eviction index key for captures.
func (b *batch) putRun(st Stream, prio uint8, recs []runRec) error {
	return b.putValue(st, prio, recs[len(recs)-1].seq, len(recs), encodeRun(prio, recs))
}

// putValue writes val, a record or a run of count records whose last
// sequence is last, with its eviction index key for captures, and counts
// it in the stream's meta.
func (b *batch) putValue(st Stream, prio uint8, last uint64, count int, val []byte) error {
	key := recordKey(st, last, uint32(len(val)))
	if err := b.set(key, val, prio); err != nil {
		return err
	}
	if st == StreamCaptures {
		if err := b.set(prioKey(prio, last, uint32(len(val))), nil, 0); err != nil {
			return err
		}
	}
	m := b.meta(st)
	m.Count += uint64(count)
	m.Bytes += uint64(len(key) + len(val))
	return nil
}

// removeRun deletes the run at key, whose records are recs (nil when its
// value could not be decoded), and returns what was live of it (see
// runLive), which leaves the stream's meta. A run that cannot be decoded
// counts all of its bytes, and as many records as the keys say it may
// hold: every sequence from from (the one after the previous run's last)
// through its own last, after the ack cursor.
func (b *batch) removeRun(st Stream, key []byte, prio uint8, recs []runRec, from uint64) (count, bytes uint64, err error) {
	last, size := seqSize(key)
	if err := b.del(key); err != nil {
		return 0, 0, err
	}
	if st == StreamCaptures {
		if err := b.del(prioKey(prio, last, size)); err != nil {
			return 0, 0, err
		}
	}
	m := b.meta(st)
	if recs == nil {
		count, bytes = last-min(max(from, m.AckedThrough+1), last)+1, uint64(len(key))+uint64(size)
	} else {
		count, bytes = runLive(len(key), int(size), recs, m.AckedThrough)
	}
	count, bytes = min(count, m.Count), min(bytes, m.Bytes)
	m.Count -= count
	m.Bytes -= bytes
	return count, bytes, nil
}

// rewriteRun replaces the run at key (records old) by the records recs
// (which may be fewer, or changed; none deletes the run). Records through
// the ack cursor are dropped on the way. A rewrite larger than runMaxBytes
// becomes several runs, still covering disjoint ranges.
func (b *batch) rewriteRun(st Stream, key []byte, prio uint8, old, recs []runRec) error {
	if _, _, err := b.removeRun(st, key, prio, old, 0); err != nil {
		return err
	}
	acked := b.meta(st).AckedThrough
	var part []runRec
	bytes := 0
	for _, r := range recs {
		if r.seq <= acked {
			continue
		}
		if len(part) > 0 && bytes+len(r.payload) > runMaxBytes {
			if err := b.putRun(st, prio, part); err != nil {
				return err
			}
			part, bytes = nil, 0
		}
		part = append(part, r)
		bytes += len(r.payload)
	}
	if len(part) > 0 {
		return b.putRun(st, prio, part)
	}
	return nil
}

// deleteRecord removes a single record (a run of one, such as a gap
// record) known by its key; it returns the bytes freed.
func (b *batch) deleteRecord(st Stream, key []byte, prio uint8) (uint64, error) {
	seq, size := seqSize(key)
	if err := b.del(key); err != nil {
		return 0, err
	}
	if st == StreamCaptures {
		if err := b.del(prioKey(prio, seq, size)); err != nil {
			return 0, err
		}
	}
	m := b.meta(st)
	freed := uint64(len(key)) + uint64(size)
	m.Count--
	m.Bytes -= freed
	return freed, nil
}

func (b *batch) full() bool {
	return b.entries+4 >= txnMaxEntries || b.cost >= txnMaxBytes-4096
}

func (b *batch) commit() error {
	defer b.txn.Discard()
	for st, m := range b.metas {
		if err := b.txn.Set(metaKey(st), encodeMeta(*m)); err != nil {
			return fmt.Errorf("write meta of %s: %w", st, err)
		}
	}
	if err := mapWriteErr(b.txn.Commit()); err != nil {
		return err
	}
	b.s.syncs.Add(1)
	b.s.synced()
	for st, m := range b.metas {
		*b.s.meta[st] = *m
		b.s.acked[st].Store(m.AckedThrough)
	}
	b.s.blobs += b.blobs
	return nil
}

func (b *batch) discard() { b.txn.Discard() }

// Read returns up to limit entries of stream with sequence numbers after
// after, stopping once maxBytes of payload were collected (it always returns
// at least one entry when one exists). maxBytes <= 0 means no byte limit.
func (s *Store) Read(ctx context.Context, st Stream, after uint64, limit, maxBytes int) ([]Entry, error) {
	if !st.Valid() {
		return nil, fmt.Errorf("read %s: %w", st, ErrUnknownStream)
	}
	if s.closed.Load() {
		return nil, fmt.Errorf("read %s: %w", st, ErrClosed)
	}
	if limit <= 0 {
		return nil, nil
	}
	s.trySettle()
	if st == StreamGaps {
		s.freezeGaps()
	}
	var out []Entry
	var corrupt []badItem
	err := s.db.View(func(txn *badger.Txn) error {
		// Records through the ack cursor may still sit in a run acked in
		// part; they are never returned. The cursor is read once the
		// snapshot is taken, so it covers at least what the snapshot
		// lost to acks.
		from := max(after, s.acked[st].Load()) + 1
		// No prefetching: it copies up to PrefetchSize values ahead of the
		// loop, which ends at maxBytes (a 1 MiB batch is sixteen 64 KB
		// images, against 256 prefetched). Each payload is copied once,
		// as it is reached.
		it := txn.NewIterator(badger.IteratorOptions{Prefix: streamPrefix(st)})
		defer it.Close()
		var slab valueSlab
		var recs []runRec
		bytes := 0
		full := false
		prevLast := from - 1
		for it.Seek(recordSeek(st, from)); it.Valid() && !full; it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			last, _ := seqSize(item.Key())
			var prio uint8
			err := item.Value(func(val []byte) error {
				var derr error
				recs, prio, derr = decodeRun(last, val, recs)
				if derr != nil {
					return derr
				}
				for _, r := range recs {
					if r.seq < from {
						continue
					}
					if len(out) >= limit || (maxBytes > 0 && len(out) > 0 && bytes+len(r.payload) > maxBytes) {
						full = true
						break
					}
					rec := r.record(prio)
					rec.Payload = slab.copy(r.payload, limit-len(out), maxBytes)
					bytes += len(rec.Payload)
					out = append(out, Entry{Seq: r.seq, Record: rec})
				}
				return nil
			})
			if errors.Is(err, badger.ErrDBClosed) {
				return err
			}
			if err != nil {
				// Damaged on disk (not by a crash: Badger syncs the value
				// log before the index that points into it). Skip it so the
				// stream does not stall, and record the loss below.
				s.log.Error("unreadable records; dropping them", zap.String("stream", string(st)),
					zap.Uint64("from", prevLast+1), zap.Uint64("through", last), zap.Error(err))
				corrupt = append(corrupt, badItem{key: item.KeyCopy(nil), prio: item.UserMeta(), from: prevLast + 1})
			}
			prevLast = last
		}
		return nil
	})
	if len(corrupt) > 0 {
		if derr := s.dropCorrupt(st, corrupt); derr != nil {
			s.log.Error("could not drop unreadable records", zap.String("stream", string(st)), zap.Error(derr))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read %s after %d: %w", st, after, err)
	}
	return out, nil
}

// valueSlab holds the values one Read copies out of Badger in a few large
// buffers rather than one allocation per record: a batch of ~1 KiB readings
// is a thousand records, and their allocations and the garbage collector's
// work on them were a visible share of the part's CPU per drained
// gigabyte. Each value is handed out capped at its own length, so a caller
// appending to one payload can never write into the next.
type valueSlab struct{ buf []byte }

// slabMax bounds one buffer of a slab.
const slabMax = 8 << 20

// copy returns a copy of v. left (the records the Read may still return)
// and maxBytes (its byte limit, <= 0 for none) size the next buffer: a
// batch's payloads add up to about maxBytes, plus a few header bytes each,
// and a Read of one record allocates just that record.
func (s *valueSlab) copy(v []byte, left, maxBytes int) []byte {
	if len(v) > cap(s.buf)-len(s.buf) {
		want := slabMax
		if maxBytes > 0 {
			want = min(maxBytes+maxBytes/16, slabMax)
		}
		n := want
		if left < want/len(v) {
			n = left * len(v)
		}
		s.buf = make([]byte, 0, max(n, len(v)))
	}
	start := len(s.buf)
	s.buf = append(s.buf, v...)
	return s.buf[start:len(s.buf):len(s.buf)]
}

type badItem struct {
	key  []byte
	prio uint8
	from uint64 // the first sequence the damaged run may hold
}

// dropCorrupt deletes unreadable records and writes a gap record for them.
func (s *Store) dropCorrupt(st Stream, items []badItem) error {
	if err := s.lockSettled(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	b := s.newBatch()
	defer b.discard()
	g := Gap{Stream: st, Reason: "records unreadable (damaged on disk)"}
	for _, it := range items {
		count, n, err := b.removeRun(st, it.key, it.prio, nil, it.from)
		if err != nil {
			return err
		}
		last, _ := seqSize(it.key)
		g.noteRange(max(it.from, b.meta(st).AckedThrough+1), last, count, n)
	}
	return s.commitWithGap(b, g, false)
}

// Ack deletes the records of stream up to and including through, which the
// cloud confirmed. Acking what was already acked is a no-op; acking beyond
// the last assigned sequence number is ErrAckBeyondHead.
func (s *Store) Ack(ctx context.Context, st Stream, through uint64) error {
	if !st.Valid() {
		return fmt.Errorf("ack %s: %w", st, ErrUnknownStream)
	}
	var freed uint64
	defer func() { s.noteFreed(int64(freed)) }()
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("ack %s through %d: %w", st, through, err)
		}
		done, n, err := s.ackChunk(st, through)
		freed += n
		if err != nil {
			return fmt.Errorf("ack %s through %d: %w", st, through, err)
		}
		if done {
			return nil
		}
	}
}

// ackChunk deletes one transaction's worth of acknowledged records. The
// lock is taken per chunk so a large ack does not stall appends.
func (s *Store) ackChunk(st Stream, through uint64) (done bool, freed uint64, err error) {
	s.lockTrySettled()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return false, 0, ErrClosed
	}
	m := s.meta[st]
	if through > m.Last {
		return false, 0, fmt.Errorf("last assigned is %d: %w", m.Last, ErrAckBeyondHead)
	}
	if through <= m.AckedThrough {
		return true, 0, nil
	}
	b := s.newBatch()
	defer b.discard()
	ackedTo := through
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: streamPrefix(st)})
		defer it.Close()
		var recs []runRec
		prevLast := m.AckedThrough
		for it.Seek(recordSeek(st, m.AckedThrough+1)); it.Valid(); it.Next() {
			item := it.Item()
			last, size := seqSize(item.Key())
			// A damaged run goes whole once the ack passes its end (Read
			// declares its loss); counted as removeRun says.
			var prio uint8
			var err error
			if recs, prio, err = runOf(item, last, recs); err != nil {
				return err
			}
			if last > through {
				// The run holds records on both sides of through: it stays
				// until its last record is acked, and the acked ones leave
				// the accounting now.
				if recs != nil {
					c0, b0 := runLive(len(item.Key()), int(size), recs, m.AckedThrough)
					c1, b1 := runLive(len(item.Key()), int(size), recs, through)
					bm := b.meta(st)
					bm.Count -= min(c0-c1, bm.Count)
					bm.Bytes -= min(b0-b1, bm.Bytes)
					freed += b0 - b1
				}
				break
			}
			if b.full() {
				ackedTo = prevLast
				break
			}
			_, n, err := b.removeRun(st, item.KeyCopy(nil), prio, recs, prevLast+1)
			if err != nil {
				return err
			}
			freed += n
			prevLast = last
		}
		return nil
	})
	if err != nil {
		return false, 0, err
	}
	b.meta(st).AckedThrough = ackedTo
	if err := b.commit(); err != nil {
		return false, 0, err
	}
	return ackedTo == through, freed, nil
}

// Stats describes one stream.
func (s *Store) Stats(ctx context.Context, st Stream) (StreamStats, error) {
	if !st.Valid() {
		return StreamStats{}, fmt.Errorf("stats of %s: %w", st, ErrUnknownStream)
	}
	s.lockTrySettled()
	m := *s.meta[st]
	s.mu.Unlock()
	out := StreamStats{Stream: st, Last: m.Last, AckedThrough: m.AckedThrough, Count: m.Count, Bytes: m.Bytes}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: streamPrefix(st)})
		defer it.Close()
		// Everything through AckedThrough is deleted: seeking from 0 would
		// walk the tombstones of every acked record, a cost that grows with
		// the backlog drained.
		// The first run found may hold acked records (acked in part).
		for it.Seek(recordSeek(st, m.AckedThrough+1)); it.Valid() && out.First == 0; it.Next() {
			last, _ := seqSize(it.Item().Key())
			err := it.Item().Value(func(v []byte) error {
				recs, _, err := decodeRun(last, v, nil)
				if err != nil {
					// Read drops it when it gets there; its last sequence
					// is the one certainly present.
					out.First = last
					return nil
				}
				for _, r := range recs {
					if r.seq > m.AckedThrough {
						out.First = r.seq
						break
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return ctx.Err()
	})
	if err != nil {
		return StreamStats{}, fmt.Errorf("stats of %s: %w", st, err)
	}
	return out, nil
}

// Usage is the store-wide picture for status and metrics.
type Usage struct {
	// Bytes is what the budget counts: records and blob chunks.
	Bytes int64
	// BlobBytes is the part of Bytes held by blobs.
	BlobBytes int64
	// LSMBytes and VLogBytes are Badger's on-disk sizes (updated about once
	// a minute by Badger).
	LSMBytes, VLogBytes int64
	// Syncs counts group commits since Open; each is one sync round
	// (value log and write-ahead log) however many records it carried.
	Syncs uint64
	// EvictedRecords and EvictedBytes count what the byte budget evicted
	// since Open (each eviction also wrote a gap record).
	EvictedRecords, EvictedBytes uint64
}

// Usage returns the store-wide usage.
func (s *Store) Usage() Usage {
	s.mu.Lock()
	u := Usage{Bytes: s.totalLocked(), BlobBytes: s.blobs}
	s.mu.Unlock()
	u.LSMBytes, u.VLogBytes = s.db.Size()
	u.Syncs = s.syncs.Load()
	u.EvictedRecords, u.EvictedBytes = s.evictedRecords.Load(), s.evictedBytes.Load()
	return u
}

// releaseEvery is how many bytes are written between releases of the
// store's mapped pages (see releaseMappedPages).
const releaseEvery = 16 << 20

func (s *Store) noteWritten(n int64) {
	if s.written.Add(n) >= releaseEvery {
		s.written.Store(0)
		s.releaseMappedPages()
	}
}

func (s *Store) noteFreed(n int64) {
	if n <= 0 {
		return
	}
	s.freedMu.Lock()
	s.freed += n
	kick := s.freed >= s.opts.GCAfterAckBytes
	s.freedMu.Unlock()
	if kick {
		select {
		case s.gcKick <- struct{}{}:
		default:
		}
	}
}

// runOf decodes the run item holds (its last sequence is last) into buf, for
// the callers that remove or count runs: a run that does not decode comes
// back with no records and the priority its key's user meta keeps, so that
// it goes whole, with its index key. The records' payloads must not be
// read (Badger keeps a value only while Value runs); err is the store's own
// read error.
func runOf(item *badger.Item, last uint64, buf []runRec) ([]runRec, uint8, error) {
	var recs []runRec
	var prio uint8
	var derr error
	if err := item.Value(func(v []byte) error {
		recs, prio, derr = decodeRun(last, v, buf)
		return nil
	}); err != nil {
		return nil, 0, err
	}
	if derr != nil {
		return nil, item.UserMeta(), nil
	}
	return recs, prio, nil
}
