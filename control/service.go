package control

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/rbac"
)

// service implements ControlService. No method checks permissions: the
// authorizer did before the call reached it, and put the caller in ctx.
// Only what a capture shows of its tags depends on the caller
// (data.tags.view, mayViewTags), as in the cloud's data API.
type service struct {
	controlv1connect.UnimplementedControlServiceHandler
	s *Server
}

// Limits of what one call returns.
const (
	defaultTail     = 100
	maxTail         = 10000
	defaultCaptures = 1000
	maxCaptures     = 100000
)

func (v *service) Health(context.Context, *connect.Request[controlv1.HealthRequest]) (*connect.Response[controlv1.HealthResponse], error) {
	return connect.NewResponse(&controlv1.HealthResponse{Serving: true}), nil
}

func (v *service) Status(ctx context.Context, _ *connect.Request[controlv1.StatusRequest]) (*connect.Response[controlv1.StatusResponse], error) {
	st, err := v.s.opts.Status.SyncStatus(ctx)
	if err != nil {
		return nil, v.s.errs.Answer("read sync status", err)
	}
	st.Version = v.s.opts.Version
	st.CertSha256 = v.s.fingerprint
	if p := callerOf(ctx).policy; p != nil && p.bundle != nil {
		st.MachineId = p.bundle.GetMachineId()
		st.GrantsVersion = p.version
		st.GrantsExpireAt = timestamppb.New(p.expiresAt)
		if st.PartId == "" {
			st.PartId = p.partID
		}
		if left := p.expiresAt.Sub(v.s.opts.Clock.Now()); st.TimeLeft == nil {
			st.TimeLeft = durationpb.New(max(left, 0))
		}
	}
	return connect.NewResponse(st), nil
}

func (v *service) WhoAmI(ctx context.Context, _ *connect.Request[controlv1.WhoAmIRequest]) (*connect.Response[controlv1.WhoAmIResponse], error) {
	c := callerOf(ctx)
	resp := &controlv1.WhoAmIResponse{
		Subject:       c.who.String(),
		DisplayName:   c.display,
		Role:          c.grant.Role.String(),
		Grant:         c.grant.String(),
		Credential:    c.credential,
		Transport:     c.transport,
		GrantsVersion: c.policy.version,
	}
	for _, rl := range v.s.auth.rules {
		if rl.Marker != authz.NoMarker || slices.Contains(resp.AllowedActions, string(rl.Action)) {
			continue
		}
		if c.policy.engine.Decide(c.subject, rl.Action, c.policy.machine).Allowed {
			resp.AllowedActions = append(resp.AllowedActions, string(rl.Action))
		}
	}
	// Decided in answers rather than by a procedure's rule.
	if mayViewTags(ctx) {
		resp.AllowedActions = append(resp.AllowedActions, string(rbac.DataTagsView))
	}
	slices.Sort(resp.AllowedActions)
	return connect.NewResponse(resp), nil
}

func (v *service) StopAll(ctx context.Context, _ *connect.Request[controlv1.StopAllRequest]) (*connect.Response[controlv1.StopAllResponse], error) {
	failed, err := v.s.opts.Robot.StopAll(ctx)
	if err != nil {
		return nil, v.s.errs.Answer("stop all components", err)
	}
	return connect.NewResponse(&controlv1.StopAllResponse{Errors: failed}), nil
}

func (v *service) GetConfig(ctx context.Context, _ *connect.Request[controlv1.GetConfigRequest]) (*connect.Response[controlv1.GetConfigResponse], error) {
	st, err := v.s.opts.Config.CurrentConfig(ctx)
	if err != nil {
		return nil, v.s.errs.Answer("read config", err)
	}
	return connect.NewResponse(&controlv1.GetConfigResponse{Config: st.Config, Version: st.Version, MachineRevision: st.MachineRevision, LocalEdits: st.LocalEdits}), nil
}

