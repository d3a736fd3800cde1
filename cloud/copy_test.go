package cloud_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/badgeringest"
	"github.com/outpost-robotics/outpost/cloud/pgtest"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/cloud/store/badgerstore"
	"github.com/outpost-robotics/outpost/credential"
)

// TestCopyToPostgres copies a real embedded cloud (served by Run, its
// fleet made through the API, its ingest store holding records, a lost
// range, a deleted record, a finished blob and a status) into PostgreSQL,
// as `outpost-cloud migrate --from --to` does; then serves the database:
// the admin's token from the embedded cloud works, what the admin made is
// there, and the ingest store's watermarks, tombstone and blob are as they
// were, and an invitation mailed before the move is accepted after it. A
// second copy into the same database is refused.
func TestCopyToPostgres(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	r := startRun(t, dir)
	a := r.admin
	org, err := a.Org.CreateOrg(ctx, connect.NewRequest(&fleetv1.CreateOrgRequest{Name: "Acme"}))
	if err != nil {
		t.Fatal(err)
	}
	orgID := org.Msg.GetOrg().GetId()
	plant, err := a.Location.CreateLocation(ctx, connect.NewRequest(&fleetv1.CreateLocationRequest{OrgId: orgID, Name: "Plant"}))
	if err != nil {
		t.Fatal(err)
	}
	hall, err := a.Location.CreateLocation(ctx, connect.NewRequest(&fleetv1.CreateLocationRequest{OrgId: orgID, ParentLocationId: plant.Msg.GetLocation().GetId(), Name: "Hall"}))
	if err != nil {
		t.Fatal(err)
	}
	mc, err := a.Machine.CreateMachine(ctx, connect.NewRequest(&fleetv1.CreateMachineRequest{LocationId: hall.Msg.GetLocation().GetId(), Name: "rover"}))
	if err != nil {
		t.Fatal(err)
	}
	machineID, partID := mc.Msg.GetMachine().GetId(), mc.Msg.GetMachine().GetParts()[0].GetId()
	if _, err := a.Config.UpdateMachineConfig(ctx, connect.NewRequest(&fleetv1.UpdateMachineConfigRequest{MachineId: machineID,
		Config: &configv1.RobotConfig{LogLevel: "debug"}})); err != nil {
		t.Fatal(err)
	}
	pub := credential.NewPrivateKey().Public().(ed25519.PublicKey)
	if _, err := a.APIKey.CreateAPIKey(ctx, connect.NewRequest(&fleetv1.CreateAPIKeyRequest{Name: "ci", Role: "operator", Scope: "machine/" + machineID, PublicKey: pub})); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Alert.CreateAlertRule(ctx, connect.NewRequest(&fleetv1.CreateAlertRuleRequest{Scope: "org/" + orgID, Name: "failing",
		Kind: "failing", WebhookUrl: "https://hooks.example.com/x"})); err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	// What parts handed over, written as the embedded cloud's ingest does.
	blobData := []byte("a camera frame")
	blobSum := sha256.Sum256(blobData)
	capture, _ := proto.Marshal(&syncv1.Capture{Component: "cam", Method: "image", BlobId: "b1"})
	fill := func() {
		blobs, err := ingest.NewFileBlobStore(filepath.Join(dir, "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		ing, err := badgeringest.Open(badgeringest.Options{Dir: filepath.Join(dir, "ingest"), Blobs: blobs})
		if err != nil {
			t.Fatal(err)
		}
		defer ing.Close()
		logs := ingest.StreamKey{PartID: partID, StoreID: "s1", Stream: "logs.info"}
		caps := ingest.StreamKey{PartID: partID, StoreID: "s1", Stream: "captures"}
		at := time.Unix(1_700_000_000, 5).UTC()
		var recs []ingest.Record
		for seq := uint64(1); seq <= 5; seq++ {
			recs = append(recs, ingest.Record{Seq: seq, Time: at.Add(time.Duration(seq) * time.Second), Payload: []byte{byte(seq)}})
		}
		for _, step := range []func() error{
			func() error { _, err := ing.PutRecords(ctx, logs, recs); return err },
			func() error { _, err := ing.DeleteRecords(ctx, logs, []uint64{2}); return err },
			func() error {
				_, err := ing.PutRecords(ctx, caps, []ingest.Record{{Seq: 1, Time: at, Payload: capture}, {Seq: 2, Payload: capture}})
				return err
			},
			func() error { _, err := ing.DeclareLost(ctx, caps, 3, 6, "evicted"); return err },
			func() error {
				_, err := ing.PutBlobChunk(ctx, ingest.BlobChunk{PartID: partID, BlobID: "b1", Data: blobData, Size: uint64(len(blobData)), SHA256: blobSum[:], Name: "cam", Meta: capture})
				return err
			},
			func() error {
				return ing.PutStatus(ctx, partID, &syncv1.PartStatus{Version: "1.2.3"}, at)
			},
		} {
			if err := step(); err != nil {
				t.Fatal(err)
			}
		}
	}
	fill()
	// A pending invitation, as InviteUser leaves one (its code mailed).
	const inviteCode = "invite-code-for-the-copy"
	codeHash := sha256.Sum256([]byte(inviteCode))
	func() {
		st, err := badgerstore.Open(filepath.Join(dir, "store"), zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := st.Update(ctx, func(tx store.Tx) error {
			return tx.PutInvite(ctx, store.Invite{ID: "inv1", Email: "new@acme.example", Role: "operator", Scope: "org/" + orgID, OrgID: orgID,
				CodeHash: codeHash[:], CreatedAt: time.Now(), ExpiresAt: time.Now().Add(24 * time.Hour)})
		}); err != nil {
			t.Fatal(err)
		}
	}()

	db := pgtest.Database(t)
	rep, err := cloud.CopyToPostgres(ctx, dir, db, r.log.Logger())
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, k := range rep.Kinds {
		counts[k.Kind] = k.Count
		if len(k.SHA256) != 64 {
			t.Errorf("%s: checksum %q", k.Kind, k.SHA256)
		}
	}
	for kind, want := range map[string]int{"organizations": 1, "locations": 2, "machines": 1, "parts": 1, "users": 1, "invitations": 1, "API keys": 1,
		"config revisions": 1, "alert rules": 1, "records": 6, "part statuses": 1, "blobs": 1, "meta": 3} {
		if counts[kind] != want {
			t.Errorf("copied %d %s, want %d (report %+v)", counts[kind], kind, want, rep.Kinds)
		}
	}
	if counts["audit events"] < 5 || counts["grants"] < 2 {
		t.Errorf("copied %d audit events and %d grants, want every change's and the API key's and the owner's", counts["audit events"], counts["grants"])
	}
	if _, err := cloud.CopyToPostgres(ctx, dir, db, r.log.Logger()); !errors.Is(err, cloud.ErrTargetNotEmpty) {
		t.Fatalf("a second copy into the database: %v, want ErrTargetNotEmpty", err)
	}

	// Served from PostgreSQL with the embedded cloud's admin.token.
	r = startRunWith(t, cloud.RunConfig{DataDir: dir, Database: db})
	ms, err := r.admin.Machine.ListMachines(ctx, connect.NewRequest(&fleetv1.ListMachinesRequest{LocationId: hall.Msg.GetLocation().GetId()}))
	if err != nil || len(ms.Msg.GetMachines()) != 1 || ms.Msg.GetMachines()[0].GetId() != machineID {
		t.Fatalf("the machines on PostgreSQL: %v, %v", ms, err)
	}
	// The invitation mailed before the move still works after it.
	if _, err := cloudtest.NewClients(http.DefaultClient, r.url).User.AcceptInvite(ctx, connect.NewRequest(&fleetv1.AcceptInviteRequest{
		Code: inviteCode, Password: "a long enough password"})); err != nil {
		t.Fatalf("accepting an invitation copied to PostgreSQL: %v", err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	_, ing, _ := cloudtest.OpenPostgres(t, db)
	logs := ingest.StreamKey{PartID: partID, StoreID: "s1", Stream: "logs.info"}
	if w, err := ing.AckedThrough(ctx, logs); err != nil || w != 5 {
		t.Fatalf("logs watermark %d, %v; want 5 (the deleted record's tombstone copied)", w, err)
	}
	if res, err := ing.PutRecords(ctx, logs, []ingest.Record{{Seq: 2, Payload: []byte{2}}}); err != nil || res.Stored != 0 {
		t.Fatalf("the deleted record sent again: %+v, %v; want it refused as a repeat", res, err)
	}
	if w, err := ing.AckedThrough(ctx, ingest.StreamKey{PartID: partID, StoreID: "s1", Stream: "captures"}); err != nil || w != 6 {
		t.Fatalf("captures watermark %d, %v; want 6 (the lost range copied)", w, err)
	}
	if b, err := ing.Blob(ctx, partID, "b1"); err != nil || !b.Complete || b.Size != uint64(len(blobData)) {
		t.Fatalf("the blob on PostgreSQL: %+v, %v", b, err)
	}
}
