package daemon

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"github.com/outpost-robotics/outpost/credential"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
)

// grantsVersion reads the version of the grant bundle the part holds, on
// its break-glass socket.
func grantsVersion(t *testing.T, socket string) uint64 {
	t.Helper()
	st, err := controlv1connect.NewControlServiceClient(socketClient(socket), "http://socket").
		Status(context.Background(), connect.NewRequest(&controlv1.StatusRequest{}))
	if err != nil {
		t.Fatalf("status on the break-glass socket: %v", err)
	}
	return st.Msg.GetGrantsVersion()
}

// afterNextGrants runs change at the cloud and waits until the part holds
// the grant bundle it brings.
func afterNextGrants(t *testing.T, socket string, change func()) {
	t.Helper()
	before := grantsVersion(t, socket)
	change()
	cloudtest.Eventually(t, "the part holds the next grant bundle", func() error {
		if v := grantsVersion(t, socket); v <= before {
			return fmt.Errorf("grants version %d, want above %d", v, before)
		}
		return nil
	})
}

// TestPartRefusesEndedSessions: a real part on a real cloud refuses a
// user's token from the sync after the user signed out of it, every older
// token from the sync after the user changed its password, and every token
// once the admin deleted the user; the user's other tokens keep working
// until then.
func TestPartRefusesEndedSessions(t *testing.T) {
	ctx := context.Background()
	// The cloud's clock runs an hour behind the part's, so the test can
	// move it a second on (a password change revokes tokens of earlier
	// seconds) without issuing tokens the part would see from the future.
	cloudClk := clock.NewFake(time.Now().Add(-time.Hour).Truncate(time.Second))
	cl := cloudtest.New(t, cloudtest.Options{Clock: cloudClk, Sync: partsync.Options{PollInterval: 200 * time.Millisecond}})
	cp := cl.Provision(t, cloudtest.PartOptions{Config: &configv1.RobotConfig{LogLevel: "info"}})
	const email, password, newPassword = "tech@example.com", "tech password 12", "tech password 34"
	cl.CreateUser(t, email, password, "operator", "machine/"+cp.MachineID)
	laptop, phone := cl.SignIn(t, email, password), cl.SignIn(t, email, password)

	ep, whoami := startSyncingPart(t, cp)
	for _, tok := range []string{laptop, phone} {
		if err := whoami(tok); err != nil {
			t.Fatalf("a signed-in token on the part: %v", err)
		}
	}

	afterNextGrants(t, ep.Socket, func() {
		if _, err := cl.As(laptop).Auth.SignOut(ctx, connect.NewRequest(&fleetv1.SignOutRequest{})); err != nil {
			t.Fatal(err)
		}
	})
	if err := whoami(laptop); connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "signed out") {
		t.Fatalf("the signed-out token on the part: %v", err)
	}
	if err := whoami(phone); err != nil {
		t.Fatalf("another token of the user on the part: %v", err)
	}

	cloudClk.Advance(time.Second)
	var fresh string
	afterNextGrants(t, ep.Socket, func() {
		sk := credential.NewPrivateKey()
		res, err := cl.As(phone).Auth.ChangePassword(ctx, connect.NewRequest(&fleetv1.ChangePasswordRequest{CurrentPassword: password, NewPassword: newPassword,
			SessionPublicKey: sk.Public().(ed25519.PublicKey)}))
		if err != nil {
			t.Fatal(err)
		}
		fresh = credential.Session(res.Msg.GetAccessToken(), sk).String()
		cl.As(fresh) // remembered: it must not reach a log
	})
	if err := whoami(phone); connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "password changed") {
		t.Fatalf("a token older than the password change on the part: %v", err)
	}
	if err := whoami(fresh); err != nil {
		t.Fatalf("the token of the password change on the part: %v", err)
	}

	afterNextGrants(t, ep.Socket, func() {
		if _, err := cl.Admin(t).User.DeleteUser(ctx, connect.NewRequest(&fleetv1.DeleteUserRequest{User: "user:" + email})); err != nil {
			t.Fatal(err)
		}
	})
	if err := whoami(fresh); connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "holds no grant") {
		t.Fatalf("a deleted user's token on the part: %v", err)
	}
}

