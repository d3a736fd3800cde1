package control

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/controlwire"
	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/netlimit"
)

// Options configure a Server. Every dependency is required except Logger.
type Options struct {
	// Clock is the injected clock (expiry checks, throttling).
	Clock clock.Clock
	// WebRTCSettings adjusts pion's settings for every session, such as the
	// interfaces ICE may use; nil keeps pion's defaults. controlwire.LoopbackICE keeps a
	// session on this machine.
	WebRTCSettings func(*webrtc.SettingEngine)
	// Logger logs; nil logs nothing.
	Logger *zap.Logger
	// SyncInterval is how often the part syncs with the cloud now, so a
	// caller refused for a key the part's grant bundle does not hold yet
	// is told when it will work; nil says only "at its next sync".
	SyncInterval func() time.Duration
	// Version is the daemon's version string, reported by Status.
	Version string
	// PartID names the part in its certificate.
	PartID string

	// Grants is the verified grant bundle; called on every call, so it
	// should return the bundle held in memory.
	Grants Grants
	// Audit stores audit events (cache's audit stream).
	Audit Audit
	// Certs keeps the TLS key and certificate (cache).
	Certs CertStore
	// Robot serves ComponentService and stops and restarts (*robot.Robot).
	Robot Robot
	// Config reads the running config and applies local edits.
	Config Config
	// Logs reads and follows the log.
	Logs Logs
	// Data lists, exports, tags and deletes captures.
	Data Data
	// Status reports the sync state and offline clock.
	Status Status

	// ICEServers are STUN/TURN URLs for WebRTC ("stun:host:port", ...);
	// none are needed on a LAN.
	ICEServers []string
	// MaxSessions bounds concurrent WebRTC sessions; 0 means 32.
	MaxSessions int
	// HandlerOptions are added to every service's options, such as the
	// daemon's metrics interceptor (RPC counts and latency).
	HandlerOptions []connect.HandlerOption
	// RemoteKeys loads the API keys the main part calls remotes with; nil
	// means the part keeps none, and a remote's calls fail saying so.
	RemoteKeys RemoteKeys
	// Console, when set, is served on the TLS port for every path that is
	// not a procedure: the part's own web console (package web), whose
	// page calls the procedures on the same origin, each decided by the
	// authorizer like any other call. It holds only public files (the
	// page's code); nil serves no console.
	Console http.Handler
	// Limits bound the connections of each listener (the TLS port and the
	// socket) and cut off clients that send slowly; zero fields take the
	// values of DefaultLimits.
	Limits netlimit.Limits
}

// DefaultLimits are a part's connection limits: room for 100 control
// clients with a connection each (a fleet's worth of field techs, tools
// and dashboards at once, the load docs/PERFORMANCE.md measures), well
// under the daemon's open-file limit.
func DefaultLimits() netlimit.Limits {
	l := netlimit.Defaults()
	l.MaxConns = 128
	l.IdleTimeout = 5 * time.Minute
	return l
}

// Server is the daemon's control plane: one connect handler (ControlService,
// the robot's ComponentService, WebRTC signaling, reflection and health)
// behind one authorizer, served over TLS on the LAN, over WebRTC data
// channels and on the break-glass Unix socket.
type Server struct {
	opts        Options
	log         *zap.Logger
	errs        *authz.Errors
	cert        tls.Certificate
	fingerprint string
	auth        *authorizer
	handler     http.Handler
	tlsHandler  http.Handler
	rtc         *rtcServer
	peers       *peers
	remotes     *remotes
	// The main part's last probe of the other parts, and whether one runs.
	peerStatus atomic.Pointer[[]*syncv1.PeerStatus]
	probing    atomic.Bool

	mu      sync.Mutex
	servers []*http.Server

	// stopFlush ends the goroutine writing aggregated refusals, which
	// closes flushed once it wrote the last of them.
	stopFlush, flushed chan struct{}
	closeOnce          sync.Once
}

