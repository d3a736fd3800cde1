package authz

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"go.uber.org/zap"
)

// Sentinel is one row of an error policy: an error matched with errors.Is,
// the code it is answered with, and what the caller is told.
type Sentinel struct {
	Err  error
	Code connect.Code
	// Message is what the caller reads; "" passes the error's own text,
	// for errors whose text is written for the caller.
	Message string
}

// Errors is the one policy for what an error tells the caller, on the
// cloud and the parts:
//
//   - a *connect.Error is an answer already: it passes unchanged;
//   - an error matching a row of Table is answered with the row's code
//     and message (the first row that matches), or with the message
//     Explain gave it for that sentinel;
//   - a canceled or expired context is Canceled or DeadlineExceeded;
//   - anything else is Internal: the error is logged with a fresh error
//     id, and the caller is told only what failed and that id, never the
//     error itself (storage paths, internal state and secrets stay in the
//     log, and the id finds the log line).
type Errors struct {
	// Table maps sentinel errors to answers.
	Table []Sentinel
	// Log receives the internal errors.
	Log *zap.Logger
	// Where names the log the caller should ask about ("the cloud's log").
	Where string
}

// Answer turns err, met while doing what, into the error a handler
// returns; nil stays nil.
func (p *Errors) Answer(what string, err error) error {
	if err == nil {
		return nil
	}
	if ce := new(connect.Error); errors.As(err, &ce) {
		return ce
	}
	for _, row := range p.Table {
		if !errors.Is(err, row.Err) {
			continue
		}
		msg := row.Message
		if ex := new(explained); errors.As(err, &ex) && errors.Is(ex.sentinel, row.Err) {
			msg = ex.msg
		} else if msg == "" {
			msg = err.Error()
		}
		return connect.NewError(row.Code, errors.New(msg))
	}
	switch {
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	}
	return p.Internal(what, err)
}

// Internal logs err with a fresh error id and returns the Internal error
// the caller gets: what failed, and the id.
func (p *Errors) Internal(what string, err error) error {
	id := errorID()
	log := p.Log
	if log == nil {
		log = zap.NewNop()
	}
	log.Error(what, zap.String("error_id", id), zap.Error(err))
	where := p.Where
	if where == "" {
		where = "the log"
	}
	return connect.NewError(connect.CodeInternal, fmt.Errorf("%s failed (error %s); %s has the details", what, id, where))
}

// Explain gives err, when it matches sentinel, the message the caller
// reads in place of the table row's: what was missing or taken, in the
// caller's terms. The code stays the table's, and any other err is
// returned as it is (nil stays nil), so an unexpected failure is still
// Internal rather than answered with a message that does not fit it.
func Explain(err, sentinel error, format string, args ...any) error {
	if err == nil || !errors.Is(err, sentinel) {
		return err
	}
	return &explained{err: err, sentinel: sentinel, msg: fmt.Sprintf(format, args...)}
}

// explained is an error Explain gave a message for the caller.
type explained struct {
	err, sentinel error
	msg           string
}

func (e *explained) Error() string { return e.msg + ": " + e.err.Error() }
func (e *explained) Unwrap() error { return e.err }

// errorID is 8 random bytes in hex: enough to find one log line.
func errorID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
