package cloud_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/credential"
)

// endorse is what the editor's client (outpost robot config edit) sends
// with an edit: its signature over the machine, the base and the config.
func endorse(t *testing.T, key, machine string, base uint64, cfg *configv1.RobotConfig) *syncv1.Endorsement {
	t.Helper()
	k, err := credential.ParseKey(key)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := k.Endorse(machine, base, raw, epoch)
	if err != nil {
		t.Fatal(err)
	}
	return &syncv1.Endorsement{KeyId: e.KeyID, AccessToken: e.Token, Signature: e.Signature}
}

// TestProposalsNeedAnEditorsSignature: a part's offline edit becomes a
// revision only with the signature of someone who may edit the machine's
// config. The part's secret alone, with whatever author text it likes, an
// operator's signature, an owner's signature on another config, another
// machine or another base: each waits for an owner, and the author shown is
// never the part's text. An owner's signature, by session or by API key,
// makes a revision authored by that owner.
func TestProposalsNeedAnEditorsSignature(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	f := newFleet(t, e)
	admin := e.client(e.adminToken)
	p := e.part(t, f.boot)
	p.pull(t)
	ownerKey := check(admin.APIKey.CreateAPIKey(ctx, req(&fleetv1.CreateAPIKeyRequest{Name: "owner key", Role: "owner", Scope: "machine/" + f.machine})))(t).GetToken()
	e.Remember(ownerKey, ownerKey[len(ownerKey)-43:])
	operator := e.token(f.user) // operator of the machine

	cur := func() uint64 {
		revs := check(admin.Config.ListConfigRevisions(ctx, req(&fleetv1.ListConfigRevisionsRequest{MachineId: f.machine})))(t).GetRevisions()
		return revs[0].GetRevision()
	}
	root := &configv1.RobotConfig{LogLevel: "debug", Components: []*configv1.Component{motor("winch")}}
	other := &configv1.RobotConfig{LogLevel: "warn"}
	seq := uint64(0)
	propose := func(cfg *configv1.RobotConfig, base uint64, en *syncv1.Endorsement) *fleetv1.ConfigProposal {
		t.Helper()
		seq++
		p.upload(t, "proposals", record(t, seq, e.clk.Now(), &syncv1.ConfigProposal{BaseRevision: base, Config: cfg, Author: "user/admin (trust me)", Endorsement: en}))
		props := check(admin.Config.ListConfigProposals(ctx, req(&fleetv1.ListConfigProposalsRequest{MachineId: f.machine})))(t).GetProposals()
		return props[len(props)-1]
	}
	base := cur()
	for _, tc := range []struct {
		name   string
		en     *syncv1.Endorsement
		author string
	}{
		{"the part's secret alone", nil, "part:" + f.boot.GetPartId()},
		{"an operator's signature", endorse(t, operator, f.machine, base, root), "user/" + f.user},
		{"an owner's signature on another config", endorse(t, e.adminToken, f.machine, base, other), "part:" + f.boot.GetPartId()},
		{"an owner's signature for another machine", endorse(t, e.adminToken, f.other, base, root), "part:" + f.boot.GetPartId()},
		{"an owner's signature on another base", endorse(t, e.adminToken, f.machine, base+1, root), "part:" + f.boot.GetPartId()},
		{"a signature by a key the cloud does not know", endorse(t, credential.APIKey(f.key, credential.NewPrivateKey()).String(), f.machine, base, root), "part:" + f.boot.GetPartId()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := propose(root, base, tc.en)
			if got.GetState() != "conflict" || cur() != base {
				t.Fatalf("proposal %v; revision %d, want %d", got, cur(), base)
			}
			if got.GetAuthor() != tc.author || strings.Contains(got.GetAuthor(), "trust me") {
				t.Errorf("author %q, want %q", got.GetAuthor(), tc.author)
			}
		})
	}
	for _, tc := range []struct{ name, key, author string }{
		{"an owner's session", e.adminToken, "user/"},
		{"an owner's API key", ownerKey, "apikey/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := cur()
			got := propose(root, b, endorse(t, tc.key, f.machine, b, root))
			if got.GetState() != "accepted" || cur() != b+1 || !strings.HasPrefix(got.GetAuthor(), tc.author) {
				t.Fatalf("proposal %v; revision %d, want %d", got, cur(), b+1)
			}
			revs := check(admin.Config.ListConfigRevisions(ctx, req(&fleetv1.ListConfigRevisionsRequest{MachineId: f.machine})))(t).GetRevisions()
			if a := revs[0].GetAuthor(); !strings.HasPrefix(a, got.GetAuthor()) || strings.Contains(a, "trust me") {
				t.Errorf("revision author %q", a)
			}
		})
	}
	// An owner's session signed out since it signed endorses nothing.
	t.Run("an owner's session signed out since", func(t *testing.T) {
		b := cur()
		session := e.token(e.AdminID())
		en := endorse(t, session, f.machine, b, root)
		check(e.client(session).Auth.SignOut(ctx, req(&fleetv1.SignOutRequest{})))(t)
		got := propose(root, b, en)
		if got.GetState() != "conflict" || cur() != b {
			t.Fatalf("proposal %v; revision %d, want %d", got, cur(), b)
		}
	})
	// A waiting proposal is an owner's to accept.
	props := check(admin.Config.ListConfigProposals(ctx, req(&fleetv1.ListConfigProposalsRequest{MachineId: f.machine})))(t).GetProposals()
	r := check(admin.Config.ResolveConfigProposal(ctx, req(&fleetv1.ResolveConfigProposalRequest{MachineId: f.machine, ProposalId: props[0].GetId(), Accept: false})))(t)
	if r.GetProposal().GetState() != "dismissed" {
		t.Errorf("dismissed %v", r.GetProposal())
	}
}
