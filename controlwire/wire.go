package controlwire

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// DefaultPort is the control plane's TLS port on the LAN.
const DefaultPort = 8443

// DefaultSocketPath is the break-glass Unix socket (systemd's RuntimeDirectory).
const DefaultSocketPath = "/run/outpost/control.sock"

// ChannelLabel is the label of the control data channel.
const ChannelLabel = "outpost-control"

// MDNSService is the DNS-SD service type parts announce on the LAN.
const MDNSService = "_outpost._tcp"

// TXT record keys of a part's mDNS announcement.
const (
	// TXTPart holds the part's id.
	TXTPart = "part"
	// TXTFingerprint holds the control certificate's fingerprint.
	TXTFingerprint = "sha256"
	// TXTVersion holds the announcement format's version.
	TXTVersion = "v"
)

// Fingerprint returns the SHA-256 of a DER certificate in lower-case hex:
// what the cloud is told, `outpost robot trust` shows and clients pin.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// NormalizeFingerprint accepts hex with or without colons, any case, and
// an optional "sha256:" prefix, and returns lower-case hex.
func NormalizeFingerprint(s string) (string, error) {
	s = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "sha256:")
	s = strings.ReplaceAll(s, ":", "")
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("fingerprint %q is not 64 hex digits (SHA-256)", s)
	}
	return s, nil
}

// ICEServers turns STUN/TURN URLs into pion's configuration; none is nil.
func ICEServers(urls []string) []webrtc.ICEServer {
	if len(urls) == 0 {
		return nil
	}
	return []webrtc.ICEServer{{URLs: urls}}
}

// LoopbackICE confines ICE to the loopback interface over UDPv4, with no
// mDNS candidates: a session that never leaves this machine, for tests and
// for a client running on the part itself.
func LoopbackICE(se *webrtc.SettingEngine) {
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
}

// RelayedOffer is a client's offer as the cloud forwards it.
type RelayedOffer struct {
	// ID names the offer for Answer.
	ID string
	// SDP is the client's offer.
	SDP string
	// Assertion is the cloud's signed statement of who the client is, for
	// this part and this SDP (credential.VerifyAssertion); the part
	// authorizes that subject itself, with its cached grants, so the cloud
	// relays but grants nothing, and never sees the client's credential
	// pass to the part.
	Assertion string
	// Peer is the client's address as the cloud saw it (throttling, audit).
	Peer string
}
