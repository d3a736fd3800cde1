package partfile

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/signed"
)

// MaxBootstrapBytes bounds the bootstrap file: it holds a URL, two ids, a
// secret and a few public keys.
const MaxBootstrapBytes = 64 << 10

// BootstrapError is a problem with the bootstrap file. It names the file and
// the field, in one line, because it is what a person installing a robot
// sees in `systemctl status`.
type BootstrapError struct {
	Path  string
	Field string
	Err   error
}

func (e *BootstrapError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("bootstrap file %s: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("bootstrap file %s: field %s: %v", e.Path, e.Field, e.Err)
}

func (e *BootstrapError) Unwrap() error { return e.Err }

// Bootstrap is a validated bootstrap file.
type Bootstrap struct {
	// File is the file as written.
	File *syncv1.Bootstrap
	// Keys are the cloud's signing keys, ready to verify with.
	Keys signed.Keys
}

// LoadBootstrap reads and validates the bootstrap file at path.
func LoadBootstrap(path string) (*Bootstrap, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &BootstrapError{Path: path, Err: errors.New("does not exist: provision the part with `outpost part bootstrap PART_ID | sudo install -m 0640 -g outpost /dev/stdin " + path + "`")}
		}
		if errors.Is(err, fs.ErrPermission) {
			// The usual cause: written by root with mode 0600, while the
			// unit runs as the outpost user.
			return nil, &BootstrapError{Path: path, Err: fmt.Errorf("cannot be read: permission denied: run sudo chgrp outpost %s && sudo chmod 0640 %s", path, path)}
		}
		return nil, &BootstrapError{Path: path, Err: fmt.Errorf("cannot be read: %w", errors.Unwrap(err))}
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o004 != 0 {
		// It holds the part's secret: like ssh with a readable key, refuse.
		return nil, &BootstrapError{Path: path, Err: fmt.Errorf("is readable by every user (mode %04o): run chmod 600 %s", fi.Mode().Perm(), path)}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxBootstrapBytes+1))
	if err != nil {
		return nil, &BootstrapError{Path: path, Err: fmt.Errorf("cannot be read: %w", err)}
	}
	if len(data) > MaxBootstrapBytes {
		return nil, &BootstrapError{Path: path, Err: fmt.Errorf("larger than %d bytes", MaxBootstrapBytes)}
	}
	return ParseBootstrap(path, data)
}

// ParseBootstrap decodes and validates bootstrap file contents; path is
// only used in errors.
func ParseBootstrap(path string, data []byte) (*Bootstrap, error) {
	var b syncv1.Bootstrap
	if err := (protojson.UnmarshalOptions{}).Unmarshal(data, &b); err != nil {
		return nil, &BootstrapError{Path: path, Err: fmt.Errorf("not valid JSON for a bootstrap file: %s", jsonProblem(err))}
	}
	fail := func(field, format string, args ...any) (*Bootstrap, error) {
		return nil, &BootstrapError{Path: path, Field: field, Err: fmt.Errorf(format, args...)}
	}
	if err := CheckCloudURL(b.GetCloudUrl()); err != nil {
		return fail("cloud_url", "%v", err)
	}
	if msg := checkID(b.GetPartId()); msg != "" {
		return fail("part_id", "%s", msg)
	}
	if len(b.GetPartSecret()) < 32 {
		// The secret itself is never printed.
		return fail("part_secret", "missing or shorter than 32 characters")
	}
	if strings.ContainsAny(b.GetPartSecret(), " \t\r\n:") {
		return fail("part_secret", "contains white space or a colon")
	}
	if len(b.GetCloudKeys()) == 0 {
		return fail("cloud_keys", "missing: the part would trust nothing from the cloud")
	}
	keys, err := signed.KeysFromProto(b.GetCloudKeys())
	if err != nil {
		return fail("cloud_keys", "%v", err)
	}
	if ca := b.GetCaFile(); ca != "" && !strings.HasPrefix(ca, "/") {
		return fail("ca_file", "%q must be an absolute path", ca)
	}
	if ca := b.GetCaPem(); ca != "" {
		if len(ca) > MaxCAPEM {
			return fail("ca_pem", "%d bytes, at most %d", len(ca), MaxCAPEM)
		}
		if !x509.NewCertPool().AppendCertsFromPEM([]byte(ca)) {
			return fail("ca_pem", "holds no PEM certificate")
		}
	}
	return &Bootstrap{File: &b, Keys: keys}, nil
}

// MaxCAPEM bounds a bootstrap file's ca_pem: a few CA certificates.
const MaxCAPEM = 64 << 10

// CheckCloudURL checks the cloud's base URL from a bootstrap file: http or
// https with a host, and no user info or query, because credentials in a URL
// end up in proxies' and servers' logs. Its errors never quote the URL, which
// may hold exactly such a credential.
func CheckCloudURL(raw string) error {
	if raw == "" {
		return errors.New("missing")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return errors.New("not an http(s)://HOST[:PORT] URL")
	case u.User != nil || u.RawQuery != "":
		return errors.New("must not carry credentials or a query")
	}
	return nil
}

func checkID(id string) string {
	switch {
	case id == "":
		return "missing"
	case len(id) > 128:
		return "longer than 128 characters"
	}
	for _, r := range id {
		if !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return fmt.Sprintf("%q has a character other than letters, digits, '-', '_' and '.'", id)
		}
	}
	return ""
}

// jsonProblem describes a decoding error without quoting the file's values:
// protojson quotes the offending token, which could be the secret.
func jsonProblem(err error) string {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	msg = strings.TrimPrefix(msg, "proto: ")
	if i := strings.Index(msg, "(line "); i >= 0 {
		if j := strings.Index(msg[i:], ")"); j >= 0 {
			where := msg[i+1 : i+j]
			rest := strings.TrimSpace(strings.TrimPrefix(msg[i+j+1:], ":"))
			if strings.HasPrefix(rest, "unknown field") {
				return where + ": " + rest // a field name, not a value
			}
			return where + ": " + strings.TrimSpace(msg[:i])
		}
	}
	return "syntax error"
}
