// Package robot imports Badger (a violation), listens on a network it
// takes as an argument (a violation) and on a Unix socket (allowed).
package robot

import (
	"net"

	"github.com/dgraph-io/badger/v4"
)

// Open opens a store of its own.
func Open(dir string) error { return badger.Open(dir) }

// Serve listens on network.
func Serve(network, addr string) (net.Listener, error) { return net.Listen(network, addr) }

// ServeModule listens on a Unix socket.
func ServeModule(path string) (net.Listener, error) { return net.Listen("unix", path) }
