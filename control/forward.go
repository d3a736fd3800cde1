package control

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/controlwire"
)

// A machine's main part answers for the machine: a component call for
// another part's component is forwarded to that part over TLS where each
// side pins the other's certificate by the fingerprint in the config
// document the cloud signed (docs/ARCHITECTURE.md, decision 37). The caller's
// credential is not forwarded: its proof names the main part's certificate
// and would be refused. The main part decides the call with its grants, then
// names the caller in HeaderForwardedSubject; the other part believes that
// header only on a connection whose client certificate is its machine's
// main part's, and decides the call again with its own grants.
const (
	// HeaderForwardedSubject names the caller ("user/ID" or "apikey/ID") of
	// a call the main part forwards.
	HeaderForwardedSubject = "Outpost-Forwarded-Subject"
	// HeaderForwardedPeer is the caller's address as the main part saw it,
	// for the audit record.
	HeaderForwardedPeer = "Outpost-Forwarded-Peer"
	// peerDialTimeout bounds reaching another part: one that is down fails
	// its own components promptly.
	peerDialTimeout = 2 * time.Second
	// maxForwardedPeer bounds the forwarded peer kept in an audit record.
	maxForwardedPeer = 128
)

// partsOf returns the machine's parts as the running config's document
// lists them, and this part among them (nil when they do not list it).
func (s *Server) partsOf(ctx context.Context) ([]*configv1.MachinePart, *configv1.MachinePart) {
	st, err := s.opts.Config.CurrentConfig(ctx)
	if err != nil {
		return nil, nil
	}
	for _, p := range st.Parts {
		if p.GetId() == s.opts.PartID {
			return st.Parts, p
		}
	}
	return st.Parts, nil
}

// mainPart returns the machine's main part, when it is another part.
func (s *Server) mainPart(ctx context.Context) *configv1.MachinePart {
	parts, self := s.partsOf(ctx)
	if self == nil || self.GetMain() {
		return nil
	}
	for _, p := range parts {
		if p.GetMain() {
			return p
		}
	}
	return nil
}

// peer is the main part's client of another part of its machine.
type peer struct {
	id, name    string
	fingerprint string
	addrs       []string // the candidates, last reported first
	comp        controlv1connect.ComponentServiceClient
	ctl         controlv1connect.ControlServiceClient
	tr          *http.Transport

	mu   sync.Mutex
	good string // the address that answered last
}

// peers keeps one client per other part, made again when what the signed
// document says of the part changes.
type peers struct {
	s  *Server
	mu sync.Mutex
	by map[string]*peer
	// found are addresses heard on the LAN (mDNS), by part id.
	found map[string][]string
}

func newPeers(s *Server) *peers {
	return &peers{s: s, by: map[string]*peer{}, found: map[string][]string{}}
}

// Heard notes where a part of the machine was heard on the LAN (mDNS), so
// it is tried after the addresses the cloud last saw.
func (ps *peers) Heard(partID string, addrs []string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.found[partID] = slices.Clone(addrs)
}

