package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/rbac"
)

type machineService struct{ s *Server }

// maxParts bounds a machine's parts.
const maxParts = 64

func (ms machineService) CreateMachine(ctx context.Context, req *connect.Request[fleetv1.CreateMachineRequest]) (*connect.Response[fleetv1.CreateMachineResponse], error) {
	s, m := ms.s, req.Msg
	if err := validName("name", m.GetName()); err != nil {
		return nil, err
	}
	partName := m.GetMainPartName()
	if partName == "" {
		partName = "main"
	}
	if err := validName("main_part_name", partName); err != nil {
		return nil, err
	}
	now := s.clock.Now().UTC()
	mach := store.Machine{ID: auth.NewID(), LocationID: m.GetLocationId(), Name: m.GetName(), CreatedAt: now}
	secret := auth.NewSecret()
	part := store.Part{ID: auth.NewID(), MachineID: mach.ID, Name: partName, Main: true,
		SecretHash: auth.HashSecret(secret), SecretRotatedAt: now, CreatedAt: now}
	return reply(&fleetv1.CreateMachineResponse{Machine: machinePB(mach, []store.Part{part}), MainPartSecret: secret}, s.update(ctx, func(tx store.Tx) error {
		if _, err := tx.GetLocation(ctx, mach.LocationID); err != nil {
			return err
		}
		if err := tx.PutMachine(ctx, mach); err != nil {
			return err
		}
		return tx.PutPart(ctx, part)
	}))
}

func (ms machineService) GetMachine(ctx context.Context, req *connect.Request[fleetv1.GetMachineRequest]) (*connect.Response[fleetv1.GetMachineResponse], error) {
	return respond(ctx, ms.s.view, func(tx store.Tx) (*fleetv1.GetMachineResponse, error) {
		m, err := tx.GetMachine(ctx, req.Msg.GetMachineId())
		if err != nil {
			return nil, err
		}
		parts, err := tx.ListParts(ctx, m.ID)
		return &fleetv1.GetMachineResponse{Machine: machinePB(m, parts)}, err
	})
}

func (ms machineService) ListMachines(ctx context.Context, req *connect.Request[fleetv1.ListMachinesRequest]) (*connect.Response[fleetv1.ListMachinesResponse], error) {
	if err := requireID("location_id", req.Msg.GetLocationId()); err != nil {
		return nil, err
	}
	c := callFrom(ctx)
	partsOf := map[string][]store.Part{}
	for _, p := range c.snap.parts {
		partsOf[p.MachineID] = append(partsOf[p.MachineID], p)
	}
	res := &fleetv1.ListMachinesResponse{}
	for _, m := range c.snap.machines {
		if m.LocationID == req.Msg.GetLocationId() && c.visible(rbac.Machine(m.ID)) {
			res.Machines = append(res.Machines, machinePB(m, partsOf[m.ID]))
		}
	}
	slices.SortFunc(res.Machines, func(a, b *fleetv1.Machine) int { return strings.Compare(a.GetName()+a.GetId(), b.GetName()+b.GetId()) })
	return connect.NewResponse(res), nil
}

// editMachine applies fn to a machine in a transaction and returns it with its parts.
func (ms machineService) editMachine(ctx context.Context, id string, fn func(m *store.Machine)) (*fleetv1.Machine, error) {
	var pb *fleetv1.Machine
	err := ms.s.update(ctx, func(tx store.Tx) error {
		m, err := modify(ctx, tx, id, store.Tx.GetMachine, store.Tx.PutMachine, func(m *store.Machine) error { fn(m); return nil })
		if err != nil {
			return err
		}
		parts, err := tx.ListParts(ctx, id)
		pb = machinePB(m, parts)
		return err
	})
	return pb, err
}

func (ms machineService) RenameMachine(ctx context.Context, req *connect.Request[fleetv1.RenameMachineRequest]) (*connect.Response[fleetv1.RenameMachineResponse], error) {
	if err := validName("name", req.Msg.GetName()); err != nil {
		return nil, err
	}
	m, err := ms.editMachine(ctx, req.Msg.GetMachineId(), func(m *store.Machine) { m.Name = req.Msg.GetName() })
	return reply(&fleetv1.RenameMachineResponse{Machine: m}, err)
}

func (ms machineService) DeleteMachine(ctx context.Context, req *connect.Request[fleetv1.DeleteMachineRequest]) (*connect.Response[fleetv1.DeleteMachineResponse], error) {
	id := req.Msg.GetMachineId()
	return reply(&fleetv1.DeleteMachineResponse{}, ms.s.update(ctx, func(tx store.Tx) error {
		parts, err := tx.ListParts(ctx, id)
		if err != nil {
			return err
		}
		for _, p := range parts {
			if err := tx.DeletePart(ctx, p.ID); err != nil {
				return err
			}
		}
		if err := deleteGrantsOn(ctx, tx, "machine/"+id); err != nil {
			return err
		}
		return tx.DeleteMachine(ctx, id)
	}))
}

