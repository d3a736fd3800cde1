package partsync

import (
	"errors"
	"strings"
)

// Bounds of the Authorization header's parts.
const (
	maxAuthHeader = 1024
	maxPartIDLen  = 128
	maxSecretLen  = 512
)

// errBadHeader is the one error ParseAuthorization returns: it names the
// expected form and never the value, which may hold a secret.
var errBadHeader = errors.New(`authorization header is not "Part <part_id>:<part_secret>"`)

// ParseAuthorization reads the sync API's credential,
// "Part <part_id>:<part_secret>". The scheme is case-insensitive (RFC 9110);
// everything else is strict: one space, a part id of letters, digits, '.',
// '_' or '-', a colon, and a secret of visible ASCII. Its error never
// contains the header.
func ParseAuthorization(header string) (partID, secret string, err error) {
	if len(header) > maxAuthHeader {
		return "", "", errBadHeader
	}
	scheme, rest, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Part") {
		return "", "", errBadHeader
	}
	partID, secret, ok = strings.Cut(rest, ":")
	if !ok || !validPartID(partID) || !validSecret(secret) {
		return "", "", errBadHeader
	}
	return partID, secret, nil
}

func validPartID(s string) bool {
	if s == "" || len(s) > maxPartIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validSecret(s string) bool {
	if s == "" || len(s) > maxSecretLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
