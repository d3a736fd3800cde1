// Package module is the Go SDK for Outpost modules: programs the daemon
// starts that serve component models for real hardware over a Unix socket,
// with the same contract as built-in components (ComponentService, plus
// ModuleService for the handshake). A module is a main that calls Main with
// its models:
//
//	func main() {
//		module.Main(module.Model{Type: component.TypeMotor, Name: "acme:servo", New: newServo})
//	}
//
// The daemon creates the listening socket and passes it as a file descriptor
// (EnvFD), so it is listening before the module starts and calls queue
// through a restart instead of failing. Run by hand, a module listens on the
// path in EnvSocket, or the first argument.
package module

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"sync"
	"syscall"

	"connectrpc.com/connect"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"github.com/outpost-robotics/outpost/robot/component"
)

// The environment the daemon gives a module.
const (
	// EnvSocket is the path of the module's Unix socket.
	EnvSocket = "OUTPOST_MODULE_SOCKET"
	// EnvFD is the file descriptor of the already-listening socket.
	EnvFD = "OUTPOST_MODULE_FD"
)

// Model is one model a module serves.
type Model struct {
	Type component.Type
	// Name is "namespace:model", as components name it in the config.
	Name string
	New  component.Constructor
}

// Main serves models until SIGTERM or SIGINT and exits; errors go to stderr,
// which the daemon logs.
func Main(models ...Model) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := Serve(ctx, models...); err != nil {
		fmt.Fprintln(os.Stderr, "module:", err)
		os.Exit(1)
	}
}

// Listener returns the socket the daemon prepared (EnvFD), or listens on
// EnvSocket or the first argument.
func Listener() (net.Listener, error) {
	if fd := os.Getenv(EnvFD); fd != "" {
		n, err := strconv.Atoi(fd)
		if err != nil || n < 3 {
			return nil, fmt.Errorf("%s=%q: want a file descriptor of 3 or more", EnvFD, fd)
		}
		f := os.NewFile(uintptr(n), "module-socket")
		l, err := net.FileListener(f)
		f.Close() // FileListener dup'ed it
		if err != nil {
			return nil, fmt.Errorf("listen on inherited socket: %w", err)
		}
		return l, nil
	}
	path := os.Getenv(EnvSocket)
	if path == "" && len(os.Args) > 1 {
		path = os.Args[1]
	}
	if path == "" {
		return nil, fmt.Errorf("no socket: set %s or pass a socket path", EnvSocket)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return l, nil
}

// Serve serves models on Listener until ctx ends, then stops and closes its
// components.
func Serve(ctx context.Context, models ...Model) error {
	l, err := Listener()
	if err != nil {
		return err
	}
	return ServeListener(ctx, l, models...)
}

// ServeListener serves models on l until ctx ends.
func ServeListener(ctx context.Context, l net.Listener, models ...Model) error {
	h, err := NewHandler(models...)
	if err != nil {
		return err
	}
	defer h.Close(context.WithoutCancel(ctx))
	srv := &http.Server{Handler: h, BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve module: %w", err)
	case <-ctx.Done():
	}
	// Close rather than Shutdown: the daemon is stopping us, and a call in
	// flight fails either way.
	_ = srv.Close()
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve module: %w", err)
	}
	return nil
}

// Handler serves ComponentService and ModuleService for a set of models.
// Serve uses it; tests can mount it on any server.
type Handler struct {
	http.Handler
	reg    *component.Registry
	models []Model

	mu    sync.Mutex
	comps map[string]entry
}

type entry struct {
	typ component.Type
	c   component.Component
}

