package cloud

import (
	"context"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/cloud/store"
)

type auditService struct{ s *Server }

func (as auditService) ListAuditEvents(ctx context.Context, req *connect.Request[fleetv1.ListAuditEventsRequest]) (*connect.Response[fleetv1.ListAuditEventsResponse], error) {
	m := req.Msg
	size := int(m.GetPageSize())
	if size < 0 || size > 1000 {
		return nil, invalid("page_size: 1 to 1000, or 0 for 100")
	}
	if size == 0 {
		size = 100
	}
	if len(m.GetPageToken()) > 64 {
		return nil, invalid("page_token: pass next_page_token from the previous page")
	}
	res := &fleetv1.ListAuditEventsResponse{}
	err := as.s.view(ctx, func(tx store.Tx) error {
		evs, err := tx.ListAudit(ctx, m.GetOrgId(), m.GetPageToken(), size)
		if err != nil {
			return err
		}
		for _, e := range evs {
			res.Events = append(res.Events, auditPB(e))
		}
		if len(evs) == size {
			res.NextPageToken = evs[len(evs)-1].ID
		}
		return nil
	})
	return reply(res, err)
}
