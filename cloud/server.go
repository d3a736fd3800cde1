// Package cloud is outpost-cloud: the fleet API, with all state behind the
// store.Store interface.
//
// Every call passes one interceptor (authz.go) that authenticates the
// caller, reads the method's (outpost.authz.v1.rule) and marked request
// fields, and asks rbac; handlers never check permissions themselves. Lists
// are filtered by the rule's list_action through the same interceptor.
//
// The cloud-wide admin (created on first start, see Bootstrap) may create
// users, which no one else may, and acts as owner of every organization:
// its subject carries an owner grant on each, so rbac decides its calls
// like anyone's and the audit log names it.
package cloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"go.uber.org/zap"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/cloud/relay"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/netlimit"
	"github.com/outpost-robotics/outpost/version"
	"github.com/outpost-robotics/outpost/web"
)

// Limits on requests, so hostile input stays cheap.
const (
	maxNameLen     = 100
	maxEmailLen    = 254
	maxDepth       = 16 // locations nest at most this deep
	maxRequestSize = 64 << 10
	maxLimitTo     = 100
	inviteTTL      = 7 * 24 * time.Hour
)

// Config is what a Server needs.
type Config struct {
	// Store holds the state.
	Store store.Store
	// Signer signs and verifies access tokens.
	Signer *auth.Signer
	// Clock is the time source.
	Clock clock.Clock
	// Log receives one line per refused or failed call; never a credential.
	Log *zap.Logger
	// Ingest keeps what parts hand over; nil serves neither the part sync
	// API nor the calls that read part data back.
	Ingest ingest.Store
	// Blobs holds the blob bytes Ingest keeps the progress of; nil serves
	// no blob reads.
	Blobs ingest.BlobStore
	// Sync configures the part sync API; its Clock and Logger default to
	// the server's.
	Sync partsync.Options
	// Mailer sends invitation codes to the invited mailbox; nil refuses
	// invitations (the cloud's admin creates users directly instead).
	Mailer Mailer
	// PasswordMemory bounds the memory password hashing (argon2id) may use
	// at once, in bytes; 0 means auth.DefaultHashMemory.
	PasswordMemory int64
	// Relay relays WebRTC signaling; nil means an in-process relay.Broker,
	// right for one process. Replicas share a relay.Shared over their
	// database (cloud/pgshared), so an offer and its part's poll may
	// reach different replicas.
	Relay relay.Hub
	// Throttle slows failed sign-ins; nil means authz.SignIn() in memory,
	// right for one process. Replicas share one (cloud/pgshared's), or a
	// guesser would get each replica's allowance.
	Throttle Throttle
	// Alerts configures the evaluation and delivery of fleet alert rules.
	Alerts AlertOptions
	// Packages bounds what an organization's uploads hold before a
	// version names it; zero fields take DefaultPackageLimits'.
	Packages PackageLimits
}

// Throttle slows failed sign-ins by key (authz.Limiter's methods, which
// implements it in memory).
type Throttle interface {
	Begin(keys []authz.Key, now time.Time) time.Duration
	Succeed(keys []authz.Key)
	Cancel(keys []authz.Key)
	Remember(pair string, now time.Time)
	Knows(pair string, now time.Time) bool
}

// Server is the fleet API.
type Server struct {
	st       store.Store
	signer   *auth.Signer
	clock    clock.Clock
	log      *zap.Logger
	rules    authz.Rules
	errs     *authz.Errors
	snaps    *snapshots
	throttle Throttle
	hasher   *auth.Hasher
	mailer   Mailer
	auditSeq atomic.Uint32
	ingest   ingest.Store
	blobs    ingest.BlobStore
	syncOpts partsync.Options
	docs     *documents
	relay    relay.Hub
	web      *web.Handler
	alerts   *alerts
	pkgLim   PackageLimits
}

