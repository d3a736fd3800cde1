package cloudsync

import (
	"context"

	"connectrpc.com/connect"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
)

// NewClientWithDial is NewClient with the transport's dialer replaced, for
// tests that reach a cloud by a name no DNS knows without a proxy between.
var NewClientWithDial = newClient

// OnUpload wraps c, NewClient's zstd client, so that before runs ahead
// of each upload with whether the Syncer chose to send it uncompressed:
// a test's simulated link.
func OnUpload(c syncv1connect.SyncServiceClient, before func(plain bool, req *syncv1.UploadRequest)) syncv1connect.SyncServiceClient {
	return onUpload{chooser: c.(chooser), before: before}
}

type onUpload struct {
	chooser
	before func(bool, *syncv1.UploadRequest)
}

func (o onUpload) Upload(ctx context.Context, req *connect.Request[syncv1.UploadRequest]) (*connect.Response[syncv1.UploadResponse], error) {
	o.before(isPlain(ctx), req.Msg)
	return o.chooser.Upload(ctx, req)
}
