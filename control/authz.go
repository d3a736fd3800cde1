package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/rbac"
)

// Transport names, as in AuditEvent.transport.
const (
	TransportGRPC   = "grpc"
	TransportWebRTC = "webrtc"
	TransportSocket = "socket"
)

// conn describes how a request reached the handler; each listener (and the
// WebRTC session) puts one in the request context.
type conn struct {
	transport string
	peer      string
	// fixed, for WebRTC, is the identity proved at signaling: the
	// session's. Headers sent on the channel are ignored, and every call is
	// decided again, against the bundle current at that call.
	fixed *proved
	// local is set for the break-glass socket, with the peer's uid.
	local bool
	uid   uint32
}

type connKey struct{}
type callerKey struct{}

func withConn(ctx context.Context, c *conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

func connOf(r *http.Request) *conn {
	if c, ok := r.Context().Value(connKey{}).(*conn); ok {
		return c
	}
	// Requests with no listener context (tests serving the handler directly)
	// are network requests from their remote address.
	return &conn{transport: TransportGRPC, peer: r.RemoteAddr}
}

// caller is who is calling, as authenticated and authorized for this call.
type caller struct {
	who        authz.Subject
	display    string
	credential string // apikey, token or socket
	transport  string
	peer       string
	subject    *rbac.Subject
	grant      rbac.Grant // the highest-role grant reaching the machine
	policy     *policy
	id         proved // what authenticated (WebRTC signaling keeps it)
}

func callerOf(ctx context.Context) *caller {
	c, _ := ctx.Value(callerKey{}).(*caller)
	return c
}

// CallerRef names who makes the call ctx belongs to: "user/ID",
// "apikey/ID", or "local/UID" for the break-glass socket. Dependencies use
// it to record who did something, such as the gap record of a deletion;
// it is "" outside a call the authorizer let through.
func CallerRef(ctx context.Context) string {
	if c := callerOf(ctx); c != nil {
		return c.who.String()
	}
	return ""
}

// authorizer is the one interceptor every transport goes through: it
// authenticates the caller, decides the procedure's rule with rbac over the
// current grant bundle, audits, and only then hands the request on. It works
// at the HTTP layer, under connect, so it covers every protocol (gRPC,
// gRPC-Web, Connect), every service mounted (the robot's ComponentService
// included) and the WebRTC channel, whose calls are replayed through the same
// http.Handler.
type authorizer struct {
	clock  clock.Clock
	log    *zap.Logger
	grants Grants
	audit  Audit
	rules  map[string]*rule
	// throttle slows failed authentications per peer address.
	throttle *authz.Limiter
	// denied slows refusals per credential and peer: a credential that
	// keeps calling what it may not is answered ResourceExhausted for a
	// while, whatever it calls.
	denied *authz.Limiter
	// refusals aggregates refused calls into few audit records.
	refusals *refusals
	errw     *connect.ErrorWriter

	// aud is this part's audience for proofs: its certificate's.
	aud string
	// nonces makes and checks the nonces proofs must carry.
	nonces *credential.NonceIssuer
	// mainPart is the machine's main part when it is another part: the one
	// peer whose forwarded calls this part accepts.
	mainPart func(context.Context) *configv1.MachinePart
	// syncEvery is Options.SyncInterval.
	syncEvery func() time.Duration

	mu  sync.Mutex // serializes rebuilding; readers use cur
	cur atomic.Pointer[policy]

	// live are the calls in progress on the TLS port, which a new bundle
	// may end (GrantsChanged).
	live liveCalls
}

// presented is what a call carries to authenticate: its headers, or a
// relayed offer's assertion and SDP.
type presented struct {
	headers        credential.Presented
	err            error // why the headers did not parse
	assertion, sdp string
	// A call forwarded by the main part: the caller it names, the address
	// it saw, and the client certificate's fingerprint of the connection.
	forwarded, forwardedPeer, clientCert string
	procedure                            string
}

// presentedOf reads a request's credential headers.
func presentedOf(h http.Header) presented {
	p, err := credential.Parse(h.Get("Authorization"), h.Get(credential.ProofHeader))
	return presented{headers: p, err: err}
}

// currentPolicy returns the policy of the current bundle, rebuilding it
// when the bundle's version changed.
func (a *authorizer) currentPolicy(ctx context.Context) (*policy, error) {
	b, err := a.grants.CurrentGrants(ctx)
	if err != nil {
		return nil, fmt.Errorf("read grant bundle: %w", err)
	}
	if p := a.cur.Load(); p != nil && samePolicy(p, b) {
		return p, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if p := a.cur.Load(); p != nil && samePolicy(p, b) {
		return p, nil
	}
	p := newPolicy(b)
	p.syncEvery = a.syncEvery
	if p.err != nil && b != nil {
		a.log.Error("grant bundle unusable; remote calls are refused", zap.Error(p.err))
	}
	a.cur.Store(p)
	return p, nil
}

func samePolicy(p *policy, b *syncv1.GrantBundle) bool {
	if b == nil || p.bundle == nil {
		return b == nil && p.bundle == nil
	}
	return p.bundle == b || (p.version == b.GetVersion() && p.partID == b.GetPartId())
}

// wrap returns next behind authorization.
func (a *authorizer) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		growStack() // once, here, rather than by doubling deeper in the call
		rl, ok := a.rules[r.URL.Path]
		if !ok {
			a.writeError(w, r, connect.NewError(connect.CodeNotFound, fmt.Errorf("no procedure %q on this part", r.URL.Path)))
			return
		}
		if rl.Marker == authz.Public {
			// A nonce for the client's next proof, so that a stream
			// (which cannot be tried again) can start with one.
			w.Header().Set(credential.NonceHeader, a.nonces.Issue(a.clock.Now()))
			next.ServeHTTP(w, r)
			return
		}
		in := presentedOf(r.Header)
		if f := r.Header.Get(HeaderForwardedSubject); f != "" {
			in.forwarded, in.forwardedPeer, in.clientCert, in.procedure = f, r.Header.Get(HeaderForwardedPeer), forwardedBy(r), r.URL.Path
		}
		cn := connOf(r)
		c, cerr := a.authorize(r.Context(), cn, in, rl)
		if cerr != nil {
			a.writeError(w, r, cerr)
			return
		}
		ctx := context.WithValue(r.Context(), callerKey{}, c)
		if cn.fixed == nil && !cn.local {
			// A WebRTC session's calls end with their session; the
			// socket's owner is not decided by the bundle.
			var cancel context.CancelCauseFunc
			ctx, cancel = context.WithCancelCause(ctx)
			lc := &liveCall{id: c.id, cancel: cancel}
			a.live.add(lc)
			defer func() {
				a.live.remove(lc)
				cancel(nil)
			}()
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (a *authorizer) writeError(w http.ResponseWriter, r *http.Request, err *connect.Error) {
	if a.errw.IsSupported(r) {
		_ = a.errw.Write(w, r, err)
		return
	}
	status := http.StatusForbidden
	switch err.Code() {
	case connect.CodeUnauthenticated:
		status = http.StatusUnauthorized
	case connect.CodeNotFound:
		status = http.StatusNotFound
	case connect.CodeResourceExhausted:
		status = http.StatusTooManyRequests
	case connect.CodeUnavailable:
		status = http.StatusServiceUnavailable
	}
	http.Error(w, err.Message(), status)
}

// authorize decides one call. It returns the caller, or the error to answer.
func (a *authorizer) authorize(ctx context.Context, cn *conn, in presented, rl *rule) (*caller, *connect.Error) {
	now := a.clock.Now()
	pol, err := a.currentPolicy(ctx)
	if err != nil {
		a.log.Error("authorize", zap.Error(err))
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("the part cannot read its grants; use the break-glass socket"))
	}
	if cn.local {
		return a.authorizeLocal(ctx, cn, pol, rl)
	}
	peer := peerHost(cn.peer)
	ev := &syncv1.AuditEvent{Action: rl.Name(), Resource: pol.machineRef, Procedure: rl.Procedure, Transport: cn.transport, Peer: cn.peer}
	// The main part's forwarded calls share its address with whatever
	// failed there before (its own calls sent while this part did not yet
	// know its certificate): once the certificate this part's config pins
	// proves the main part, that address's failures do not hold them up.
	if wait := a.throttle.Wait(peerKey(peer), now); wait > 0 && !a.fromMainPart(ctx, cn, in) {
		// Throttled answers are audited in aggregate, like every refusal:
		// a flood would otherwise fill the audit stream, which is never
		// evicted.
		err := fmt.Errorf("too many failed authentications from %s; try again in %s", peer, wait.Round(1e9))
		ev.Reason = err.Error()
		a.refused(ctx, ev, now)
		return nil, connect.NewError(connect.CodeResourceExhausted, err)
	}
	refuse := func(code connect.Code, subject string, err error) (*caller, *connect.Error) {
		ce := connect.NewError(code, err)
		if errors.Is(err, errNonce) {
			// The challenge: the client proved its key, and tries again
			// at once with this fresh nonce.
			ce.Meta().Set(credential.NonceHeader, a.nonces.Issue(now))
			return nil, ce
		}
		switch code {
		case connect.CodeUnauthenticated:
			a.throttle.Fail(peerKey(peer), now)
		case connect.CodePermissionDenied:
			a.denied.Fail(deniedKey(subject, peer), now)
		}
		ev.Subject, ev.Allowed, ev.Reason = subject, false, err.Error()
		a.refused(ctx, ev, now)
		return nil, ce
	}
	var id proved
	switch {
	case in.forwarded != "":
		id, err = a.forwarded(ctx, cn, in)
		if err != nil {
			return refuse(connect.CodeUnauthenticated, "", err)
		}
		// Limited and audited by the caller the main part names, not by the
		// main part's address, which every forwarded call shares.
		ev.Peer, peer = id.via, id.via
	case cn.fixed != nil:
		id = *cn.fixed
		if !id.until.IsZero() && !now.Before(id.until) {
			return refuse(connect.CodeUnauthenticated, id.who.String(), errors.New("the access token this session opened with has expired: sign in again and open a new session"))
		}
	case in.err != nil:
		return refuse(connect.CodeUnauthenticated, "", in.err)
	case in.assertion == "" && in.headers.IsZero():
		return refuse(connect.CodeUnauthenticated, "", errors.New("this call needs a credential: an API key (outpost robot --api-key opk_...) or a user session (outpost login, or --token ops_...)"))
	}
	if pol.err != nil {
		return refuse(connect.CodeUnauthenticated, "", pol.err)
	}
	if pol.expired(now) {
		return refuse(connect.CodeUnauthenticated, "", errors.New(pol.expiredMessage(now)))
	}
	if cn.fixed == nil && in.forwarded == "" {
		if in.assertion != "" {
			id, err = pol.assert(in.assertion, in.sdp, now)
		} else {
			id, err = pol.prove(in.headers, a.aud, a.nonces, now)
		}
		if err != nil {
			return refuse(connect.CodeUnauthenticated, id.who.String(), err)
		}
	}
	c := &caller{transport: cn.transport, peer: cn.peer, policy: pol, id: id, who: id.who, credential: id.credential}
	if id.via != "" {
		c.peer = id.via
	}
	ref := c.who.String()
	var pr *principal
	switch c.who.Kind {
	case authz.KindUser:
		pr = pol.users[c.who.ID]
	case authz.KindAPIKey:
		if pr = pol.keys[c.who.ID]; pr == nil {
			return refuse(connect.CodeUnauthenticated, ref, pol.unknownKey(c.who.ID))
		}
	}
	if pr == nil {
		return refuse(connect.CodePermissionDenied, ref, fmt.Errorf("%s holds no grant on %s (grants version %d)", ref, pol.machine, pol.version))
	}
	if wait := a.denied.Wait(deniedKey(ref, peer), now); wait > 0 {
		return refuse(connect.CodeResourceExhausted, ref, fmt.Errorf("too many refused calls by %s from %s; try again in %s", ref, peer, wait.Round(1e9)))
	}
	c.subject, c.display = &pr.subject, pr.display
	ev.Subject = ref
	g, has := pol.access(c.subject)
	c.grant = g
	if rl.Marker == authz.Authenticated {
		if !has {
			return refuse(connect.CodePermissionDenied, ref, fmt.Errorf("%s holds no grant reaching %s", ref, pol.machine))
		}
		return c, nil
	}
	d := pol.decide(pr, rl.Action)
	if !d.allowed {
		return refuse(connect.CodePermissionDenied, ref, errors.New(d.reason))
	}
	if rl.audit {
		ev.Allowed, ev.Reason = true, d.reason
		if err := a.audit.Append(ctx, ev); err != nil {
			// A change nobody can account for is refused: fail closed.
			a.log.Error("audit", zap.Error(err))
			return nil, connect.NewError(connect.CodeUnavailable, errors.New("the part cannot write its audit log, so it refuses changes; use the break-glass socket"))
		}
	}
	return c, nil
}

// authorizeLocal decides a break-glass call: the socket's peer is an owner
// of this machine, whatever the bundle says and even after it expired.
// Every use is audited; a failing audit log is logged but does not lock the
// owner out (the socket is what is left when things are broken).
func (a *authorizer) authorizeLocal(ctx context.Context, cn *conn, pol *policy, rl *rule) (*caller, *connect.Error) {
	who := authz.Local(cn.uid)
	s := &rbac.Subject{Kind: rbac.User, ID: "local-" + who.ID, Grants: []rbac.Grant{{Role: rbac.Owner, Scope: pol.machine}}}
	c := &caller{who: who, display: "break-glass socket (uid " + who.ID + ")", credential: "socket",
		transport: TransportSocket, peer: cn.peer, subject: s, grant: s.Grants[0], policy: pol}
	ev := &syncv1.AuditEvent{Subject: who.String(), Action: rl.Name(), Resource: pol.machine.String(), Procedure: rl.Procedure,
		Transport: TransportSocket, Peer: "uid " + who.ID, Allowed: true, Reason: "break-glass socket: owner of this machine"}
	if rl.Marker == authz.NoMarker {
		if d := pol.engine.Decide(s, rl.Action, pol.machine); !d.Allowed {
			ev.Allowed, ev.Reason = false, d.String()
			a.refused(ctx, ev, a.clock.Now())
			return nil, connect.NewError(connect.CodePermissionDenied, errors.New(d.String()))
		}
	}
	a.write(ctx, ev)
	return c, nil
}

// refused audits a refused call in aggregate: the first of its kind in a
// window is written at once, the others are counted and written as one
// record when the window ends (flushRefusals). A record that cannot be
// written (the store's audit share is full) keeps its count for the next.
func (a *authorizer) refused(ctx context.Context, ev *syncv1.AuditEvent, now time.Time) {
	if a.refusals.note(ev, now) {
		first := proto.CloneOf(ev)
		first.Count = 1
		if err := a.audit.Append(ctx, first); err != nil {
			a.log.Warn("audit: a refusal is counted for later", zap.Error(err), zap.String("procedure", ev.GetProcedure()))
			a.refusals.keep([]*syncv1.AuditEvent{first}, now)
		}
	}
	a.flushRefusals(ctx, now, false)
}

// flushRefusals writes the aggregated refusals whose window ended (all of
// them when all is set).
func (a *authorizer) flushRefusals(ctx context.Context, now time.Time, all bool) {
	evs := a.refusals.due(now, all)
	for i, ev := range evs {
		if err := a.audit.Append(ctx, ev); err != nil {
			a.log.Warn("audit: aggregated refusals are counted for later", zap.Error(err), zap.Uint64("refusals", ev.GetCount()))
			a.refusals.keep(evs[i:], now)
			return
		}
	}
}

// flushRefusalsEvery writes aggregated refusals once their window ends,
// until stop is closed; then it writes every count left and closes done.
// It arms a timer only while refusals are being counted.
func (a *authorizer) flushRefusalsEvery(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	final := func() { a.flushRefusals(context.Background(), a.clock.Now(), true) }
	for {
		select {
		case <-a.refusals.counting:
		case <-stop:
			final()
			return
		}
		// The window that started counting began at most now: a window
		// from now it has ended.
		t := a.clock.NewTimer(refusalWindow)
		select {
		case <-t.C():
			a.flushRefusals(context.Background(), a.clock.Now(), false)
		case <-stop:
			t.Stop()
			final()
			return
		}
	}
}

// write appends an audit event, logging a failure.
func (a *authorizer) write(ctx context.Context, ev *syncv1.AuditEvent) {
	if err := a.audit.Append(ctx, ev); err != nil {
		a.log.Error("audit", zap.Error(err), zap.String("procedure", ev.GetProcedure()))
	}
}

// peerKey is the key failed authentications from peer are limited by.
func peerKey(peer string) []authz.Key { return []authz.Key{{Name: peer}} }

// deniedKey is the key refusals of subject from peer are limited by.
func deniedKey(subject, peer string) []authz.Key { return []authz.Key{{Name: subject + " " + peer}} }

// peerHost is the throttling key: the address without its port.
func peerHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// forwarded checks a call the machine's main part forwards: it must come
// over TLS with the main part's certificate, as the config document this
// part holds pins it, be a component call, and name a user or an API key;
// that subject is then decided by this part's grants like any caller.
// The header alone proves nothing, and a credential the main part saw is
// never sent on: nothing it forwards works elsewhere.
// fromMainPart reports whether a forwarded call comes over TLS with the
// certificate of this machine's main part that this part's config pins.
func (a *authorizer) fromMainPart(ctx context.Context, cn *conn, in presented) bool {
	if in.forwarded == "" || in.clientCert == "" {
		return false
	}
	_, ok := a.pinnedMain(ctx, cn, in)
	return ok
}

// pinnedMain returns the machine's main part (nil when there is none or
// the call is local or on a session) and whether the call's TLS client
// certificate is the one this part's config pins for it.
func (a *authorizer) pinnedMain(ctx context.Context, cn *conn, in presented) (*configv1.MachinePart, bool) {
	if cn.fixed != nil || cn.local {
		return nil, false
	}
	main := a.mainPart(ctx)
	if main == nil {
		return nil, false
	}
	want, err := config.NormalizeFingerprint(main.GetFingerprint())
	return main, err == nil && in.clientCert == want
}

func (a *authorizer) forwarded(ctx context.Context, cn *conn, in presented) (proved, error) {
	if cn.fixed != nil || cn.local {
		return proved{}, errors.New("forwarded calls are accepted only from this machine's main part, over TLS")
	}
	main, pinned := a.pinnedMain(ctx, cn, in)
	if main == nil {
		return proved{}, errors.New("this part accepts no forwarded calls: it is its machine's main part, or its config lists no main part")
	}
	if !pinned {
		return proved{}, fmt.Errorf("forwarded calls are accepted only from this machine's main part %q (part/%s), by the certificate its signed config pins", main.GetName(), main.GetId())
	}
	if !isComponentCall(in.procedure) {
		return proved{}, errors.New("the main part forwards component calls only")
	}
	who, err := authz.Parse(in.forwarded)
	if err != nil || (who.Kind != authz.KindUser && who.Kind != authz.KindAPIKey) {
		return proved{}, errors.New("a forwarded call must name a user or an API key")
	}
	peer := in.forwardedPeer
	if len(peer) > maxForwardedPeer || !utf8.ValidString(peer) {
		peer = "?"
	}
	return proved{who: who, credential: "forwarded", via: fmt.Sprintf("part/%s for %s", main.GetId(), peer)}, nil
}
