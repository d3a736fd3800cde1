package credential

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestBrowserSession: a browser session verifies only as one, only at the
// cloud, only in its lifetime; no other verifier takes it, and it takes no
// other statement.
func TestBrowserSession(t *testing.T) {
	f := newFixture(t)
	tok, exp, err := IssueBrowserSession(f.cloud, cloudK, userID, now, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(MaxBrowserSessionTTL); !exp.Equal(want) {
		t.Errorf("expires %v, want the cap %v", exp, want)
	}
	c, err := VerifyBrowserSession(tok, f.keys, now.Add(time.Hour))
	if err != nil || c.Subject != userID || c.ID == "" {
		t.Fatalf("verify: %+v, %v", c, err)
	}

	// A part verifies access tokens, which must be bound: the browser
	// session is not one.
	if _, err := VerifyToken(tok, f.keys, now); !errors.Is(err, ErrBad) {
		t.Errorf("VerifyToken took a browser session: %v", err)
	}
	if _, err := VerifyAssertion(tok, f.keys, partID, "sdp", now); err == nil {
		t.Error("VerifyAssertion took a browser session")
	}

	sign := func(typ string, claims Claims) string {
		j := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
		j.Header["kid"], j.Header["typ"] = cloudK, typ
		s, err := j.SignedString(f.cloud)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: userID, Audience: jwt.ClaimStrings{AudienceCloud}, ID: "j",
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}}
	withAud := good
	withAud.Audience = jwt.ClaimStrings{TLSAudience("ab")}
	bound := good
	bound.Cnf = &Confirmation{JKT: "x"}
	long := good
	long.ExpiresAt = jwt.NewNumericDate(now.Add(MaxBrowserSessionTTL + time.Hour))
	parts := strings.Split(tok, ".")
	tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	for _, tc := range []struct {
		name, tok string
		at        time.Time
		want      string
	}{
		{"expired", tok, exp, "expired"},
		{"tampered", tampered, now, "signature"},
		{"an access token", f.session.Token, now, "typ"},
		{"another audience", sign(typeBrowserSession, withAud), now, "audience"},
		{"bound to a key", sign(typeBrowserSession, bound), now, "bound"},
		{"longer than a browser session lives", sign(typeBrowserSession, long), now, "out of bounds"},
		{"unknown key", func() string {
			j := jwt.NewWithClaims(jwt.SigningMethodEdDSA, good)
			j.Header["kid"], j.Header["typ"] = "other", typeBrowserSession
			s, _ := j.SignedString(NewPrivateKey())
			return s
		}(), now, "unknown key"},
		{"empty", "", now, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyBrowserSession(tc.tok, f.keys, tc.at)
			if !errors.Is(err, ErrBad) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrBad saying %q", err, tc.want)
			}
		})
	}
}
