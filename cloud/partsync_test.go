package cloud_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/cloud"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/signed"
)

// partAuth presents a part's credentials, as outpostd does.
func partAuth(id, secret string) credential.Bearer {
	return credential.Bearer{Authorization: "Part " + id + ":" + secret}
}

// scriptedPart is a part driven call by call through the sync API.
type scriptedPart struct {
	id     string
	client syncv1connect.SyncServiceClient
	keys   signed.Keys
	cfg    uint64
	grants uint64
}

func (e *env) part(t *testing.T, b *syncv1.Bootstrap) *scriptedPart {
	keys, err := signed.KeysFromProto(b.GetCloudKeys())
	if err != nil {
		t.Fatal(err)
	}
	e.Remember(b.GetPartSecret())
	return &scriptedPart{id: b.GetPartId(), keys: keys,
		client: syncv1connect.NewSyncServiceClient(http.DefaultClient, b.GetCloudUrl(), connect.WithInterceptors(partAuth(b.GetPartId(), b.GetPartSecret())))}
}

// pull pulls, verifies what arrives and remembers its versions.
func (p *scriptedPart) pull(t *testing.T) (*syncv1.ConfigDocument, *syncv1.GrantBundle) {
	t.Helper()
	res, err := p.client.Pull(context.Background(), connect.NewRequest(&syncv1.PullRequest{ConfigVersion: p.cfg, GrantsVersion: p.grants}))
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	var cfg *syncv1.ConfigDocument
	var gb *syncv1.GrantBundle
	if d := res.Msg.GetConfig(); d != nil {
		cfg = &syncv1.ConfigDocument{}
		if err := signed.Verify(p.keys, d, cfg); err != nil {
			t.Fatalf("config does not verify: %v", err)
		}
		if cfg.GetVersion() <= p.cfg || cfg.GetPartId() != p.id {
			t.Fatalf("config version %d for %s, holding %d", cfg.GetVersion(), cfg.GetPartId(), p.cfg)
		}
		p.cfg = cfg.GetVersion()
	}
	if d := res.Msg.GetGrants(); d != nil {
		gb = &syncv1.GrantBundle{}
		if err := signed.Verify(p.keys, d, gb); err != nil {
			t.Fatalf("grants do not verify: %v", err)
		}
		if gb.GetVersion() <= p.grants || gb.GetPartId() != p.id {
			t.Fatalf("grants version %d for %s, holding %d", gb.GetVersion(), gb.GetPartId(), p.grants)
		}
		p.grants = gb.GetVersion()
	}
	return cfg, gb
}

func (p *scriptedPart) upload(t *testing.T, stream string, recs ...*syncv1.Record) uint64 {
	t.Helper()
	res, err := p.client.Upload(context.Background(), connect.NewRequest(&syncv1.UploadRequest{StoreId: "store-1", Stream: stream, Records: recs}))
	if err != nil {
		t.Fatalf("upload %s: %v", stream, err)
	}
	return res.Msg.GetAckedThrough()
}

func record(t *testing.T, seq uint64, at time.Time, m proto.Message) *syncv1.Record {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return &syncv1.Record{Seq: seq, Time: timestamppb.New(at), Payload: b}
}

func principalIDs(gb *syncv1.GrantBundle) []string {
	var out []string
	for _, p := range gb.GetPrincipals() {
		out = append(out, p.GetId())
	}
	return out
}

func motor(name string) *configv1.Component {
	return &configv1.Component{Name: name, Type: configv1.ComponentType_COMPONENT_TYPE_MOTOR, Model: "fake"}
}

// fleet is one organization with a machine of two parts, a second machine,
// an operator user and an API key on the first machine.
type fleet struct {
	org, loc, machine, other string
	user, key, keySecret     string
	frag                     string
	boot, boot2, bootOther   *syncv1.Bootstrap
}