// get returns the client of part p.
func (ps *peers) get(p *configv1.MachinePart) (*peer, error) {
	fp, err := config.NormalizeFingerprint(p.GetFingerprint())
	if err != nil {
		return nil, fmt.Errorf("part %q (part/%s) has reported no certificate to the cloud yet, so this part cannot trust it", p.GetName(), p.GetId())
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	addrs := append(slices.Clone(p.GetAddresses()), ps.found[p.GetId()]...)
	addrs = slices.Compact(addrs)
	if c := ps.by[p.GetId()]; c != nil && c.fingerprint == fp && slices.Equal(c.addrs, addrs) {
		return c, nil
	}
	if old := ps.by[p.GetId()]; old != nil {
		old.tr.CloseIdleConnections()
	}
	c, err := ps.newPeer(p, fp, addrs)
	if err != nil {
		return nil, err
	}
	ps.by[p.GetId()] = c
	return c, nil
}

func (ps *peers) newPeer(p *configv1.MachinePart, fp string, addrs []string) (*peer, error) {
	// Names and CAs are not checked: the part's certificate is self-signed
	// and the pin from the signed document is the trust.
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by VerifyConnection's pin check
		NextProtos:         []string{"h2"},
		Certificates:       []tls.Certificate{ps.s.cert},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("it presented no certificate")
			}
			if got := controlwire.Fingerprint(cs.PeerCertificates[0].Raw); got != fp {
				return fmt.Errorf("its certificate is %s, and the machine's signed config pins %s", got, fp)
			}
			return nil
		},
	}
	c := &peer{id: p.GetId(), name: p.GetName(), fingerprint: fp, addrs: addrs}
	c.tr = &http.Transport{
		ForceAttemptHTTP2:   true,
		TLSClientConfig:     cfg,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return c.dial(ctx, cfg)
		},
	}
	hc := &http.Client{Transport: c.tr}
	// The host is a placeholder: the dialer picks the address.
	base := "https://part-" + p.GetId()
	opts := []connect.ClientOption{connect.WithReadMaxBytes(controlwire.MaxMessageBytes), connect.WithSendMaxBytes(controlwire.MaxMessageBytes)}
	c.comp = controlv1connect.NewComponentServiceClient(hc, base, opts...)
	c.ctl = controlv1connect.NewControlServiceClient(hc, base, opts...)
	return c, nil
}

// dial tries the address that answered last, then every other candidate.
func (c *peer) dial(ctx context.Context, cfg *tls.Config) (net.Conn, error) {
	c.mu.Lock()
	order := slices.Clone(c.addrs)
	if c.good != "" {
		order = append([]string{c.good}, slices.DeleteFunc(order, func(a string) bool { return a == c.good })...)
	}
	c.mu.Unlock()
	if len(order) == 0 {
		return nil, errors.New("no address known: it has not reported one to the cloud and was not heard on the LAN")
	}
	var errs []error
	for _, a := range order {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: peerDialTimeout}, Config: cfg}
		conn, err := d.DialContext(ctx, "tcp", a)
		if err == nil {
			c.mu.Lock()
			c.good = a
			c.mu.Unlock()
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// address is where the part answered last.
func (c *peer) address() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.good
}

// explain names the part in a forwarded call's error: a part that cannot
// be reached is Unavailable, and its own refusals keep their code.
func (c *peer) explain(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) && ce.Code() != connect.CodeUnavailable && ce.Code() != connect.CodeUnknown && ce.Code() != connect.CodeDeadlineExceeded {
		return connect.NewError(ce.Code(), fmt.Errorf("part %q (part/%s): %s", c.name, c.id, ce.Message()))
	}
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("part %q (part/%s) cannot be reached: %v", c.name, c.id, err))
}

// close drops every client's idle connections.
func (ps *peers) close() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, c := range ps.by {
		c.tr.CloseIdleConnections()
	}
}

// forwardHeaders names the caller of ctx on a forwarded request.
func forwardHeaders(ctx context.Context, h http.Header) {
	c := callerOf(ctx)
	if c == nil {
		return
	}
	h.Set(HeaderForwardedSubject, c.who.String())
	h.Set(HeaderForwardedPeer, c.transport+" "+c.peer)
}

// owner finds the part running component name when it is another part of
// this machine and this part is the main one; nil means this part's own.
func (ps *peers) owner(ctx context.Context, name string) *configv1.MachinePart {
	parts, self := ps.s.partsOf(ctx)
	if self == nil || !self.GetMain() {
		return nil
	}
	for _, p := range parts {
		if p.GetId() == self.GetId() {
			continue
		}
		for _, pc := range p.GetComponents() {
			if pc.GetName() == name {
				return p
			}
		}
	}
	return nil
}

