// Package pgshared is what cloud replicas on one PostgreSQL database share
// beyond the stores: the WebRTC relay's offers (a relay.Board), the
// sign-in throttle (cloud.Throttle), and the notifications that wake a
// replica's waits when another replica changes them.
//
// Notifications: each Shared holds one connection LISTENing on one
// channel; a change sends, in its own statement or transaction,
// pg_notify with the key of what changed (relay.PartKey, relay.OfferKey),
// and the listener wakes that key's watchers. PostgreSQL delivers a
// notification at commit to every listener, so a replica learns of an
// offer or an answer within a round trip. Notifications are lost while the
// listening connection is down (a database restart): the listener
// reconnects every ListenRetry and then wakes every watcher, and every
// wait also checks the table again every fallback poll (relay.Shared's
// FallbackPoll, 2 s), so a lost notification delays, never loses.
//
// It is one of the PostgreSQL packages that may import pgx; no pgx type
// leaves it.
package pgshared

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/pgmigrate"
	"github.com/outpost-robotics/outpost/cloud/relay"
)

// channel is the one notification channel.
const channel = "outpost_shared"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the shared tables' schema versions, applied by Open.
func Migrations() pgmigrate.Set {
	return pgmigrate.Embedded("shared", migrationFiles, "migrations")
}

// Options configures Open.
type Options struct {
	// URL is the database's postgres:// URL or connection string.
	URL string
	// Clock times the listener's retries and the throttle; nil means the
	// machine's.
	Clock clock.Clock
	// Logger receives the listener's losses and the throttle's database
	// errors; never a credential.
	Logger *zap.Logger
	// ListenRetry is the pause before the listener reconnects; 0 means 1 s.
	ListenRetry time.Duration
}

// Shared is the replicas' shared state on one database.
type Shared struct {
	pool  *pgxpool.Pool
	clock clock.Clock
	log   *zap.Logger
	retry time.Duration

	cancel context.CancelFunc
	done   chan struct{}
	ready  chan struct{} // closed once the listener first listened or failed
	once   sync.Once

	mu       sync.Mutex
	watchers map[string]*watch
}

type watch struct {
	ch chan struct{}
	n  int
}

var _ relay.Board = (*Shared)(nil)

// Open connects, applies the migrations the database lacks, and starts
// listening.
func Open(ctx context.Context, opts Options) (*Shared, error) {
	pool, err := pgmigrate.Connect(ctx, opts.URL, Migrations())
	if err != nil {
		return nil, fmt.Errorf("open the replicas' shared state: %w", err)
	}
	s := &Shared{pool: pool, clock: opts.Clock, log: opts.Logger, retry: opts.ListenRetry, done: make(chan struct{}), ready: make(chan struct{}), watchers: map[string]*watch{}}
	if s.clock == nil {
		s.clock = clock.NewReal()
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.retry <= 0 {
		s.retry = time.Second
	}
	lctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.listen(lctx)
	// Serving before the listener listens would miss the first
	// notifications (the fallback poll would still find their changes).
	select {
	case <-s.ready:
	case <-ctx.Done():
	}
	return s, nil
}

// Close stops listening and closes the connections.
func (s *Shared) Close() error {
	s.cancel()
	<-s.done
	s.pool.Close()
	return nil
}

// listen keeps one connection listening until ctx ends.
func (s *Shared) listen(ctx context.Context) {
	defer close(s.done)
	for {
		err := s.listenOnce(ctx)
		s.once.Do(func() { close(s.ready) })
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("lost the database's notifications; waits fall back to polling until the listener is back", zap.Error(err))
		if s.clock.Sleep(ctx, s.retry) != nil {
			return
		}
	}
}

func (s *Shared) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("connect the listener: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// What changed while no one listened went unannounced: every watcher
	// checks again.
	s.wakeAll()
	s.once.Do(func() { close(s.ready) })
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("wait for notifications: %w", err)
		}
		s.wake(n.Payload)
	}
}

// Watch implements relay.Board.
func (s *Shared) Watch(key string) (<-chan struct{}, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.watchers[key]
	if w == nil {
		w = &watch{ch: make(chan struct{})}
		s.watchers[key] = w
	}
	w.n++
	return w.ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if w.n--; w.n == 0 && s.watchers[key] == w {
			delete(s.watchers, key)
		}
	}
}