func newFleet(t *testing.T, e *env) fleet {
	ctx := context.Background()
	admin := e.client(e.adminToken)
	var f fleet
	f.org = check(admin.Org.CreateOrg(ctx, req(&fleetv1.CreateOrgRequest{Name: "Acme"})))(t).GetOrg().GetId()
	f.loc = check(admin.Location.CreateLocation(ctx, req(&fleetv1.CreateLocationRequest{OrgId: f.org, Name: "Plant"})))(t).GetLocation().GetId()
	m := check(admin.Machine.CreateMachine(ctx, req(&fleetv1.CreateMachineRequest{LocationId: f.loc, Name: "rover"})))(t)
	e.Remember(m.GetMainPartSecret())
	f.machine = m.GetMachine().GetId()
	p2 := check(admin.Machine.AddPart(ctx, req(&fleetv1.AddPartRequest{MachineId: f.machine, Name: "arm"})))(t)
	e.Remember(p2.GetSecret())
	o := check(admin.Machine.CreateMachine(ctx, req(&fleetv1.CreateMachineRequest{LocationId: f.loc, Name: "other"})))(t)
	e.Remember(o.GetMainPartSecret())
	f.other = o.GetMachine().GetId()
	u := check(admin.User.CreateUser(ctx, req(&fleetv1.CreateUserRequest{Email: "op@example.com"})))(t)
	e.Remember(u.GetGeneratedPassword())
	f.user = u.GetUser().GetId()
	check(admin.Role.GrantRole(ctx, req(&fleetv1.GrantRoleRequest{Subject: "user:" + f.user, Role: "operator", Scope: "machine/" + f.machine})))(t)
	k := check(admin.APIKey.CreateAPIKey(ctx, req(&fleetv1.CreateAPIKeyRequest{Name: "robot key", Role: "operator", Scope: "machine/" + f.machine})))(t)
	e.Remember(k.GetToken(), k.GetToken()[len(k.GetToken())-43:])
	f.key, f.keySecret = k.GetKey().GetId(), k.GetToken()
	f.frag = check(admin.Fragment.CreateFragment(ctx, req(&fleetv1.CreateFragmentRequest{OrgId: f.org, Name: "drive",
		Config: &configv1.RobotConfig{Components: []*configv1.Component{motor("left"), motor("right")}, LogLevel: "debug"}})))(t).GetFragment().GetId()
	check(admin.Config.UpdateMachineConfig(ctx, req(&fleetv1.UpdateMachineConfigRequest{MachineId: f.machine, FragmentIds: []string{f.frag},
		Config: &configv1.RobotConfig{Components: []*configv1.Component{motor("right"), motor("lift")}}})))(t)
	boot := func(part string) *syncv1.Bootstrap {
		return check(admin.Machine.BootstrapPart(ctx, req(&fleetv1.BootstrapPartRequest{PartId: part, CloudUrl: e.URL})))(t).GetBootstrap()
	}
	f.boot = boot(m.GetMachine().GetParts()[0].GetId())
	f.boot2 = boot(p2.GetPart().GetId())
	f.bootOther = boot(o.GetMachine().GetParts()[0].GetId())
	return f
}

// newPartSync starts a cloud of its own for one subtest of TestPartSync,
// with newFleet's fleet, the admin's clients and the machine's main part;
// held says the part has pulled its first documents, as one in service
// has.
func newPartSync(t *testing.T, held bool) (*env, fleet, *cloudtest.Clients, *scriptedPart) {
	t.Helper()
	e := newEnv(t)
	f := newFleet(t, e)
	p := e.part(t, f.boot)
	if held {
		p.pull(t)
	}
	return e, f, e.client(e.adminToken), p
}

// twoCaptures are a part's first two captures, at: a winch's status, and
// a lift's tagged "night".
func twoCaptures(t *testing.T, at time.Time) []*syncv1.Record {
	return []*syncv1.Record{
		record(t, 1, at, &syncv1.Capture{Component: "winch", Method: "status", Data: []byte(`{}`)}),
		record(t, 2, at, &syncv1.Capture{Component: "lift", Method: "is_moving", Tags: []string{"night"}, Data: []byte(`{}`)}),
	}
}

// infoLines are log lines at info level of the given sequence numbers, a
// second apart from at.
func infoLines(t *testing.T, at time.Time, seqs ...uint64) []*syncv1.Record {
	var out []*syncv1.Record
	for _, s := range seqs {
		out = append(out, record(t, s, at.Add(time.Duration(s)*time.Second), &syncv1.LogEntry{Level: "info", Message: "line"}))
	}
	return out
}

