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
	keyID  = "0123456789abcdef0123456789abcdef"
	userID = "fedcba9876543210fedcba9876543210"
	partID = "00112233445566778899aabbccddeeff"
	cloudK = "cloudkey"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// fixture is a cloud signing key, an API key and a user's session.
type fixture struct {
	cloud   ed25519.PrivateKey
	keys    map[string]ed25519.PublicKey
	apiKey  *Key
	session *Key
}

func newFixture(t testing.TB) *fixture {
	f := &fixture{cloud: NewPrivateKey(), apiKey: APIKey(keyID, NewPrivateKey())}
	f.keys = map[string]ed25519.PublicKey{cloudK: f.cloud.Public().(ed25519.PublicKey)}
	sk := NewPrivateKey()
	tok, _, err := IssueToken(f.cloud, cloudK, userID, sk.Public().(ed25519.PublicKey), now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.session = Session(tok, sk)
	return f
}

// verify checks presented headers as a server with audience aud would.
func (f *fixture) verify(p Presented, aud string) (*ProofClaims, error) {
	if p.KeyID != "" {
		return VerifyKeyProof(p.Proof, p.KeyID, f.apiKey.PublicKey(), aud)
	}
	tc, err := VerifyToken(p.Token, f.keys, now)
	if err != nil {
		return nil, err
	}
	return VerifySessionProof(p.Proof, p.Token, tc, aud)
}

func TestParse(t *testing.T) {
	tests := []struct {
		auth, proof string
		want        Presented
		err         error
	}{
		{"", "", Presented{}, nil},
		{"APIKey " + keyID, "a.b.c", Presented{KeyID: keyID, Proof: "a.b.c"}, nil},
		{"dpop x.y.z", "a.b.c", Presented{Token: "x.y.z", Proof: "a.b.c"}, nil},
		{"Bearer " + keyID + ":s3cret", "", Presented{}, ErrLegacyKey},
		{"Bearer x.y.z", "", Presented{}, ErrLegacyToken},
		{"APIKey " + keyID, "", Presented{}, ErrBad},
		{"APIKey nothex", "a.b.c", Presented{}, ErrBad},
		{"DPoP x.y", "a.b.c", Presented{}, ErrBad},
		{"DPoP x.y.z", "", Presented{}, ErrBad},
		{"", "a.b.c", Presented{}, ErrBad},
		{"Basic dXNlcjpwYXNz", "a.b.c", Presented{}, ErrBad},
		{"DPoP " + strings.Repeat("a", MaxHeaderLen), "a.b.c", Presented{}, ErrBad},
	}
	for _, tc := range tests {
		got, err := Parse(tc.auth, tc.proof)
		if tc.err != nil {
			if !errors.Is(err, tc.err) || !errors.Is(err, ErrBad) {
				t.Errorf("Parse(%.40q, %q) = %v, %v; want %v", tc.auth, tc.proof, got, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error quotes the secret: %v", err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%.40q, %q) = %+v, %v; want %+v", tc.auth, tc.proof, got, err, tc.want)
		}
	}
}

func TestKeyStrings(t *testing.T) {
	f := newFixture(t)
	for _, k := range []*Key{f.apiKey, f.session} {
		got, err := ParseKey(k.String())
		if err != nil {
			t.Fatal(err)
		}
		if got.KeyID != k.KeyID || got.Token != k.Token || !got.PublicKey().Equal(k.PublicKey()) {
			t.Errorf("round trip of %s changed it", k.Authorization()[:6])
		}
	}
	if !strings.HasPrefix(f.apiKey.String(), "opk_"+keyID+"_") || !strings.HasPrefix(f.session.String(), "ops_") {
		t.Errorf("printed forms %.12q %.12q", f.apiKey.String(), f.session.String())
	}
	bad := []struct {
		s   string
		err error
	}{
		{keyID + ":secret", ErrLegacyKey},
		{"x.y.z", ErrLegacyToken},
		{"opk_" + keyID + "_short", ErrBad},
		{"opk_nothex_" + strings.Repeat("A", 43), ErrBad},
		{"ops_" + strings.Repeat("A", 43) + "_notatoken", ErrBad},
		{"ops_short", ErrBad},
		{"", ErrBad},
	}
	for _, tc := range bad {
		if _, err := ParseKey(tc.s); !errors.Is(err, tc.err) {
			t.Errorf("ParseKey(%q) = %v, want %v", tc.s, err, tc.err)
		}
	}
}

func TestProofs(t *testing.T) {
	f := newFixture(t)
	aud := TLSAudience("ab")
	for _, k := range []*Key{f.apiKey, f.session} {
		a, proof, err := k.Headers(aud, "nonce", now)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Parse(a, proof)
		if err != nil {
			t.Fatal(err)
		}
		c, err := f.verify(p, aud)
		if err != nil {
			t.Fatalf("%s: %v", a[:6], err)
		}
		if c.Nonce != "nonce" || c.Fresh(now) != nil || c.Fresh(now.Add(MaxProofTTL+ClockSkew)) == nil {
			t.Errorf("claims %+v", c)
		}
		// Captured by aud, replayed anywhere else.
		for _, other := range []string{AudienceCloud, TLSAudience("cd"), PartAudience(partID)} {
			if _, err := f.verify(p, other); !errors.Is(err, ErrBad) {
				t.Errorf("%s proof for %s accepted by %s: %v", a[:6], aud, other, err)
			}
		}
	}
	// A proof by another key, for the session's token or the API key's id.
	intruder := Session(f.session.Token, NewPrivateKey())
	_, proof, _ := intruder.Headers(aud, "", now)
	if _, err := f.verify(Presented{Token: f.session.Token, Proof: proof}, aud); !errors.Is(err, ErrBad) {
		t.Errorf("a stolen token with another key's proof: %v", err)
	}
	_, proof, _ = APIKey(keyID, NewPrivateKey()).Headers(aud, "", now)
	if _, err := f.verify(Presented{KeyID: keyID, Proof: proof}, aud); !errors.Is(err, ErrBad) {
		t.Errorf("an API key id with another key's proof: %v", err)
	}
	// A session's proof with another token of the same key.
	other, _, _ := IssueToken(f.cloud, cloudK, userID, f.session.PublicKey(), now, time.Minute)
	_, proof, _ = f.session.Headers(aud, "", now)
	if _, err := f.verify(Presented{Token: other, Proof: proof}, aud); !errors.Is(err, ErrBad) {
		t.Errorf("a proof for another token: %v", err)
	}
	// A key from before key pairs.
	if _, err := VerifyKeyProof(proof, keyID, nil, aud); !errors.Is(err, ErrLegacyKey) {
		t.Errorf("legacy key: %v", err)
	}
}

func TestTokens(t *testing.T) {
	f := newFixture(t)
	legacy := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.RegisteredClaims{Subject: userID,
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))})
	legacy.Header["kid"] = cloudK
	old, _ := legacy.SignedString(f.cloud)
	assertion, _ := SignAssertion(f.cloud, cloudK, "user/"+userID, partID, "sdp", now)
	tests := []struct {
		name  string
		token string
		at    time.Time
		err   error
	}{
		{"expired", f.session.Token, now.Add(time.Hour), ErrBad},
		{"unbound", old, now, ErrLegacyToken},
		{"assertion as token", assertion, now, ErrBad},
		{"unknown key", f.session.Token, now, ErrUnknownKey},
		{"alg none", "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ1MSJ9.", now, ErrBad},
	}
	for _, tc := range tests {
		keys := f.keys
		if tc.name == "unknown key" {
			keys = map[string]ed25519.PublicKey{"other": f.keys[cloudK]}
		}
		if _, err := VerifyToken(tc.token, keys, tc.at); !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
	if _, _, err := IssueToken(f.cloud, cloudK, userID, nil, now, time.Hour); err == nil {
		t.Error("issued a token bound to no key")
	}
}

