package controlclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/outpost-robotics/outpost/controlwire"
)

// PinnedTLSConfig returns a client TLS config that accepts exactly the
// certificate with the given fingerprint. Names and CAs are not checked:
// the part's certificate is self-signed and the pin is the trust.
func PinnedTLSConfig(fingerprint string) (*tls.Config, error) {
	want, err := controlwire.NormalizeFingerprint(fingerprint)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by VerifyConnection's pin check below
		NextProtos:         []string{"h2", "http/1.1"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("robot presented no certificate")
			}
			got := controlwire.Fingerprint(cs.PeerCertificates[0].Raw)
			if got != want {
				return fmt.Errorf("robot certificate fingerprint is %s, pinned %s: it is not the robot you trusted (or it was reinstalled: check with `outpost robot trust`)", got, want)
			}
			return nil
		},
	}, nil
}

// ProbeFingerprint connects to addr and returns the fingerprint of the
// certificate it presents, trusting nothing: for `outpost robot trust`,
// which shows it for the user to confirm.
func ProbeFingerprint(ctx context.Context, addr string) (string, error) {
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} // only reads the certificate
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer c.Close()
	certs := c.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "", fmt.Errorf("%s presented no certificate", addr)
	}
	return controlwire.Fingerprint(certs[0].Raw), nil
}
