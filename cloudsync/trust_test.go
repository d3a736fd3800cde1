package cloudsync

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/signed"
)

func seededSigner(id string, seed byte) signed.Signer {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed
	}
	return signed.Signer{KeyID: id, Key: ed25519.NewKeyFromSeed(s)}
}

func TestTrust(t *testing.T) {
	cloud := seededSigner("k1", 1)
	keys := signed.Keys{"k1": cloud.Key.Public().(ed25519.PublicKey)}
	f := clock.NewFake(cloudEpoch)
	oc := NewOfflineClock(f, cache.OfflineClock{})
	oc.Contact(cloudEpoch)
	tr := NewTrust("part-1", keys, oc)

	bundle := func(part string, version uint64, expires time.Time) *syncv1.SignedDocument {
		d, err := cloud.Sign(&syncv1.GrantBundle{PartId: part, Version: version, IssuedAt: timestamppb.New(cloudEpoch), ExpiresAt: timestamppb.New(expires)})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	later := cloudEpoch.Add(60 * 24 * time.Hour)
	tests := []struct {
		name   string
		doc    *syncv1.SignedDocument
		held   uint64
		reload bool
		want   error
	}{
		{"new", bundle("part-1", 5, later), 4, false, nil},
		{"first", bundle("part-1", 1, later), 0, false, nil},
		{"replayed older", bundle("part-1", 3, later), 4, false, ErrRollback},
		{"replayed same", bundle("part-1", 4, later), 4, false, ErrRollback},
		{"reload of the held one", bundle("part-1", 4, later), 4, true, nil},
		{"stored doc swapped for an older one", bundle("part-1", 3, later), 4, true, ErrRollback},
		{"other part", bundle("part-2", 5, later), 4, false, ErrWrongPart},
		{"expired", bundle("part-1", 5, cloudEpoch.Add(-time.Second)), 4, false, ErrExpired},
		{"forged", func() *syncv1.SignedDocument {
			d, _ := seededSigner("k1", 9).Sign(&syncv1.GrantBundle{PartId: "part-1", Version: 9, ExpiresAt: timestamppb.New(later)})
			return d
		}(), 4, false, signed.ErrBadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tr.Grants(tc.doc, tc.held, tc.reload)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Grants = %v, want %v", err, tc.want)
			}
		})
	}

	// A config signed as a grant bundle's type cannot pass as config.
	if _, err := tr.Config(bundle("part-1", 9, later), 0, false); !errors.Is(err, signed.ErrWrongType) {
		t.Fatalf("bundle accepted as config: %v", err)
	}

	// Day 59 in force, day 60 expired, and setting the clock back does not help.
	doc := bundle("part-1", 10, later)
	f.Advance(59 * 24 * time.Hour)
	if _, err := tr.Grants(doc, 0, false); err != nil {
		t.Fatalf("day 59: %v", err)
	}
	f.Advance(24 * time.Hour)
	f.SetWall(cloudEpoch)
	if _, err := tr.Grants(doc, 0, false); !errors.Is(err, ErrExpired) {
		t.Fatalf("day 60 with the clock set back: %v, want expired", err)
	}
}

// FuzzTrustRestart feeds Trust.Restart documents signed with the cloud's
// key over any payload: it never panics, and returns an order only for
// this part, with an id and valid times, with ErrExpired exactly when the
// order is past its expiry.
func FuzzTrustRestart(f *testing.F) {
	cloud := seededSigner("k1", 1)
	keys := signed.Keys{"k1": cloud.Key.Public().(ed25519.PublicKey)}
	oc := NewOfflineClock(clock.NewFake(cloudEpoch), cache.OfflineClock{})
	oc.Contact(cloudEpoch)
	tr := NewTrust("part-1", keys, oc)
	seed := func(o *syncv1.RestartOrder) {
		b, err := proto.Marshal(o)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	at := timestamppb.New(cloudEpoch)
	seed(&syncv1.RestartOrder{PartId: "part-1", Id: "0123456789abcdef0123456789abcdef", RequestedAt: at, ExpiresAt: timestamppb.New(cloudEpoch.Add(time.Hour))})
	seed(&syncv1.RestartOrder{PartId: "part-1", Id: "x", RequestedAt: at, ExpiresAt: at})
	seed(&syncv1.RestartOrder{PartId: "part-2", Id: "x"})
	f.Fuzz(func(t *testing.T, payload []byte) {
		// The fuzzed payload, signed by the cloud as a restart order: what
		// the signature covers is the type, a zero byte and the payload.
		typ := "outpost.sync.v1.RestartOrder"
		doc := &syncv1.SignedDocument{Type: typ, Payload: payload, KeyId: "k1",
			Signature: ed25519.Sign(cloud.Key, append([]byte(typ+"\x00"), payload...))}
		o, err := tr.Restart(doc)
		if o == nil {
			if err == nil {
				t.Fatal("no order and no error")
			}
			return
		}
		if o.GetPartId() != "part-1" || o.GetId() == "" || o.GetRequestedAt().CheckValid() != nil || o.GetExpiresAt().CheckValid() != nil {
			t.Fatalf("accepted %v", o)
		}
		if expired := !cloudEpoch.Before(o.GetExpiresAt().AsTime()); expired != errors.Is(err, ErrExpired) || (err != nil && !expired) {
			t.Fatalf("order expiring at %v: %v", o.GetExpiresAt().AsTime(), err)
		}
	})
}
