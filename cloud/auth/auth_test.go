package auth

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/credential"
	"golang.org/x/crypto/argon2"
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

// TestHasherBoundsMemory: concurrent checks never use more than the budget
// at once; those that cannot wait fail with ErrBusy, never otherwise.
func TestHasherBoundsMemory(t *testing.T) {
	// Cheap parameters (64 KiB, one pass) keep the test fast; the budget
	// is two of them.
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte("correct horse battery"), salt, 1, 64, 1, 32)
	enc := base64.RawStdEncoding
	hash := fmt.Sprintf("$argon2id$v=%d$m=64,t=1,p=1$%s$%s", argon2.Version, enc.EncodeToString(salt), enc.EncodeToString(key))
	h := NewHasher(2 * 64 * 1024)
	var wg sync.WaitGroup
	var ok, busy, other atomic.Int64
	for range 40 {
		wg.Go(func() {
			switch err := h.Check(context.Background(), hash, "correct horse battery"); {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrBusy):
				busy.Add(1)
			default:
				other.Add(1)
			}
		})
	}
	wg.Wait()
	if p := h.peak.Load(); p > 2 || p < 1 {
		t.Fatalf("%d hashes ran at once, want at most 2", p)
	}
	if other.Load() != 0 || ok.Load() < 2 || ok.Load()+busy.Load() != 40 {
		t.Fatalf("ok %d busy %d other %d", ok.Load(), busy.Load(), other.Load())
	}
	// A hash whose memory passes the whole budget still runs, alone.
	big := strings.Replace(hash, "m=64", "m=1024", 1)
	if err := h.Check(context.Background(), big, "x"); !errors.Is(err, ErrPasswordMismatch) {
		t.Fatalf("a larger hash: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Hash(ctx, "correct horse battery"); err != nil {
		t.Fatalf("a free slot is taken without waiting, whatever the context: %v", err)
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