func TestAssertion(t *testing.T) {
	f := newFixture(t)
	a, err := SignAssertion(f.cloud, cloudK, "apikey/"+keyID, partID, "v=0 offer", now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := VerifyAssertion(a, f.keys, partID, "v=0 offer", now.Add(30*time.Second))
	if err != nil || c.Subject != "apikey/"+keyID {
		t.Fatalf("%+v %v", c, err)
	}
	otherCloud := NewPrivateKey()
	forged, _ := SignAssertion(otherCloud, cloudK, "user/"+userID, partID, "v=0 offer", now)
	_, proof, _ := f.apiKey.Headers(PartAudience(partID), "", now)
	tests := []struct {
		name, a, part, sdp string
		at                 time.Time
	}{
		{"another part", a, "ffeeddccbbaa99887766554433221100", "v=0 offer", now},
		{"another offer", a, partID, "v=0 other", now},
		{"expired", a, partID, "v=0 offer", now.Add(AssertionTTL + ClockSkew)},
		{"before issue", a, partID, "v=0 offer", now.Add(-2 * ClockSkew)},
		{"forged", forged, partID, "v=0 offer", now},
		{"token as assertion", f.session.Token, partID, "v=0 offer", now},
		{"proof as assertion", proof, partID, "v=0 offer", now},
	}
	for _, tc := range tests {
		if _, err := VerifyAssertion(tc.a, f.keys, tc.part, tc.sdp, tc.at); !errors.Is(err, ErrBad) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestNonce(t *testing.T) {
	start := now.Add(-time.Hour)
	n := NewNonceIssuer(start)
	nonce := n.Issue(now)
	until, err := n.Check(nonce, now.Add(NonceTTL-time.Millisecond))
	if err != nil || !until.Equal(now.Add(NonceTTL)) {
		t.Fatalf("until %v, %v", until, err)
	}
	if _, err := n.Check(nonce, now.Add(NonceTTL)); !errors.Is(err, ErrBad) {
		t.Errorf("stale nonce: %v", err)
	}
	if _, err := NewNonceIssuer(start).Check(nonce, now); !errors.Is(err, ErrBad) {
		t.Errorf("another part's nonce: %v", err)
	}
	b := []byte(nonce)
	b[3] ^= 1
	for _, s := range []string{"", "x", string(b), nonce + "A"} {
		if _, err := n.Check(s, now); !errors.Is(err, ErrBad) {
			t.Errorf("Check(%q): %v", s, err)
		}
	}
}

func TestEndorsement(t *testing.T) {
	f := newFixture(t)
	keyOf := func(id string) ed25519.PublicKey {
		if id == keyID {
			return f.apiKey.PublicKey()
		}
		return nil
	}
	const machine = "m1"
	cfg := []byte("config bytes")
	for _, k := range []*Key{f.apiKey, f.session} {
		e, err := k.Endorse(machine, 3, cfg, now.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		sub, err := VerifyEndorsement(e, keyOf, f.keys, machine, 3, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{true: "apikey/" + keyID, false: "user/" + userID}[k.KeyID != ""]; sub != want {
			t.Errorf("subject %q, want %q", sub, want)
		}
		for _, tc := range []struct {
			m    string
			base uint64
			cfg  []byte
		}{{"m2", 3, cfg}, {machine, 4, cfg}, {machine, 3, []byte("other")}} {
			if _, err := VerifyEndorsement(e, keyOf, f.keys, tc.m, tc.base, tc.cfg, nil); !errors.Is(err, ErrBad) {
				t.Errorf("endorsement moved to %v: %v", tc, err)
			}
		}
	}
	// A session key signing after its token expired, or a key nobody knows.
	late, _ := f.session.Endorse(machine, 3, cfg, now.Add(2*time.Hour))
	stranger, _ := APIKey("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NewPrivateKey()).Endorse(machine, 3, cfg, now)
	both := late
	both.KeyID = keyID
	for name, e := range map[string]Endorsement{"late": late, "stranger": stranger, "both": both, "none": {}} {
		if _, err := VerifyEndorsement(e, keyOf, f.keys, machine, 3, cfg, nil); !errors.Is(err, ErrBad) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSecretMatches(t *testing.T) {
	h := SecretHash("right")
	if !SecretMatches("right", h) || SecretMatches("wrong", h) || SecretMatches("right", h[:31]) {
		t.Fatal("SecretMatches is wrong")
	}
}