// router serves ComponentService on the main part: this part's components
// from its robot, another part's through that part.
type router struct {
	Robot
	ps *peers
	rs *remotes
}

type named interface{ GetName() string }

// forward runs a component call here or on the part that runs the component.
func forward[Req, Res any](ctx context.Context, r *router, req *connect.Request[Req],
	local func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error),
	remote func(controlv1connect.ComponentServiceClient) func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error),
) (*connect.Response[Res], error) {
	name := any(req.Msg).(named).GetName()
	if rm, i, inner, ok := r.rs.lookup(ctx, name); ok {
		c, err := r.rs.get(ctx, rm, i)
		if err != nil {
			return nil, err
		}
		res, err := remote(c.comp)(ctx, connect.NewRequest(renamed(req.Msg, inner)))
		if err != nil {
			r.rs.refused(c, err)
			return nil, c.explain(err)
		}
		return connect.NewResponse(res.Msg), nil
	}
	p := r.ps.owner(ctx, name)
	if p == nil {
		return local(ctx, req)
	}
	c, err := r.ps.get(p)
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	out := connect.NewRequest(req.Msg)
	forwardHeaders(ctx, out.Header())
	res, err := remote(c.comp)(ctx, out)
	if err != nil {
		return nil, c.explain(err)
	}
	return connect.NewResponse(res.Msg), nil
}

// ListResources lists this part's resources and, on the main part, every
// other part's components with the part that runs them; a part that cannot
// be reached has its components listed as failed, naming it.
func (r *router) ListResources(ctx context.Context, req *connect.Request[controlv1.ListResourcesRequest]) (*connect.Response[controlv1.ListResourcesResponse], error) {
	res, err := r.Robot.ListResources(ctx, req)
	if err != nil {
		return nil, err
	}
	if st, err := r.ps.s.opts.Config.CurrentConfig(ctx); err == nil && len(st.Config.GetRemotes()) > 0 {
		rms := st.Config.GetRemotes()
		lists := make([][]*controlv1.ResourceStatus, len(rms))
		var wg sync.WaitGroup
		for i, rm := range rms {
			wg.Go(func() { lists[i] = r.rs.remoteResources(ctx, rm, i) })
		}
		wg.Wait()
		for _, l := range lists {
			res.Msg.Resources = append(res.Msg.Resources, l...)
		}
	}
	parts, self := r.ps.s.partsOf(ctx)
	if self == nil || !self.GetMain() {
		return res, nil
	}
	var others []*configv1.MachinePart
	for _, p := range parts {
		if p.GetId() != self.GetId() {
			others = append(others, p)
		}
	}
	lists := make([][]*controlv1.ResourceStatus, len(others))
	var wg sync.WaitGroup
	for i, p := range others {
		wg.Go(func() { lists[i] = r.partResources(ctx, p) })
	}
	wg.Wait()
	out := res.Msg
	for _, l := range lists {
		out.Resources = append(out.Resources, l...)
	}
	return connect.NewResponse(out), nil
}

// partResources lists another part's components as it reports them.
func (r *router) partResources(ctx context.Context, p *configv1.MachinePart) []*controlv1.ResourceStatus {
	var got []*controlv1.ResourceStatus
	c, err := r.ps.get(p)
	if err == nil {
		req := connect.NewRequest(&controlv1.ListResourcesRequest{})
		forwardHeaders(ctx, req.Header())
		var res *connect.Response[controlv1.ListResourcesResponse]
		if res, err = c.comp.ListResources(ctx, req); err == nil {
			got = res.Msg.GetResources()
		} else {
			err = c.explain(err)
		}
	}
	var out []*controlv1.ResourceStatus
	if err != nil {
		for _, pc := range p.GetComponents() {
			out = append(out, &controlv1.ResourceStatus{Kind: controlv1.ResourceKind_RESOURCE_KIND_COMPONENT, Name: pc.GetName(),
				State: controlv1.ResourceState_RESOURCE_STATE_FAILED, Error: connectMessage(err), Part: p.GetName()})
		}
		return out
	}
	for _, rs := range got {
		if rs.GetKind() == controlv1.ResourceKind_RESOURCE_KIND_COMPONENT {
			rs.Part = p.GetName()
			out = append(out, rs)
		}
	}
	return out
}

