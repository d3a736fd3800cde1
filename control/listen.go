package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// Listen opens the control plane's TCP listener on addr (":8443" for every
// interface of the part). It is here, with every other listener of the
// daemon, because control is the only daemon package that listens
// (deptest checks it): the network surface of a robot is one package to audit.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for the control plane on %s: %w", addr, err)
	}
	return ln, nil
}

// LocalServer serves a plain HTTP handler on a loopback address only, such
// as Prometheus metrics: the one endpoint of the part that is neither TLS nor
// authorized, so it refuses any address a remote host could reach.
type LocalServer struct {
	ln  net.Listener
	srv *http.Server
}

// CheckLoopback refuses an address whose host is not a loopback IP
// ("127.0.0.1:9464" and "[::1]:9464" pass); "localhost" and other names are
// refused because what they resolve to is not fixed.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("local endpoint %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("local endpoint %q: the host must be a loopback IP such as 127.0.0.1, as it is served without authentication", addr)
	}
	return nil
}

// ListenLocal listens on addr, which must pass CheckLoopback.
func ListenLocal(addr string, h http.Handler, log *zap.Logger) (*LocalServer, error) {
	if err := CheckLoopback(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &LocalServer{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: zap.NewStdLog(log)}}, nil
}

// Addr is the address actually bound (with the port, when 0 was asked).
func (l *LocalServer) Addr() string { return l.ln.Addr().String() }

// Serve answers until Close or ctx ends; a clean stop returns nil.
func (l *LocalServer) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = l.srv.Close() })
	defer stop()
	if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", l.Addr(), err)
	}
	return nil
}

// Close stops serving.
func (l *LocalServer) Close() error { return l.srv.Close() }
