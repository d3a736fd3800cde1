package cache

import (
	"context"
	"errors"
	"testing"
)

// TestAuditShareOfTheBudget: audit events may push captures out only while
// the audit stream holds at most AuditSharePercent of the budget; past it a
// flood of audit events is refused and the captures stay.
func TestAuditShareOfTheBudget(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	opts.Budget.MaxBytes = 256 << 10
	s := openTest(t, t.TempDir(), opts)
	for {
		if _, err := s.Append(ctx, StreamCaptures, Record{Payload: make([]byte, 1000), Priority: 5}); err != nil {
			if !errors.Is(err, ErrOverBudget) {
				t.Fatal(err)
			}
			break
		}
		if counts(t, s)[StreamGaps] > 0 {
			break // the store is full: captures evict each other
		}
	}
	before := counts(t, s)[StreamCaptures]
	var stored, refused int
	for range 2000 {
		_, err := s.Append(ctx, StreamAudit, Record{Payload: make([]byte, 300)})
		switch {
		case err == nil:
			stored++
		case errors.Is(err, ErrOverBudget):
			refused++
		default:
			t.Fatal(err)
		}
	}
	st, err := s.Stats(ctx, StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	share := opts.Budget.MaxBytes * AuditSharePercent / 100
	// Eviction frees 1/64 of the budget more than it needs, which audit
	// events may then fill without evicting.
	if int64(st.Bytes) > share+opts.Budget.MaxBytes/64+1024 || refused == 0 {
		t.Errorf("audit holds %d bytes (%d stored, %d refused), want at most its share of %d", st.Bytes, stored, refused, share)
	}
	after := counts(t, s)[StreamCaptures]
	if lost := int64(before - after); lost*1000 > share+2*opts.Budget.MaxBytes/64 {
		t.Errorf("audit events evicted %d of %d captures, more than their share of the budget", lost, before)
	}
}