func (s *Shared) wake(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.watchers[key]; w != nil {
		close(w.ch)
		delete(s.watchers, key)
	}
}

func (s *Shared) wakeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, w := range s.watchers {
		close(w.ch)
		delete(s.watchers, key)
	}
}

// storable reports whether PostgreSQL text can hold v.
func storable(v string) bool {
	return utf8.ValidString(v) && strings.IndexByte(v, 0) < 0 && len(v) <= 512
}

// errUnstorable refuses an identifier PostgreSQL text cannot hold; the
// relay checks identifiers first, so only a bug reaches it.
var errUnstorable = errors.New("an identifier is not UTF-8 text without NUL of at most 512 bytes")

// Post implements relay.Board. Offers past their expiry, left by a
// replica that died during its call, are dropped here.
func (s *Shared) Post(ctx context.Context, partID, id string, msg []byte, expires time.Time, maxPerPart, maxTotal int) error {
	if !storable(partID) || !storable(id) {
		return errUnstorable
	}
	now := s.clock.Now().UnixNano()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM relay_offers WHERE expires_ns < $1", now); err != nil {
			return fmt.Errorf("drop expired offers: %w", err)
		}
		var forPart, total int
		if err := tx.QueryRow(ctx, "SELECT count(*) FILTER (WHERE part_id = $1), count(*) FROM relay_offers", partID).Scan(&forPart, &total); err != nil {
			return fmt.Errorf("count offers: %w", err)
		}
		if forPart >= maxPerPart || total >= maxTotal {
			return relay.ErrBoardFull
		}
		if _, err := tx.Exec(ctx, "INSERT INTO relay_offers (id, part_id, msg, expires_ns) VALUES ($1, $2, $3, $4)", id, partID, msg, expires.UnixNano()); err != nil {
			return fmt.Errorf("post offer: %w", err)
		}
		_, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", channel, relay.PartKey(partID))
		return err
	})
}

// Take implements relay.Board: SKIP LOCKED makes concurrent polls on any
// replicas take different offers, each at most once.
func (s *Shared) Take(ctx context.Context, partID string) (string, []byte, bool, error) {
	if !storable(partID) {
		return "", nil, false, nil
	}
	var id string
	var msg []byte
	err := s.pool.QueryRow(ctx, `WITH t AS (
		UPDATE relay_offers SET taken = true WHERE id = (
			SELECT id FROM relay_offers WHERE part_id = $1 AND NOT taken AND expires_ns > $2
			ORDER BY posted_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING id, msg)
		SELECT id, msg, pg_notify($3, 'o:' || id) FROM t`, partID, s.clock.Now().UnixNano(), channel).Scan(&id, &msg, nil)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, false, nil
	}
	if err != nil {
		return "", nil, false, fmt.Errorf("take an offer: %w", err)
	}
	return id, msg, true, nil
}

// Withdraw implements relay.Board.
func (s *Shared) Withdraw(ctx context.Context, id string) (bool, error) {
	tag, err := s.pool.Exec(ctx, "DELETE FROM relay_offers WHERE id = $1 AND NOT taken", id)
	if err != nil {
		return false, fmt.Errorf("withdraw an offer: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Answer implements relay.Board.
func (s *Shared) Answer(ctx context.Context, partID, id string, answer []byte) (bool, error) {
	if !storable(partID) || !storable(id) {
		return false, nil
	}
	rows, err := s.pool.Query(ctx, `WITH a AS (
		UPDATE relay_offers SET answer = $3 WHERE id = $1 AND part_id = $2 AND taken AND answer IS NULL RETURNING id)
		SELECT pg_notify($4, 'o:' || id) FROM a`, id, partID, answer, channel)
	if err != nil {
		return false, fmt.Errorf("answer an offer: %w", err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("answer an offer: %w", err)
	}
	return n == 1, nil
}

// Answered implements relay.Board.
func (s *Shared) Answered(ctx context.Context, id string) ([]byte, error) {
	var answer []byte
	err := s.pool.QueryRow(ctx, "SELECT answer FROM relay_offers WHERE id = $1", id).Scan(&answer)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read an offer's answer: %w", err)
	}
	return answer, nil
}

// Remove implements relay.Board.
func (s *Shared) Remove(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM relay_offers WHERE id = $1", id); err != nil {
		return fmt.Errorf("remove an offer: %w", err)
	}
	return nil
}