// NewHandler returns a Handler for models.
func NewHandler(models ...Model) (*Handler, error) {
	h := &Handler{reg: component.NewRegistry(), models: models, comps: map[string]entry{}}
	for _, m := range models {
		if err := h.reg.Register(m.Type, m.Name, m.New); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	mux.Handle(controlv1connect.NewComponentServiceHandler(component.NewServer(h)))
	mux.Handle(controlv1connect.NewModuleServiceHandler(moduleService{h}))
	h.Handler = mux
	return h, nil
}

// Component finds a component the daemon added.
func (h *Handler) Component(name string) (component.Component, component.Type, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.comps[name]
	if !ok {
		return nil, 0, fmt.Errorf("%w %q in this module", component.ErrNotFound, name)
	}
	return e.c, e.typ, nil
}

// Resources lists the module's components, all running.
func (h *Handler) Resources() []*controlv1.ResourceStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*controlv1.ResourceStatus, 0, len(h.comps))
	for name := range h.comps {
		out = append(out, &controlv1.ResourceStatus{Kind: controlv1.ResourceKind_RESOURCE_KIND_COMPONENT, Name: name, State: controlv1.ResourceState_RESOURCE_STATE_RUNNING})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Close stops and closes every component.
func (h *Handler) Close(ctx context.Context) {
	h.mu.Lock()
	comps := h.comps
	h.comps = map[string]entry{}
	h.mu.Unlock()
	for _, e := range comps {
		_ = e.c.Stop(ctx)
		_ = e.c.Close(ctx)
	}
}

type moduleService struct{ h *Handler }

func (m moduleService) Handshake(context.Context, *connect.Request[controlv1.HandshakeRequest]) (*connect.Response[controlv1.HandshakeResponse], error) {
	res := &controlv1.HandshakeResponse{}
	for _, md := range m.h.models {
		res.Models = append(res.Models, &controlv1.Model{Type: md.Type, Model: md.Name})
	}
	return connect.NewResponse(res), nil
}

func (m moduleService) AddComponent(ctx context.Context, req *connect.Request[controlv1.AddComponentRequest]) (*connect.Response[controlv1.AddComponentResponse], error) {
	cfg := req.Msg.GetConfig()
	if cfg.GetName() == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("component without a name"))
	}
	m.remove(ctx, cfg.GetName())
	// Dependencies live in the daemon; a module's components get none.
	c, err := m.h.reg.Build(ctx, cfg, nil)
	if err != nil {
		code := connect.CodeFailedPrecondition
		if errors.Is(err, component.ErrUnknownModel) {
			code = connect.CodeNotFound
		}
		return nil, connect.NewError(code, err)
	}
	m.h.mu.Lock()
	m.h.comps[cfg.GetName()] = entry{typ: cfg.GetType(), c: c}
	m.h.mu.Unlock()
	return connect.NewResponse(&controlv1.AddComponentResponse{}), nil
}

func (m moduleService) remove(ctx context.Context, name string) bool {
	m.h.mu.Lock()
	e, ok := m.h.comps[name]
	delete(m.h.comps, name)
	m.h.mu.Unlock()
	if ok {
		_ = e.c.Stop(ctx)
		_ = e.c.Close(ctx)
	}
	return ok
}

func (m moduleService) RemoveComponent(ctx context.Context, req *connect.Request[controlv1.RemoveComponentRequest]) (*connect.Response[controlv1.RemoveComponentResponse], error) {
	m.remove(ctx, req.Msg.GetName())
	return connect.NewResponse(&controlv1.RemoveComponentResponse{}), nil
}

// Client is the daemon's end of a module socket.
type Client struct {
	Components controlv1connect.ComponentServiceClient
	Module     controlv1connect.ModuleServiceClient
	http       *http.Client
}

// Dial returns clients that reach a module over its Unix socket. Nothing is
// connected until the first call.
func Dial(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		// Connections are kept for the next call (captures poll module
		// components many times a second); the daemon drops them when the
		// module exits (Client.Close), and the transport notices a
		// connection closed by a dead module before reusing it.
		MaxIdleConnsPerHost: 4,
	}
	hc := &http.Client{Transport: tr}
	const base = "http://module"
	return &Client{
		Components: controlv1connect.NewComponentServiceClient(hc, base),
		Module:     controlv1connect.NewModuleServiceClient(hc, base),
		http:       hc,
	}
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }
