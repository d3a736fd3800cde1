package control

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/controlwire"
	"github.com/outpost-robotics/outpost/credential"
)

// A remote is another robot whose components the main part serves under
// the prefix "NAME:" (RobotConfig.remotes). The main part decides a call
// with its own grants, then calls the remote as a client would: over TLS
// pinned to the fingerprint the config names, with proofs of the API key
// the config names, whose private half is kept on the main part
// (RemoteKeys; docs/CREDENTIALS.md, remotes). The remote decides the call
// with its grants for that key, so revoking the key at the cloud cuts the
// remote at its next sync. The caller is not named to the remote: it
// trusts the key, not this machine.

// RemoteKeys loads the private half of the API key the main part calls a
// remote with.
type RemoteKeys interface {
	// RemoteKey returns the API key keyID.
	RemoteKey(ctx context.Context, keyID string) (*credential.Key, error)
}

// remoteSep separates a remote's name from its component's name.
const remoteSep = ":"

// remoteClient calls one remote.
type remoteClient struct {
	name, field     string // the remote's name, and "remotes[i]"
	addr, fp, keyID string
	comp            controlv1connect.ComponentServiceClient
	tr              *http.Transport
}

// remotes keeps one client per remote, made again when the config's entry
// for it changes.
type remotes struct {
	s  *Server
	mu sync.Mutex
	by map[string]*remoteClient
}

func newRemotes(s *Server) *remotes { return &remotes{s: s, by: map[string]*remoteClient{}} }

// lookup finds the remote a component name is prefixed with: its entry and
// index in the running config, and the name of its component there.
func (rs *remotes) lookup(ctx context.Context, component string) (*configv1.Remote, int, string, bool) {
	prefix, rest, ok := strings.Cut(component, remoteSep)
	if !ok {
		return nil, 0, "", false
	}
	st, err := rs.s.opts.Config.CurrentConfig(ctx)
	if err != nil {
		return nil, 0, "", false
	}
	for i, r := range st.Config.GetRemotes() {
		if r.GetName() == prefix {
			return r, i, rest, true
		}
	}
	return nil, 0, "", false
}

// get returns the client of remote r, the i-th of the config.
func (rs *remotes) get(ctx context.Context, r *configv1.Remote, i int) (*remoteClient, error) {
	field := fmt.Sprintf("remotes[%d]", i)
	fp, err := config.NormalizeFingerprint(r.GetFingerprint())
	if err != nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("remote %q: %s.fingerprint: %v", r.GetName(), field, err))
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if c := rs.by[r.GetName()]; c != nil && c.addr == r.GetAddress() && c.fp == fp && c.keyID == r.GetApiKeyId() && c.field == field {
		return c, nil
	}
	if rs.s.opts.RemoteKeys == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("remote %q: this part keeps no remote keys", r.GetName()))
	}
	key, err := rs.s.opts.RemoteKeys.RemoteKey(ctx, r.GetApiKeyId())
	if err != nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("remote %q: the key of apikey/%s (%s.api_key_id): %v", r.GetName(), r.GetApiKeyId(), field, err))
	}
	if old := rs.by[r.GetName()]; old != nil {
		old.tr.CloseIdleConnections()
	}
	c := newRemoteClient(r, field, fp, key, rs.s.opts.Clock.Now)
	rs.by[r.GetName()] = c
	return c, nil
}