func connectMessage(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Message()
	}
	return err.Error()
}

// GetStatus returns a component's status, wherever it runs.
func (r *router) GetStatus(ctx context.Context, req *connect.Request[controlv1.GetStatusRequest]) (*connect.Response[controlv1.GetStatusResponse], error) {
	return forward(ctx, r, req, r.Robot.GetStatus, func(c controlv1connect.ComponentServiceClient) func(context.Context, *connect.Request[controlv1.GetStatusRequest]) (*connect.Response[controlv1.GetStatusResponse], error) {
		return c.GetStatus
	})
}

// DoCommand runs a command on a component, wherever it runs.
func (r *router) DoCommand(ctx context.Context, req *connect.Request[controlv1.DoCommandRequest]) (*connect.Response[controlv1.DoCommandResponse], error) {
	return forward(ctx, r, req, r.Robot.DoCommand, func(c controlv1connect.ComponentServiceClient) func(context.Context, *connect.Request[controlv1.DoCommandRequest]) (*connect.Response[controlv1.DoCommandResponse], error) {
		return c.DoCommand
	})
}

// Stop stops a component, wherever it runs.
func (r *router) Stop(ctx context.Context, req *connect.Request[controlv1.StopRequest]) (*connect.Response[controlv1.StopResponse], error) {
	return forward(ctx, r, req, r.Robot.Stop, func(c controlv1connect.ComponentServiceClient) func(context.Context, *connect.Request[controlv1.StopRequest]) (*connect.Response[controlv1.StopResponse], error) {
		return c.Stop
	})
}

// MotorSetPower drives a motor, wherever it runs.
func (r *router) MotorSetPower(ctx context.Context, req *connect.Request[controlv1.MotorSetPowerRequest]) (*connect.Response[controlv1.MotorSetPowerResponse], error) {
	return forward(ctx, r, req, r.Robot.MotorSetPower, func(c controlv1connect.ComponentServiceClient) func(context.Context, *connect.Request[controlv1.MotorSetPowerRequest]) (*connect.Response[controlv1.MotorSetPowerResponse], error) {
		return c.MotorSetPower
	})
}

// MotorGoFor runs a motor, wherever it runs.
func (r *router) MotorGoFor(ctx context.Context, req *connect.Request[controlv1.MotorGoForRequest]) (*connect.Response[controlv1.MotorGoForResponse], error) {
	return forward(ctx, r, req, r.Robot.MotorGoFor, func(c controlv1connect.ComponentServiceClient) func(context.Context, *connect.Request[controlv1.MotorGoForRequest]) (*connect.Response[controlv1.MotorGoForResponse], error) {
		return c.MotorGoFor
	})
}

// MotorIsMoving asks a motor, wherever it runs.
func (r *router) MotorIsMoving(ctx context.Context, req *connect.Request[controlv1.MotorIsMovingRequest]) (*connect.Response[controlv1.MotorIsMovingResponse], error) {
	return forward(ctx, r, req, r.Robot.MotorIsMoving, func(c controlv1connect.ComponentServiceClient) func(context.Context, *connect.Request[controlv1.MotorIsMovingRequest]) (*connect.Response[controlv1.MotorIsMovingResponse], error) {
		return c.MotorIsMoving
	})
}

// BaseSetVelocity drives a base, wherever it runs.
func (r *router) BaseSetVelocity(ctx context.Context, req *connect.Request[controlv1.BaseSetVelocityRequest]) (*connect.Response[controlv1.BaseSetVelocityResponse], error) {
	return forward(ctx, r, req, r.Robot.BaseSetVelocity, func(c controlv1connect.ComponentServiceClient) func(context.Context, *connect.Request[controlv1.BaseSetVelocityRequest]) (*connect.Response[controlv1.BaseSetVelocityResponse], error) {
		return c.BaseSetVelocity
	})
}

