// Package control may listen.
package control

import (
	"net"
	"net/http"
)

// Listen listens on TCP.
func Listen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

// Serve serves HTTP.
func Serve(addr string) error { return http.ListenAndServe(addr, nil) }