// New builds the control plane; on first start it makes the TLS key and
// certificate and saves them with opts.Certs.
func New(ctx context.Context, opts Options) (*Server, error) {
	switch {
	case opts.Clock == nil, opts.Grants == nil, opts.Audit == nil, opts.Certs == nil, opts.Robot == nil,
		opts.Config == nil, opts.Logs == nil, opts.Data == nil, opts.Status == nil:
		return nil, errors.New("control: every dependency of Options must be set")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = 32
	}
	if opts.Limits.MaxConns == 0 {
		opts.Limits.MaxConns = DefaultLimits().MaxConns
	}
	if opts.Limits.IdleTimeout == 0 {
		opts.Limits.IdleTimeout = DefaultLimits().IdleTimeout
	}
	s := &Server{opts: opts, log: opts.Logger.Named("control")}
	// The part's error policy: a dependency's connect.Error is its answer;
	// anything else is Internal with an error id in the part's log.
	s.errs = &authz.Errors{Log: s.log, Where: "the part's log"}
	cert, err := loadOrCreateCert(ctx, opts.Certs, opts.Clock.Now(), opts.PartID)
	if err != nil {
		return nil, err
	}
	s.cert = cert
	s.fingerprint = controlwire.Fingerprint(cert.Certificate[0])

	rules, err := rulesFor(
		controlv1.File_outpost_control_v1_control_proto.Services().ByName("ControlService"),
		controlv1.File_outpost_control_v1_control_proto.Services().ByName("SignalingService"),
		controlv1.File_outpost_control_v1_components_proto.Services().ByName("ComponentService"),
	)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	hopts := []connect.HandlerOption{connect.WithReadMaxBytes(controlwire.MaxMessageBytes), connect.WithSendMaxBytes(controlwire.MaxMessageBytes),
		connect.WithCompressMinBytes(compressMinBytes)}
	s.auth = &authorizer{clock: opts.Clock, log: s.log, grants: opts.Grants, audit: opts.Audit, rules: rules, syncEvery: opts.SyncInterval,
		throttle: authz.Credentials(), denied: authz.Credentials(), refusals: newRefusals(), errw: connect.NewErrorWriter(hopts...),
		aud: credential.TLSAudience(s.fingerprint), nonces: credential.NewNonceIssuer(opts.Clock.Now()), mainPart: s.mainPart}
	s.peers = newPeers(s)
	s.remotes = newRemotes(s)
	s.stopFlush = make(chan struct{})
	s.flushed = make(chan struct{})
	go s.auth.flushRefusalsEvery(s.stopFlush, s.flushed)
	hopts = append(hopts, opts.HandlerOptions...)
	s.rtc = newRTCServer(s)
	s.rtc.settings = opts.WebRTCSettings

	mux := http.NewServeMux()
	mux.Handle(controlv1connect.NewControlServiceHandler(&service{s: s}, hopts...))
	mux.Handle(controlv1connect.NewComponentServiceHandler(&router{Robot: opts.Robot, ps: s.peers, rs: s.remotes}, hopts...))
	mux.Handle(controlv1connect.NewSignalingServiceHandler(s.rtc, hopts...))
	reflector := grpcreflect.NewStaticReflector(controlv1connect.ControlServiceName, controlv1connect.ComponentServiceName, controlv1connect.SignalingServiceName)
	mux.Handle(grpcreflect.NewHandlerV1(reflector, hopts...))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, hopts...))
	s.handler = s.auth.wrap(mux)
	s.tlsHandler = s.handler
	if opts.Console != nil {
		s.tlsHandler = withConsole(s.auth.rules, s.handler, opts.Console)
	}
	return s, nil
}

// compressMinBytes is the smallest reply the part compresses. A browser
// asks for gzip on every call, and gzip's setup for one reply (resetting a
// compressor's tables) cost the console's motor calls more CPU than any
// other step of the call, to shrink replies of a few bytes on a LAN.
const compressMinBytes = 1024

// Handler returns the authorized handler every transport serves. Requests
// reaching it without a listener of this package are treated as network
// (gRPC) requests from their RemoteAddr.
func (s *Server) Handler() http.Handler { return s.handler }

