package credential

import (
	"crypto/ed25519"
	"testing"
	"time"
)

func FuzzParse(f *testing.F) {
	f.Add("APIKey "+keyID, "a.b.c")
	f.Add("DPoP x.y.z", "a.b.c")
	f.Add("Bearer "+keyID+":s", "")
	f.Fuzz(func(t *testing.T, auth, proof string) {
		p, err := Parse(auth, proof)
		if err == nil && !p.IsZero() && p.Proof == "" {
			t.Fatal("accepted a credential without a proof")
		}
	})
}

func FuzzParseKey(f *testing.F) {
	fx := newFixture(f)
	f.Add(fx.apiKey.String())
	f.Add(fx.session.String())
	f.Add(keyID + ":secret")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err == nil && (k.KeyID == "") == (k.Token == "") {
			t.Fatal("a key is an API key or a session, exactly one")
		}
	})
}

func FuzzVerifyProof(f *testing.F) {
	fx := newFixture(f)
	_, kp, _ := fx.apiKey.Headers(AudienceCloud, "", now)
	_, sp, _ := fx.session.Headers(AudienceCloud, "", now)
	f.Add(kp, fx.session.Token)
	f.Add(sp, fx.session.Token)
	f.Fuzz(func(t *testing.T, proof, token string) {
		if _, err := VerifyKeyProof(proof, keyID, fx.apiKey.PublicKey(), AudienceCloud); err == nil && proof != kp {
			t.Fatal("accepted a proof nobody made")
		}
		tc, err := VerifyToken(token, fx.keys, now)
		if err != nil {
			return
		}
		if _, err := VerifySessionProof(proof, token, tc, AudienceCloud); err == nil && proof != sp {
			t.Fatal("accepted a session proof nobody made")
		}
	})
}

func FuzzVerifyAssertion(f *testing.F) {
	fx := newFixture(f)
	a, _ := SignAssertion(fx.cloud, cloudK, "user/"+userID, partID, "sdp", now)
	f.Add(a, "sdp")
	f.Fuzz(func(t *testing.T, a2, sdp string) {
		c, err := VerifyAssertion(a2, fx.keys, partID, sdp, now)
		if err == nil && (a2 != a || c.Subject != "user/"+userID) {
			t.Fatal("accepted an assertion the cloud did not make")
		}
	})
}

func FuzzNonce(f *testing.F) {
	n := NewNonceIssuer(now)
	good := n.Issue(now)
	f.Add(good)
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := n.Check(s, now); err == nil && s != good {
			t.Fatal("accepted a nonce the part did not make")
		}
	})
}

func FuzzVerifyEndorsement(f *testing.F) {
	fx := newFixture(f)
	e, _ := fx.session.Endorse("m", 1, []byte("c"), now)
	f.Add(e.Signature, e.Token, "")
	f.Fuzz(func(t *testing.T, sig, token, kid string) {
		keyOf := func(string) ed25519.PublicKey { return fx.apiKey.PublicKey() }
		got := Endorsement{KeyID: kid, Token: token, Signature: sig}
		if _, err := VerifyEndorsement(got, keyOf, fx.keys, "m", 1, []byte("c"), nil); err == nil && got != e {
			t.Fatal("accepted an endorsement nobody made")
		}
	})
}

func FuzzVerifyBrowserSession(f *testing.F) {
	fx := newFixture(f)
	tok, _, _ := IssueBrowserSession(fx.cloud, cloudK, userID, now, time.Hour)
	f.Add(tok)
	f.Add(fx.session.Token)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := VerifyBrowserSession(s, fx.keys, now)
		if err == nil && (s != tok || c.Subject != userID) {
			t.Fatal("accepted a browser session the cloud did not make")
		}
	})
}

func FuzzVerifyDelegated(f *testing.F) {
	fx := newFixture(f)
	eph := NewPrivateKey()
	d, _, _ := fx.apiKey.Delegate(fpHere, eph.Public().(ed25519.PublicKey), now, time.Hour, time.Time{})
	p, _ := DelegatedProof(eph, d, TLSAudience(fpHere), "n", now)
	f.Add(d, p)
	f.Fuzz(func(t *testing.T, del, proof string) {
		got, _, err := fx.delegationVerifier(false).VerifyDelegated(del, proof, now)
		if err == nil && (del != d || got.Subject != "apikey/"+keyID) {
			t.Fatal("accepted a delegation nobody made")
		}
	})
}
