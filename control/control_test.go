package control

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/controlclient"
	"github.com/outpost-robotics/outpost/controlwire"
	"github.com/outpost-robotics/outpost/rbac"
)

// ctl keeps status calls short.
type ctl = controlv1.StatusRequest

func TestBreakGlassSocket(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bundle func(e *env)
	}{
		{"never provisioned", func(e *env) { e.grants.set(nil) }},
		{"unusable bundle", func(e *env) {
			b := e.creds.bundle(2, t0)
			b.Hierarchy.Machine.LocationId = "nowhere"
			e.grants.set(b)
		}},
		{"offline and expired", func(e *env) { e.clock.Advance(90 * 24 * time.Hour) }},
		{"valid grants", func(e *env) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.bundle(e)
			c := socketClient(e.serveSocket())
			ctx := context.Background()
			who, err := c.control.WhoAmI(ctx, connect.NewRequest(&controlv1.WhoAmIRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(who.Msg.GetSubject(), "local/") || who.Msg.GetRole() != "owner" || who.Msg.GetTransport() != TransportSocket {
				t.Fatalf("whoami = %v", who.Msg)
			}
			if _, err := c.control.Restart(ctx, connect.NewRequest(&controlv1.RestartRequest{})); err != nil {
				t.Fatal(err)
			}
			if _, err := c.control.GetConfig(ctx, connect.NewRequest(&controlv1.GetConfigRequest{})); err != nil {
				t.Fatal(err)
			}
			// Every use is audited, reads included.
			evs := e.audit.all()
			if len(evs) != 3 {
				t.Fatalf("%d audit events, want 3: %v", len(evs), evs)
			}
			for _, ev := range evs {
				if ev.GetTransport() != TransportSocket || !ev.GetAllowed() || !strings.HasPrefix(ev.GetSubject(), "local/") {
					t.Errorf("audit event %v", ev)
				}
			}
			// The remote side is refused meanwhile when grants are missing or expired.
			_, err = e.grpc(e.creds.key(ownerKey)).control.Restart(ctx, connect.NewRequest(&controlv1.RestartRequest{}))
			if tc.name != "valid grants" && codeOf(err) != connect.CodeUnauthenticated {
				t.Fatalf("remote restart: %v", err)
			}
		})
	}
}

func TestSocketPeerPolicy(t *testing.T) {
	p := peerPolicy{self: 998, gid: 50, groupsOf: func(uid uint32) []int {
		if uid == 1001 {
			return []int{10, 50}
		}
		return []int{10}
	}}
	for _, tc := range []struct {
		uid, gid uint32
		want     bool
	}{
		{0, 0, true}, {998, 998, true}, {1000, 50, true}, {1001, 1001, true}, {1002, 1002, false},
	} {
		if got := p.allows(tc.uid, tc.gid); got != tc.want {
			t.Errorf("allows(%d, %d) = %v, want %v", tc.uid, tc.gid, got, tc.want)
		}
	}
	if (peerPolicy{self: 998, gid: -1, groupsOf: groupsOf}).allows(1000, 1000) {
		t.Error("no group: a stranger is let in")
	}
}

