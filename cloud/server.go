// Package cloud is outpost-cloud: the fleet API, the part sync API and the
// signaling relay, with all state behind a storage interface.
package cloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"go.uber.org/zap"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
	"github.com/outpost-robotics/outpost/version"
)

// Handler returns the cloud's HTTP handler: every connect-go service (gRPC,
// gRPC-Web and Connect on one mux) and gRPC server reflection.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(fleetv1connect.NewServerServiceHandler(serverInfo{}))
	reflector := grpcreflect.NewStaticReflector(fleetv1connect.ServerServiceName)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	return mux
}

type serverInfo struct{}

func (serverInfo) GetServerInfo(context.Context, *connect.Request[fleetv1.GetServerInfoRequest]) (*connect.Response[fleetv1.GetServerInfoResponse], error) {
	return connect.NewResponse(&fleetv1.GetServerInfoResponse{Version: version.Version, Commit: version.Commit}), nil
}

// Serve answers on ln until ctx ends, speaking HTTP/1.1 and HTTP/2 (cleartext
// h2c unless certFile and keyFile are given), then shuts down gracefully.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, certFile, keyFile string, log *zap.Logger) error {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	if certFile == "" {
		protocols.SetUnencryptedHTTP2(true)
	}
	srv := &http.Server{
		Handler:           h,
		Protocols:         protocols,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	errc := make(chan error, 1)
	go func() {
		if certFile != "" {
			errc <- srv.ServeTLS(ln, certFile, keyFile)
			return
		}
		errc <- srv.Serve(ln)
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
