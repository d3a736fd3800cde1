package cloud

import (
	"context"

	"connectrpc.com/connect"

	"github.com/outpost-robotics/outpost/cloud/store"
)

// The fleet API's handlers answer through these: a handler returns its
// response or the error it met, wrapped with what it was doing, and the
// interceptor answers the error by the error policy (newErrors). So no
// handler maps a sentinel to a code, and none can hand a caller an error's
// own text by accident.

// reply is a handler's answer: msg, or err.
func reply[T any](msg *T, err error) (*connect.Response[T], error) {
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(msg), nil
}

// respond runs fn in a transaction, Server.update (which writes the call's
// audit event with the change) or Server.view, and answers with the
// response fn built.
func respond[T any](ctx context.Context, run func(context.Context, func(store.Tx) error) error, fn func(tx store.Tx) (*T, error)) (*connect.Response[T], error) {
	var msg *T
	err := run(ctx, func(tx store.Tx) error {
		var err error
		msg, err = fn(tx)
		return err
	})
	return reply(msg, err)
}

// modify is the read-modify-write of one record in tx: it reads the record
// id names with get, lets fn change it, and writes it back with put. get
// and put are method expressions of store.Tx, such as store.Tx.GetOrg and
// store.Tx.PutOrg.
func modify[R any](ctx context.Context, tx store.Tx, id string,
	get func(store.Tx, context.Context, string) (R, error), put func(store.Tx, context.Context, R) error, fn func(*R) error) (R, error) {
	r, err := get(tx, ctx, id)
	if err != nil {
		return r, err
	}
	if err := fn(&r); err != nil {
		return r, err
	}
	return r, put(tx, ctx, r)
}

// edit is modify in an update transaction of its own; fn gets the
// transaction too, for the checks a change needs.
func edit[R any](ctx context.Context, s *Server, id string,
	get func(store.Tx, context.Context, string) (R, error), put func(store.Tx, context.Context, R) error, fn func(store.Tx, *R) error) (R, error) {
	var r R
	err := s.update(ctx, func(tx store.Tx) error {
		var err error
		r, err = modify(ctx, tx, id, get, put, func(r *R) error { return fn(tx, r) })
		return err
	})
	return r, err
}