// TLSHandler returns what the TLS port serves: Handler, and the console
// for every path that is not a procedure when Options.Console is set.
func (s *Server) TLSHandler() http.Handler { return s.tlsHandler }

// withConsole sends the procedures' paths to api and every other path to
// console. Only GET and HEAD reach the console, which serves nothing else;
// a POST to an unknown path is the API's answer (not found), as without
// a console.
func withConsole(rules map[string]*rule, api, console http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := rules[r.URL.Path]; ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			api.ServeHTTP(w, r)
			return
		}
		console.ServeHTTP(w, r)
	})
}

// Fingerprint returns the SHA-256 of the TLS certificate in hex, to report
// to the cloud (PartStatus.control_cert_sha256) and show to field techs.
func (s *Server) Fingerprint() string { return s.fingerprint }

// Heard notes addresses where another part of the machine was heard on
// the LAN (mDNS); the main part tries them after those the cloud last saw.
func (s *Server) Heard(partID string, addrs []string) { s.peers.Heard(partID, addrs) }

// Certificate returns the TLS certificate.
func (s *Server) Certificate() tls.Certificate { return s.cert }

func (s *Server) newHTTPServer(transport string, h2c bool) *http.Server {
	h := s.handler
	if transport == TransportGRPC {
		h = s.tlsHandler
	}
	srv := &http.Server{
		Handler:   h,
		ErrorLog:  zap.NewStdLog(s.log.Named("http")),
		Protocols: new(http.Protocols),
	}
	s.opts.Limits.Apply(srv)
	srv.Protocols.SetHTTP1(true)
	if h2c {
		srv.Protocols.SetUnencryptedHTTP2(true)
	} else {
		srv.Protocols.SetHTTP2(true)
	}
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		cn := &conn{transport: transport, peer: c.RemoteAddr().String()}
		if transport == TransportSocket {
			cn.local, cn.uid = true, peerUID(c)
			cn.peer = "unix"
		}
		return withConn(ctx, cn)
	}
	s.mu.Lock()
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	return srv
}

// ServeTLS serves the control plane over TLS on ln (a TCP listener, port
// controlwire.DefaultPort by default) until ctx is done or Close is called.
func (s *Server) ServeTLS(ctx context.Context, ln net.Listener) error {
	srv := s.newHTTPServer(TransportGRPC, false)
	// A client certificate is asked for, never required: field techs send
	// none, and the other parts of the machine send their control
	// certificate, which the authorizer compares with the main part's pin.
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{s.cert}, MinVersion: tls.VersionTLS12, ClientAuth: tls.RequestClientCert}
	ln = s.opts.Limits.Listener(ln)
	return s.serve(ctx, srv, func() error { return srv.ServeTLS(ln, "", "") })
}

// ServeSocket serves the break-glass socket on ln, a Unix listener made with
// ListenSocket: every peer is an owner of this machine (the socket's file
// mode admits root and the outpost group only), every call is audited, and
// it works without a bundle and after expiry. HTTP/1.1 and unencrypted
// HTTP/2, so gRPC works too.
func (s *Server) ServeSocket(ctx context.Context, ln net.Listener) error {
	srv := s.newHTTPServer(TransportSocket, true)
	ln = s.opts.Limits.Listener(ln)
	return s.serve(ctx, srv, func() error { return srv.Serve(ln) })
}

func (s *Server) serve(ctx context.Context, srv *http.Server, run func() error) error {
	stop := context.AfterFunc(ctx, func() { _ = srv.Close() })
	defer stop()
	err := run()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops every listener and WebRTC session, and writes the refusals
// still being counted to the audit log.
func (s *Server) Close() error {
	s.mu.Lock()
	servers := s.servers
	s.servers = nil
	s.mu.Unlock()
	var errs []error
	for _, srv := range servers {
		errs = append(errs, srv.Close())
	}
	s.rtc.closeAll()
	s.peers.close()
	s.remotes.close()
	// After the listeners: no refusal comes in after the last count.
	s.closeOnce.Do(func() {
		close(s.stopFlush)
		<-s.flushed
	})
	return errors.Join(errs...)
}
