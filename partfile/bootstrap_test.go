package partfile

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const secret = "s3cr3t-0123456789abcdef0123456789abcdef"

func goodFile() string {
	pub := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	return `{
  "cloudUrl": "https://cloud.example.com",
  "partId": "part-1",
  "partSecret": "` + secret + `",
  "cloudKeys": [{"keyId": "k1", "ed25519": "` + base64.StdEncoding.EncodeToString(pub) + `"}]
}`
}

func TestParseBootstrap(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(string) string
		wantField string // "" with wantErr means a whole-file error
		wantErr   bool
	}{
		{"good", func(s string) string { return s }, "", false},
		{"not json", func(string) string { return "{" }, "", true},
		{"unknown field", func(s string) string { return strings.Replace(s, `"partId"`, `"partid2"`, 1) }, "", true},
		{"no url", func(s string) string { return strings.Replace(s, "https://cloud.example.com", "", 1) }, "cloud_url", true},
		{"ftp url", func(s string) string { return strings.Replace(s, "https://", "ftp://", 1) }, "cloud_url", true},
		{"credentials in url", func(s string) string { return strings.Replace(s, "https://", "https://u:p@", 1) }, "cloud_url", true},
		{"bad part id", func(s string) string { return strings.Replace(s, "part-1", "part 1", 1) }, "part_id", true},
		{"short secret", func(s string) string { return strings.Replace(s, secret, "short", 1) }, "part_secret", true},
		{"no keys", func(s string) string {
			return s[:strings.Index(s, `,
  "cloudKeys"`)] + "}"
		}, "cloud_keys", true},
		{"short key", func(s string) string {
			key := s[strings.Index(s, `"ed25519": "`):strings.LastIndex(s, `"}]`)]
			return strings.Replace(s, key, `"ed25519": "AAAA`, 1)
		}, "cloud_keys", true},
		{"relative ca", func(s string) string { return strings.Replace(s, `"partId"`, `"caFile": "ca.pem", "partId"`, 1) }, "ca_file", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ParseBootstrap("/etc/outpost/outpostd.json", []byte(tc.edit(goodFile())))
			if !tc.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				if b.File.GetPartId() != "part-1" || len(b.Keys) != 1 {
					t.Fatalf("parsed %v", b.File)
				}
				return
			}
			var be *BootstrapError
			if !errors.As(err, &be) {
				t.Fatalf("error %v is not a BootstrapError", err)
			}
			if be.Field != tc.wantField {
				t.Fatalf("field %q, want %q (%v)", be.Field, tc.wantField, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "/etc/outpost/outpostd.json") || strings.Contains(msg, "\n") {
				t.Fatalf("error must be one line naming the file: %q", msg)
			}
			if strings.Contains(msg, secret) {
				t.Fatalf("error leaks the secret: %q", msg)
			}
		})
	}
}

func TestLoadBootstrapFileProblems(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.json")
	if _, err := LoadBootstrap(missing); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing file: %v", err)
	}
	open := filepath.Join(dir, "open.json")
	if err := os.WriteFile(open, []byte(goodFile()), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBootstrap(open); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable file: %v", err)
	}
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, []byte(goodFile()), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBootstrap(good); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.json")
	if err := os.WriteFile(huge, make([]byte, MaxBootstrapBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBootstrap(huge); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("huge file: %v", err)
	}
}

// FuzzParseBootstrap: no input panics, every error is one line naming the
// file, and no error quotes the secret.
func FuzzParseBootstrap(f *testing.F) {
	f.Add([]byte(goodFile()))
	f.Add([]byte(`{"partSecret": "` + secret + `"`))
	f.Add([]byte(`{"partSecret": ` + secret + `}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := ParseBootstrap("f.json", data)
		if err == nil {
			return
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "bootstrap file f.json") {
			t.Fatalf("bad error shape: %q", msg)
		}
		if strings.Contains(msg, secret) {
			t.Fatalf("error quotes the secret: %q", msg)
		}
	})
}

func TestCheckCloudURLNeverQuotesTheURL(t *testing.T) {
	for _, raw := range []string{"", "ftp://user:hunter2@cloud.example.com", "https://user:hunter2@cloud.example.com", "https://cloud.example.com/?token=hunter2", "hunter2"} {
		err := CheckCloudURL(raw)
		if err == nil {
			t.Errorf("%q accepted", raw)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error for %q quotes it: %v", raw, err)
		}
	}
	for _, ok := range []string{"https://cloud.example.com", "http://127.0.0.1:8080", "https://cloud.example.com/outpost/"} {
		if err := CheckCloudURL(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
}
