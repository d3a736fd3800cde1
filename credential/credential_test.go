package credential

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const keyID = "0123456789abcdef0123456789abcdef"

func TestParse(t *testing.T) {
	tests := []struct {
		header string
		want   Credential
		bad    bool
	}{
		{"", Credential{}, false},
		{"Bearer a.b.c", Credential{Token: "a.b.c"}, false},
		{"bearer " + keyID + ":s3cret", Credential{KeyID: keyID, KeySecret: "s3cret"}, false},
		{"Basic dXNlcjpwYXNz", Credential{}, true},
		{"Bearer", Credential{}, true},
		{"Bearer ", Credential{}, true},
		{"Bearer nothex:secret", Credential{}, true},
		{"Bearer " + keyID + ":", Credential{}, true},
		{"Bearer " + keyID + ":" + strings.Repeat("s", 129), Credential{}, true},
		{"Bearer a.b", Credential{}, true},
		{"Bearer " + strings.Repeat("a", MaxHeaderLen), Credential{}, true},
	}
	for _, tc := range tests {
		got, err := Parse(tc.header)
		if tc.bad {
			if !errors.Is(err, ErrBad) {
				t.Errorf("Parse(%.40q) = %v, %v; want ErrBad", tc.header, got, err)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error quotes the secret: %v", err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%.40q) = %+v, %v; want %+v", tc.header, got, err, tc.want)
		}
	}
}

func TestSecretMatches(t *testing.T) {
	h := SecretHash("right")
	if !SecretMatches("right", h) || SecretMatches("wrong", h) || SecretMatches("right", h[:31]) {
		t.Fatal("SecretMatches is wrong")
	}
}

func sign(t *testing.T, priv ed25519.PrivateKey, kid string, claims Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyToken(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	rogue := ed25519.NewKeyFromSeed([]byte(strings.Repeat("r", 32)))
	keys := map[string]ed25519.PublicKey{"k1": priv.Public().(ed25519.PublicKey)}
	claims := func(iat, exp time.Time) Claims {
		return Claims{Subject: "user-1", IssuedAt: jwt.NewNumericDate(iat), ExpiresAt: jwt.NewNumericDate(exp)}
	}
	good := claims(now.Add(-time.Hour), now.Add(time.Hour))
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, good)
	hs.Header["kid"] = "k1"
	hsTok, _ := hs.SignedString([]byte("k1"))
	tests := []struct {
		name    string
		token   string
		want    error
		unknown bool
	}{
		{"good", sign(t, priv, "k1", good), nil, false},
		{"expired", sign(t, priv, "k1", claims(now.Add(-2*time.Hour), now.Add(-time.Hour))), ErrBad, false},
		{"unknown key id", sign(t, priv, "k2", good), ErrBad, true},
		{"forged with a known key id", sign(t, rogue, "k1", good), ErrBad, false},
		{"HMAC with the key id as secret", hsTok, ErrBad, false},
		{"lives longer than the cloud issues", sign(t, priv, "k1", claims(now.Add(-time.Hour), now.Add(MaxTokenTTL))), ErrBad, false},
		{"no subject", sign(t, priv, "k1", Claims{IssuedAt: good.IssuedAt, ExpiresAt: good.ExpiresAt}), ErrBad, false},
		{"garbage", "a.b.c", ErrBad, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := VerifyToken(tc.token, keys, now)
			if !errors.Is(err, tc.want) || (tc.want == nil && c.Subject != "user-1") {
				t.Fatalf("VerifyToken = %v, %v; want %v", c, err, tc.want)
			}
			if errors.Is(err, ErrUnknownKey) != tc.unknown {
				t.Fatalf("unknown key = %v, want %v (%v)", !tc.unknown, tc.unknown, err)
			}
		})
	}
}

// FuzzParse: no header panics, every error wraps ErrBad, and an API key
// credential always has a well-formed id and a secret.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "Bearer a.b.c", "Bearer " + keyID + ":x", "Bearer :", "Bearer \x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		c, err := Parse(header)
		if err != nil {
			if !errors.Is(err, ErrBad) {
				t.Fatalf("error %v does not wrap ErrBad", err)
			}
			return
		}
		if c.KeyID != "" && (!IsID(c.KeyID) || c.KeySecret == "") {
			t.Fatalf("accepted a malformed API key credential %+v", c)
		}
		if c.Token != "" {
			// Offline verification of garbage must fail cleanly.
			if _, err := VerifyToken(c.Token, nil, time.Unix(0, 0)); err == nil {
				t.Fatal("a token verified with no keys")
			}
		}
	})
}