// Services are the fleet API's services, in the order they are served.
func Services() []protoreflect.ServiceDescriptor {
	var out []protoreflect.ServiceDescriptor
	for _, f := range []protoreflect.FileDescriptor{fleetv1.File_outpost_fleet_v1_fleet_proto, fleetv1.File_outpost_fleet_v1_relay_proto, fleetv1.File_outpost_fleet_v1_package_proto, fleetv1.File_outpost_fleet_v1_dataset_proto} {
		sds := f.Services()
		for i := range sds.Len() {
			out = append(out, sds.Get(i))
		}
	}
	return out
}

// New builds the server; it fails if any RPC lacks a valid access rule.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Signer == nil || cfg.Clock == nil || cfg.Log == nil {
		return nil, errors.New("new cloud server: Store, Signer, Clock and Log are required")
	}
	rules, err := rulesFor(Services()...)
	if err != nil {
		return nil, fmt.Errorf("new cloud server: %w", err)
	}
	s := &Server{
		st: cfg.Store, signer: cfg.Signer, clock: cfg.Clock, log: cfg.Log, rules: rules,
		errs:  newErrors(cfg.Log),
		snaps: &snapshots{st: cfg.Store}, throttle: cfg.Throttle, hasher: auth.NewHasher(cfg.PasswordMemory), mailer: cfg.Mailer, ingest: cfg.Ingest, blobs: cfg.Blobs, syncOpts: cfg.Sync,
	}
	if s.throttle == nil {
		s.throttle = authz.SignIn()
	}
	s.alerts = newAlerts(cfg.Alerts)
	s.pkgLim = cfg.Packages.withDefaults()
	s.docs = &documents{s: s, signer: cfg.Signer.Documents(), cache: map[string]*docEntry{}, chunks: map[string]*issuedChunks{}}
	if s.syncOpts.Clock == nil {
		s.syncOpts.Clock = cfg.Clock
	}
	if s.syncOpts.Logger == nil {
		s.syncOpts.Logger = cfg.Log
	}
	poll := s.syncOpts.PollInterval
	if poll <= 0 {
		poll = 15 * time.Second // partsync's default
	}
	s.web, err = web.New(web.Config{App: web.AppFleet, Version: version.Version, SyncIntervalSeconds: int(poll.Round(time.Second) / time.Second)})
	if err != nil {
		return nil, fmt.Errorf("new cloud server: %w", err)
	}
	if cfg.Ingest != nil {
		// One broker serves both sides: clients' RelayOffer calls below
		// and parts' NextOffer and AnswerOffer polls through partsync.
		s.relay = cfg.Relay
		if s.relay == nil {
			s.relay = relay.NewBroker(relay.Options{Clock: cfg.Clock, Logger: cfg.Log})
		}
		s.syncOpts.Relay = s.relay
	}
	return s, nil
}

