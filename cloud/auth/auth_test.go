package auth

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/credential"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

var sessionKey = credential.NewPrivateKey().Public().(ed25519.PublicKey)

func TestTokenRoundTrip(t *testing.T) {
	s, err := NewSigner(GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	tok, exp, err := s.Issue("u1", sessionKey, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(now.Add(DefaultTokenTTL)) {
		t.Errorf("expiry %v", exp)
	}
	c, err := s.Verify(tok, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "u1" || c.ID == "" {
		t.Errorf("claims %+v", c)
	}
	other, _ := NewSigner(GenerateKey())
	tests := []struct {
		name  string
		token string
		at    time.Time
	}{
		{"expired", tok, now.Add(DefaultTokenTTL + time.Second)},
		{"other key", func() string { x, _, _ := other.Issue("u1", sessionKey, now, 0); return x }(), now},
		{"tampered", tamper(tok), now},
		{"alg none", "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ1MSJ9.", now},
		{"garbage", "a.b.c", now},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Verify(tc.token, tc.at); !errors.Is(err, ErrBadCredential) {
				t.Fatalf("got %v, want ErrBadCredential", err)
			}
		})
	}
}

func TestTokenLifetimeCapped(t *testing.T) {
	s, _ := NewSigner(GenerateKey())
	_, exp, err := s.Issue("u1", sessionKey, now, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(now.Add(MaxTokenTTL)) {
		t.Fatalf("expiry %v, want 60 days", exp)
	}
}

func FuzzVerify(f *testing.F) {
	s, _ := NewSigner(GenerateKey())
	tok, _, _ := s.Issue("u1", sessionKey, now, 0)
	f.Add(tok)
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := s.Verify(token, now)
		if err == nil && token != tok && c.Subject == "" {
			t.Fatal("accepted a token without a subject")
		}
	})
}

func TestPassword(t *testing.T) {
	h := HashPassword("correct horse battery")
	if !strings.HasPrefix(h, "$argon2id$v=19$") {
		t.Fatalf("hash %q", h)
	}
	if err := CheckPassword(h, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	if err := CheckPassword(h, "wrong horse battery"); !errors.Is(err, ErrPasswordMismatch) {
		t.Fatalf("wrong password: %v", err)
	}
	if err := CheckPassword("$argon2id$v=19$m=99999999,t=1,p=1$AA$AA", "x"); err == nil {
		t.Fatal("accepted absurd parameters")
	}
	if err := ValidatePassword("short"); err == nil {
		t.Fatal("accepted a short password")
	}
}

func TestSecrets(t *testing.T) {
	s := NewSecret()
	if len(s) != 43 {
		t.Fatalf("secret %d chars, want 43 (256 bits)", len(s))
	}
	if !SecretMatches(s, HashSecret(s)) || SecretMatches(s+"x", HashSecret(s)) || SecretMatches(s, nil) {
		t.Fatal("SecretMatches")
	}
}

func TestThrottle(t *testing.T) {
	th := NewThrottle()
	at := now
	for range th.Free {
		if w := th.Wait("k", at); w != 0 {
			t.Fatalf("waited %v within the free failures", w)
		}
		th.Fail("k", at)
	}
	th.Fail("k", at)
	if w := th.Wait("k", at); w != time.Second {
		t.Fatalf("after 6 failures wait %v, want 1s", w)
	}
	th.Fail("k", at)
	if w := th.Wait("k", at); w != 2*time.Second {
		t.Fatalf("after 7 failures wait %v, want 2s", w)
	}
	if w := th.Wait("other", at); w != 0 {
		t.Fatalf("other key waits %v", w)
	}
	for range 40 {
		th.Fail("k", at)
	}
	if w := th.Wait("k", at); w != th.Max {
		t.Fatalf("capped wait %v", w)
	}
	if w := th.Wait("k", at.Add(th.Max)); w != 0 {
		t.Fatalf("after the wait: %v", w)
	}
	th.Succeed("k")
	if w := th.Wait("k", at); w != 0 {
		t.Fatalf("after success: %v", w)
	}
}

// tamper changes one character in the middle of the signature (the last
// base64 characters carry padding bits, so changing them may change nothing).
func tamper(tok string) string {
	b := []byte(tok)
	i := len(b) - 20
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}
