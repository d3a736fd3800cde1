package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/controlwire"
)

// call is one RPC of the control API, as a field tech's client makes it.
type call struct {
	name string
	run  func(ctx context.Context, c clients) error
}

func drain[T any](s *connect.ServerStreamForClient[T], err error) error {
	if err != nil {
		return err
	}
	for s.Receive() {
	}
	if err := s.Err(); err != nil {
		return err
	}
	return s.Close()
}

// calls lists every call a field tech makes: status, whoami, components (list,
// status, command, readings, image, stop), stop-all, config read and edit,
// logs (tail and follow), restart, captures list, export, tags, deletion.
func calls() []call {
	cmd, _ := structpb.NewStruct(map[string]any{"move": 1})
	return []call{
		{"Health", func(ctx context.Context, c clients) error {
			_, err := c.control.Health(ctx, connect.NewRequest(&controlv1.HealthRequest{}))
			return err
		}},
		{"Status", func(ctx context.Context, c clients) error {
			_, err := c.control.Status(ctx, connect.NewRequest(&controlv1.StatusRequest{}))
			return err
		}},
		{"WhoAmI", func(ctx context.Context, c clients) error {
			_, err := c.control.WhoAmI(ctx, connect.NewRequest(&controlv1.WhoAmIRequest{}))
			return err
		}},
		{"ListResources", func(ctx context.Context, c clients) error {
			_, err := c.comp.ListResources(ctx, connect.NewRequest(&controlv1.ListResourcesRequest{}))
			return err
		}},
		{"GetStatus", func(ctx context.Context, c clients) error {
			_, err := c.comp.GetStatus(ctx, connect.NewRequest(&controlv1.GetStatusRequest{Name: "arm"}))
			return err
		}},
		{"DoCommand", func(ctx context.Context, c clients) error {
			_, err := c.comp.DoCommand(ctx, connect.NewRequest(&controlv1.DoCommandRequest{Name: "arm", Command: cmd}))
			return err
		}},
		{"SensorReadings", func(ctx context.Context, c clients) error {
			_, err := c.comp.SensorReadings(ctx, connect.NewRequest(&controlv1.SensorReadingsRequest{Name: "temp"}))
			return err
		}},
		{"CameraImage", func(ctx context.Context, c clients) error {
			_, err := c.comp.CameraImage(ctx, connect.NewRequest(&controlv1.CameraImageRequest{Name: "cam"}))
			return err
		}},
		{"Stop", func(ctx context.Context, c clients) error {
			_, err := c.comp.Stop(ctx, connect.NewRequest(&controlv1.StopRequest{Name: "arm"}))
			return err
		}},
		{"StopAll", func(ctx context.Context, c clients) error {
			_, err := c.control.StopAll(ctx, connect.NewRequest(&controlv1.StopAllRequest{}))
			return err
		}},
		{"GetConfig", func(ctx context.Context, c clients) error {
			_, err := c.control.GetConfig(ctx, connect.NewRequest(&controlv1.GetConfigRequest{}))
			return err
		}},
		{"EditConfig", func(ctx context.Context, c clients) error {
			_, err := c.control.EditConfig(ctx, connect.NewRequest(&controlv1.EditConfigRequest{Config: &configv1.RobotConfig{}, BaseRevision: 3}))
			return err
		}},
		{"TailLogs", func(ctx context.Context, c clients) error {
			_, err := c.control.TailLogs(ctx, connect.NewRequest(&controlv1.TailLogsRequest{}))
			return err
		}},
		{"FollowLogs", func(ctx context.Context, c clients) error {
			return drain(c.control.FollowLogs(ctx, connect.NewRequest(&controlv1.FollowLogsRequest{})))
		}},
		{"Restart", func(ctx context.Context, c clients) error {
			_, err := c.control.Restart(ctx, connect.NewRequest(&controlv1.RestartRequest{}))
			return err
		}},
		{"ListCaptures", func(ctx context.Context, c clients) error {
			_, err := c.control.ListCaptures(ctx, connect.NewRequest(&controlv1.ListCapturesRequest{}))
			return err
		}},
		{"ExportCaptures", func(ctx context.Context, c clients) error {
			return drain(c.control.ExportCaptures(ctx, connect.NewRequest(&controlv1.ExportCapturesRequest{Ids: []uint64{1}})))
		}},
		{"TagCaptures", func(ctx context.Context, c clients) error {
			_, err := c.control.TagCaptures(ctx, connect.NewRequest(&controlv1.TagCapturesRequest{Ids: []uint64{1}, Add: []string{"x"}}))
			return err
		}},
		{"DeleteCaptures", func(ctx context.Context, c clients) error {
			_, err := c.control.DeleteCaptures(ctx, connect.NewRequest(&controlv1.DeleteCapturesRequest{Ids: []uint64{999}}))
			return err
		}},
	}
}

