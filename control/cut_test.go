package control

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/credential"
)

// TestGrantsChangedClosesWhatTheyNoLongerAllow: real pion peers hold
// WebRTC sessions (an operator's key, an operator user's token, an
// owner's key) and an owner user follows the log on the TLS port. A new
// bundle drops the operator key and the owner user and moves the operator
// user's grant elsewhere:
// GrantsChanged closes exactly their session and stream, audits each, and
// the owner's session keeps working.
func TestGrantsChangedClosesWhatTheyNoLongerAllow(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	owner, ownerRC, err := e.webrtc(ctx, e.creds.key(ownerKey))
	if err != nil {
		t.Fatal(err)
	}
	_, opRC, err := e.webrtc(ctx, e.creds.key(opKey))
	if err != nil {
		t.Fatal(err)
	}
	opUserC, opUserRC, err := e.webrtc(ctx, e.creds.token(opUser, tokenKID, e.creds.signer, e.clock.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := opUserC.control.WhoAmI(ctx, connect.NewRequest(&controlv1.WhoAmIRequest{})); err != nil {
		t.Fatal(err)
	}
	// A log stream on the TLS port, open before the bundle changes.
	live := make(chan *controlv1.LogEntry, 1)
	live <- &controlv1.LogEntry{Message: "first"}
	e.logs.setLive(live)
	stream, err := e.grpc(e.creds.token(ownerUser, tokenKID, e.creds.signer, e.clock.Now())).control.FollowLogs(ctx, connect.NewRequest(&controlv1.FollowLogsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if !stream.Receive() {
		t.Fatalf("the stream ended before the bundle changed: %v", stream.Err())
	}

	// Nothing changed: nothing is closed.
	if n := e.srv.GrantsChanged(ctx); n != 0 {
		t.Fatalf("GrantsChanged with the same bundle closed %d", n)
	}
	b := e.creds.bundle(2, t0, opKey, ownerUser)
	for _, p := range b.Principals {
		if p.GetId() == opUser {
			p.Grants[0].Scope = "location/elsewhere"
		}
	}
	e.grants.set(b)
	if n := e.srv.GrantsChanged(ctx); n != 3 {
		t.Fatalf("GrantsChanged closed %d sessions and calls, want 3 (two sessions, one stream)", n)
	}
	for name, rc := range map[string]interface{ Done() <-chan struct{} }{"the operator key's": opRC, "the operator user's": opUserRC} {
		select {
		case <-rc.Done():
		case <-ctx.Done():
			t.Fatalf("%s session is still open", name)
		}
	}
	if stream.Receive() {
		t.Fatal("the removed owner's log stream goes on")
	}
	if err := stream.Err(); connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "grants changed") {
		t.Fatalf("the removed owner's log stream ended with %v, want the part saying its grants changed", err)
	}
	select {
	case <-ownerRC.Done():
		t.Fatal("the owner's session was closed")
	default:
	}
	who, err := owner.control.WhoAmI(ctx, connect.NewRequest(&controlv1.WhoAmIRequest{}))
	if err != nil || who.Msg.GetGrantsVersion() != 2 {
		t.Fatalf("the owner's session after the change: %v, %v", who, err)
	}
	var closed []string
	for _, ev := range e.audit.all() {
		if strings.HasPrefix(ev.GetReason(), "closed: ") && !ev.GetAllowed() {
			closed = append(closed, ev.GetSubject()+" "+ev.GetTransport()+" "+ev.GetReason())
		}
	}
	want := []string{"apikey/" + opKey + " webrtc", "user/" + opUser + " webrtc", "user/" + ownerUser + " grpc"}
	if len(closed) != len(want) {
		t.Fatalf("audited closes %q, want one each of %q", closed, want)
	}
	for _, w := range want {
		found := false
		for _, c := range closed {
			found = found || strings.HasPrefix(c, w+" closed: ")
		}
		if !found {
			t.Errorf("no audit of %q in %q", w, closed)
		}
	}
	if n := len(e.srv.auth.live.all()); n != 0 {
		t.Errorf("%d calls on the TLS port are still tracked after they ended", n)
	}
}

// TestGrantsChangedCutsRevokedTokens: a session opened with a user's token
// ends when the bundle lists that token as signed out, though the user
// keeps the grant.
func TestGrantsChangedCutsRevokedTokens(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tok := e.creds.token(opUser, tokenKID, e.creds.signer, e.clock.Now())
	_, rc, err := e.webrtc(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := parseTokenID(tok, e.creds.signer.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	b := e.creds.bundle(2, t0)
	for _, p := range b.Principals {
		if p.GetId() == opUser {
			p.RevokedTokenIds = []string{claims}
		}
	}
	e.grants.set(b)
	if n := e.srv.GrantsChanged(ctx); n != 1 {
		t.Fatalf("GrantsChanged closed %d, want the signed-out token's session", n)
	}
	select {
	case <-rc.Done():
	case <-ctx.Done():
		t.Fatal("the signed-out token's session is still open")
	}
}

// parseTokenID returns the id of the token in a printed session.
func parseTokenID(session string, signer ed25519.PublicKey) (string, error) {
	k, err := credential.ParseKey(session)
	if err != nil {
		return "", err
	}
	c, err := credential.VerifyToken(k.Token, map[string]ed25519.PublicKey{tokenKID: signer}, t0)
	if err != nil {
		return "", err
	}
	return c.ID, nil
}
