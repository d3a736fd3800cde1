package cloud

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/cloud/store"
)

func orgPB(o store.Org) *fleetv1.Organization {
	return &fleetv1.Organization{Id: o.ID, Name: o.Name, CreatedAt: ts(o.CreatedAt), DocumentLifetimeDays: int32(documentTTL(o) / (24 * time.Hour)),
		DataRetentionDays: int32(o.Retention / (24 * time.Hour))}
}

func locationPB(l store.Location) *fleetv1.Location {
	return &fleetv1.Location{Id: l.ID, OrgId: l.OrgID, ParentLocationId: l.ParentID, Name: l.Name,
		SupportAccess: l.SupportAccess, SharedWith: slices.Clone(l.SharedWith), CreatedAt: ts(l.CreatedAt)}
}

func partPB(p store.Part) *fleetv1.Part {
	return &fleetv1.Part{Id: p.ID, MachineId: p.MachineID, Name: p.Name, Main: p.Main, SecretRotatedAt: ts(p.SecretRotatedAt), Restart: partRestartPB(p.Restart)}
}

// machinePB puts the main part first, then the others by name.
func machinePB(m store.Machine, parts []store.Part) *fleetv1.Machine {
	slices.SortFunc(parts, func(a, b store.Part) int {
		if a.Main != b.Main {
			if a.Main {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	pb := &fleetv1.Machine{Id: m.ID, LocationId: m.LocationID, Name: m.Name,
		RestartRequestedAt: ts(m.RestartRequestedAt), CreatedAt: ts(m.CreatedAt)}
	for _, p := range parts {
		pb.Parts = append(pb.Parts, partPB(p))
	}
	return pb
}

func userPB(u store.User) *fleetv1.User {
	return &fleetv1.User{Id: u.ID, Email: u.Email, CreatedAt: ts(u.CreatedAt), Admin: u.Admin}
}

func invitePB(i store.Invite) *fleetv1.Invite {
	return &fleetv1.Invite{Id: i.ID, Email: i.Email, Role: i.Role, Scope: i.Scope, ExpiresAt: ts(i.ExpiresAt), InvitedBy: i.InvitedBy}
}

func apiKeyPB(k store.APIKey, grants []store.Grant) *fleetv1.APIKey {
	pb := &fleetv1.APIKey{Id: k.ID, Name: k.Name, OrgId: k.OrgID, Scope: k.Scope, CreatedAt: ts(k.CreatedAt), CreatedBy: k.CreatedBy}
	for _, g := range grants {
		pb.Grants = append(pb.Grants, grantPB(g, ""))
	}
	return pb
}

func grantPB(g store.Grant, email string) *fleetv1.Grant {
	return &fleetv1.Grant{Subject: cmp.Or(subjectOf(g).String(), g.Subject), Role: g.Role, Scope: g.Scope, Email: email, CreatedAt: ts(g.CreatedAt)}
}

// grantsPB converts grants, looking up the emails of users.
func grantsPB(ctx context.Context, tx store.Tx, gs []store.Grant) []*fleetv1.Grant {
	out := make([]*fleetv1.Grant, 0, len(gs))
	for _, g := range gs {
		email := ""
		if subj := subjectOf(g); subj.Kind == authz.KindUser {
			if u, err := tx.GetUser(ctx, subj.ID); err == nil {
				email = u.Email
			}
		}
		out = append(out, grantPB(g, email))
	}
	return out
}

func auditPB(e store.AuditEvent) *fleetv1.AuditEvent {
	return &fleetv1.AuditEvent{Id: e.ID, Time: ts(e.Time), Subject: e.Subject, Procedure: e.Procedure, Action: e.Action,
		Resource: e.Resource, Allowed: e.Allowed, Reason: e.Reason, OrgId: e.OrgID, Outcome: e.Outcome}
}
