// Package control is the daemon's control plane and the only daemon package
// that listens on the network: field techs drive the part with or without
// the cloud, always with the permissions the cloud last granted.
//
// # Transports
//
// One connect handler (gRPC, gRPC-Web and Connect; gRPC reflection) serves
// outpost.control.v1.ControlService, the robot's ComponentService and
// SignalingService. It is reached:
//
//   - over TLS on the LAN (port controlwire.DefaultPort): a self-signed ECDSA P-256
//     certificate made on first start and kept with a CertStore; clients pin
//     its SHA-256 (Server.Fingerprint, reported to the cloud);
//   - over a WebRTC data channel (pion/webrtc v4): an authenticated offer
//     in, an answer out (SignalingService.Offer on the TLS port, or relayed
//     by the cloud for clients off the LAN: ServeRelay with a Relay); the
//     channel carries the same HTTP exchanges, framed (package controlwire,
//     control.proto);
//   - on the break-glass Unix socket (ListenSocket, ServeSocket): root, the
//     daemon's user and the outpost group, owner of this machine, every use
//     audited, working without grants and after they expire.
//
// # Authentication and authorization
//
// Credentials are package credential's (docs/CREDENTIALS.md): an API key
// ("Authorization: APIKey <key id>", its public key in the grant bundle) or
// a user's session ("Authorization: DPoP <JWT>", an access token verified
// offline with the bundle's token keys and bound to a session key), each
// with a proof of possession in the DPoP header whose audience is this
// part's certificate and which carries a nonce this part issued. Nothing a
// client sends a part works anywhere else. A relayed offer carries instead
// the cloud's assertion for this part and that offer.
//
// One authorizer, at the HTTP layer under connect, decides every call of
// every transport with rbac over the current grant bundle: the rule of each
// procedure is its (outpost.authz.v1.rule) option, checked on this part's
// machine; handlers never check permissions. It refuses remote credentials
// once the bundle expired, saying why and what to do; slows failed
// authentications per peer address; and writes an audit event for every
// call that changes something and every refusal. A WebRTC session keeps the
// identity it signaled with and every call on it is authorized again
// against the bundle of that moment, so a revocation cuts in at the next
// sync.
//
// # Discovery
//
// Announce answers mDNS (DNS-SD) for controlwire.MDNSService; controlclient.Discover browses.
//
// The daemon provides the dependencies (Grants, Audit, CertStore, Robot,
// Config, Logs, Data, Status) and a clock; nothing here reads the time but
// through it.
package control
