package credential

import (
	"context"
	"net/http"

	"connectrpc.com/connect"
)

// Bearer is a client's connect interceptor presenting a bearer credential:
// the same Authorization header, and the DPoP header when Proof is set, on
// every call, unary or streaming. A part's "Part <id>:<secret>" to the
// cloud's sync API is one. Tests present with it what a hostile, old or
// replaying client would send; a holder of a printed key proves possession
// instead (NewCloudProver, NewPartProver). An empty field sends no header.
type Bearer struct {
	// Authorization is the Authorization header's value.
	Authorization string
	// Proof is the DPoP header's value.
	Proof string
}

// set writes b's headers into h.
func (b Bearer) set(h http.Header) {
	if b.Authorization != "" {
		h.Set("Authorization", b.Authorization)
	}
	if b.Proof != "" {
		h.Set(ProofHeader, b.Proof)
	}
}

// WrapUnary implements connect.Interceptor.
func (b Bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		b.set(req.Header())
		return next(ctx, req)
	}
}

// WrapStreamingClient implements connect.Interceptor.
func (b Bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		c := next(ctx, spec)
		b.set(c.RequestHeader())
		return c
	}
}

// WrapStreamingHandler implements connect.Interceptor.
func (b Bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