// actionOf is each call's rule, written out by hand from control.proto and
// components.proto: a refusal names it (rbac's reason quotes the seed).
var actionOf = map[string]string{
	"Health": "public", "Status": "authenticated", "WhoAmI": "authenticated", "Offer": "authenticated",
	"ListResources": "machine.control", "GetStatus": "machine.control", "DoCommand": "machine.control",
	"SensorReadings": "machine.control", "CameraImage": "machine.control", "Stop": "machine.control",
	"StopAll": "machine.control", "GetConfig": "machine.view", "EditConfig": "machine.config.edit",
	"TailLogs": "machine.view", "FollowLogs": "machine.view", "Restart": "machine.restart",
	"ListCaptures": "data.view", "ExportCaptures": "data.export", "TagCaptures": "data.edit", "DeleteCaptures": "data.edit",
}

// operatorMay is the seed's operator column for this API, written out by
// hand (not computed with rbac): "see and use only the CONTROL tab", plus
// the data rows where the operator cell says Yes (view, export).
var operatorMay = []string{"Health", "Status", "WhoAmI", "Offer", "ListResources", "GetStatus", "DoCommand", "SensorReadings",
	"CameraImage", "Stop", "StopAll", "ListCaptures", "ExportCaptures"}

// identity is one row group of the matrix.
type identity struct {
	name   string
	auth   func(e *env) string
	setup  func(e *env) // the bundle state, before the identity's calls
	expect func(call string) connect.Code
}

func allowAll(string) connect.Code { return 0 }
func operator(c string) connect.Code {
	if slices.Contains(operatorMay, c) {
		return 0
	}
	return connect.CodePermissionDenied
}
func refusedWith(code connect.Code) func(string) connect.Code {
	return func(c string) connect.Code {
		if c == "Health" {
			return 0
		}
		return code
	}
}

func identities() []identity {
	valid := func(e *env) { e.grants.set(e.creds.bundle(1, e.clock.Now())) }
	return []identity{
		{"owner token", func(e *env) string { return e.creds.token(ownerUser, tokenKID, e.creds.signer, e.clock.Now()) }, valid, allowAll},
		{"owner api key", func(e *env) string { return e.creds.key(ownerKey) }, valid, allowAll},
		{"operator token", func(e *env) string { return e.creds.token(opUser, tokenKID, e.creds.signer, e.clock.Now()) }, valid, operator},
		{"operator api key", func(e *env) string { return e.creds.key(opKey) }, valid, operator},
		{"no grant", func(e *env) string { return e.creds.token(noneUser, tokenKID, e.creds.signer, e.clock.Now()) }, valid, refusedWith(connect.CodePermissionDenied)},
		{"no credential", func(e *env) string { return "" }, valid, refusedWith(connect.CodeUnauthenticated)},
		{"revoked api key", func(e *env) string { return e.creds.key(opKey) },
			func(e *env) { e.grants.set(e.creds.bundle(2, e.clock.Now(), opKey)) }, refusedWith(connect.CodeUnauthenticated)},
		{"expired bundle", func(e *env) string { return e.creds.key(ownerKey) },
			func(e *env) { e.grants.set(e.creds.bundle(3, e.clock.Now().Add(-61*24*time.Hour))) }, refusedWith(connect.CodeUnauthenticated)},
		{"forged token", func(e *env) string { return e.creds.token(ownerUser, tokenKID, e.creds.other, e.clock.Now()) }, valid, refusedWith(connect.CodeUnauthenticated)},
		{"token of an unknown key", func(e *env) string { return e.creds.token(ownerUser, "kid-unknown", e.creds.other, e.clock.Now()) }, valid, refusedWith(connect.CodeUnauthenticated)},
		{"api key from before key pairs", func(e *env) string { return "Bearer " + ownerKey + ":secret" }, valid, refusedWith(connect.CodeUnauthenticated)},
		{"bearer token", func(e *env) string {
			return "Bearer " + e.creds.token(ownerUser, tokenKID, e.creds.signer, e.clock.Now())
		}, valid, refusedWith(connect.CodeUnauthenticated)},
	}
}