// TestPartSync provisions parts on a real cloud on loopback and drives them
// call by call through the part sync API. Every subtest starts its own
// cloud and fleet (newPartSync), so each stands alone.
func TestPartSync(t *testing.T) {
	ctx := context.Background()

	t.Run("bootstrap file", func(t *testing.T) {
		t.Parallel()
		e, f, _, _ := newPartSync(t, false)
		keys := f.boot.GetCloudKeys()
		if len(keys) != 1 {
			t.Fatalf("%d cloud keys", len(keys))
		}
		sum := sha256.Sum256(keys[0].GetEd25519())
		if keys[0].GetKeyId() != hex.EncodeToString(sum[:8]) || keys[0].GetKeyId() != e.DocumentSigner().KeyID {
			t.Errorf("key id %q is not the first 8 bytes of the key's SHA-256", keys[0].GetKeyId())
		}
		if f.boot.GetCloudUrl() != e.URL || f.boot.GetPartSecret() == "" {
			t.Errorf("bootstrap %v", f.boot)
		}
	})

	t.Run("first pull returns the merged config and the grant bundle", func(t *testing.T) {
		t.Parallel()
		e, f, _, p := newPartSync(t, false)
		cfg, gb := p.pull(t)
		if cfg == nil || gb == nil {
			t.Fatal("a new part got no documents")
		}
		var names []string
		for _, c := range cfg.GetConfig().GetComponents() {
			names = append(names, c.GetName())
		}
		// Fragment first, machine last: right is replaced in place, lift appended.
		if !slices.Equal(names, []string{"left", "right", "lift"}) || cfg.GetConfig().GetLogLevel() != "debug" {
			t.Errorf("merged config %v", cfg.GetConfig())
		}
		if len(cfg.GetFragments()) != 1 || cfg.GetFragments()[0].GetId() != f.frag || cfg.GetFragments()[0].GetVersion() != 1 {
			t.Errorf("fragments %v", cfg.GetFragments())
		}
		if cfg.GetMachineRevision() != 1 || cfg.GetMachineId() != f.machine {
			t.Errorf("revision %d machine %s", cfg.GetMachineRevision(), cfg.GetMachineId())
		}
		exp := cfg.GetExpiresAt().AsTime().Sub(cfg.GetIssuedAt().AsTime())
		if exp != cloud.DefaultDocumentTTL {
			t.Errorf("config valid for %v", exp)
		}
		if ids := principalIDs(gb); !slices.Contains(ids, f.user) || !slices.Contains(ids, f.key) {
			t.Errorf("principals %v lack the user and key", ids)
		}
		for _, pr := range gb.GetPrincipals() {
			if pr.GetId() == f.key {
				k, err := credential.ParseKey(f.keySecret)
				if err != nil || !k.PublicKey().Equal(ed25519.PublicKey(pr.GetPublicKey())) {
					t.Errorf("the key's public key is not the one it proves with (%v)", err)
				}
			}
			for _, g := range pr.GetGrants() {
				if g.GetScope() != "machine/"+f.machine && !strings.HasPrefix(g.GetScope(), "org/") {
					t.Errorf("grant %v does not cover the machine", g)
				}
			}
		}
		h := gb.GetHierarchy()
		if h.GetMachine().GetId() != f.machine || len(h.GetPartIds()) != 2 || len(h.GetLocations()) != 1 || !slices.Equal(h.GetOrgs(), []string{f.org}) {
			t.Errorf("hierarchy %v", h)
		}
		if len(gb.GetTokenKeys()) != 1 || gb.GetTokenKeys()[0].GetKeyId() != e.DocumentSigner().KeyID {
			t.Errorf("token keys %v", gb.GetTokenKeys())
		}
	})

	t.Run("nothing changed: nothing returned", func(t *testing.T) {
		t.Parallel()
		_, f, admin, p := newPartSync(t, true)
		if cfg, gb := p.pull(t); cfg != nil || gb != nil {
			t.Fatal("documents came again")
		}
		// A change elsewhere in the fleet re-sends nothing.
		check(admin.Org.CreateOrg(ctx, req(&fleetv1.CreateOrgRequest{Name: "Elsewhere"})))(t)
		check(admin.Config.UpdateMachineConfig(ctx, req(&fleetv1.UpdateMachineConfigRequest{MachineId: f.other,
			Config: &configv1.RobotConfig{LogLevel: "warn"}})))(t)
		if cfg, gb := p.pull(t); cfg != nil || gb != nil {
			t.Fatal("an unrelated change re-sent documents")
		}
	})

	t.Run("a revoked grant is gone from the next bundle", func(t *testing.T) {
		t.Parallel()
		_, f, admin, p := newPartSync(t, true)
		check(admin.Role.RemoveRole(ctx, req(&fleetv1.RemoveRoleRequest{Subject: "user:" + f.user, Scope: "machine/" + f.machine})))(t)
		cfg, gb := p.pull(t)
		if cfg != nil {
			t.Error("the config came again")
		}
		if gb == nil {
			t.Fatal("no new grant bundle")
		}
		if ids := principalIDs(gb); slices.Contains(ids, f.user) || !slices.Contains(ids, f.key) {
			t.Errorf("principals %v", ids)
		}
		check(admin.APIKey.RevokeAPIKey(ctx, req(&fleetv1.RevokeAPIKeyRequest{KeyId: f.key})))(t)
		if _, gb := p.pull(t); gb == nil || slices.Contains(principalIDs(gb), f.key) {
			t.Errorf("a revoked API key: %v", gb)
		}
	})

	t.Run("sharing the location brings the other organization's grants", func(t *testing.T) {
		t.Parallel()
		e, f, admin, p := newPartSync(t, true)
		partner := check(admin.Org.CreateOrg(ctx, req(&fleetv1.CreateOrgRequest{Name: "Partner"})))(t).GetOrg().GetId()
		u := check(admin.User.CreateUser(ctx, req(&fleetv1.CreateUserRequest{Email: "partner@example.com"})))(t)
		e.Remember(u.GetGeneratedPassword())
		check(admin.Role.GrantRole(ctx, req(&fleetv1.GrantRoleRequest{Subject: "user:" + u.GetUser().GetId(), Role: "operator", Scope: "org/" + partner})))(t)
		if _, gb := p.pull(t); gb != nil {
			t.Fatal("a grant in an unrelated organization changed the bundle")
		}
		check(admin.Location.ShareLocation(ctx, req(&fleetv1.ShareLocationRequest{LocationId: f.loc, OrgId: partner})))(t)
		_, gb := p.pull(t)
		if gb == nil || !slices.Contains(principalIDs(gb), u.GetUser().GetId()) || !slices.Contains(gb.GetHierarchy().GetOrgs(), partner) ||
			len(gb.GetHierarchy().GetShares()) != 1 {
			t.Fatalf("after sharing: %v", gb)
		}
		check(admin.Location.UnshareLocation(ctx, req(&fleetv1.UnshareLocationRequest{LocationId: f.loc, OrgId: partner})))(t)
		if _, gb := p.pull(t); gb == nil || slices.Contains(principalIDs(gb), u.GetUser().GetId()) {
			t.Fatalf("after unsharing: %v", gb)
		}
	})

	t.Run("a fragment edit re-issues the config", func(t *testing.T) {
		t.Parallel()
		_, f, admin, p := newPartSync(t, true)
		fr := check(admin.Fragment.UpdateFragment(ctx, req(&fleetv1.UpdateFragmentRequest{FragmentId: f.frag, BaseRevision: 1,
			Config: &configv1.RobotConfig{Components: []*configv1.Component{motor("left")}}})))(t)
		if fr.GetMachines() != 1 {
			t.Errorf("%d machines use it", fr.GetMachines())
		}
		cfg, gb := p.pull(t)
		if cfg == nil || gb != nil {
			t.Fatalf("config %v, grants %v", cfg, gb)
		}
		if cfg.GetFragments()[0].GetVersion() != 2 || len(cfg.GetConfig().GetComponents()) != 3 {
			t.Errorf("config %v", cfg)
		}
		// An edit that would break a machine using it is refused, naming the field.
		_, err := admin.Fragment.UpdateFragment(ctx, req(&fleetv1.UpdateFragmentRequest{FragmentId: f.frag, BaseRevision: 2,
			Config: &configv1.RobotConfig{Components: []*configv1.Component{{Name: "bad", Model: "fake"}}}}))
		wantCode(t, err, connect.CodeInvalidArgument, "components[0].type")
		_, err = admin.Fragment.DeleteFragment(ctx, req(&fleetv1.DeleteFragmentRequest{FragmentId: f.frag}))
		wantCode(t, err, connect.CodeFailedPrecondition, "used by 1 machines")
	})

	t.Run("invalid and stale config edits are refused", func(t *testing.T) {
		t.Parallel()
		_, f, admin, p := newPartSync(t, true)
		_, err := admin.Config.UpdateMachineConfig(ctx, req(&fleetv1.UpdateMachineConfigRequest{MachineId: f.machine, BaseRevision: 1,
			Config: &configv1.RobotConfig{LogLevel: "loud"}}))
		wantCode(t, err, connect.CodeInvalidArgument, "log_level")
		_, err = admin.Config.UpdateMachineConfig(ctx, req(&fleetv1.UpdateMachineConfigRequest{MachineId: f.machine, BaseRevision: 0}))
		wantCode(t, err, connect.CodeAborted, "revision 1")
		if cfg, gb := p.pull(t); cfg != nil || gb != nil {
			t.Error("a refused edit re-sent documents")
		}
	})

	t.Run("offline proposals: accepted when current, kept as conflicts otherwise", func(t *testing.T) {
		t.Parallel()
		e, f, admin, p := newPartSync(t, true)
		edit := &configv1.RobotConfig{Components: []*configv1.Component{motor("lift"), motor("winch")}}
		at := e.clk.Now()
		signed := endorse(t, e.adminToken, f.machine, 1, edit)
		p.upload(t, "proposals", record(t, 1, at, &syncv1.ConfigProposal{BaseRevision: 1, Config: edit, Author: "local/0", Endorsement: signed}))
		// The same record again (a retry) changes nothing.
		p.upload(t, "proposals", record(t, 1, at, &syncv1.ConfigProposal{BaseRevision: 1, Config: edit, Author: "local/0", Endorsement: signed}))
		// A second edit against the old base conflicts.
		second := &configv1.RobotConfig{LogLevel: "error"}
		p.upload(t, "proposals", record(t, 2, at, &syncv1.ConfigProposal{BaseRevision: 1, Config: second, Author: "local/0", Endorsement: endorse(t, e.adminToken, f.machine, 1, second)}))
		res, err := p.client.Pull(ctx, connect.NewRequest(&syncv1.PullRequest{ConfigVersion: p.cfg, GrantsVersion: p.grants}))
		if err != nil {
			t.Fatal(err)
		}
		out := res.Msg.GetProposals()
		if len(out) != 2 || !out[0].GetAccepted() || out[0].GetRevision() != 2 || out[1].GetAccepted() || out[1].GetRevision() != 2 {
			t.Fatalf("outcomes %v", out)
		}
		if res.Msg.GetConfig() == nil {
			t.Error("the accepted edit did not re-issue the config")
		}
		p.cfg++
		props := check(admin.Config.ListConfigProposals(ctx, req(&fleetv1.ListConfigProposalsRequest{MachineId: f.machine})))(t).GetProposals()
		if len(props) != 2 || props[0].GetState() != "accepted" || props[1].GetState() != "conflict" {
			t.Fatalf("proposals %v", props)
		}
		revs := check(admin.Config.ListConfigRevisions(ctx, req(&fleetv1.ListConfigRevisionsRequest{MachineId: f.machine})))(t).GetRevisions()
		if len(revs) != 2 || !strings.HasPrefix(revs[0].GetAuthor(), "user/") || !strings.Contains(revs[0].GetAuthor(), "part:"+f.boot.GetPartId()) {
			t.Errorf("revisions %v", revs)
		}
		r := check(admin.Config.ResolveConfigProposal(ctx, req(&fleetv1.ResolveConfigProposalRequest{MachineId: f.machine, ProposalId: props[1].GetId(), Accept: true})))(t)
		if r.GetProposal().GetState() != "accepted" || r.GetProposal().GetRevision() != 3 {
			t.Errorf("resolved %v", r.GetProposal())
		}
		if cfg, _ := p.pull(t); cfg == nil || cfg.GetMachineRevision() != 3 || cfg.GetConfig().GetLogLevel() != "error" {
			t.Errorf("after resolving: %v", cfg)
		}
	})

	t.Run("uploads are stored exactly once, in any order", func(t *testing.T) {
		t.Parallel()
		e, f, admin, p := newPartSync(t, false)
		at := e.clk.Now()
		logs := func(seqs ...uint64) []*syncv1.Record { return infoLines(t, at, seqs...) }
		// Batches arrive reordered and repeated; the watermark waits for 1.
		if w := p.upload(t, "logs.info", logs(4, 5)...); w != 0 {
			t.Errorf("watermark %d before 1..3 arrived", w)
		}
		p.upload(t, "logs.info", logs(2, 3)...)
		if w := p.upload(t, "logs.info", logs(1, 2, 3)...); w != 5 {
			t.Errorf("watermark %d, want 5", w)
		}
		p.upload(t, "logs.info", logs(4, 5)...)
		p.upload(t, "logs.warn", record(t, 1, at, &syncv1.LogEntry{Level: "error", Message: "fell over"}))
		if n, _ := e.Ingest().Count(ctx, f.boot.GetPartId(), "logs.info"); n.Records != 5 {
			t.Errorf("%d info records held, want 5", n.Records)
		}
		got := check(admin.Data.ListLogs(ctx, req(&fleetv1.ListLogsRequest{MachineId: f.machine})))(t).GetEntries()
		if len(got) != 6 {
			t.Errorf("%d log entries, want 6", len(got))
		}
		got = check(admin.Data.ListLogs(ctx, req(&fleetv1.ListLogsRequest{MachineId: f.machine, Level: "error"})))(t).GetEntries()
		if len(got) != 1 || got[0].GetEntry().GetMessage() != "fell over" {
			t.Errorf("errors: %v", got)
		}
		got = check(admin.Data.ListLogs(ctx, req(&fleetv1.ListLogsRequest{MachineId: f.machine, From: timestamppb.New(at.Add(3 * time.Second))})))(t).GetEntries()
		if len(got) != 3 {
			t.Errorf("%d entries from +3s, want 3", len(got))
		}
		page := check(admin.Data.ListLogs(ctx, req(&fleetv1.ListLogsRequest{MachineId: f.machine, PageSize: 4})))(t)
		rest := check(admin.Data.ListLogs(ctx, req(&fleetv1.ListLogsRequest{MachineId: f.machine, PageSize: 4, PageToken: page.GetNextPageToken()})))(t)
		if len(page.GetEntries()) != 4 || len(rest.GetEntries()) != 2 || rest.GetNextPageToken() != "" {
			t.Errorf("pages of %d and %d", len(page.GetEntries()), len(rest.GetEntries()))
		}

		caps := twoCaptures(t, at)
		p.upload(t, "captures", caps[1])
		p.upload(t, "captures", caps...)
		p.upload(t, "captures", caps[0])
		all := check(admin.Data.ListCaptures(ctx, req(&fleetv1.ListCapturesRequest{MachineId: f.machine})))(t).GetCaptures()
		if len(all) != 2 {
			t.Errorf("%d captures, want 2", len(all))
		}
		tagged := check(admin.Data.ListCaptures(ctx, req(&fleetv1.ListCapturesRequest{MachineId: f.machine, Tag: "night"})))(t).GetCaptures()
		byComp := check(admin.Data.ListCaptures(ctx, req(&fleetv1.ListCapturesRequest{MachineId: f.machine, Component: "winch"})))(t).GetCaptures()
		if len(tagged) != 1 || tagged[0].GetCapture().GetComponent() != "lift" || len(byComp) != 1 {
			t.Errorf("tagged %v, winch %v", tagged, byComp)
		}
	})

	t.Run("tags are edited on top of what the part sent", func(t *testing.T) {
		t.Parallel()
		e, f, admin, p := newPartSync(t, false)
		p.upload(t, "captures", twoCaptures(t, e.clk.Now())...)
		caps := check(admin.Data.ListCaptures(ctx, req(&fleetv1.ListCapturesRequest{MachineId: f.machine})))(t).GetCaptures()
		refs := []*fleetv1.CaptureRef{}
		for _, c := range caps {
			refs = append(refs, &fleetv1.CaptureRef{PartId: c.GetPartId(), StoreId: c.GetStoreId(), Seq: c.GetSeq()})
		}
		res := check(admin.Data.TagCaptures(ctx, req(&fleetv1.TagCapturesRequest{MachineId: f.machine, Captures: refs, Add: []string{"reviewed"}, Remove: []string{"night"}})))(t)
		if res.GetChanged() != 2 {
			t.Errorf("%d changed", res.GetChanged())
		}
		if again := check(admin.Data.TagCaptures(ctx, req(&fleetv1.TagCapturesRequest{MachineId: f.machine, Captures: refs, Add: []string{"reviewed"}})))(t); again.GetChanged() != 0 {
			t.Errorf("a repeated edit changed %d", again.GetChanged())
		}
		if n := check(admin.Data.ListCaptures(ctx, req(&fleetv1.ListCapturesRequest{MachineId: f.machine, Tag: "night"})))(t).GetCaptures(); len(n) != 0 {
			t.Errorf("a removed tag still matches: %v", n)
		}
		got := check(admin.Data.ExportCaptures(ctx, req(&fleetv1.ExportCapturesRequest{MachineId: f.machine, Tag: "reviewed"})))(t).GetCaptures()
		if len(got) != 2 || !slices.Equal(got[0].GetCapture().GetTags(), []string{"reviewed"}) {
			t.Errorf("reviewed: %v", got)
		}
		_, err := admin.Data.TagCaptures(ctx, req(&fleetv1.TagCapturesRequest{MachineId: f.machine, Captures: []*fleetv1.CaptureRef{{PartId: f.bootOther.GetPartId(), StoreId: "s", Seq: 1}}, Add: []string{"x"}}))
		wantCode(t, err, connect.CodeNotFound, "has no part")
		_, err = admin.Data.TagCaptures(ctx, req(&fleetv1.TagCapturesRequest{MachineId: f.machine, Captures: refs, Add: []string{"a,b"}}))
		wantCode(t, err, connect.CodeInvalidArgument, "add[0]")
	})

	t.Run("blobs are read back in pieces", func(t *testing.T) {
		t.Parallel()
		_, f, admin, p := newPartSync(t, false)
		blob := []byte(strings.Repeat("0123456789", 1000))
		sum := sha256.Sum256(blob)
		for _, off := range []int{0, 6000} {
			end := min(off+6000, len(blob))
			if _, err := p.client.UploadBlob(ctx, connect.NewRequest(&syncv1.UploadBlobRequest{BlobId: "img-1", Offset: uint64(off), Data: blob[off:end],
				Size: uint64(len(blob)), Sha256: sum[:], Name: "camera/img-1.jpg"})); err != nil {
				t.Fatal(err)
			}
		}
		var got []byte
		for off := uint64(0); off < uint64(len(blob)); {
			r := check(admin.Data.ReadBlob(ctx, req(&fleetv1.ReadBlobRequest{MachineId: f.machine, PartId: f.boot.GetPartId(), BlobId: "img-1", Offset: off, Length: 4096})))(t)
			got = append(got, r.GetData()...)
			off += uint64(len(r.GetData()))
			if r.GetSize() != uint64(len(blob)) || r.GetName() != "camera/img-1.jpg" {
				t.Fatalf("blob answer %d %q", r.GetSize(), r.GetName())
			}
		}
		if string(got) != string(blob) {
			t.Error("the blob read back differs")
		}
		_, err := admin.Data.ReadBlob(ctx, req(&fleetv1.ReadBlobRequest{MachineId: f.other, PartId: f.boot.GetPartId(), BlobId: "img-1"}))
		wantCode(t, err, connect.CodeNotFound, "has no part")
	})

	t.Run("deleted captures and blobs are gone and never come back", func(t *testing.T) {
		t.Parallel()
		e, f, admin, p := newPartSync(t, false)
		p.upload(t, "captures", twoCaptures(t, e.clk.Now())...)
		at := e.clk.Now()
		blob := []byte("camera frame")
		sum := sha256.Sum256(blob)
		blobChunk := &syncv1.UploadBlobRequest{BlobId: "img-2", Data: blob, Size: uint64(len(blob)), Sha256: sum[:]}
		if _, err := p.client.UploadBlob(ctx, connect.NewRequest(blobChunk)); err != nil {
			t.Fatal(err)
		}
		cam := []*syncv1.Record{
			record(t, 3, at, &syncv1.Capture{Component: "cam", Method: "image", BlobId: "img-2"}),
			record(t, 4, at, &syncv1.Capture{Component: "cam", Method: "image"}),
		}
		p.upload(t, "captures", cam...)
		before, _ := e.Ingest().Count(ctx, f.boot.GetPartId(), "captures")
		res := check(admin.Data.DeleteCaptures(ctx, req(&fleetv1.DeleteCapturesRequest{MachineId: f.machine, Component: "cam",
			Captures: []*fleetv1.CaptureRef{{PartId: f.boot.GetPartId(), StoreId: "store-1", Seq: 3}}})))(t)
		if res.GetDeleted() != 1 || res.GetBlobs() != 1 || res.GetMore() {
			t.Fatalf("deleted %v", res)
		}
		if got := check(admin.Data.ListCaptures(ctx, req(&fleetv1.ListCapturesRequest{MachineId: f.machine, Component: "cam"})))(t).GetCaptures(); len(got) != 1 || got[0].GetSeq() != 4 {
			t.Errorf("after deleting seq 3: %v", got)
		}
		_, err := admin.Data.ReadBlob(ctx, req(&fleetv1.ReadBlobRequest{MachineId: f.machine, PartId: f.boot.GetPartId(), BlobId: "img-2"}))
		wantCode(t, err, connect.CodeNotFound, "no complete blob")
		// The part, not yet told, sends both again: nothing comes back.
		if w := p.upload(t, "captures", cam...); w != 4 {
			t.Errorf("watermark %d after a repeat, want 4", w)
		}
		ans, err := p.client.UploadBlob(ctx, connect.NewRequest(blobChunk))
		if err != nil || !ans.Msg.GetComplete() {
			t.Errorf("the deleted blob sent again: %v, %v", ans, err)
		}
		after, _ := e.Ingest().Count(ctx, f.boot.GetPartId(), "captures")
		if after.Records != before.Records-1 || after.Conflicts != before.Conflicts {
			t.Errorf("captures held %+v, before the delete %+v", after, before)
		}
		if got := check(admin.Data.ListCaptures(ctx, req(&fleetv1.ListCapturesRequest{MachineId: f.machine, Component: "cam"})))(t).GetCaptures(); len(got) != 1 {
			t.Errorf("a deleted capture came back: %v", got)
		}
		all := check(admin.Data.DeleteCaptures(ctx, req(&fleetv1.DeleteCapturesRequest{MachineId: f.machine, Component: "cam"})))(t)
		if all.GetDeleted() != 1 || all.GetBlobs() != 0 {
			t.Errorf("deleting the rest: %v", all)
		}
	})

	t.Run("oversized batches are refused", func(t *testing.T) {
		t.Parallel()
		e, f, _, p := newPartSync(t, false)
		recs := make([]*syncv1.Record, partsync.DefaultLimits().MaxBatchRecords+1)
		for i := range recs {
			recs[i] = &syncv1.Record{Seq: uint64(i + 1), Payload: []byte("x")}
		}
		_, err := p.client.Upload(ctx, connect.NewRequest(&syncv1.UploadRequest{StoreId: "store-1", Stream: "logs.debug", Records: recs}))
		wantCode(t, err, connect.CodeResourceExhausted, "at most")
		if n, _ := e.Ingest().Count(ctx, f.boot.GetPartId(), "logs.debug"); n.Records != 0 {
			t.Errorf("%d records of a refused batch were stored", n.Records)
		}
	})

	t.Run("status shows when the machine was last online", func(t *testing.T) {
		t.Parallel()
		e, f, admin, p := newPartSync(t, true)
		before := check(admin.Machine.GetMachineStatus(ctx, req(&fleetv1.GetMachineStatusRequest{MachineId: f.machine})))(t)
		if before.GetLastSeen() != nil {
			t.Errorf("last seen %v before any report", before.GetLastSeen())
		}
		e.clk.Advance(time.Minute)
		if _, err := p.client.ReportStatus(ctx, connect.NewRequest(&syncv1.ReportStatusRequest{Status: &syncv1.PartStatus{Version: "1.2.3", ConfigVersion: p.cfg}})); err != nil {
			t.Fatal(err)
		}
		st := check(admin.Machine.GetMachineStatus(ctx, req(&fleetv1.GetMachineStatusRequest{MachineId: f.machine})))(t)
		if !st.GetLastSeen().AsTime().Equal(e.clk.Now()) || st.GetParts()[0].GetStatus().GetVersion() != "1.2.3" ||
			st.GetParts()[0].GetIssuedConfigVersion() != p.cfg || st.GetParts()[1].GetLastSeen() != nil {
			t.Errorf("status %v", st)
		}
	})

	t.Run("a part reaches only its own data", func(t *testing.T) {
		t.Parallel()
		e, f, admin, p := newPartSync(t, false)
		// As in service: the other machine has its own config, this part
		// has sent five lines, and the user holds no role on this machine.
		check(admin.Config.UpdateMachineConfig(ctx, req(&fleetv1.UpdateMachineConfigRequest{MachineId: f.other,
			Config: &configv1.RobotConfig{LogLevel: "warn"}})))(t)
		p.upload(t, "logs.info", infoLines(t, e.clk.Now(), 1, 2, 3, 4, 5)...)
		check(admin.Role.RemoveRole(ctx, req(&fleetv1.RemoveRoleRequest{Subject: "user:" + f.user, Scope: "machine/" + f.machine})))(t)
		other := e.part(t, f.bootOther)
		cfg, _ := other.pull(t)
		if cfg.GetMachineId() != f.other || cfg.GetConfig().GetLogLevel() != "warn" {
			t.Errorf("the other part got %v", cfg)
		}
		other.upload(t, "logs.info", record(t, 1, e.clk.Now(), &syncv1.LogEntry{Level: "info", Message: "other"}))
		if n, _ := e.Ingest().Count(ctx, f.boot.GetPartId(), "logs.info"); n.Records != 5 {
			t.Errorf("the other part's upload landed on this part: %d records", n.Records)
		}
		// Part credentials do not open the fleet API, where data is read.
		c := cloudtest.NewClients(e.HTTPClient(), e.URL, connect.WithInterceptors(partAuth(f.bootOther.GetPartId(), f.bootOther.GetPartSecret())))
		_, err := c.Data.ListLogs(ctx, req(&fleetv1.ListLogsRequest{MachineId: f.machine}))
		wantCode(t, err, connect.CodeUnauthenticated, "")
		// Nor do a user's rights on one machine reach another's data.
		tok := e.token(f.user)
		check(admin.Role.GrantRole(ctx, req(&fleetv1.GrantRoleRequest{Subject: "user:" + f.user, Role: "owner", Scope: "machine/" + f.other})))(t)
		_, err = e.client(tok).Data.ListLogs(ctx, req(&fleetv1.ListLogsRequest{MachineId: f.machine}))
		wantCode(t, err, connect.CodePermissionDenied, "machine.view")
		if got := check(e.client(tok).Data.ListLogs(ctx, req(&fleetv1.ListLogsRequest{MachineId: f.other})))(t).GetEntries(); len(got) != 1 {
			t.Errorf("the owner sees %d entries of its machine", len(got))
		}
		// A part of another machine named with this machine is refused.
		_, err = admin.Data.ListLogs(ctx, req(&fleetv1.ListLogsRequest{MachineId: f.machine, PartId: f.bootOther.GetPartId()}))
		wantCode(t, err, connect.CodeNotFound, "has no part")
	})

	t.Run("forged part credentials are refused", func(t *testing.T) {
		t.Parallel()
		e, f, admin, _ := newPartSync(t, false)
		for name, cred := range map[string][2]string{
			"wrong secret":        {f.boot.GetPartId(), f.boot2.GetPartSecret()},
			"unknown part":        {strings.Repeat("ab", 16), f.boot.GetPartSecret()},
			"another part's id":   {f.boot2.GetPartId(), f.boot.GetPartSecret()},
			"secret before reset": {f.boot.GetPartId(), "not-the-secret-" + f.boot.GetPartId()},
		} {
			c := syncv1connect.NewSyncServiceClient(http.DefaultClient, e.URL, connect.WithInterceptors(partAuth(cred[0], cred[1])))
			_, err := c.Pull(ctx, connect.NewRequest(&syncv1.PullRequest{}))
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("%s: %v", name, err)
			}
		}
		// Bootstrapping again replaces the secret: the old one stops working.
		again := check(admin.Machine.BootstrapPart(ctx, req(&fleetv1.BootstrapPartRequest{PartId: f.boot2.GetPartId(), CloudUrl: e.URL})))(t).GetBootstrap()
		e.Remember(again.GetPartSecret())
		_, err := e.part(t, f.boot2).client.Pull(ctx, connect.NewRequest(&syncv1.PullRequest{}))
		wantCode(t, err, connect.CodeUnauthenticated, "")
		e.part(t, again).pull(t)
	})

	t.Run("an organization's shorter lifetime re-issues its documents", func(t *testing.T) {
		t.Parallel()
		e, f, admin, p := newPartSync(t, true)
		o := check(admin.Org.SetDocumentLifetime(ctx, req(&fleetv1.SetDocumentLifetimeRequest{OrgId: f.org, Days: 7})))(t).GetOrg()
		if o.GetDocumentLifetimeDays() != 7 {
			t.Errorf("org %v", o)
		}
		cfg, gb := p.pull(t)
		if cfg == nil || gb == nil {
			t.Fatal("nothing re-issued")
		}
		for _, exp := range []*timestamppb.Timestamp{cfg.GetExpiresAt(), gb.GetExpiresAt()} {
			if !exp.AsTime().Equal(e.clk.Now().Add(7 * 24 * time.Hour)) {
				t.Errorf("expires %v", exp.AsTime())
			}
		}
		_, err := admin.Org.SetDocumentLifetime(ctx, req(&fleetv1.SetDocumentLifetimeRequest{OrgId: f.org, Days: 61}))
		wantCode(t, err, connect.CodeInvalidArgument, "days")
		check(admin.Org.SetDocumentLifetime(ctx, req(&fleetv1.SetDocumentLifetimeRequest{OrgId: f.org, Days: 60})))(t)
	})

	t.Run("documents are re-issued before they expire", func(t *testing.T) {
		t.Parallel()
		e, _, _, p := newPartSync(t, true)
		e.clk.Advance(cloud.DefaultDocumentTTL/2 + time.Hour)
		cfg, gb := p.pull(t)
		if cfg == nil || gb == nil {
			t.Fatal("half-way to expiry, nothing was re-issued")
		}
		if !cfg.GetExpiresAt().AsTime().Equal(e.clk.Now().Add(cloud.DefaultDocumentTTL)) {
			t.Errorf("expires %v", cfg.GetExpiresAt().AsTime())
		}
		if cfg, gb := p.pull(t); cfg != nil || gb != nil {
			t.Error("re-issued twice")
		}
	})
}