// RestartMachine asks each part of the machine to restart; each gets the
// request with its next pull (see restart.go).
func (ms machineService) RestartMachine(ctx context.Context, req *connect.Request[fleetv1.RestartMachineRequest]) (*connect.Response[fleetv1.RestartMachineResponse], error) {
	now, by, id := ms.s.clock.Now().UTC(), requester(ctx), req.Msg.GetMachineId()
	return respond(ctx, ms.s.update, func(tx store.Tx) (*fleetv1.RestartMachineResponse, error) {
		m, err := tx.GetMachine(ctx, id)
		if err != nil {
			return nil, err
		}
		m.RestartRequestedAt = now
		if err := tx.PutMachine(ctx, m); err != nil {
			return nil, err
		}
		parts, err := tx.ListParts(ctx, id)
		if err != nil {
			return nil, err
		}
		for i := range parts {
			parts[i].Restart = askRestart(parts[i].Restart, now, by)
			if err := tx.PutPart(ctx, parts[i]); err != nil {
				return nil, err
			}
		}
		return &fleetv1.RestartMachineResponse{Machine: machinePB(m, parts)}, nil
	})
}

// RestartPart asks one part to restart at its next pull.
func (ms machineService) RestartPart(ctx context.Context, req *connect.Request[fleetv1.RestartPartRequest]) (*connect.Response[fleetv1.RestartPartResponse], error) {
	now, by := ms.s.clock.Now().UTC(), requester(ctx)
	part, err := edit(ctx, ms.s, req.Msg.GetPartId(), store.Tx.GetPart, store.Tx.PutPart, func(_ store.Tx, p *store.Part) error {
		p.Restart = askRestart(p.Restart, now, by)
		return nil
	})
	return reply(&fleetv1.RestartPartResponse{Part: partPB(part)}, err)
}

func (ms machineService) AddPart(ctx context.Context, req *connect.Request[fleetv1.AddPartRequest]) (*connect.Response[fleetv1.AddPartResponse], error) {
	if err := validName("name", req.Msg.GetName()); err != nil {
		return nil, err
	}
	now := ms.s.clock.Now().UTC()
	secret := auth.NewSecret()
	part := store.Part{ID: auth.NewID(), MachineID: req.Msg.GetMachineId(), Name: req.Msg.GetName(),
		SecretHash: auth.HashSecret(secret), SecretRotatedAt: now, CreatedAt: now}
	return reply(&fleetv1.AddPartResponse{Part: partPB(part), Secret: secret}, ms.s.update(ctx, func(tx store.Tx) error {
		parts, err := tx.ListParts(ctx, part.MachineID)
		if err != nil {
			return err
		}
		if len(parts) >= maxParts {
			return invalid("machine/%s has %d parts, the most allowed", part.MachineID, maxParts)
		}
		for _, p := range parts {
			if p.Name == part.Name {
				return connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("machine/%s already has a part named %q", part.MachineID, part.Name))
			}
		}
		return tx.PutPart(ctx, part)
	}))
}

func (ms machineService) RenamePart(ctx context.Context, req *connect.Request[fleetv1.RenamePartRequest]) (*connect.Response[fleetv1.RenamePartResponse], error) {
	name := req.Msg.GetName()
	if err := validName("name", name); err != nil {
		return nil, err
	}
	part, err := edit(ctx, ms.s, req.Msg.GetPartId(), store.Tx.GetPart, store.Tx.PutPart, func(tx store.Tx, p *store.Part) error {
		siblings, err := tx.ListParts(ctx, p.MachineID)
		if err != nil {
			return err
		}
		for _, o := range siblings {
			if o.ID != p.ID && o.Name == name {
				return connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("machine/%s already has a part named %q", p.MachineID, name))
			}
		}
		p.Name = name
		return nil
	})
	return reply(&fleetv1.RenamePartResponse{Part: partPB(part)}, err)
}

func (ms machineService) DeletePart(ctx context.Context, req *connect.Request[fleetv1.DeletePartRequest]) (*connect.Response[fleetv1.DeletePartResponse], error) {
	id := req.Msg.GetPartId()
	return reply(&fleetv1.DeletePartResponse{}, ms.s.update(ctx, func(tx store.Tx) error {
		p, err := tx.GetPart(ctx, id)
		if err != nil {
			return err
		}
		if p.Main {
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("part/%s is the main part of machine/%s: delete the machine instead", id, p.MachineID))
		}
		return tx.DeletePart(ctx, id)
	}))
}

