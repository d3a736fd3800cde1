package cloud

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/rbac"
)

// alertService is the fleet alert rules (alerts.go evaluates and delivers
// them). Managing a rule is alert.manage on its scope, reading rules and
// history alert.view (docs/ACTIONS.md), both decided by the interceptor.
type alertService struct{ s *Server }

// alertScope parses a rule's scope: an organization or a location.
func alertScope(scope string) (rbac.Resource, error) {
	res, err := rbac.ParseResource(scope)
	if err != nil || res.Kind != rbac.KindOrg && res.Kind != rbac.KindLocation {
		return rbac.Resource{}, invalid("scope: want org/ID or location/ID (a rule covers an organization or a location's subtree)")
	}
	return res, nil
}

// validateAlertRule checks what a rule's author chose.
func validateAlertRule(m *fleetv1.CreateAlertRuleRequest, opts AlertOptions) error {
	if err := validName("name", m.GetName()); err != nil {
		return err
	}
	need, ok := alertKinds[m.GetKind()]
	if !ok {
		return invalid("kind %q: want offline, failing, error_logs, capture_backlog, store_bytes or rollout_failed", cut(m.GetKind()))
	}
	switch {
	case need.threshold && m.GetThreshold() == 0:
		return invalid("threshold: %s needs a threshold of at least 1", m.GetKind())
	case need.threshold && m.GetThreshold() > 1<<62:
		return invalid("threshold: at most %d", uint64(1)<<62)
	case !need.threshold && m.GetThreshold() != 0:
		return invalid("threshold: %s takes none", m.GetKind())
	}
	w := time.Duration(m.GetWindowSeconds()) * time.Second
	switch {
	case need.window && (w < minAlertWindow || w > maxAlertWindow):
		return invalid("window_seconds: %s needs %d to %d seconds", m.GetKind(), int(minAlertWindow.Seconds()), int(maxAlertWindow.Seconds()))
	case !need.window && w != 0:
		return invalid("window_seconds: %s takes none", m.GetKind())
	}
	return validateWebhookURL(m.GetWebhookUrl(), opts)
}

func (as alertService) CreateAlertRule(ctx context.Context, req *connect.Request[fleetv1.CreateAlertRuleRequest]) (*connect.Response[fleetv1.CreateAlertRuleResponse], error) {
	s, m, c := as.s, req.Msg, callFrom(ctx)
	scope, err := alertScope(m.GetScope())
	if err != nil {
		return nil, err
	}
	if err := validateAlertRule(m, s.alerts.opts); err != nil {
		return nil, err
	}
	secret := newAlertSecret()
	r := store.AlertRule{ID: auth.NewID(), OrgID: c.snap.orgOf(scope), Scope: scope.String(), Name: m.GetName(), Kind: m.GetKind(),
		Threshold: m.GetThreshold(), Window: time.Duration(m.GetWindowSeconds()) * time.Second, WebhookURL: m.GetWebhookUrl(),
		Secret: secret, CreatedBy: requester(ctx), CreatedAt: s.clock.Now().UTC()}
	return reply(&fleetv1.CreateAlertRuleResponse{Rule: alertRulePB(r, 0), Secret: hex.EncodeToString(secret)}, s.update(ctx, func(tx store.Tx) error {
		rules, err := tx.ListAlertRules(ctx, r.OrgID)
		if err != nil {
			return err
		}
		if len(rules) >= maxRulesPerOrg {
			return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("org/%s has %d alert rules, the most allowed: delete one first", r.OrgID, len(rules)))
		}
		return tx.PutAlertRule(ctx, r)
	}))
}

// under reports whether a rule's scope is scope or lies beneath it.
func under(snap *snapshot, ruleScope string, scope rbac.Resource) bool {
	if ruleScope == scope.String() {
		return true
	}
	res, err := rbac.ParseResource(ruleScope)
	if err != nil || res.Kind != rbac.KindLocation {
		return false
	}
	if scope.Kind == rbac.KindOrg {
		return snap.locations[res.ID].OrgID == scope.ID
	}
	for i, cur := 0, snap.locations[res.ID].ParentID; cur != "" && i <= maxDepth; i++ {
		if cur == scope.ID {
			return true
		}
		cur = snap.locations[cur].ParentID
	}
	return false
}

func (as alertService) ListAlertRules(ctx context.Context, req *connect.Request[fleetv1.ListAlertRulesRequest]) (*connect.Response[fleetv1.ListAlertRulesResponse], error) {
	c := callFrom(ctx)
	scope, err := alertScope(req.Msg.GetScope())
	if err != nil {
		return nil, err
	}
	return respond(ctx, as.s.view, func(tx store.Tx) (*fleetv1.ListAlertRulesResponse, error) {
		rules, err := tx.ListAlertRules(ctx, c.snap.orgOf(scope))
		if err != nil {
			return nil, err
		}
		out := &fleetv1.ListAlertRulesResponse{}
		for _, r := range rules {
			if !under(c.snap, r.Scope, scope) {
				continue
			}
			states, err := tx.ListAlertStates(ctx, r.ID)
			if err != nil {
				return nil, err
			}
			firing := 0
			for _, st := range states {
				if st.Firing {
					firing++
				}
			}
			out.Rules = append(out.Rules, alertRulePB(r, firing))
		}
		slices.SortFunc(out.Rules, func(a, b *fleetv1.AlertRule) int {
			return strings.Compare(a.GetName()+"\x00"+a.GetId(), b.GetName()+"\x00"+b.GetId())
		})
		return out, nil
	})
}

