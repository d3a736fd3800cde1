package cache

import (
	"context"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// gcDiscardRatio: rewrite a value-log file when half of it is garbage, which
// bounds GC's write amplification at 2 (Badger's recommendation). Reclaims
// on the schedule, and those the daemon or a test asks for, use it.
const gcDiscardRatio = 0.5

// gcAckedRatio is the discard ratio of the reclaims that large acks start
// while a backlog drains. Records are written and acknowledged in sequence
// order, so a value-log file dies whole, oldest first; at the ratio of 0.5
// such a reclaim would also rewrite the partly sent file after it, moving
// its live tail to the head of the log, from where it is read, acked and
// collected once more minutes later. Files whose garbage is scattered
// (edits, deletes, eviction by priority) wait for the scheduled reclaim.
const gcAckedRatio = 0.9

// gcLoop runs value-log GC on the schedule and after large acks.
func (s *Store) gcLoop() {
	defer s.done.Done()
	var tick <-chan struct{}
	if s.opts.GCInterval > 0 {
		t := s.clk.NewTicker(s.opts.GCInterval)
		defer t.Stop()
		ch := make(chan struct{})
		tick = ch
		go func() {
			for {
				select {
				case <-t.C():
					select {
					case ch <- struct{}{}:
					case <-s.quit:
						return
					}
				case <-s.quit:
					return
				}
			}
		}()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.quit
		cancel()
	}()
	for {
		ratio := gcDiscardRatio
		select {
		case <-s.quit:
			return
		case <-tick:
		case <-s.gcKick:
			ratio = gcAckedRatio
		}
		err := s.reclaim(ctx, ratio)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("space reclaim failed", zap.Error(err))
		}
		if s.opts.OnReclaim != nil {
			s.opts.OnReclaim(err)
		}
	}
}

// Reclaim gives deleted space back to the disk: it flushes the memtable and
// compacts so that Badger learns what is garbage, then rewrites value-log
// files that are at least half garbage until none is. It runs on a schedule
// and after large acks; the daemon may call it too.
func (s *Store) Reclaim(ctx context.Context) error {
	return s.reclaim(ctx, gcDiscardRatio)
}

// reclaim is Reclaim rewriting only value-log files of which at least
// ratio is garbage.
func (s *Store) reclaim(ctx context.Context, ratio float64) error {
	// One reclaim at a time: a large ack kicks one in the background while
	// the daemon (or a test) may run its own.
	s.reclaimMu.Lock()
	defer s.reclaimMu.Unlock()
	s.freedMu.Lock()
	s.freed = 0
	s.freedMu.Unlock()
	if err := s.flushMemtable(); err != nil {
		return fmt.Errorf("reclaim space: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("reclaim space: %w", err)
	}
	// Compaction is what turns deletes into discard statistics, which
	// value-log GC needs to pick files.
	if err := s.db.Flatten(1); err != nil {
		return fmt.Errorf("reclaim space: compact: %w", err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("reclaim space: %w", err)
		}
		err := s.gcOnce(ratio)
		switch {
		case err == nil:
			continue
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			s.releaseMappedPages()
			return nil
		default:
			return fmt.Errorf("reclaim space: value-log GC: %w", err)
		}
	}
}

// gcOnce rewrites at most one value-log file, under Store.mu so that no
// write of ours runs meanwhile: Badger v4.9.6 reads its memtables'
// maxVersion during a rewrite without the lock its writers take, and
// versions the values it moves by what it read. Writers wait for one file's
// rewrite at a time, never for a whole reclaim.
func (s *Store) gcOnce(ratio float64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	return s.db.RunValueLogGC(ratio)
}

// flushMemtable writes the memtable out to a table. Badger has no direct
// call for it; DropPrefix on a sentinel key flushes all memtables first.
// DropPrefix refuses concurrent writes, so it runs under Store.mu, which
// every writer holds.
func (s *Store) flushMemtable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	sentinel := []byte{nsSentinel}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(sentinel, nil) }); err != nil {
		return fmt.Errorf("flush memtable: %w", err)
	}
	if err := s.db.DropPrefix(sentinel); err != nil {
		return fmt.Errorf("flush memtable: %w", err)
	}
	return nil
}
