package credential

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	fpHere  = "1111111111111111111111111111111111111111111111111111111111111111"
	fpOther = "2222222222222222222222222222222222222222222222222222222222222222"
)

func (f *fixture) delegationVerifier(revoked bool) DelegationVerifier {
	return DelegationVerifier{
		Audience: TLSAudience(fpHere),
		KeyOf: func(id string) ed25519.PublicKey {
			if id != keyID || revoked {
				return nil
			}
			return f.apiKey.PublicKey()
		},
		TokenKeys: f.keys,
		Revoked: func(*Claims) error {
			if revoked {
				return errors.New("the session was signed out")
			}
			return nil
		},
	}
}

// TestDelegation covers a console's delegation: made by an API key or a
// session for one part, verified with a proof by the delegated key, and
// refused for another part, after expiry, with another typ, tampered, with
// a proof by another key, or signed by a revoked key or session.
func TestDelegation(t *testing.T) {
	f := newFixture(t)
	eph := NewPrivateKey()
	ephPub := eph.Public().(ed25519.PublicKey)
	tokExp := now.Add(time.Hour)

	byKey, exp, err := f.apiKey.Delegate(fpHere, ephPub, now, 24*time.Hour, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if got := exp.Sub(now); got != MaxDelegationTTL {
		t.Fatalf("an API key's delegation lives %s, want the cap %s", got, MaxDelegationTTL)
	}
	bySession, exp, err := f.session.Delegate(fpHere, ephPub, now, MaxDelegationTTL, tokExp)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(tokExp) {
		t.Fatalf("a session's delegation ends %s, want its token's expiry %s", exp, tokExp)
	}
	forOther, _, _ := f.apiKey.Delegate(fpOther, ephPub, now, time.Hour, time.Time{})
	proof := func(d string, k ed25519.PrivateKey, aud string) string {
		p, err := DelegatedProof(k, d, aud, "n", now)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A delegation whose claims are signed right but with another typ.
	wrongTyp := func() string {
		c := DelegationClaims{RegisteredClaims: jwt.RegisteredClaims{ID: "x", Subject: "apikey/" + keyID, Audience: jwt.ClaimStrings{TLSAudience(fpHere)},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}, Cnf: &DelegatedKey{}}
		c.Cnf.JWK.Kty, c.Cnf.JWK.Crv = "OKP", "Ed25519"
		tk := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
		tk.Header["typ"] = typeToken
		tk.Header["kid"] = keyID
		s, _ := tk.SignedString(f.apiKey.priv)
		return s
	}()
	tamper := func(s string) string {
		parts := strings.Split(s, ".")
		parts[1] = parts[1][:len(parts[1])-2] + "AA"
		return strings.Join(parts, ".")
	}
	// A proof made for the cloud by the session, offered as a delegation.
	sessionProof, _ := f.session.Proof(TLSAudience(fpHere), "n", now)

	tests := []struct {
		name, delegation, proof string
		at                      time.Time
		revoked                 bool
		subject, err            string
	}{
		{name: "API key", delegation: byKey, proof: proof(byKey, eph, TLSAudience(fpHere)), at: now, subject: "apikey/" + keyID},
		{name: "session", delegation: bySession, proof: proof(bySession, eph, TLSAudience(fpHere)), at: now, subject: "user/" + userID},
		{name: "another part's", delegation: forOther, proof: proof(forOther, eph, TLSAudience(fpHere)), at: now, err: "another part"},
		{name: "expired", delegation: byKey, proof: proof(byKey, eph, TLSAudience(fpHere)), at: now.Add(MaxDelegationTTL), err: "expired"},
		{name: "session's token expired", delegation: bySession, proof: proof(bySession, eph, TLSAudience(fpHere)), at: tokExp, err: "expired"},
		{name: "wrong typ", delegation: wrongTyp, proof: proof(wrongTyp, eph, TLSAudience(fpHere)), at: now, err: "typ"},
		{name: "session proof as delegation", delegation: sessionProof, proof: proof(sessionProof, eph, TLSAudience(fpHere)), at: now, err: "typ"},
		{name: "tampered", delegation: tamper(byKey), proof: proof(tamper(byKey), eph, TLSAudience(fpHere)), at: now, err: "verify delegation"},
		{name: "revoked API key", delegation: byKey, proof: proof(byKey, eph, TLSAudience(fpHere)), at: now, revoked: true, err: "revoked"},
		{name: "revoked session", delegation: bySession, proof: proof(bySession, eph, TLSAudience(fpHere)), at: now, revoked: true, err: "signed out"},
		{name: "proof by another key", delegation: byKey, proof: proof(byKey, NewPrivateKey(), TLSAudience(fpHere)), at: now, err: "delegated key"},
		{name: "proof for another part", delegation: byKey, proof: proof(byKey, eph, TLSAudience(fpOther)), at: now, err: "another audience"},
		{name: "proof for another delegation", delegation: byKey, proof: proof(bySession, eph, TLSAudience(fpHere)), at: now, err: "another access token"},
		{name: "proof signed by the delegator", delegation: byKey, proof: func() string { p, _ := f.apiKey.Proof(TLSAudience(fpHere), "n", now); return p }(), at: now, err: "jwk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _, err := f.delegationVerifier(tt.revoked).VerifyDelegated(tt.delegation, tt.proof, tt.at)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want an error containing %q", err, tt.err)
				}
				if !errors.Is(err, ErrBad) {
					t.Fatalf("error %v does not wrap ErrBad", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Subject != tt.subject {
				t.Fatalf("subject %q, want %q", d.Subject, tt.subject)
			}
		})
	}

	t.Run("nowhere else", func(t *testing.T) {
		// Neither as a token nor as a session's proof does a delegation
		// pass: its typ is its own.
		if _, err := VerifyToken(byKey, f.keys, now); err == nil {
			t.Fatal("a delegation passed as an access token")
		}
		if _, err := VerifySessionProof(byKey, f.session.Token, mustClaims(t, f), TLSAudience(fpHere)); err == nil {
			t.Fatal("a delegation passed as a proof")
		}
		if _, err := VerifyBrowserSession(byKey, f.keys, now); err == nil {
			t.Fatal("a delegation passed as a browser session")
		}
	})
	t.Run("bad inputs", func(t *testing.T) {
		if _, _, err := f.apiKey.Delegate("ABC", ephPub, now, time.Hour, time.Time{}); err == nil {
			t.Fatal("delegated to a malformed fingerprint")
		}
		if _, _, err := f.apiKey.Delegate(fpHere, ephPub[:5], now, time.Hour, time.Time{}); err == nil {
			t.Fatal("delegated to a short key")
		}
		if _, _, err := f.session.Delegate(fpHere, ephPub, now, time.Hour, now.Add(-time.Second)); err == nil {
			t.Fatal("delegated an expired session")
		}
	})
	t.Run("parse", func(t *testing.T) {
		p, err := Parse("Delegation "+byKey, "p.r.s")
		if err != nil || p.Delegation != byKey {
			t.Fatalf("Parse: %+v, %v", p, err)
		}
		if _, err := Parse("Delegation "+byKey, ""); err == nil {
			t.Fatal("a delegation without a proof parsed")
		}
		if _, err := Parse("Delegation x", "p.r.s"); err == nil {
			t.Fatal("a delegation that is not a JWT parsed")
		}
	})
}

func mustClaims(t *testing.T, f *fixture) *Claims {
	t.Helper()
	c, err := VerifyToken(f.session.Token, f.keys, now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
