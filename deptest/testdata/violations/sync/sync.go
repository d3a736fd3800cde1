// Package sync listens three ways (violations); dialing and adopting an
// inherited socket are not listening.
package sync

import (
	"context"
	"net"
	"net/http"
	"os"
)

// Serve listens.
func Serve(ctx context.Context, addr string) error {
	if _, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr); err != nil {
		return err
	}
	srv := &http.Server{Addr: addr}
	go func() { _ = srv.ListenAndServeTLS("cert.pem", "key.pem") }()
	return http.ListenAndServe(addr, nil)
}

// Dial does not listen.
func Dial(addr string, f *os.File) error {
	if _, err := net.FileListener(f); err != nil {
		return err
	}
	_, err := net.Dial("tcp", addr)
	return err
}