func (ms machineService) RotatePartSecret(ctx context.Context, req *connect.Request[fleetv1.RotatePartSecretRequest]) (*connect.Response[fleetv1.RotatePartSecretResponse], error) {
	part, secret, err := ms.replacePartSecret(ctx, req.Msg.GetPartId())
	return reply(&fleetv1.RotatePartSecretResponse{Part: partPB(part), Secret: secret}, err)
}

// replacePartSecret gives a part a new random secret, keeping only its hash
// and when it changed; the old secret stops working at once. The secret is
// returned to show once.
func (ms machineService) replacePartSecret(ctx context.Context, partID string) (store.Part, string, error) {
	secret := auth.NewSecret()
	now := ms.s.clock.Now().UTC()
	part, err := edit(ctx, ms.s, partID, store.Tx.GetPart, store.Tx.PutPart, func(_ store.Tx, p *store.Part) error {
		p.SecretHash, p.SecretRotatedAt = auth.HashSecret(secret), now
		return nil
	})
	if err != nil {
		return store.Part{}, "", err
	}
	return part, secret, nil
}

func (ms machineService) BootstrapPart(ctx context.Context, req *connect.Request[fleetv1.BootstrapPartRequest]) (*connect.Response[fleetv1.BootstrapPartResponse], error) {
	u, err := url.Parse(req.Msg.GetCloudUrl())
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return nil, invalid("cloud_url: want the cloud's base URL as parts reach it, such as https://cloud.example.com")
	}
	part, secret, err := ms.replacePartSecret(ctx, req.Msg.GetPartId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&fleetv1.BootstrapPartResponse{Bootstrap: &syncv1.Bootstrap{
		CloudUrl: strings.TrimRight(u.String(), "/"), PartId: part.ID, PartSecret: secret,
		CloudKeys: []*syncv1.PublicKey{ms.s.signer.Documents().PublicKey()},
	}}), nil
}

func (ms machineService) GetMachineStatus(ctx context.Context, req *connect.Request[fleetv1.GetMachineStatusRequest]) (*connect.Response[fleetv1.GetMachineStatusResponse], error) {
	ing, err := ms.s.ingestStore()
	if err != nil {
		return nil, err
	}
	parts, err := machineParts(callFrom(ctx).snap, req.Msg.GetMachineId(), "")
	if err != nil {
		return nil, err
	}
	snap := callFrom(ctx).snap
	m := snap.machines[req.Msg.GetMachineId()]
	org := snap.locations[m.LocationID].OrgID
	out := &fleetv1.GetMachineStatusResponse{}
	var last time.Time
	for _, p := range parts {
		ps := &fleetv1.PartStatus{Part: partPB(p)}
		st, err := ing.Status(ctx, p.ID)
		switch {
		case err == nil:
			ps.LastSeen, ps.Status = ts(st.At), st.Status
			if st.At.After(last) {
				last = st.At
			}
		case !errors.Is(err, ingest.ErrNotFound):
			return nil, fmt.Errorf("status of part/%s: %w", p.ID, err)
		}
		out.Parts = append(out.Parts, ps)
	}
	err = ms.s.view(ctx, func(tx store.Tx) error {
		problems, err := packageProblems(ctx, tx, org, m.ID, parts, func(i int) string { return platformOf(out.Parts[i].GetStatus()) })
		if err != nil {
			return err
		}
		for i, p := range parts {
			ps := out.Parts[i]
			ps.PackageProblems = problems[i]
			d, err := tx.GetPartDocuments(ctx, p.ID)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			ps.IssuedConfigVersion, ps.IssuedGrantsVersion = d.ConfigVersion, d.GrantsVersion
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out.LastSeen = ts(last)
	return connect.NewResponse(out), nil
}

// ListFleet pages through an organization's or a location subtree's
// machines with their state (fleet.go).
func (ms machineService) ListFleet(ctx context.Context, req *connect.Request[fleetv1.ListFleetRequest]) (*connect.Response[fleetv1.ListFleetResponse], error) {
	res, err := ms.s.listFleet(ctx, req.Msg)
	return reply(res, err)
}

// SummarizeFleet counts an organization's or a location subtree's machines
// by state (fleet.go).
func (ms machineService) SummarizeFleet(ctx context.Context, req *connect.Request[fleetv1.SummarizeFleetRequest]) (*connect.Response[fleetv1.SummarizeFleetResponse], error) {
	res, err := ms.s.summarizeFleet(ctx, req.Msg)
	return reply(res, err)
}