func (v *service) EditConfig(ctx context.Context, req *connect.Request[controlv1.EditConfigRequest]) (*connect.Response[controlv1.EditConfigResponse], error) {
	if req.Msg.GetConfig() == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("edit config: no config given"))
	}
	// The endorsement is for the cloud, which verifies it; the part only
	// bounds what it keeps and passes on.
	if e := req.Msg.GetEndorsement(); len(e.GetKeyId()) > 64 || len(e.GetAccessToken()) > credential.MaxHeaderLen || len(e.GetSignature()) > credential.MaxHeaderLen {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("edit config: endorsement fields over %d bytes", credential.MaxHeaderLen))
	}
	res, err := v.s.opts.Config.ProposeEdit(ctx, &syncv1.ConfigProposal{
		BaseRevision: req.Msg.GetBaseRevision(),
		Config:       req.Msg.GetConfig(),
		Author:       callerOf(ctx).who.String(),
		Endorsement:  req.Msg.GetEndorsement(),
	})
	if err != nil {
		return nil, v.s.errs.Answer("apply config edit", err)
	}
	return connect.NewResponse(&controlv1.EditConfigResponse{Applied: res.Applied, ProposalSeq: res.ProposalSeq, Conflict: res.Conflict}), nil
}

func (v *service) TailLogs(ctx context.Context, req *connect.Request[controlv1.TailLogsRequest]) (*connect.Response[controlv1.TailLogsResponse], error) {
	n := int(req.Msg.GetLimit())
	if n <= 0 {
		n = defaultTail
	}
	entries, err := v.s.opts.Logs.Tail(ctx, min(n, maxTail), req.Msg.GetMinLevel())
	if err != nil {
		return nil, v.s.errs.Answer("read logs", err)
	}
	return connect.NewResponse(&controlv1.TailLogsResponse{Entries: entries}), nil
}

func (v *service) FollowLogs(ctx context.Context, req *connect.Request[controlv1.FollowLogsRequest], stream *connect.ServerStream[controlv1.FollowLogsResponse]) error {
	ch, err := v.s.opts.Logs.Follow(ctx, req.Msg.GetMinLevel())
	if err != nil {
		return v.s.errs.Answer("follow logs", err)
	}
	for {
		select {
		case <-ctx.Done():
			return cutError(ctx)
		case e, ok := <-ch:
			if !ok {
				return nil
			}
			if err := stream.Send(&controlv1.FollowLogsResponse{Entry: e}); err != nil {
				return err
			}
		}
	}
}

func (v *service) Restart(ctx context.Context, _ *connect.Request[controlv1.RestartRequest]) (*connect.Response[controlv1.RestartResponse], error) {
	if err := v.s.opts.Robot.Restart(ctx); err != nil {
		return nil, v.s.errs.Answer("restart", err)
	}
	return connect.NewResponse(&controlv1.RestartResponse{}), nil
}

func (v *service) ListCaptures(ctx context.Context, req *connect.Request[controlv1.ListCapturesRequest]) (*connect.Response[controlv1.ListCapturesResponse], error) {
	n := int(req.Msg.GetLimit())
	if n <= 0 {
		n = defaultCaptures
	}
	caps, err := v.s.opts.Data.ListCaptures(ctx, req.Msg.GetComponent(), min(n, maxCaptures))
	if err != nil {
		return nil, v.s.errs.Answer("list captures", err)
	}
	if !mayViewTags(ctx) {
		for i, c := range caps {
			caps[i] = withoutTags(c)
		}
	}
	return connect.NewResponse(&controlv1.ListCapturesResponse{Captures: caps}), nil
}

// mayViewTags reports whether the caller may see the tags of this
// machine's data (data.tags.view): the seed lets operators view and export
// data but not see its tags, as the cloud's data API does.
func mayViewTags(ctx context.Context) bool {
	c := callerOf(ctx)
	return c != nil && c.subject != nil && c.policy.engine.Decide(c.subject, rbac.DataTagsView, c.policy.machine).Allowed
}