// TestPartForgetsWhatAShareMade: the owner of org B, with whom the part's
// location is shared, makes an API key and gives a user a role there; both
// work on the part. Once the location is unshared, the part refuses both
// from the grant bundle its next sync brings.
func TestPartForgetsWhatAShareMade(t *testing.T) {
	ctx := context.Background()
	cl := cloudtest.New(t, cloudtest.Options{Sync: partsync.Options{PollInterval: 200 * time.Millisecond}})
	cp := cl.Provision(t, cloudtest.PartOptions{Config: &configv1.RobotConfig{LogLevel: "info"}})
	admin := cl.Admin(t)

	// Bob owns org B; the part's location is shared with it.
	cl.CreateUser(t, "bob@example.com", "bob password 12", "operator", "machine/"+cp.MachineID)
	bob := cl.As(cl.SignIn(t, "bob@example.com", "bob password 12"))
	orgB, err := bob.Org.CreateOrg(ctx, connect.NewRequest(&fleetv1.CreateOrgRequest{Name: "Integrator"}))
	if err != nil {
		t.Fatal(err)
	}
	b := orgB.Msg.GetOrg().GetId()
	if _, err := admin.Location.ShareLocation(ctx, connect.NewRequest(&fleetv1.ShareLocationRequest{LocationId: cp.LocationID, OrgId: b})); err != nil {
		t.Fatal(err)
	}
	// Through the share: a key, and a role for Carol (who holds nothing else).
	key, err := bob.APIKey.CreateAPIKey(ctx, connect.NewRequest(&fleetv1.CreateAPIKeyRequest{Name: "integrator", Role: "operator", Scope: "machine/" + cp.MachineID}))
	if err != nil {
		t.Fatal(err)
	}
	keyToken := key.Msg.GetToken()
	cl.As(keyToken) // remembered: it must not reach a log
	carolID := cl.CreateUser(t, "carol@example.com", "carol password 1", "", "")
	if _, err := bob.Role.GrantRole(ctx, connect.NewRequest(&fleetv1.GrantRoleRequest{Subject: "user:" + carolID, Role: "operator", Scope: "location/" + cp.LocationID})); err != nil {
		t.Fatal(err)
	}
	carol := cl.SignIn(t, "carol@example.com", "carol password 1")

	ep, whoami := startSyncingPart(t, cp)
	for _, tok := range []string{keyToken, carol} {
		if err := whoami(tok); err != nil {
			t.Fatalf("a credential made through the share, on the part: %v", err)
		}
	}

	afterNextGrants(t, ep.Socket, func() {
		if _, err := admin.Location.UnshareLocation(ctx, connect.NewRequest(&fleetv1.UnshareLocationRequest{LocationId: cp.LocationID, OrgId: b})); err != nil {
			t.Fatal(err)
		}
	})
	if err := whoami(keyToken); connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "unknown to this part or revoked") {
		t.Fatalf("the share's key on the part after the unshare: %v", err)
	}
	if err := whoami(carol); connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "holds no grant") {
		t.Fatalf("the share's role on the part after the unshare: %v", err)
	}
}

// startSyncingPart runs provisioned part cp syncing every 200 ms, waits
// until it holds grants, and returns its endpoints and a WhoAmI call on
// its control port with a credential.
func startSyncingPart(t *testing.T, cp cloudtest.Part) (Endpoints, func(credential string) error) {
	t.Helper()
	p := &part{Dir: t.TempDir()}
	p.DataDir, p.RunDir = p.Dir+"/data", p.Dir+"/run"
	p.BootPath = cp.WriteBootstrap(t, p.Dir)
	r := run(t, p, clock.NewReal(), func(o *Options) { o.SyncInterval = 200 * time.Millisecond })
	ep := <-r.ready
	waitForGrants(t, ep.Socket)
	return ep, func(credential string) error {
		_, err := controlClient(t, ep.Control, credential).WhoAmI(context.Background(), connect.NewRequest(&controlv1.WhoAmIRequest{}))
		return err
	}
}