func codeOf(err error) connect.Code {
	if err == nil {
		return 0
	}
	return connect.CodeOf(err)
}

// runCalls makes every call and compares its code with want. The clock
// moves a minute after each so the failed-authentication throttle (ten a
// minute) never interferes.
func runCalls(t *testing.T, e *env, c clients, want func(string) connect.Code) {
	t.Helper()
	for _, cl := range calls() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := cl.run(ctx, c)
		cancel()
		if got := codeOf(err); got != want(cl.name) {
			t.Errorf("%s: got %v (%v), want %v", cl.name, got, err, want(cl.name))
		} else if got == connect.CodePermissionDenied {
			// A subject holding a role is told the action it may not take
			// and who may (the seed's columns); one holding none, that.
			msg := err.(*connect.Error).Message()
			if !strings.Contains(msg, "holds no grant") && (!strings.Contains(msg, "may not "+actionOf[cl.name]) || !strings.Contains(msg, "owner")) {
				t.Errorf("%s: refused with %q, which does not say that %s is not allowed to the caller and who may", cl.name, msg, actionOf[cl.name])
			}
		}
		e.clock.Advance(time.Minute)
	}
}

func TestPermissionMatrixGRPC(t *testing.T) {
	e := newEnv(t)
	for _, id := range identities() {
		t.Run(id.name, func(t *testing.T) {
			id.setup(e)
			runCalls(t, e, e.grpc(id.auth(e)), id.expect)
		})
	}
}

