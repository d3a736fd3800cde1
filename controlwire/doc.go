// Package controlwire is what both ends of a part's control plane agree on:
// the framing of HTTP exchanges over a WebRTC data channel (documented in
// control.proto), the certificate fingerprint clients pin, the well-known
// port, socket path and mDNS service type. The server (package control) and
// its clients (package controlclient) import it; it imports neither, so a
// client never links the server.
package controlwire