func (as alertService) DeleteAlertRule(ctx context.Context, req *connect.Request[fleetv1.DeleteAlertRuleRequest]) (*connect.Response[fleetv1.DeleteAlertRuleResponse], error) {
	id := req.Msg.GetRuleId()
	return reply(&fleetv1.DeleteAlertRuleResponse{}, as.s.update(ctx, func(tx store.Tx) error {
		states, err := tx.ListAlertStates(ctx, id)
		if err != nil {
			return err
		}
		for _, st := range states {
			if err := tx.DeleteAlertState(ctx, id, st.PartID); err != nil {
				return err
			}
		}
		for {
			evs, err := tx.ListAlertEvents(ctx, id, "", maxAlertEventPage)
			if err != nil {
				return err
			}
			for _, e := range evs {
				if err := tx.DeleteAlertEvent(ctx, e.ID); err != nil {
					return err
				}
			}
			if len(evs) < maxAlertEventPage {
				break
			}
		}
		return tx.DeleteAlertRule(ctx, id)
	}))
}

func (as alertService) ListAlertEvents(ctx context.Context, req *connect.Request[fleetv1.ListAlertEventsRequest]) (*connect.Response[fleetv1.ListAlertEventsResponse], error) {
	m := req.Msg
	size := int(m.GetPageSize())
	if size < 0 || size > maxAlertEventPage {
		return nil, invalid("page_size: 1 to %d, or 0 for %d", maxAlertEventPage, alertEventsPage)
	}
	if size == 0 {
		size = alertEventsPage
	}
	if len(m.GetPageToken()) > 64 {
		return nil, invalid("page_token: pass next_page_token from the previous page")
	}
	return respond(ctx, as.s.view, func(tx store.Tx) (*fleetv1.ListAlertEventsResponse, error) {
		evs, err := tx.ListAlertEvents(ctx, m.GetRuleId(), m.GetPageToken(), size)
		if err != nil {
			return nil, err
		}
		out := &fleetv1.ListAlertEventsResponse{}
		for _, e := range evs {
			out.Events = append(out.Events, alertEventPB(e))
		}
		if len(evs) == size {
			out.NextPageToken = evs[len(evs)-1].ID
		}
		return out, nil
	})
}

func (as alertService) TestAlertRule(ctx context.Context, req *connect.Request[fleetv1.TestAlertRuleRequest]) (*connect.Response[fleetv1.TestAlertRuleResponse], error) {
	s, c := as.s, callFrom(ctx)
	var r store.AlertRule
	err := s.view(ctx, func(tx store.Tx) error {
		var err error
		r, err = tx.GetAlertRule(ctx, req.Msg.GetRuleId())
		return err
	})
	if err != nil {
		return nil, err
	}
	ev := store.AlertEvent{ID: s.auditID(), RuleID: r.ID, OrgID: r.OrgID, State: "test", Time: s.clock.Now().UTC(),
		Detail: "a test event sent by " + requester(ctx)}
	ev = s.deliver(ctx, c.snap, r, ev)
	err = s.update(ctx, func(tx store.Tx) error {
		if _, err := tx.GetAlertRule(ctx, r.ID); err != nil {
			return err
		}
		return tx.PutAlertEvent(ctx, ev)
	})
	return reply(&fleetv1.TestAlertRuleResponse{Event: alertEventPB(ev)}, err)
}

// alertRulePB is a rule as the API shows it: never its secret.
func alertRulePB(r store.AlertRule, firing int) *fleetv1.AlertRule {
	return &fleetv1.AlertRule{Id: r.ID, OrgId: r.OrgID, Scope: r.Scope, Name: r.Name, Kind: r.Kind, Threshold: r.Threshold,
		WindowSeconds: uint32(r.Window / time.Second), WebhookUrl: r.WebhookURL, CreatedBy: r.CreatedBy, CreatedAt: ts(r.CreatedAt),
		Firing: uint32(firing)}
}

func alertEventPB(e store.AlertEvent) *fleetv1.AlertEvent {
	return &fleetv1.AlertEvent{Id: e.ID, RuleId: e.RuleID, State: e.State, Time: ts(e.Time), PartId: e.PartID, MachineId: e.MachineID,
		Detail: e.Detail, Attempts: uint32(e.Delivery.Attempts), StatusCode: uint32(e.Delivery.StatusCode), Delivered: e.Delivery.Delivered,
		Error: e.Delivery.Error}
}
