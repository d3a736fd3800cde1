package authz

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

var (
	errMissing = errors.New("missing")
	errBusy    = errors.New("busy: the checks are all taken")
)

// TestErrorPolicy: connect errors pass, sentinels get their row, a caller
// gone is Canceled or DeadlineExceeded, and anything else is Internal with
// an error id that the log has too, never the error's own text.
func TestErrorPolicy(t *testing.T) {
	core, logs := observer.New(zap.ErrorLevel)
	p := &Errors{Log: zap.New(core), Where: "the cloud's log", Table: []Sentinel{
		{Err: errMissing, Code: connect.CodeNotFound, Message: "not found"},
		{Err: errBusy, Code: connect.CodeResourceExhausted},
	}}
	secret := errors.New("open /var/lib/outpost/store/000042.vlog: secret=hunter2")
	for _, tc := range []struct {
		name     string
		err      error
		code     connect.Code
		message  string // "" for an Internal answer
		internal bool
	}{
		{"a connect error is an answer", connect.NewError(connect.CodeFailedPrecondition, errors.New("move it first")), connect.CodeFailedPrecondition, "move it first", false},
		{"a wrapped connect error", fmt.Errorf("in tx: %w", connect.NewError(connect.CodeAlreadyExists, errors.New("taken"))), connect.CodeAlreadyExists, "taken", false},
		{"a sentinel gets its message", fmt.Errorf("get user u1: %w", errMissing), connect.CodeNotFound, "not found", false},
		{"a sentinel without a message keeps its text", errBusy, connect.CodeResourceExhausted, errBusy.Error(), false},
		{"a canceled call", fmt.Errorf("read: %w", context.Canceled), connect.CodeCanceled, "read: context canceled", false},
		{"an expired call", context.DeadlineExceeded, connect.CodeDeadlineExceeded, "context deadline exceeded", false},
		{"anything else", secret, connect.CodeInternal, "", true},
		{"anything else, wrapped", fmt.Errorf("load: %w", secret), connect.CodeInternal, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs.TakeAll()
			got := p.Answer("storage", tc.err)
			var ce *connect.Error
			if !errors.As(got, &ce) || ce.Code() != tc.code {
				t.Fatalf("Answer(%v) = %v, want code %v", tc.err, got, tc.code)
			}
			if !tc.internal {
				if ce.Message() != tc.message || logs.Len() != 0 {
					t.Fatalf("message %q (want %q), %d log lines", ce.Message(), tc.message, logs.Len())
				}
				return
			}
			m := regexp.MustCompile(`^storage failed \(error ([0-9a-f]{16})\); the cloud's log has the details$`).FindStringSubmatch(ce.Message())
			if m == nil || strings.Contains(ce.Message(), "hunter2") || errors.Is(got, secret) {
				t.Fatalf("the caller is told %q", ce.Message())
			}
			entries := logs.TakeAll()
			if len(entries) != 1 || entries[0].ContextMap()["error_id"] != m[1] || !strings.Contains(fmt.Sprint(entries[0].ContextMap()["error"]), "hunter2") {
				t.Fatalf("log %v lacks the error under id %s", entries, m[1])
			}
		})
	}
	if p.Answer("x", nil) != nil {
		t.Fatal("nil is no error")
	}
	a, b := p.Answer("x", secret), p.Answer("x", secret)
	if a.Error() == b.Error() {
		t.Fatal("two failures share an error id")
	}
}

// TestExplain: an explained sentinel keeps the table's code and tells the
// caller the explanation; an error that is not the sentinel named is
// answered as if Explain had not seen it, so a failure never reads as the
// explained condition.
func TestExplain(t *testing.T) {
	p := &Errors{Log: zap.NewNop(), Table: []Sentinel{
		{Err: errMissing, Code: connect.CodeNotFound, Message: "not found"},
		{Err: errBusy, Code: connect.CodeResourceExhausted},
	}}
	secret := errors.New("read block 7: secret=hunter2")
	for _, tc := range []struct {
		name    string
		err     error
		code    connect.Code
		message string // "" for an Internal answer
	}{
		{"the sentinel explained", Explain(fmt.Errorf("get org o1: %w", errMissing), errMissing, "org/%s does not exist", "o1"), connect.CodeNotFound, "org/o1 does not exist"},
		{"explained, then wrapped", fmt.Errorf("in tx: %w", Explain(errMissing, errMissing, "no such part")), connect.CodeNotFound, "no such part"},
		{"another sentinel keeps its row", Explain(errBusy, errMissing, "no such part"), connect.CodeResourceExhausted, errBusy.Error()},
		{"a failure stays Internal", Explain(secret, errMissing, "no such part"), connect.CodeInternal, ""},
		{"a connect error passes", Explain(connect.NewError(connect.CodeAborted, errors.New("again")), errMissing, "no such part"), connect.CodeAborted, "again"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := p.Answer("storage", tc.err)
			var ce *connect.Error
			if !errors.As(got, &ce) || ce.Code() != tc.code {
				t.Fatalf("Answer(%v) = %v, want code %v", tc.err, got, tc.code)
			}
			if tc.message == "" {
				if strings.Contains(ce.Message(), "hunter2") || strings.Contains(ce.Message(), "no such part") {
					t.Fatalf("the caller is told %q", ce.Message())
				}
				return
			}
			if ce.Message() != tc.message {
				t.Fatalf("message %q, want %q", ce.Message(), tc.message)
			}
		})
	}
	if Explain(nil, errMissing, "x") != nil {
		t.Fatal("nil is no error")
	}
}
