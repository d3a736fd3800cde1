package pgshared

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/outpost-robotics/outpost/authz"
)

// throttleTimeout bounds one throttle decision's database work.
const throttleTimeout = 5 * time.Second

// dbFailWait is the wait Begin answers when the database cannot decide:
// the throttle fails closed, briefly, rather than letting guesses through
// unthrottled.
const dbFailWait = time.Second

// Throttle is authz.Limiter's policy (its Free, Base, Max, Forget and
// Known) with the counts in the database, so every replica counts the same
// failures. Each decision locks its keys (transaction advisory locks) so
// concurrent attempts on any replicas cannot all pass the check.
type Throttle struct {
	s      *Shared
	policy *authz.Limiter
}

// Throttle returns the shared throttle of policy (authz.SignIn()).
func (s *Shared) Throttle(policy *authz.Limiter) *Throttle {
	return &Throttle{s: s, policy: policy}
}

type limitRow struct {
	failures int
	next     int64
	last     int64
}

func (t *Throttle) forgotten(r limitRow, now int64) bool {
	return t.policy.Forget > 0 && time.Duration(now-r.last) >= t.policy.Forget
}

// delay is Base·2^over, capped at the key's Max (authz.Limiter's).
func (t *Throttle) delay(k authz.Key, over int) time.Duration {
	limit := k.Max
	if limit <= 0 {
		limit = t.policy.Max
	}
	d := t.policy.Base
	for i := 0; i < over && d < limit; i++ {
		d *= 2
	}
	if limit > 0 {
		d = min(d, limit)
	}
	return d
}

// locked runs fn in a transaction holding the advisory locks of keys, in
// a fixed order (no deadlocks), with their rows read.
func (t *Throttle) locked(keys []authz.Key, fn func(ctx context.Context, tx pgx.Tx, rows map[string]limitRow) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), throttleTimeout)
	defer cancel()
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		if !storable(k.Name) {
			return errUnstorable
		}
		names = append(names, k.Name)
	}
	slices.Sort(names)
	return pgx.BeginFunc(ctx, t.s.pool, func(tx pgx.Tx) error {
		for _, n := range names {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('signin:' || $1))", n); err != nil {
				return fmt.Errorf("lock throttle key: %w", err)
			}
		}
		rs, err := tx.Query(ctx, "SELECT name, failures, next_ns, last_ns FROM signin_throttle WHERE name = ANY($1)", names)
		if err != nil {
			return fmt.Errorf("read throttle: %w", err)
		}
		rows := map[string]limitRow{}
		for rs.Next() {
			var name string
			var r limitRow
			if err := rs.Scan(&name, &r.failures, &r.next, &r.last); err != nil {
				return fmt.Errorf("read throttle: %w", err)
			}
			rows[name] = r
		}
		if err := rs.Err(); err != nil {
			return fmt.Errorf("read throttle: %w", err)
		}
		return fn(ctx, tx, rows)
	})
}

func put(ctx context.Context, tx pgx.Tx, name string, r limitRow) error {
	_, err := tx.Exec(ctx, `INSERT INTO signin_throttle (name, failures, next_ns, last_ns) VALUES ($1, $2, $3, $4)
		ON CONFLICT (name) DO UPDATE SET failures = $2, next_ns = $3, last_ns = $4`, name, r.failures, r.next, r.last)
	if err != nil {
		return fmt.Errorf("write throttle: %w", err)
	}
	return nil
}

// Begin is authz.Limiter.Begin with shared counts.
func (t *Throttle) Begin(keys []authz.Key, now time.Time) time.Duration {
	var wait time.Duration
	n := now.UnixNano()
	err := t.locked(keys, func(ctx context.Context, tx pgx.Tx, rows map[string]limitRow) error {
		for _, k := range keys {
			r, ok := rows[k.Name]
			if ok && r.failures >= t.policy.Free && n < r.next && !t.forgotten(r, n) {
				wait = max(wait, time.Duration(r.next-n))
			}
		}
		if wait > 0 {
			return nil
		}
		if t.policy.Forget > 0 {
			if _, err := tx.Exec(ctx, "DELETE FROM signin_throttle WHERE last_ns < $1", n-int64(t.policy.Forget)); err != nil {
				return fmt.Errorf("forget throttle keys: %w", err)
			}
		}
		for _, k := range keys {
			r := rows[k.Name]
			if t.forgotten(r, n) {
				r = limitRow{}
			}
			r.failures++
			r.last = n
			if over := r.failures - t.policy.Free; over >= 0 {
				r.next = n + int64(t.delay(k, over))
			}
			if err := put(ctx, tx, k.Name, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.s.log.Error("the shared sign-in throttle cannot decide; refusing the attempt for now", zap.Error(err))
		return dbFailWait
	}
	return wait
}

// Succeed is authz.Limiter.Succeed with shared counts.
func (t *Throttle) Succeed(keys []authz.Key) { t.end(keys, true) }

// Cancel is authz.Limiter.Cancel with shared counts.
func (t *Throttle) Cancel(keys []authz.Key) { t.end(keys, false) }

func (t *Throttle) end(keys []authz.Key, ok bool) {
	err := t.locked(keys, func(ctx context.Context, tx pgx.Tx, rows map[string]limitRow) error {
		for _, k := range keys {
			r, found := rows[k.Name]
			switch {
			case !found:
			case (ok && k.ClearOnSuccess) || r.failures <= 1:
				if _, err := tx.Exec(ctx, "DELETE FROM signin_throttle WHERE name = $1", k.Name); err != nil {
					return fmt.Errorf("clear throttle key: %w", err)
				}
			default:
				r.failures--
				if r.failures < t.policy.Free {
					r.next = 0
				}
				if err := put(ctx, tx, k.Name, r); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.s.log.Warn("the shared sign-in throttle could not take an attempt back", zap.Error(err))
	}
}

// Remember is authz.Limiter.Remember with the pairs in the database.
func (t *Throttle) Remember(pair string, now time.Time) {
	if !storable(pair) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), throttleTimeout)
	defer cancel()
	n := now.UnixNano()
	_, err := t.s.pool.Exec(ctx, `INSERT INTO signin_known (pair, at_ns) VALUES ($1, $2) ON CONFLICT (pair) DO UPDATE SET at_ns = $2`, pair, n)
	if err == nil && t.policy.Known > 0 {
		_, err = t.s.pool.Exec(ctx, "DELETE FROM signin_known WHERE at_ns < $1", n-int64(t.policy.Known))
	}
	if err != nil {
		t.s.log.Warn("the shared sign-in throttle could not remember an address", zap.Error(err))
	}
}

// Knows is authz.Limiter.Knows with the pairs in the database; a database
// error knows nothing (the stricter answer).
func (t *Throttle) Knows(pair string, now time.Time) bool {
	if !storable(pair) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), throttleTimeout)
	defer cancel()
	var at int64
	err := t.s.pool.QueryRow(ctx, "SELECT at_ns FROM signin_known WHERE pair = $1", pair).Scan(&at)
	if err != nil {
		if !errors.Is(err, pgx.ErrNoRows) {
			t.s.log.Warn("the shared sign-in throttle could not read known addresses", zap.Error(err))
		}
		return false
	}
	return time.Duration(now.UnixNano()-at) < t.policy.Known
}