func newRemoteClient(r *configv1.Remote, field, fp string, key *credential.Key, now func() time.Time) *remoteClient {
	c := &remoteClient{name: r.GetName(), field: field, addr: r.GetAddress(), fp: fp, keyID: r.GetApiKeyId()}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by VerifyConnection's pin check
		NextProtos:         []string{"h2"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("it presented no certificate")
			}
			if got := controlwire.Fingerprint(cs.PeerCertificates[0].Raw); got != fp {
				return fmt.Errorf("its certificate is %s, and %s.fingerprint pins %s", got, field, fp)
			}
			return nil
		},
	}
	c.tr = &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: cfg, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute,
		DialContext: (&net.Dialer{Timeout: peerDialTimeout}).DialContext}
	hc := &http.Client{Transport: c.tr}
	base := "https://" + r.GetAddress()
	opts := []connect.ClientOption{connect.WithReadMaxBytes(controlwire.MaxMessageBytes), connect.WithSendMaxBytes(controlwire.MaxMessageBytes)}
	ctl := controlv1connect.NewControlServiceClient(hc, base, opts...)
	nonce := func(ctx context.Context) (string, error) {
		res, err := ctl.Health(ctx, connect.NewRequest(&controlv1.HealthRequest{}))
		if err != nil {
			return "", err
		}
		n := res.Header().Get(credential.NonceHeader)
		if n == "" {
			return "", errors.New("it sent no nonce")
		}
		return n, nil
	}
	c.comp = controlv1connect.NewComponentServiceClient(hc, base, append(opts, connect.WithInterceptors(credential.NewPartProver(key, fp, now, nonce)))...)
	return c
}

// refused drops the client of a remote that refused its key, so the next
// call reads the key file again: a key replaced on disk is picked up
// without a restart.
func (rs *remotes) refused(c *remoteClient, err error) {
	if code := connect.CodeOf(err); code != connect.CodeUnauthenticated {
		return
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.by[c.name] == c {
		delete(rs.by, c.name)
		c.tr.CloseIdleConnections()
	}
}

// explain names the remote and the config field in a remote call's error:
// a refused key keeps its code and names api_key_id; anything else that
// fails to reach it is Unavailable.
func (c *remoteClient) explain(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		switch ce.Code() {
		case connect.CodeUnauthenticated, connect.CodePermissionDenied:
			return connect.NewError(ce.Code(), fmt.Errorf("remote %q refused apikey/%s (%s.api_key_id): %s", c.name, c.keyID, c.field, ce.Message()))
		case connect.CodeUnavailable, connect.CodeUnknown, connect.CodeDeadlineExceeded:
		default:
			return connect.NewError(ce.Code(), fmt.Errorf("remote %q: %s", c.name, ce.Message()))
		}
	}
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("remote %q (%s, %s) cannot be reached: %v", c.name, c.field, c.addr, err))
}

// renamed returns a copy of msg with its name field set to name.
func renamed[M any](msg M, name string) M {
	m := proto.Clone(any(msg).(proto.Message))
	fd := m.ProtoReflect().Descriptor().Fields().ByName("name")
	if fd != nil && fd.Kind() == protoreflect.StringKind {
		m.ProtoReflect().Set(fd, protoreflect.ValueOfString(name))
	}
	return m.(M)
}

// remoteResources lists remote r's components under its prefix; a remote
// that cannot be reached or refuses the key is one failed entry, "NAME:",
// with the reason.
func (rs *remotes) remoteResources(ctx context.Context, r *configv1.Remote, i int) []*controlv1.ResourceStatus {
	c, err := rs.get(ctx, r, i)
	var res *connect.Response[controlv1.ListResourcesResponse]
	if err == nil {
		if res, err = c.comp.ListResources(ctx, connect.NewRequest(&controlv1.ListResourcesRequest{})); err != nil {
			rs.refused(c, err)
			err = c.explain(err)
		}
	}
	if err != nil {
		return []*controlv1.ResourceStatus{{Kind: controlv1.ResourceKind_RESOURCE_KIND_COMPONENT, Name: r.GetName() + remoteSep,
			State: controlv1.ResourceState_RESOURCE_STATE_FAILED, Error: connectMessage(err)}}
	}
	var out []*controlv1.ResourceStatus
	for _, x := range res.Msg.GetResources() {
		if x.GetKind() == controlv1.ResourceKind_RESOURCE_KIND_COMPONENT {
			x.Name = r.GetName() + remoteSep + x.GetName()
			out = append(out, x)
		}
	}
	return out
}

// close drops every remote client's idle connections.
func (rs *remotes) close() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, c := range rs.by {
		c.tr.CloseIdleConnections()
	}
}
