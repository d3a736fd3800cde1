package control

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/controlclient"
	"github.com/outpost-robotics/outpost/credential"
)

// delegatedCall calls procedure on e (POST, Connect JSON) with a
// delegation and a proof by priv carrying e's fresh nonce; it returns the
// Connect code ("" for success) and message.
func delegatedCall(t *testing.T, e *env, procedure, del string, priv ed25519.PrivateKey, aud string) (string, string) {
	t.Helper()
	nonce, err := controlclient.HealthNonce(e.client, "https://"+e.addr)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	proof, err := credential.DelegatedProof(priv, del, aud, nonce, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	req, err := newJSONRequest("https://"+e.addr+procedure, credential.DelegationScheme+" "+del, proof)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connect-Protocol-Version", "1")
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct{ Code, Message, Subject, Credential string }
	_ = json.NewDecoder(res.Body).Decode(&body)
	if res.StatusCode == http.StatusOK {
		return "", body.Subject + " " + body.Credential
	}
	return body.Code, body.Message
}

// TestConsoleDelegation: calls made with a console's delegation are decided
// as its delegator's, on the part it names only, for its lifetime, while
// its key stands in the bundle; a delegation for another part, expired,
// of another type, tampered, proved by another key, or signed by a revoked
// key is refused.
func TestConsoleDelegation(t *testing.T) {
	e := newEnv(t)
	other := newEnvOf(t, e.creds, "p2", nil)
	pub, priv, _ := ed25519.GenerateKey(nil)
	aud := credential.TLSAudience(e.srv.Fingerprint())
	delegate := func(printed, fp string) string {
		k, err := credential.ParseKey(printed)
		if err != nil {
			t.Fatal(err)
		}
		d, _, err := k.Delegate(fp, pub, e.clock.Now(), time.Hour, k.TokenExpiry())
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	byOp := delegate(e.creds.key(opKey), e.srv.Fingerprint())
	byUser := delegate(e.creds.token(ownerUser, tokenKID, e.creds.signer, t0), e.srv.Fingerprint())
	byGone := delegate(e.creds.key(goneKey), e.srv.Fingerprint())
	forOther := delegate(e.creds.key(opKey), other.srv.Fingerprint())
	sessionProof, _ := credential.Session("a.b.c", e.creds.session).Proof(aud, "n", t0)
	tampered := byOp[:len(byOp)-4] + "AAAA"

	const whoami = "/outpost.control.v1.ControlService/WhoAmI"
	tests := []struct {
		name, procedure, del string
		key                  ed25519.PrivateKey
		on                   *env
		code, says           string
	}{
		{"operator's key", whoami, byOp, priv, e, "", "apikey/" + opKey + " delegation"},
		{"owner's session", whoami, byUser, priv, e, "", "user/" + ownerUser + " delegation"},
		{"operator may drive", "/outpost.control.v1.ComponentService/Stop", byOp, priv, e, "", ""},
		{"operator refused config with the seed's reason", "/outpost.control.v1.ControlService/GetConfig", byOp, priv, e, "permission_denied", "apikey/" + opKey + " may not machine.view machine/m1: as operator"},
		{"on another part", whoami, byOp, priv, other, "unauthenticated", "another part"},
		{"for another part", whoami, forOther, priv, e, "unauthenticated", "another part"},
		{"wrong typ", whoami, sessionProof, priv, e, "unauthenticated", "typ"},
		{"tampered", whoami, tampered, priv, e, "unauthenticated", "verify delegation"},
		{"proved by another key", whoami, byOp, credential.NewPrivateKey(), e, "unauthenticated", "delegated key"},
		{"signed by a revoked key", whoami, byGone, priv, e, "unauthenticated", "revoked"},
	}
	// goneKey was revoked at the cloud: the part's next bundle lacks it.
	e.grants.set(e.creds.bundle(2, t0, goneKey))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := credential.TLSAudience(tt.on.srv.Fingerprint())
			code, msg := delegatedCall(t, tt.on, tt.procedure, tt.del, tt.key, a)
			if code != tt.code || !strings.Contains(msg, tt.says) {
				t.Fatalf("got %q %q, want %q saying %q", code, msg, tt.code, tt.says)
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		e.clock.Advance(time.Hour)
		code, msg := delegatedCall(t, e, whoami, byOp, priv, aud)
		if code != "unauthenticated" || !strings.Contains(msg, "expired") {
			t.Fatalf("got %q %q after the delegation's hour", code, msg)
		}
	})
}

// TestConsoleIsServed: with a console, the TLS port serves it for every
// GET that is not a procedure, and the procedures as before.
func TestConsoleIsServed(t *testing.T) {
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "console "+r.URL.Path) })
	e := newEnvWith(t, func(o *Options) { o.Console = console })
	get := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, "https://"+e.addr+path, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		res, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get(http.MethodGet, "/control"); code != http.StatusOK || body != "console /control" {
		t.Errorf("GET /control: %d %q", code, body)
	}
	if code, body := get(http.MethodPost, "/outpost.control.v1.ControlService/Health"); code != http.StatusOK || !strings.Contains(body, "serving") {
		t.Errorf("POST Health: %d %q", code, body)
	}
	if code, _ := get(http.MethodPost, "/control"); code != http.StatusNotFound {
		t.Errorf("POST /control: %d, want the API's not found", code)
	}
	if code, body := get(http.MethodGet, "/outpost.control.v1.ControlService/Status?encoding=json&message=%7B%7D"); code != http.StatusUnauthorized || strings.HasPrefix(body, "console") {
		t.Errorf("GET on a procedure: %d %q, want the API's refusal", code, body)
	}
}
