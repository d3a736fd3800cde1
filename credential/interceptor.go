package credential

import (
	"context"
	"errors"
	"sync"
	"time"

	"connectrpc.com/connect"
)

// Prover is a client's connect interceptor: it sends k's Authorization and
// a proof for one audience on every call. For a part (NewPartProver) it
// keeps the part's nonce, answers a refusal carrying a fresh one by trying
// the call once more, and reuses one proof while the nonce holds, so the
// part verifies it once.
type Prover struct {
	key *Key
	aud string
	now func() time.Time
	// nonce, for a part, fetches a nonce before a stream when none is
	// known (a stream cannot be tried again); nil for the cloud.
	fetch func(ctx context.Context) (string, error)
	part  bool

	mu    sync.Mutex
	nonce string
	proof string
}

// NewCloudProver authenticates calls to the fleet API with k, with a fresh
// proof per call; now is the client's clock.
func NewCloudProver(k *Key, now func() time.Time) *Prover {
	return &Prover{key: k, aud: AudienceCloud, now: now}
}

// NewPartProver authenticates calls to the part whose control certificate
// has fingerprint (lower-case hex) with k. fetchNonce asks the part for a
// nonce without a credential (its Health call answers with one in the
// NonceHeader); it is used before a stream when no nonce is known.
func NewPartProver(k *Key, fingerprint string, now func() time.Time, fetchNonce func(ctx context.Context) (string, error)) *Prover {
	return &Prover{key: k, aud: TLSAudience(fingerprint), now: now, fetch: fetchNonce, part: true}
}

// headers returns the values to send, and the nonce they carry.
func (p *Prover) headers() (auth, proof, nonce string, err error) {
	if !p.part {
		proof, err = p.key.Proof(p.aud, "", p.now())
		return p.key.Authorization(), proof, "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proof == "" {
		if p.proof, err = p.key.Proof(p.aud, p.nonce, p.now()); err != nil {
			return "", "", "", err
		}
	}
	return p.key.Authorization(), p.proof, p.nonce, nil
}

// learn keeps a nonce the part sent, reporting whether it is new.
func (p *Prover) learn(nonce string) bool {
	if nonce == "" || len(nonce) > 128 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if nonce == p.nonce {
		return false
	}
	p.nonce, p.proof = nonce, ""
	return true
}

// WrapUnary implements connect.Interceptor.
func (p *Prover) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		for try := 0; ; try++ {
			auth, proof, _, err := p.headers()
			if err != nil {
				return nil, err
			}
			req.Header().Set("Authorization", auth)
			req.Header().Set(ProofHeader, proof)
			res, err := next(ctx, req)
			if p.part && try == 0 && connect.CodeOf(err) == connect.CodeUnauthenticated {
				var ce *connect.Error
				if errors.As(err, &ce) && p.learn(ce.Meta().Get(NonceHeader)) {
					continue
				}
			}
			if err == nil && p.part {
				p.learn(res.Header().Get(NonceHeader))
			}
			return res, err
		}
	}
}

// WrapStreamingClient implements connect.Interceptor.
func (p *Prover) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		if p.part && p.fetch != nil {
			p.mu.Lock()
			known := p.nonce != ""
			p.mu.Unlock()
			if !known {
				if n, err := p.fetch(ctx); err == nil {
					p.learn(n)
				}
			}
		}
		c := next(ctx, spec)
		if auth, proof, _, err := p.headers(); err == nil {
			c.RequestHeader().Set("Authorization", auth)
			c.RequestHeader().Set(ProofHeader, proof)
		}
		return c
	}
}

// WrapStreamingHandler implements connect.Interceptor.
func (p *Prover) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
