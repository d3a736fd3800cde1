// Package signed signs and verifies the documents the cloud sends to parts,
// which trust nothing from the cloud unsigned: a serialized protobuf message, its type name, the id
// of the key that signed it, and an Ed25519 signature over type and payload.
//
// The cloud signs; the daemon's sync package verifies before it stores a
// document and again whenever it loads one. Binding the type into the
// signature means a grant bundle can never be replayed as a config, or the
// reverse. Version and expiry checks are the caller's: they need the part's
// offline clock, which this package does not have.
package signed

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
)

// Errors a verification can end in; every error Verify returns wraps one.
var (
	ErrMalformed    = errors.New("malformed signed document")
	ErrUnknownKey   = errors.New("signed by an unknown key")
	ErrBadSignature = errors.New("signature does not verify")
	ErrWrongType    = errors.New("document of the wrong type")
)

// MaxPayload bounds what Verify accepts, so a hostile cloud or a corrupted
// store cannot make the daemon allocate without limit.
const MaxPayload = 16 << 20

// Keys is a set of trusted Ed25519 public keys by key id.
type Keys map[string]ed25519.PublicKey

// KeysFromProto builds a key set from the keys of a bootstrap file or bundle,
// refusing malformed or duplicate entries.
func KeysFromProto(pks []*syncv1.PublicKey) (Keys, error) {
	keys := make(Keys, len(pks))
	for i, pk := range pks {
		id := pk.GetKeyId()
		if id == "" {
			return nil, fmt.Errorf("key %d: empty key id", i)
		}
		if len(pk.GetEd25519()) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("key %q: %d bytes, want a %d-byte Ed25519 public key", id, len(pk.GetEd25519()), ed25519.PublicKeySize)
		}
		if _, dup := keys[id]; dup {
			return nil, fmt.Errorf("key %q listed twice", id)
		}
		keys[id] = ed25519.PublicKey(pk.GetEd25519())
	}
	return keys, nil
}

// Signer signs documents with one private key.
type Signer struct {
	// KeyID names the key, so parts can pick the public key to verify with.
	KeyID string
	// Key is the Ed25519 private key.
	Key ed25519.PrivateKey
}

// PublicKey returns the signer's public key in its wire form.
func (s Signer) PublicKey() *syncv1.PublicKey {
	return &syncv1.PublicKey{KeyId: s.KeyID, Ed25519: s.Key.Public().(ed25519.PublicKey)}
}

// Sign serializes m deterministically and signs it.
func (s Signer) Sign(m proto.Message) (*syncv1.SignedDocument, error) {
	if len(s.Key) != ed25519.PrivateKeySize || s.KeyID == "" {
		return nil, errors.New("sign: signer has no key or key id")
	}
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("sign: serialize %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	typ := string(m.ProtoReflect().Descriptor().FullName())
	return &syncv1.SignedDocument{
		Type:      typ,
		Payload:   payload,
		KeyId:     s.KeyID,
		Signature: ed25519.Sign(s.Key, message(typ, payload)),
	}, nil
}

// Verify checks doc against keys and, when it verifies, decodes its payload
// into into, whose type must be the document's.
func Verify(keys Keys, doc *syncv1.SignedDocument, into proto.Message) error {
	want := string(into.ProtoReflect().Descriptor().FullName())
	switch {
	case doc == nil:
		return fmt.Errorf("verify %s: no document: %w", want, ErrMalformed)
	case len(doc.GetPayload()) > MaxPayload:
		return fmt.Errorf("verify %s: payload of %d bytes exceeds %d: %w", want, len(doc.GetPayload()), MaxPayload, ErrMalformed)
	case len(doc.GetSignature()) != ed25519.SignatureSize:
		return fmt.Errorf("verify %s: signature of %d bytes: %w", want, len(doc.GetSignature()), ErrMalformed)
	case doc.GetType() != want:
		return fmt.Errorf("verify: got a %q document where a %q was expected: %w", doc.GetType(), want, ErrWrongType)
	}
	key, ok := keys[doc.GetKeyId()]
	if !ok {
		return fmt.Errorf("verify %s: key id %q is not among the %d trusted keys: %w", want, doc.GetKeyId(), len(keys), ErrUnknownKey)
	}
	if !ed25519.Verify(key, message(doc.GetType(), doc.GetPayload()), doc.GetSignature()) {
		return fmt.Errorf("verify %s signed by %q: %w", want, doc.GetKeyId(), ErrBadSignature)
	}
	if err := proto.Unmarshal(doc.GetPayload(), into); err != nil {
		// A valid signature over bytes that do not decode is the cloud's bug,
		// but still nothing to act on.
		return fmt.Errorf("verify %s: decode payload: %v: %w", want, err, ErrMalformed)
	}
	return nil
}

// message is what the signature covers: the type name, a zero byte (type
// names never contain one), and the payload.
func message(typ string, payload []byte) []byte {
	b := make([]byte, 0, len(typ)+1+len(payload))
	b = append(b, typ...)
	b = append(b, 0)
	return append(b, payload...)
}