func TestAudit(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	op := e.grpc(e.creds.key(opKey))
	if _, err := op.control.Status(ctx, connect.NewRequest(&ctl{})); err != nil {
		t.Fatal(err)
	}
	if n := len(e.audit.all()); n != 0 {
		t.Fatalf("a read was audited: %d events", n)
	}
	if _, err := op.control.StopAll(ctx, connect.NewRequest(&controlv1.StopAllRequest{})); err != nil {
		t.Fatal(err)
	}
	_, err := op.control.Restart(ctx, connect.NewRequest(&controlv1.RestartRequest{}))
	if codeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("operator restart: %v", err)
	}
	_, _ = e.grpc("Bearer nonsense").control.Status(ctx, connect.NewRequest(&ctl{}))
	evs := e.audit.all()
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3 (change, refusal, failed authentication): %v", len(evs), evs)
	}
	if ev := evs[0]; !ev.GetAllowed() || ev.GetAction() != "machine.control" || ev.GetSubject() != "apikey/"+opKey ||
		ev.GetResource() != "machine/m1" || ev.GetTransport() != TransportGRPC || ev.GetProcedure() != controlv1connect.ControlServiceStopAllProcedure {
		t.Errorf("change event %v", ev)
	}
	if ev := evs[1]; ev.GetAllowed() || ev.GetAction() != "machine.restart" || !strings.Contains(ev.GetReason(), "operator") {
		t.Errorf("refusal event %v", ev)
	}
	if ev := evs[2]; ev.GetAllowed() || ev.GetSubject() != "" || !strings.HasPrefix(ev.GetPeer(), "127.0.0.1") {
		t.Errorf("authentication event %v", ev)
	}
	// A change nobody can account for is refused.
	e.audit.mu.Lock()
	e.audit.fail = true
	e.audit.mu.Unlock()
	if _, err := op.control.StopAll(ctx, connect.NewRequest(&controlv1.StopAllRequest{})); codeOf(err) != connect.CodeUnavailable {
		t.Fatalf("stop with a broken audit log: %v", err)
	}
	if stops, _ := e.robot.counts(); stops != 1 {
		t.Fatalf("stops = %d, want 1", stops)
	}
}

// TestAuthenticationFlood: failed authentications from one address are
// slowed (ResourceExhausted, without looking at credentials), the daemon
// stays up and keeps serving others, and the address recovers with time.
func TestAuthenticationFlood(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	bad := e.grpc("Bearer " + goneKey + ":wrong")
	var exhausted int
	for range 200 {
		_, err := bad.control.Status(ctx, connect.NewRequest(&ctl{}))
		switch codeOf(err) {
		case connect.CodeUnauthenticated:
		case connect.CodeResourceExhausted:
			exhausted++
		default:
			t.Fatalf("flood answer %v", err)
		}
	}
	if failBurst := authz.Credentials().Free; exhausted != 200-failBurst {
		t.Fatalf("%d throttled of 200, want %d", exhausted, 200-failBurst)
	}
	// Refusals are audited in aggregate: the first of each kind at once
	// (the failed authentication and the throttled answer, one kind when
	// neither names a subject, as for a credential that does not parse),
	// the rest counted.
	if n := len(e.audit.all()); n < 1 || n > 2 {
		t.Fatalf("%d audit events for the flood, want 1 or 2: refusals are not audited one by one", n)
	}
	good := e.grpc(e.creds.key(ownerKey))
	if _, err := good.control.Health(ctx, connect.NewRequest(&controlv1.HealthRequest{})); err != nil {
		t.Fatalf("health during the flood: %v", err)
	}
	if _, err := good.control.Status(ctx, connect.NewRequest(&ctl{})); codeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("the flooding address is throttled whatever it presents: %v", err)
	}
	e.clock.Advance(authz.Credentials().Base)
	if _, err := good.control.Status(ctx, connect.NewRequest(&ctl{})); err != nil {
		t.Fatalf("after the wait: %v", err)
	}
	// Closing writes what was still being counted: every refusal is in
	// the audit log, in a few records.
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	var refused uint64
	evs := e.audit.all()
	for _, ev := range evs {
		if !ev.GetAllowed() {
			refused += max(ev.GetCount(), 1)
		}
	}
	if refused != 201 || len(evs) > 4 {
		t.Fatalf("%d audit records count %d refusals, want at most 4 counting 201", len(evs), refused)
	}
}

func TestGarbageSDP(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sig := e.grpc(e.creds.key(ownerKey)).sig
	for _, sdp := range []string{"", "garbage", "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", strings.Repeat("a", maxSDP+1)} {
		_, err := sig.Offer(ctx, connect.NewRequest(&controlv1.OfferRequest{Sdp: sdp}))
		if codeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("offer %.20q: %v, want InvalidArgument", sdp, err)
		}
	}
	if _, err := sig.Offer(ctx, connect.NewRequest(&controlv1.OfferRequest{Sdp: validLookingOffer})); codeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("offer with a data section pion refuses: %v, want InvalidArgument", err)
	}
	if e.srv.rtc.count() != 0 {
		t.Fatalf("%d sessions left after bad offers", e.srv.rtc.count())
	}
	if _, err := e.grpc("").control.Health(ctx, connect.NewRequest(&controlv1.HealthRequest{})); err != nil {
		t.Fatal(err)
	}
}