func TestPermissionMatrixWebRTC(t *testing.T) {
	e := newEnv(t)
	for _, id := range identities() {
		t.Run(id.name, func(t *testing.T) {
			id.setup(e)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, _, err := e.webrtc(ctx, id.auth(e))
			if want := id.expect("Offer"); want != 0 {
				// A refused identity never gets a session: signaling is
				// authorized like any call ("authenticated").
				if got := codeOf(err); got != want {
					t.Fatalf("signaling: got %v (%v), want %v", got, err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("signaling: %v", err)
			}
			runCalls(t, e, c, id.expect)
		})
	}
}

// TestWebRTCSessionFollowsTheCurrentBundle: the identity is fixed at
// signaling, but each call is decided on the bundle of that moment, so a
// revocation or an expiry cuts in on the next call after the next sync.
func TestWebRTCSessionFollowsTheCurrentBundle(t *testing.T) {
	for _, tc := range []struct {
		name   string
		key    string
		before func(string) connect.Code
		change func(e *env)
		after  func(string) connect.Code
	}{
		{"revoked", opKey, operator, func(e *env) { e.grants.set(e.creds.bundle(2, t0, opKey)) }, refusedWith(connect.CodeUnauthenticated)},
		{"demoted to operator", ownerKey, allowAll, func(e *env) {
			b := e.creds.bundle(2, t0)
			for _, p := range b.Principals {
				if p.GetId() == ownerKey {
					p.Grants[0].Role = syncv1.Role_ROLE_OPERATOR
				}
			}
			e.grants.set(b)
		}, operator},
		{"expired", opKey, operator, func(e *env) { e.clock.Advance(61 * 24 * time.Hour) }, refusedWith(connect.CodeUnauthenticated)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, _, err := e.webrtc(ctx, e.creds.key(tc.key))
			if err != nil {
				t.Fatal(err)
			}
			runCalls(t, e, c, tc.before)
			tc.change(e)
			runCalls(t, e, c, tc.after)
		})
	}
}

// TestWebRTCCarriesTheCalls: calls on the channel are WebRTC calls (not a
// fallback to TLS), large messages are split and joined intact, and server
// streams arrive.
func TestWebRTCCarriesTheCalls(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := e.webrtc(ctx, e.creds.key(ownerKey))
	if err != nil {
		t.Fatal(err)
	}
	who, err := c.control.WhoAmI(ctx, connect.NewRequest(&controlv1.WhoAmIRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if who.Msg.GetTransport() != TransportWebRTC || who.Msg.GetSubject() != "apikey/"+ownerKey || who.Msg.GetRole() != "owner" {
		t.Fatalf("whoami = %v", who.Msg)
	}
	// Request bodies of every size around a frame's payload, which the
	// client sends from a buffer that grows as a body needs, arrive intact
	// (the robot answers a command with the command).
	for _, size := range []int{0, 1, 511, 512, 513, controlwire.MaxPayload - 40, controlwire.MaxPayload, controlwire.MaxPayload + 1, 3*controlwire.MaxPayload + 7, 200 << 10} {
		cmd, err := structpb.NewStruct(map[string]any{"pad": strings.Repeat("x", size)})
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.comp.DoCommand(ctx, connect.NewRequest(&controlv1.DoCommandRequest{Name: "arm", Command: cmd}))
		if err != nil {
			t.Fatalf("command of %d bytes: %v", size, err)
		}
		if got := res.Msg.GetResult().GetFields()["pad"].GetStringValue(); got != strings.Repeat("x", size) {
			t.Fatalf("command of %d bytes came back as %d bytes, or changed", size, len(got))
		}
	}
	img, err := c.comp.CameraImage(ctx, connect.NewRequest(&controlv1.CameraImageRequest{Name: "cam"}))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img.Msg.GetImage(), e.robot.image) {
		t.Fatalf("image of %d bytes came back as %d bytes, or changed", len(e.robot.image), len(img.Msg.GetImage()))
	}
	// Connect sends a server stream's headers with its first message, so the
	// call returns once the first entry is logged: feed them concurrently,
	// one at a time, and see each arrive before the next is written.
	live := make(chan *controlv1.LogEntry)
	e.logs.setLive(live)
	next := make(chan int)
	go func() {
		for i := range next {
			live <- &controlv1.LogEntry{Message: fmt.Sprint("line ", i)}
		}
		close(live)
	}()
	next <- 0
	stream, err := c.control.FollowLogs(ctx, connect.NewRequest(&controlv1.FollowLogsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if i > 0 {
			next <- i
		}
		if !stream.Receive() {
			t.Fatalf("stream ended: %v", stream.Err())
		}
		if got := stream.Msg().GetEntry().GetMessage(); got != fmt.Sprint("line ", i) {
			t.Fatalf("got %q", got)
		}
	}
	close(next)
	if stream.Receive() {
		t.Fatal("stream goes on after the log closed")
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.control.StopAll(ctx, connect.NewRequest(&controlv1.StopAllRequest{})); err != nil {
		t.Fatal(err)
	}
	var rtcAudits int
	for _, ev := range e.audit.all() {
		if ev.GetTransport() == TransportWebRTC && ev.GetSubject() == "apikey/"+ownerKey && ev.GetAllowed() {
			rtcAudits++
		}
	}
	if rtcAudits == 0 {
		t.Fatal("no audit event says webrtc")
	}
}

// TestRevocationWithinOneSync: a revoked key works up to the sync that
// brings the new bundle and never after, over gRPC.
func TestRevocationWithinOneSync(t *testing.T) {
	e := newEnv(t)
	c := e.grpc(e.creds.key(ownerKey))
	ctx := context.Background()
	if _, err := c.control.Restart(ctx, connect.NewRequest(&controlv1.RestartRequest{})); err != nil {
		t.Fatal(err)
	}
	e.grants.set(e.creds.bundle(2, t0, ownerKey)) // the sync loop stored a newer bundle
	_, err := c.control.Restart(ctx, connect.NewRequest(&controlv1.RestartRequest{}))
	if codeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("after revocation: %v, want Unauthenticated", err)
	}
	if _, restarts := e.robot.counts(); restarts != 1 {
		t.Fatalf("restarts = %d, want 1", restarts)
	}
}

// TestExpiryMessage: refusals after expiry say why and what to do.
func TestExpiryMessage(t *testing.T) {
	e := newEnv(t)
	e.clock.Advance(60*24*time.Hour + time.Second)
	_, err := e.grpc(e.creds.key(ownerKey)).control.Status(context.Background(), connect.NewRequest(&controlv1.StatusRequest{}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeUnauthenticated {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{"grants expired 2027-01-21T12:00:00Z", "60 days", "reconnect it", "break-glass socket"} {
		if !bytes.Contains([]byte(ce.Message()), []byte(want)) {
			t.Errorf("message %q lacks %q", ce.Message(), want)
		}
	}
}
