// Package controlclient is the client's side of a part's control plane:
// WebRTC sessions whose data channel carries connect calls (RTCClient),
// TLS pinned to a part's certificate fingerprint, the fingerprint probe
// behind `outpost robot trust`, mDNS discovery of parts on the LAN, and the
// nonce a proof of possession needs. It shares the wire format with the
// server through package controlwire and never links the server (package
// control), so the CLI and the part's sync loop stay clients.
package controlclient
