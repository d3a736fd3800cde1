package control

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// certLifetime is long because nothing renews the certificate: clients pin
// its fingerprint, not a CA chain, so its expiry only matters to clients
// that check dates (the CLI does not).
const certLifetime = 100 * 365 * 24 * time.Hour

// loadOrCreateCert returns the control plane's certificate, making and
// saving one on first start. ECDSA P-256 because every TLS stack, browsers
// included, speaks it.
func loadOrCreateCert(ctx context.Context, store CertStore, now time.Time, partID string) (tls.Certificate, error) {
	certPEM, keyPEM, err := store.LoadCert(ctx)
	switch {
	case err == nil:
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("load control certificate: %w", err)
		}
		return cert, nil
	case !errors.Is(err, ErrNoCert):
		return tls.Certificate{}, fmt.Errorf("load control certificate: %w", err)
	}
	certPEM, keyPEM, err = newCert(now, partID)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := store.SaveCert(ctx, certPEM, keyPEM); err != nil {
		return tls.Certificate{}, fmt.Errorf("save new control certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parse new control certificate: %w", err)
	}
	return cert, nil
}

// newCert makes a self-signed ECDSA P-256 certificate.
func newCert(now time.Time, partID string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate control key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate certificate serial: %w", err)
	}
	cn := "outpost part"
	if partID != "" {
		cn = "outpost part " + partID
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour), // a Pi without a battery clock may lag
		NotAfter:              now.Add(certLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create control certificate: %w", err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode control key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), nil
}

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

// PinnedTLSConfig returns a client TLS config that accepts exactly the
// certificate with the given fingerprint. Names and CAs are not checked:
// the part's certificate is self-signed and the pin is the trust.
func PinnedTLSConfig(fingerprint string) (*tls.Config, error) {
	want, err := NormalizeFingerprint(fingerprint)
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
			got := Fingerprint(cs.PeerCertificates[0].Raw)
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
	return Fingerprint(certs[0].Raw), nil
}