// Handler returns the cloud's HTTP handler: every connect-go service (gRPC,
// gRPC-Web and Connect on one mux), each call through the authz
// interceptor, gRPC server reflection, and the fleet web app at "/" (the
// services' paths are more specific, so the app takes only what they do
// not).
func (s *Server) Handler() http.Handler {
	opts := []connect.HandlerOption{
		connect.WithInterceptors(s.interceptor()),
		connect.WithReadMaxBytes(maxRequestSize),
	}
	mux := http.NewServeMux()
	mux.Handle(fleetv1connect.NewServerServiceHandler(serverInfo{}, opts...))
	mux.Handle(fleetv1connect.NewAuthServiceHandler(authService{s}, opts...))
	mux.Handle(fleetv1connect.NewOrgServiceHandler(orgService{s}, opts...))
	mux.Handle(fleetv1connect.NewLocationServiceHandler(locationService{s}, opts...))
	mux.Handle(fleetv1connect.NewMachineServiceHandler(machineService{s}, opts...))
	mux.Handle(fleetv1connect.NewUserServiceHandler(userService{s}, opts...))
	mux.Handle(fleetv1connect.NewAPIKeyServiceHandler(apiKeyService{s}, opts...))
	mux.Handle(fleetv1connect.NewRoleServiceHandler(roleService{s}, opts...))
	mux.Handle(fleetv1connect.NewAccessServiceHandler(accessService{s}, opts...))
	mux.Handle(fleetv1connect.NewAuditServiceHandler(auditService{s}, opts...))
	mux.Handle(fleetv1connect.NewConfigServiceHandler(configService{s}, opts...))
	mux.Handle(fleetv1connect.NewFragmentServiceHandler(fragmentService{s}, opts...))
	// Package calls carry chunks: the one service with a larger read limit.
	mux.Handle(fleetv1connect.NewPackageServiceHandler(packageService{s},
		connect.WithInterceptors(s.interceptor()), connect.WithReadMaxBytes(packageRequestBytes)))
	mux.Handle(fleetv1connect.NewDataServiceHandler(dataService{s}, opts...))
	mux.Handle(fleetv1connect.NewAlertServiceHandler(alertService{s}, opts...))
	mux.Handle(fleetv1connect.NewDatasetServiceHandler(datasetService{s}, opts...))
	if s.ingest != nil {
		// The part sync API authenticates parts itself (part id and
		// secret), so it is mounted without the fleet interceptor.
		mux.Handle(partsync.NewHandler(s.docs, s.ingest, s.syncOpts))
	}
	if s.relay != nil {
		// Behind the interceptor: RelayOffer needs machine.control on the
		// part (relay.proto); the part then decides again with its grants,
		// on the cloud's assertion of who the caller is.
		mux.Handle(fleetv1connect.NewRelayServiceHandler(relay.NewService(s.relay, relay.ServiceOptions{Assert: s.relayAssertion}), opts...))
	}
	var names []string
	for _, sd := range Services() {
		names = append(names, string(sd.FullName()))
	}
	reflector := grpcreflect.NewStaticReflector(names...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	mux.Handle("/", s.web)
	return withRequestInfo(mux)
}

// relayAssertion signs what the part gets with a relayed offer instead of
// the caller's credential: the caller the interceptor authenticated, this
// part, this offer.
func (s *Server) relayAssertion(ctx context.Context, partID, sdp string) (string, error) {
	c := callFrom(ctx)
	if c == nil || c.principal == nil {
		return "", connect.NewError(connect.CodeUnauthenticated, errors.New("relay offer: no authenticated caller"))
	}
	a, err := s.signer.Assert(c.principal.ref(), partID, sdp, s.clock.Now())
	if err != nil {
		return "", s.errs.Internal("sign relay assertion", err)
	}
	return a, nil
}

// update runs fn in a store transaction and, in the same transaction,
// writes the call's audit event: a change and its record commit together.
// Its error is the store's, which the interceptor answers by the error
// policy.
func (s *Server) update(ctx context.Context, fn func(tx store.Tx) error) error {
	c := callFrom(ctx)
	err := s.st.Update(ctx, func(tx store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		// Any change may change some part's documents; see documents.
		if err := s.touchDocs(ctx, tx); err != nil {
			return err
		}
		if c != nil && c.audit != nil && !c.audit.written.Load() {
			e := c.audit.event
			e.Outcome = "ok"
			return tx.AppendAudit(ctx, e)
		}
		return nil
	})
	if err == nil && c != nil && c.audit != nil {
		c.audit.written.Store(true)
	}
	return err
}

// view runs fn in a read-only transaction.
func (s *Server) view(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.st.View(ctx, fn)
}

// newErrors is the cloud's error policy: the store's sentinels, a busy
// password hasher, and a caller that went away have codes a client can act
// on; anything else is Internal with an error id in the log. The
// interceptor answers every fleet API call's error by it, so this table is
// the one place a sentinel becomes a code.
func newErrors(log *zap.Logger) *authz.Errors {
	return &authz.Errors{Log: log, Where: "the cloud's log", Table: []authz.Sentinel{
		{Err: store.ErrNotFound, Code: connect.CodeNotFound, Message: "not found: it may have just been deleted"},
		{Err: store.ErrExists, Code: connect.CodeAlreadyExists, Message: "already exists"},
		{Err: store.ErrConflict, Code: connect.CodeAborted, Message: "too many concurrent changes: try again"},
		{Err: ingest.ErrNotFound, Code: connect.CodeNotFound, Message: "not found: it may have just been deleted"},
		{Err: ingest.ErrInvalid, Code: connect.CodeInvalidArgument, Message: "the data store refuses this request"},
		{Err: auth.ErrBusy, Code: connect.CodeResourceExhausted},
		{Err: context.Canceled, Code: connect.CodeCanceled},
		{Err: context.DeadlineExceeded, Code: connect.CodeCanceled},
	}}
}

// auditID orders audit events by time, then by this server's sequence
// (a clock may repeat a reading); the random tail keeps IDs unique across
// replicas.
func (s *Server) auditID() string {
	return fmt.Sprintf("%016x%08x%s", s.clock.Now().UnixNano(), s.auditSeq.Add(1), auth.NewID()[:8])
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// validName accepts 1 to maxNameLen printable characters without leading
// or trailing space.
func validName(field, name string) error {
	if name == "" {
		return invalid("%s is required", field)
	}
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxNameLen {
		return invalid("%s: at most %d characters of UTF-8", field, maxNameLen)
	}
	if strings.TrimSpace(name) != name {
		return invalid("%s: no leading or trailing spaces", field)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return invalid("%s: only printable characters", field)
		}
	}
	return nil
}

// validID accepts the IDs the cloud makes: 32 lowercase hex digits.
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// normalizeEmail lowercases and trims an address; comparisons use this form.
func normalizeEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

// validEmail accepts one @ with something on each side, no spaces and no
// mail syntax, and a length SMTP allows; invitation codes are mailed to it.
func validEmail(e string) error {
	if e == "" {
		return invalid("email is required")
	}
	local, domain, ok := strings.Cut(e, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") || len(e) > maxEmailLen ||
		strings.ContainsFunc(e, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) ||
		// Mail syntax (a display name, a list, a route) is no address of one mailbox.
		strings.ContainsAny(e, `<>,;:"()[]\`) {
		return invalid("email %q is not an address like name@example.com", e)
	}
	return nil
}

func requireID(field, id string) error {
	if id == "" {
		return invalid("%s is required", field)
	}
	if !validID(id) {
		return invalid("%s %q is not an ID (32 hex digits)", field, id)
	}
	return nil
}

// Limits are the cloud's connection limits when RunConfig says nothing:
// netlimit's defaults, with room for every part's long poll for relayed
// offers (one connection each).
func Limits() netlimit.Limits {
	l := netlimit.Defaults()
	l.MaxConns = 16384
	return l
}

// Serve answers on ln until ctx ends, speaking HTTP/1.1 and HTTP/2 (cleartext
// h2c unless certFile and keyFile are given), then shuts down gracefully.
// It serves within Limits().
func Serve(ctx context.Context, ln net.Listener, h http.Handler, certFile, keyFile string, log *zap.Logger) error {
	return ServeLimited(ctx, ln, h, certFile, keyFile, Limits(), log)
}

// ServeLimited is Serve within lim (a zero field: netlimit's default): a
// capped number of connections, and header, body and idle timeouts that
// cut off clients holding a connection by sending slowly.
func ServeLimited(ctx context.Context, ln net.Listener, h http.Handler, certFile, keyFile string, lim netlimit.Limits, log *zap.Logger) error {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	if certFile == "" {
		protocols.SetUnencryptedHTTP2(true)
	}
	srv := &http.Server{
		Handler:   h,
		Protocols: protocols,
		ErrorLog:  zap.NewStdLog(log.Named("http")),
	}
	lim.Apply(srv)
	limited := lim.Listener(ln)
	errc := make(chan error, 1)
	go func() {
		if certFile != "" {
			errc <- srv.ServeTLS(limited, certFile, keyFile)
			return
		}
		errc <- srv.Serve(limited)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	// The shutdown gets its own deadline: the serving context is already over.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down %s: %w", ln.Addr(), err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	}
	return nil
}