// SensorReadings reads a sensor, wherever it runs.
func (r *router) SensorReadings(ctx context.Context, req *connect.Request[controlv1.SensorReadingsRequest]) (*connect.Response[controlv1.SensorReadingsResponse], error) {
	return forward(ctx, r, req, r.Robot.SensorReadings, func(c controlv1connect.ComponentServiceClient) func(context.Context, *connect.Request[controlv1.SensorReadingsRequest]) (*connect.Response[controlv1.SensorReadingsResponse], error) {
		return c.SensorReadings
	})
}

// CameraImage takes an image, wherever the camera runs.
func (r *router) CameraImage(ctx context.Context, req *connect.Request[controlv1.CameraImageRequest]) (*connect.Response[controlv1.CameraImageResponse], error) {
	return forward(ctx, r, req, r.Robot.CameraImage, func(c controlv1connect.ComponentServiceClient) func(context.Context, *connect.Request[controlv1.CameraImageRequest]) (*connect.Response[controlv1.CameraImageResponse], error) {
		return c.CameraImage
	})
}

// PeerStatus tells, on the main part, how it reached each other part of
// the machine on its last try (a Health call over the pinned link), and
// starts the next try in the background, so a part that is down never holds
// up the caller (a sync cycle's status report); nil elsewhere.
func (s *Server) PeerStatus(ctx context.Context) []*syncv1.PeerStatus {
	if _, self := s.partsOf(ctx); self == nil || !self.GetMain() {
		return nil
	}
	if s.probing.CompareAndSwap(false, true) {
		go func() {
			defer s.probing.Store(false)
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*peerDialTimeout)
			defer cancel()
			st := s.probePeers(pctx)
			s.peerStatus.Store(&st)
		}()
	}
	if st := s.peerStatus.Load(); st != nil {
		return *st
	}
	return nil
}

// probePeers asks every other part of the machine for its health, at once.
func (s *Server) probePeers(ctx context.Context) []*syncv1.PeerStatus {
	parts, self := s.partsOf(ctx)
	if self == nil || !self.GetMain() {
		return nil
	}
	var others []*configv1.MachinePart
	for _, p := range parts {
		if p.GetId() != self.GetId() {
			others = append(others, p)
		}
	}
	out := make([]*syncv1.PeerStatus, len(others))
	var wg sync.WaitGroup
	for i, p := range others {
		wg.Go(func() { out[i] = s.probe(ctx, p) })
	}
	wg.Wait()
	return out
}

func (s *Server) probe(ctx context.Context, p *configv1.MachinePart) *syncv1.PeerStatus {
	st := &syncv1.PeerStatus{PartId: p.GetId(), Name: p.GetName()}
	c, err := s.peers.get(p)
	if err == nil {
		hctx, cancel := context.WithTimeout(ctx, 2*peerDialTimeout)
		_, err = c.ctl.Health(hctx, connect.NewRequest(&controlv1.HealthRequest{}))
		cancel()
		if err != nil {
			err = c.explain(err)
		} else {
			st.Address = c.address()
		}
	}
	st.Reachable = err == nil
	if err != nil {
		st.Error = connectMessage(err)
	}
	return st
}

// forwardedBy returns the client certificate's fingerprint of a request,
// or "" when it presented none.
func forwardedBy(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return ""
	}
	return controlwire.Fingerprint(r.TLS.PeerCertificates[0].Raw)
}

// isComponentCall says a procedure is ComponentService's: the only calls a
// main part forwards.
func isComponentCall(procedure string) bool {
	return strings.HasPrefix(procedure, "/"+controlv1connect.ComponentServiceName+"/")
}
