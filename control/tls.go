package control

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
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