// validLookingOffer parses as SDP with an application section but lacks
// what WebRTC needs (ICE credentials, fingerprint).
const validLookingOffer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"

// TestMalformedFrames sends garbage straight onto a session's channel: bad
// headers are dropped, an oversized message aborts its stream only, and the
// session keeps serving calls.
func TestMalformedFrames(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, rc, err := e.webrtc(ctx, e.creds.key(ownerKey))
	if err != nil {
		t.Fatal(err)
	}
	aborts := watchAborts(rc)
	for _, b := range [][]byte{
		{1, 2, 3}, // shorter than a header
		controlwire.AppendFrame(nil, controlwire.Frame{Stream: 0}), // stream 0
		{0, 0, 0, 9, 0x80, 0, 0, 0, 0},                             // unknown flag
		{0, 0, 0, 9, controlwire.FlagFirst, 0, 0, 0, 5, 1},         // length lies
		make([]byte, controlwire.MaxFrame+1),                       // over the frame limit
	} {
		if err := rc.Conn().SendFrame(b); err != nil {
			t.Fatal(err)
		}
	}
	// An oversized message: frames that never end, past MaxJoined.
	id := uint32(1001)
	chunk := make([]byte, controlwire.MaxPayload)
	for i := 0; i*controlwire.MaxPayload <= controlwire.MaxJoined; i++ {
		f := controlwire.Frame{Stream: id, Payload: chunk}
		if i == 0 {
			f.Flags = controlwire.FlagFirst
		}
		if err := rc.Conn().SendFrame(controlwire.AppendFrame(nil, f)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-aborts.of(id):
		if !strings.Contains(err, "over") {
			t.Fatalf("abort reason %v", err)
		}
	case <-ctx.Done():
		t.Fatal("no abort for an oversized message")
	}
	// A continuation with no start, and a head that is not a head.
	_ = rc.Conn().SendFrame(controlwire.AppendFrame(nil, controlwire.Frame{Stream: 1003, Flags: controlwire.FlagLast, Payload: []byte("x")}))
	_ = rc.Conn().SendFrame(controlwire.AppendFrame(nil, controlwire.Frame{Stream: 1005, Flags: controlwire.FlagFirst | controlwire.FlagLast | controlwire.FlagEnd, Payload: []byte{0xff, 0xff}}))
	if _, err := c.control.WhoAmI(ctx, connect.NewRequest(&controlv1.WhoAmIRequest{})); err != nil {
		t.Fatalf("session after garbage: %v", err)
	}
	// Enough undecodable frames end the session, and only it.
	for range maxBadFrames {
		_ = rc.Conn().SendFrame([]byte{1})
	}
	select {
	case <-rc.Done():
	case <-ctx.Done():
		t.Fatal("the session survived a stream of garbage")
	}
	if n := e.srv.rtc.count(); n != 0 {
		t.Fatalf("%d sessions after a stream of garbage", n)
	}
	if _, err := e.grpc(e.creds.key(ownerKey)).control.Status(ctx, connect.NewRequest(&ctl{})); err != nil {
		t.Fatal(err)
	}
}

func TestCertificateIsMadeOnceAndPinned(t *testing.T) {
	e := newEnv(t)
	if e.certs.saves != 1 {
		t.Fatalf("saves = %d", e.certs.saves)
	}
	again, err := New(context.Background(), e.srv.opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Fingerprint() != e.srv.Fingerprint() || e.certs.saves != 1 {
		t.Fatal("restart made a new certificate")
	}
	got, err := controlclient.ProbeFingerprint(context.Background(), e.addr)
	if err != nil || got != e.srv.Fingerprint() {
		t.Fatalf("probe = %s, %v; want %s", got, err, e.srv.Fingerprint())
	}
	// A client pinned to another fingerprint refuses the part.
	wrong, _ := controlclient.PinnedTLSConfig(strings.Repeat("ab", 32))
	hc := newHTTPClientForTest(wrong)
	_, err = newClients(hc, "https://"+e.addr).control.Health(context.Background(), connect.NewRequest(&controlv1.HealthRequest{}))
	if err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Fatalf("wrong pin: %v", err)
	}
	st, err := e.grpc(e.creds.key(opKey)).control.Status(context.Background(), connect.NewRequest(&ctl{}))
	if err != nil {
		t.Fatal(err)
	}
	if st.Msg.GetCertSha256() != e.srv.Fingerprint() || st.Msg.GetGrantsVersion() != 1 || st.Msg.GetMachineId() != "m1" ||
		st.Msg.GetTimeLeft().AsDuration() != 60*24*time.Hour || st.Msg.GetVersion() != "test" {
		t.Fatalf("status = %v", st.Msg)
	}
	for _, in := range []string{"SHA256:" + strings.ToUpper(e.srv.Fingerprint()), colons(e.srv.Fingerprint())} {
		if n, err := controlwire.NormalizeFingerprint(in); err != nil || n != e.srv.Fingerprint() {
			t.Errorf("normalize %q = %q, %v", in, n, err)
		}
	}
}

func colons(h string) string {
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

func TestConfigEditOffline(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.grpc(e.creds.token(ownerUser, tokenKID, e.creds.signer, t0))
	edited := &configv1.RobotConfig{}
	res, err := c.control.EditConfig(ctx, connect.NewRequest(&controlv1.EditConfigRequest{Config: edited, BaseRevision: 3}))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Msg.GetApplied() || res.Msg.GetConflict() != "" || res.Msg.GetProposalSeq() != 1 {
		t.Fatalf("edit = %v", res.Msg)
	}
	res, err = c.control.EditConfig(ctx, connect.NewRequest(&controlv1.EditConfigRequest{Config: edited, BaseRevision: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Msg.GetApplied() || !strings.Contains(res.Msg.GetConflict(), "revision 1") || res.Msg.GetProposalSeq() != 2 {
		t.Fatalf("conflicting edit = %v", res.Msg)
	}
	if got := e.config.proposal(1); got.GetAuthor() != "user/"+ownerUser || got.GetBaseRevision() != 1 {
		t.Fatalf("proposal = %v", got)
	}
	if _, err := c.control.EditConfig(ctx, connect.NewRequest(&controlv1.EditConfigRequest{})); codeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("empty edit: %v", err)
	}
}

func TestWhoAmI(t *testing.T) {
	e := newEnv(t)
	who, err := e.grpc(e.creds.token(opUser, tokenKID, e.creds.signer, t0)).control.WhoAmI(context.Background(), connect.NewRequest(&controlv1.WhoAmIRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	m := who.Msg
	if m.GetSubject() != "user/"+opUser || m.GetRole() != "operator" || m.GetGrant() != "operator of location/l1" || m.GetCredential() != "token" ||
		strings.Join(m.GetAllowedActions(), ",") != "data.export,data.view,machine.control" {
		t.Fatalf("whoami = %v", m)
	}
}

// TestComponentRulesAreMachineControl: components.proto declares
// machine.control on every ComponentService method, as the seed wants (an
// operator sees and uses only the CONTROL tab).
func TestComponentRulesAreMachineControl(t *testing.T) {
	e := newEnv(t)
	n := 0
	for proc, r := range e.srv.auth.rules {
		if strings.HasPrefix(proc, "/"+componentServiceName+"/") {
			n++
			if r.Marker != authz.NoMarker || r.Action != rbac.MachineControl {
				t.Errorf("%s: %q", proc, r.Name())
			}
		}
	}
	if n == 0 {
		t.Fatal("no ComponentService rules")
	}
	for _, proc := range []string{controlv1connect.ComponentServiceDoCommandProcedure, controlv1connect.ComponentServiceStopProcedure} {
		if !e.srv.auth.rules[proc].audit {
			t.Errorf("%s is not audited", proc)
		}
	}
	if e.srv.auth.rules[controlv1connect.ComponentServiceSensorReadingsProcedure].audit {
		t.Error("a read is audited")
	}
}

func TestUnknownProcedureIsRefused(t *testing.T) {
	e := newEnv(t)
	resp, err := e.client.Post("https://"+e.addr+"/outpost.control.v1.ModuleService/AddComponent", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// TestConnectJSON: the same handler speaks Connect JSON over plain HTTP
// clients (curl), with the same authorization.
func TestConnectJSON(t *testing.T) {
	e := newEnv(t)
	post := func(auth, proof string) int {
		req, _ := newJSONRequest("https://"+e.addr+controlv1connect.ControlServiceWhoAmIProcedure, auth, proof)
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(e.headers(e.creds.key(opKey))); got != 200 {
		t.Fatalf("with a key: %d", got)
	}
	if got := post("", ""); got != 401 {
		t.Fatalf("without: %d", got)
	}
}

// TestTokenExpiryWithCache: a token verified once is cached, but never past
// its expiry, and a new bundle without its key refuses it at once.
func TestTokenExpiryWithCache(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.grpc(e.creds.token(ownerUser, tokenKID, e.creds.signer, t0))
	if _, err := c.control.Status(ctx, connect.NewRequest(&ctl{})); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(12*time.Hour + time.Second)
	if _, err := c.control.Status(ctx, connect.NewRequest(&ctl{})); codeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("expired token: %v", err)
	}
	c = e.grpc(e.creds.token(ownerUser, tokenKID, e.creds.signer, e.clock.Now()))
	if _, err := c.control.Status(ctx, connect.NewRequest(&ctl{})); err != nil {
		t.Fatal(err)
	}
	b := e.creds.bundle(2, t0)
	b.TokenKeys = nil // the cloud rotated its token key away
	e.grants.set(b)
	if _, err := c.control.Status(ctx, connect.NewRequest(&ctl{})); codeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("token of a retired key: %v", err)
	}
}

// TestSessionBudget: partial messages on many streams cannot make the
// daemon hold more than sessionBudget for one session.
func TestSessionBudget(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, rc, err := e.webrtc(ctx, e.creds.key(ownerKey))
	if err != nil {
		t.Fatal(err)
	}
	aborts := watchAborts(rc)
	chunk := make([]byte, controlwire.MaxPayload)
	per := 3 << 20 // under MaxJoined, so only the session budget can stop it
	streams := sessionBudget/per + 1
	var last uint32
	for s := range streams {
		id := uint32(2001 + 2*s)
		for i := 0; i*controlwire.MaxPayload < per; i++ {
			f := controlwire.Frame{Stream: id, Payload: chunk}
			if i == 0 {
				f.Flags = controlwire.FlagFirst
			}
			if err := rc.Conn().SendFrame(controlwire.AppendFrame(nil, f)); err != nil {
				t.Fatal(err)
			}
		}
		last = id
	}
	select {
	case err := <-aborts.of(last):
		if !strings.Contains(err, "not yet handled") {
			t.Fatalf("abort reason %v", err)
		}
	case <-ctx.Done():
		t.Fatal("no abort past the session budget")
	}
}

// aborts collects the reasons the part ended streams with an error frame.
type aborts struct {
	mu sync.Mutex
	ch map[uint32]chan string
}

// watchAborts watches rc's session for error frames. The streams the tests
// forge use odd ids from 1001, which the few calls a test makes itself
// (ids 1, 3, 5, ...) never reach.
func watchAborts(rc *controlclient.RTCClient) *aborts {
	a := &aborts{ch: map[uint32]chan string{}}
	rc.Observe(func(f controlwire.Frame) {
		if f.Flags&controlwire.FlagError != 0 {
			select {
			case a.of(f.Stream) <- string(f.Payload):
			default:
			}
		}
	})
	return a
}

// of returns the channel that receives stream id's abort reason.
func (a *aborts) of(id uint32) chan string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ch[id] == nil {
		a.ch[id] = make(chan string, 1)
	}
	return a.ch[id]
}

// TestCaptureEdits: tags and deletions are data.edit, for owners: an
// operator is refused with the seed's reason and the refusal is audited;
// an owner's edit is audited and reaches Data with who made it; requests
// out of bounds never reach Data.
func TestCaptureEdits(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	op, owner := e.grpc(e.creds.key(opKey)), e.grpc(e.creds.key(ownerKey))
	tag := &controlv1.TagCapturesRequest{Ids: []uint64{1, 2}, Add: []string{"reviewed"}}
	_, err := op.control.TagCaptures(ctx, connect.NewRequest(tag))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodePermissionDenied ||
		!strings.Contains(ce.Message(), "apikey/"+opKey+" may not data.edit machine/m1: as operator") {
		t.Fatalf("operator tags: %v", err)
	}
	_, err = op.control.DeleteCaptures(ctx, connect.NewRequest(&controlv1.DeleteCapturesRequest{Ids: []uint64{1}}))
	if codeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("operator deletes: %v", err)
	}
	// state reads what Data holds: tags of capture 1, captures, deleters.
	state := func() (int, int, []string) {
		e.data.mu.Lock()
		defer e.data.mu.Unlock()
		return len(e.data.caps[1].GetTags()), len(e.data.caps), slices.Clone(e.data.deletedBy)
	}
	if tags, n, _ := state(); n != 2 || tags != 0 {
		t.Fatal("a refused edit changed the data")
	}

	res, err := owner.control.TagCaptures(ctx, connect.NewRequest(tag))
	if err != nil || res.Msg.GetChanged() != 2 {
		t.Fatalf("owner tags: %v, %v", res, err)
	}
	del, err := owner.control.DeleteCaptures(ctx, connect.NewRequest(&controlv1.DeleteCapturesRequest{Ids: []uint64{2, 3}}))
	if err != nil || del.Msg.GetDeleted() != 1 {
		t.Fatalf("owner deletes: %v, %v", del, err)
	}
	if _, _, by := state(); !slices.Equal(by, []string{"apikey/" + ownerKey}) {
		t.Fatalf("Data was told the deletion was by %q", by)
	}
	var got []string
	for _, ev := range e.audit.all() {
		got = append(got, fmt.Sprintf("%s %s %v", ev.GetSubject(), path.Base(ev.GetProcedure()), ev.GetAllowed()))
	}
	want := []string{"apikey/" + opKey + " TagCaptures false", "apikey/" + opKey + " DeleteCaptures false",
		"apikey/" + ownerKey + " TagCaptures true", "apikey/" + ownerKey + " DeleteCaptures true"}
	if !slices.Equal(got, want) {
		t.Fatalf("audit events %q, want %q", got, want)
	}

	many := make([]uint64, maxCapturesPerEdit+1)
	for i := range many {
		many[i] = uint64(i + 1)
	}
	for _, bad := range []*controlv1.TagCapturesRequest{
		{Ids: []uint64{1}},
		{Ids: []uint64{0}, Add: []string{"x"}},
		{Add: []string{"x"}},
		{Ids: many, Add: []string{"x"}},
		{Ids: []uint64{1}, Add: []string{"a,b"}},
		{Ids: []uint64{1}, Remove: []string{""}},
		{Ids: []uint64{1}, Add: []string{strings.Repeat("x", config.MaxEditTagLen+1)}},
		{Ids: []uint64{1}, Add: []string{"bell\a"}},
		{Ids: []uint64{1}, Add: make([]string, config.MaxTagsPerEdit+1)},
	} {
		if _, err := owner.control.TagCaptures(ctx, connect.NewRequest(bad)); codeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("TagCaptures(%v): %v, want invalid_argument", bad, err)
		}
	}
	for _, ids := range [][]uint64{nil, {0}, many} {
		if _, err := owner.control.DeleteCaptures(ctx, connect.NewRequest(&controlv1.DeleteCapturesRequest{Ids: ids})); codeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("DeleteCaptures of %d ids: %v, want invalid_argument", len(ids), err)
		}
	}
	if tags, _, by := state(); len(by) != 1 || tags != 1 {
		t.Fatal("a request out of bounds reached Data")
	}
}

// TestCaptureTagsAreForOwners: the seed lets an operator view and export
// a machine's data but not see its tags (data.tags.view), so the part's
// list and export leave them out for an operator, and WhoAmI says which
// caller may see them; an owner sees them, and what Data holds is intact.
func TestCaptureTagsAreForOwners(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.data.mu.Lock()
	e.data.caps[1].Tags = []string{"field", "<b>secret</b>"}
	e.data.mu.Unlock()
	for _, tc := range []struct {
		name string
		c    clients
		want []string
	}{
		{"operator", e.grpc(e.creds.key(opKey)), nil},
		{"owner", e.grpc(e.creds.key(ownerKey)), []string{"field", "<b>secret</b>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := tc.c.control.ListCaptures(ctx, connect.NewRequest(&controlv1.ListCapturesRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			got := map[uint64][]string{}
			for _, c := range list.Msg.GetCaptures() {
				got[c.GetId()] = c.GetTags()
			}
			if len(got) != 2 || !slices.Equal(got[1], tc.want) {
				t.Errorf("list: tags %v, want capture 1's %q", got, tc.want)
			}
			for _, req := range []*controlv1.ExportCapturesRequest{{}, {Ids: []uint64{1}}} {
				s, err := tc.c.control.ExportCaptures(ctx, connect.NewRequest(req))
				if err != nil {
					t.Fatal(err)
				}
				for s.Receive() {
					if id := s.Msg().GetInfo().GetId(); id == 1 && !slices.Equal(s.Msg().GetInfo().GetTags(), tc.want) {
						t.Errorf("export %v: capture 1's tags %q, want %q", req, s.Msg().GetInfo().GetTags(), tc.want)
					}
				}
				if err := s.Err(); err != nil {
					t.Fatal(err)
				}
			}
			who, err := tc.c.control.WhoAmI(ctx, connect.NewRequest(&controlv1.WhoAmIRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			if may := slices.Contains(who.Msg.GetAllowedActions(), "data.tags.view"); may != (tc.want != nil) {
				t.Errorf("WhoAmI says %v may see tags: %v", who.Msg.GetAllowedActions(), may)
			}
		})
	}
	e.data.mu.Lock()
	defer e.data.mu.Unlock()
	if len(e.data.caps[1].GetTags()) != 2 {
		t.Fatalf("answering an operator changed what Data holds: %v", e.data.caps[1])
	}
}

// TestExportSkipsCapturesGoneSinceTheListing: exporting "every capture"
// exports those still on the part when each is read; one uploaded or
// deleted meanwhile is skipped, while one named by id is an error.
func TestExportSkipsCapturesGoneSinceTheListing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.data.mu.Lock()
	e.data.vanish = []uint64{2}
	e.data.mu.Unlock()
	owner := e.grpc(e.creds.key(ownerKey))
	s, err := owner.control.ExportCaptures(ctx, connect.NewRequest(&controlv1.ExportCapturesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for s.Receive() {
		got = append(got, s.Msg().GetInfo().GetId())
	}
	if err := s.Err(); err != nil || !slices.Equal(got, []uint64{1}) {
		t.Fatalf("export of every capture: %v, %v; want capture 1 only", got, err)
	}
	err = drain(owner.control.ExportCaptures(ctx, connect.NewRequest(&controlv1.ExportCapturesRequest{Ids: []uint64{1, 2}})))
	if codeOf(err) != connect.CodeNotFound {
		t.Fatalf("export of a capture named but gone: %v, want not_found", err)
	}
}
