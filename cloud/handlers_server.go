package cloud

import (
	"context"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/version"
)

type serverInfo struct{}

func (serverInfo) GetServerInfo(context.Context, *connect.Request[fleetv1.GetServerInfoRequest]) (*connect.Response[fleetv1.GetServerInfoResponse], error) {
	return connect.NewResponse(&fleetv1.GetServerInfoResponse{Version: version.Version, Commit: version.Commit}), nil
}
