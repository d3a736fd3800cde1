package signed

import (
	"crypto/ed25519"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
)

// testSigner derives a key from a fixed seed so failures reproduce.
func testSigner(id string, seed byte) Signer {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed
	}
	return Signer{KeyID: id, Key: ed25519.NewKeyFromSeed(s)}
}

func TestVerify(t *testing.T) {
	cloud := testSigner("k1", 1)
	rogue := testSigner("k1", 2) // same id, different key: a spoofed cloud
	other := testSigner("k9", 3)
	keys, err := KeysFromProto([]*syncv1.PublicKey{cloud.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	bundle := &syncv1.GrantBundle{PartId: "p1", MachineId: "m1", Version: 7}
	good, err := cloud.Sign(bundle)
	if err != nil {
		t.Fatal(err)
	}
	tampered := proto.Clone(good).(*syncv1.SignedDocument)
	tampered.Payload = append([]byte(nil), good.Payload...)
	tampered.Payload[len(tampered.Payload)-1] ^= 1
	retyped := proto.Clone(good).(*syncv1.SignedDocument)
	retyped.Type = "outpost.sync.v1.ConfigDocument"
	forged, _ := rogue.Sign(bundle)
	unknown, _ := other.Sign(bundle)
	configDoc, _ := cloud.Sign(&syncv1.ConfigDocument{PartId: "p1", Version: 7})
	huge := proto.Clone(good).(*syncv1.SignedDocument)
	huge.Payload = make([]byte, MaxPayload+1)

	tests := []struct {
		name string
		doc  *syncv1.SignedDocument
		want error
	}{
		{"good", good, nil},
		{"tampered payload", tampered, ErrBadSignature},
		{"type changed", retyped, ErrWrongType},
		{"config passed off as bundle", configDoc, ErrWrongType},
		{"forged with a known key id", forged, ErrBadSignature},
		{"unknown key", unknown, ErrUnknownKey},
		{"nil", nil, ErrMalformed},
		{"no signature", &syncv1.SignedDocument{Type: "outpost.sync.v1.GrantBundle", KeyId: "k1"}, ErrMalformed},
		{"oversized", huge, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got syncv1.GrantBundle
			err := Verify(keys, tc.doc, &got)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			if tc.want == nil && !proto.Equal(&got, bundle) {
				t.Fatalf("decoded %v, want %v", &got, bundle)
			}
		})
	}
}

func TestKeysFromProtoRefusesBadKeys(t *testing.T) {
	good := testSigner("k1", 1).PublicKey()
	tests := []struct {
		name string
		keys []*syncv1.PublicKey
	}{
		{"empty id", []*syncv1.PublicKey{{Ed25519: good.Ed25519}}},
		{"short key", []*syncv1.PublicKey{{KeyId: "k", Ed25519: []byte{1, 2, 3}}}},
		{"duplicate", []*syncv1.PublicKey{good, good}},
	}
	for _, tc := range tests {
		if _, err := KeysFromProto(tc.keys); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestSignIsDeterministic(t *testing.T) {
	s := testSigner("k1", 1)
	m := &syncv1.GrantBundle{PartId: "p", Principals: []*syncv1.Principal{{Id: "a"}, {Id: "b"}}}
	a, _ := s.Sign(m)
	b, _ := s.Sign(m)
	if !proto.Equal(a, b) {
		t.Fatal("two signatures of one message differ")
	}
}

// FuzzVerify feeds arbitrary documents to Verify: it must never panic, and
// must never accept a document the trusted key did not sign.
func FuzzVerify(f *testing.F) {
	s := testSigner("k1", 1)
	keys := Keys{"k1": s.Key.Public().(ed25519.PublicKey)}
	good, _ := s.Sign(&syncv1.GrantBundle{PartId: "p1", Version: 3})
	raw, _ := proto.Marshal(good)
	f.Add(raw)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var doc syncv1.SignedDocument
		if proto.Unmarshal(b, &doc) != nil {
			return
		}
		var got syncv1.GrantBundle
		if Verify(keys, &doc, &got) == nil && !ed25519.Verify(keys["k1"], message(doc.Type, doc.Payload), doc.Signature) {
			t.Fatal("accepted a document that does not verify")
		}
	})
}