// withoutTags returns a copy of c without its tags; c itself may be what
// Data holds.
func withoutTags(c *controlv1.CaptureInfo) *controlv1.CaptureInfo {
	if len(c.GetTags()) == 0 {
		return c
	}
	c = proto.CloneOf(c)
	c.Tags = nil
	return c
}

func (v *service) ExportCaptures(ctx context.Context, req *connect.Request[controlv1.ExportCapturesRequest], stream *connect.ServerStream[controlv1.ExportCapturesResponse]) error {
	ids := req.Msg.GetIds()
	listed := len(ids) == 0
	if listed {
		caps, err := v.s.opts.Data.ListCaptures(ctx, req.Msg.GetComponent(), maxCaptures)
		if err != nil {
			return v.s.errs.Answer("list captures", err)
		}
		for _, c := range caps {
			ids = append(ids, c.GetId())
		}
	}
	tags := mayViewTags(ctx)
	for _, id := range ids {
		info, data, err := v.s.opts.Data.ReadCapture(ctx, id)
		if listed && connect.CodeOf(err) == connect.CodeNotFound {
			// Uploaded, evicted or deleted since the listing: "every
			// capture" means every one still on the part.
			continue
		}
		if err != nil {
			return v.s.errs.Answer(fmt.Sprintf("read capture %d", id), err)
		}
		if !tags {
			info = withoutTags(info)
		}
		if err := stream.Send(&controlv1.ExportCapturesResponse{Info: info, Data: data}); err != nil {
			return err
		}
	}
	return nil
}

func (v *service) TagCaptures(ctx context.Context, req *connect.Request[controlv1.TagCapturesRequest]) (*connect.Response[controlv1.TagCapturesResponse], error) {
	if err := validTagEdit(req.Msg); err != nil {
		return nil, err
	}
	n, err := v.s.opts.Data.TagCaptures(ctx, req.Msg.GetIds(), req.Msg.GetAdd(), req.Msg.GetRemove())
	if err != nil {
		return nil, v.s.errs.Answer("tag captures", err)
	}
	return connect.NewResponse(&controlv1.TagCapturesResponse{Changed: uint32(n)}), nil
}

func (v *service) DeleteCaptures(ctx context.Context, req *connect.Request[controlv1.DeleteCapturesRequest]) (*connect.Response[controlv1.DeleteCapturesResponse], error) {
	if err := validCaptureIDs(req.Msg.GetIds()); err != nil {
		return nil, err
	}
	n, err := v.s.opts.Data.DeleteCaptures(ctx, req.Msg.GetIds())
	if err != nil {
		return nil, v.s.errs.Answer("delete captures", err)
	}
	return connect.NewResponse(&controlv1.DeleteCapturesResponse{Deleted: uint32(n)}), nil
}

// maxCapturesPerEdit bounds a tag or delete request, as the cloud's data
// API does; the tags themselves follow config.CheckEditTags, the cloud's rule.
const maxCapturesPerEdit = 1000

// validTagEdit checks a TagCaptures request.
func validTagEdit(m *controlv1.TagCapturesRequest) error {
	if err := validCaptureIDs(m.GetIds()); err != nil {
		return err
	}
	if len(m.GetAdd())+len(m.GetRemove()) == 0 {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("tag captures: add or remove at least one tag"))
	}
	for _, f := range []struct {
		name string
		tags []string
	}{{"add", m.GetAdd()}, {"remove", m.GetRemove()}} {
		if err := config.CheckEditTags(f.name, f.tags); err != nil {
			return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("tag captures: %w", err))
		}
	}
	return nil
}

// validCaptureIDs checks the capture ids of a tag or delete request.
func validCaptureIDs(ids []uint64) error {
	if len(ids) == 0 || len(ids) > maxCapturesPerEdit {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("name 1 to %d captures by id (%d given)", maxCapturesPerEdit, len(ids)))
	}
	if slices.Contains(ids, 0) {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("capture ids start at 1"))
	}
	return nil
}
