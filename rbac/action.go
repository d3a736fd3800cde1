package rbac

import (
	"errors"
	"fmt"
)

// Action is one permission row of the seed tables, named as in
// docs/ACTIONS.md.
type Action string

// The action vocabulary of docs/ACTIONS.md, one constant per seed row.
const (
	// MachineControl is "Control the machine from the CONTROL tab".
	MachineControl Action = "machine.control"
	// MachineView is "See all tabs (such as CONFIGURE and LOGS)".
	MachineView Action = "machine.view"
	// MachineRename is "Edit machine name".
	MachineRename Action = "machine.rename"
	// MachineDelete is "Delete the machine".
	MachineDelete Action = "machine.delete"
	// PartCreate is "Add a new part".
	PartCreate Action = "part.create"
	// PartRename is "Edit part name".
	PartRename Action = "part.rename"
	// MachineRestart is "Restart the machine".
	MachineRestart Action = "machine.restart"
	// MachineConfigEdit is "Edit a machine config (including data capture and sync)".
	MachineConfigEdit Action = "machine.config.edit"

	// LocationEdit is "Edit location info (rename, delete location)".
	LocationEdit Action = "location.edit"
	// MachineCreate is "Create a new machine" (in the location named).
	MachineCreate Action = "machine.create"
	// LocationMove is "Move the location (to new parent location)"; see Engine.DecideMove.
	LocationMove Action = "location.move"
	// LocationCreate is "Create a new location in the organization".
	LocationCreate Action = "location.create"
	// LocationDelete is "Delete location".
	LocationDelete Action = "location.delete"
	// LocationSupportEdit is "Add/remove Viam support team permissions".
	LocationSupportEdit Action = "location.support.edit"
	// LocationShareAdd is "Add a shared location".
	LocationShareAdd Action = "location.share.add"
	// LocationShareRemove is "Remove a shared location".
	LocationShareRemove Action = "location.share.remove"

	// OrgBillingView is "See billing page".
	OrgBillingView Action = "org.billing.view"
	// OrgBillingEmails is "Get billing-related emails".
	OrgBillingEmails Action = "org.billing.emails"
	// OrgRename is "Edit org name".
	OrgRename Action = "org.rename"
	// OrgDelete is "Delete the org".
	OrgDelete Action = "org.delete"
	// OrgLeave is "Leave the org".
	OrgLeave Action = "org.leave"
	// RoleViewOwn is "See their own role".
	RoleViewOwn Action = "role.view.own"
	// RoleViewOthers is "See other peoples’ roles".
	RoleViewOthers Action = "role.view.others"
	// OrgMembersView is "See all org members (including email and date joined)".
	OrgMembersView Action = "org.members.view"
	// InviteManage is "Invite, resend invite, and revoke invite".
	InviteManage Action = "invite.manage"
	// RoleChange is "Change someone else’s role".
	RoleChange Action = "role.change"
	// OrgCreate is "Create a new organization"; it names no resource.
	OrgCreate Action = "org.create"
	// ModuleDelete is "Delete modules".
	ModuleDelete Action = "module.delete"
	// ModuleMakePrivate is "Make public modules private".
	ModuleMakePrivate Action = "module.make_private"

	// FragmentCreate is "Create a new fragment in the org".
	FragmentCreate Action = "fragment.create"
	// FragmentUse is "See and use fragments in the org".
	FragmentUse Action = "fragment.use"
	// FragmentEdit is "Edit and delete fragments".
	FragmentEdit Action = "fragment.edit"

	// DataView is "View data".
	DataView Action = "data.view"
	// DataTagsView is "See data tags" (only tags applied to data the subject may see).
	DataTagsView Action = "data.tags.view"
	// DataEdit is "Edit data (add tags, delete info)".
	DataEdit Action = "data.edit"
	// ModelTrain is "Train models" (on the data the subject may see).
	ModelTrain Action = "model.train"
	// PackageUpload is "Upload organization models/packages".
	PackageUpload Action = "package.upload"
	// PackageView is "View organization models/packages".
	PackageView Action = "package.view"
	// PackageUse is "Use organization models/packages".
	PackageUse Action = "package.use"
	// PackageDelete is "Delete organization models/packages".
	PackageDelete Action = "package.delete"
	// DataExport is "Export data with the CLI or the app".
	DataExport Action = "data.export"
	// DatasetNamesView is "See dataset names".
	DatasetNamesView Action = "dataset.names.view"
	// DatasetOpen is "Click into datasets / load them" (filtered to readable data).
	DatasetOpen Action = "dataset.open"
	// DatasetCreate is "Create new dataset".
	DatasetCreate Action = "dataset.create"
	// DatasetRename is "Rename dataset".
	DatasetRename Action = "dataset.rename"
	// DatasetDelete is "Delete dataset".
	DatasetDelete Action = "dataset.delete"
	// DatasetImagesAdd is "Add images to dataset".
	DatasetImagesAdd Action = "dataset.images.add"
	// DatasetImagesRemove is "Remove image from dataset".
	DatasetImagesRemove Action = "dataset.images.remove"
	// DatasetTrain is "Train on dataset" (on the portion the subject may see).
	DatasetTrain Action = "dataset.train"

	// AlertManage is creating, deleting and test-firing fleet alert rules
	// on an organization or a location. Not a seed row: it follows
	// location.edit (owners of the scope or above), docs/ACTIONS.md.
	AlertManage Action = "alert.manage"
	// AlertView is listing fleet alert rules and their history on an
	// organization or a location. Not a seed row: both roles at or above
	// the scope, as role.view.others there, docs/ACTIONS.md.
	AlertView Action = "alert.view"
)

// ErrUnknownAction is wrapped by ParseAction when a name is not in the vocabulary.
var ErrUnknownAction = errors.New("unknown action")

// mode says how an action's resource relates to a grant's scope.
type mode uint8

const (
	// modeNone: the action names no resource (org.create).
	modeNone mode = iota
	// modeReach: the grant must reach the resource (its scope is the resource
	// or an ancestor of it, directly or through a location share).
	modeReach
	// modeMember: the grant must be held in the organization that owns the
	// resource (org-level objects: fragments, packages, datasets, modules),
	// or reach the resource.
	modeMember
	// modeData: data named by a machine, part, location or org. Reaching the
	// resource allows all of it; a grant inside it allows the part inside.
	modeData
	// modeDataset: a dataset (or all datasets of an org). An org grant sees
	// all of it; a location or machine grant in the org sees the portion
	// whose data it may read.
	modeDataset
)

// cell is one table cell: may a role at a scope kind do the action at all.
// Where the seed qualifies a cell ("Yes*", "only data they have access to"),
// the qualification is the reach of the grant, computed by mode, not a cell value.
type cell = bool

const (
	no  cell = false
	yes cell = true
)

// Column order of the seed tables: org owner, org operator, location owner,
// location operator, machine owner, machine operator.
const numCells = 6

// actionSpec is one seed row: its action, how the resource is matched, which
// resource kinds a check may name, and the six cells.
type actionSpec struct {
	action Action
	mode   mode
	kinds  kindSet
	cells  [numCells]cell
	row    string
}

// kindSet is a bit set of ResourceKind.
type kindSet uint16

func kinds(ks ...ResourceKind) kindSet {
	var s kindSet
	for _, k := range ks {
		s |= 1 << k
	}
	return s
}

func (s kindSet) has(k ResourceKind) bool { return k < 16 && s&(1<<k) != 0 }

// actionSpecs returns the seed tables of 003 as data. It is a function, not a
// package variable, so nothing can mutate the permission model at run time.
func actionSpecs() []actionSpec {
	var (
		machineOrPart = kinds(KindMachine, KindPart)
		machine       = kinds(KindMachine)
		location      = kinds(KindLocation)
		org           = kinds(KindOrg)
		scope         = kinds(KindOrg, KindLocation, KindMachine)
		data          = kinds(KindOrg, KindLocation, KindMachine, KindPart)

		all       = [numCells]cell{yes, yes, yes, yes, yes, yes}
		owners    = [numCells]cell{yes, no, yes, no, yes, no}
		orgOwner  = [numCells]cell{yes, no, no, no, no, no}
		orgRoles  = [numCells]cell{yes, yes, no, no, no, no}
		locOwners = [numCells]cell{yes, no, yes, no, no, no}

		alertScope     = kinds(KindOrg, KindLocation)
		orgAndLocRoles = [numCells]cell{yes, yes, yes, yes, no, no}
	)
	return []actionSpec{
		// Machines.
		{MachineControl, modeReach, machineOrPart, all, "Control the machine from the CONTROL tab"},
		{MachineView, modeReach, machineOrPart, owners, "See all tabs (such as CONFIGURE and LOGS)"},
		{MachineRename, modeReach, machine, owners, "Edit machine name"},
		{MachineDelete, modeReach, machine, owners, "Delete the machine"},
		{PartCreate, modeReach, machine, owners, "Add a new part"},
		{PartRename, modeReach, machineOrPart, owners, "Edit part name"},
		{MachineRestart, modeReach, machineOrPart, owners, "Restart the machine"},
		{MachineConfigEdit, modeReach, machineOrPart, owners, "Edit a machine config (including data capture and sync)"},

		// Locations.
		{LocationEdit, modeReach, location, locOwners, "Edit location info (rename, delete location)"},
		{MachineCreate, modeReach, location, locOwners, "Create a new machine"},
		{LocationMove, modeReach, location, locOwners, "Move the location (to new parent location)"},
		{LocationCreate, modeReach, org, orgOwner, "Create a new location in the organization"},
		{LocationDelete, modeReach, location, locOwners, "Delete location"},
		{LocationSupportEdit, modeReach, location, locOwners, "Add/remove Viam support team permissions"},
		{LocationShareAdd, modeReach, location, locOwners, "Add a shared location"},
		{LocationShareRemove, modeReach, location, locOwners, "Remove a shared location"},

		// Organization settings and roles.
		{OrgBillingView, modeReach, org, orgOwner, "See billing page"},
		{OrgBillingEmails, modeReach, org, orgOwner, "Get billing-related emails"},
		{OrgRename, modeReach, org, orgOwner, "Edit org name"},
		{OrgDelete, modeReach, org, orgOwner, "Delete the org"},
		{OrgLeave, modeMember, org, all, "Leave the org"},
		{RoleViewOwn, modeMember, scope, all, "See their own role"},
		{RoleViewOthers, modeReach, scope, all, "See other peoples’ roles"},
		{OrgMembersView, modeReach, org, orgRoles, "See all org members (including email and date joined)"},
		{InviteManage, modeReach, scope, owners, "Invite, resend invite, and revoke invite"},
		{RoleChange, modeReach, scope, owners, "Change someone else’s role"},
		{OrgCreate, modeNone, 0, all, "Create a new organization"},
		{ModuleDelete, modeMember, kinds(KindOrg, KindModule), orgOwner, "Delete modules"},
		{ModuleMakePrivate, modeMember, kinds(KindOrg, KindModule), orgOwner, "Make public modules private"},

		// Fragments.
		{FragmentCreate, modeMember, org, orgOwner, "Create a new fragment in the org"},
		{FragmentUse, modeMember, kinds(KindOrg, KindFragment), owners, "See and use fragments in the org"},
		{FragmentEdit, modeMember, kinds(KindOrg, KindFragment), orgOwner, "Edit and delete fragments"},

		// Data and machine learning.
		{DataView, modeData, data, all, "View data"},
		{DataTagsView, modeData, data, owners, "See data tags"},
		{DataEdit, modeData, data, owners, "Edit data (add tags, delete info)"},
		{ModelTrain, modeData, data, owners, "Train models"},
		{PackageUpload, modeMember, kinds(KindOrg, KindPackage), owners, "Upload organization models/packages"},
		{PackageView, modeMember, kinds(KindOrg, KindPackage), owners, "View organization models/packages"},
		{PackageUse, modeMember, kinds(KindOrg, KindPackage), owners, "Use organization models/packages"},
		{PackageDelete, modeMember, kinds(KindOrg, KindPackage), orgOwner, "Delete organization models/packages"},
		{DataExport, modeData, data, all, "Export data with the CLI or the app"},
		{DatasetNamesView, modeMember, org, owners, "See dataset names"},
		{DatasetOpen, modeDataset, kinds(KindOrg, KindDataset), owners, "Click into datasets / load them"},
		{DatasetCreate, modeMember, org, owners, "Create new dataset"},
		{DatasetRename, modeMember, kinds(KindOrg, KindDataset), orgOwner, "Rename dataset"},
		{DatasetDelete, modeMember, kinds(KindOrg, KindDataset), orgOwner, "Delete dataset"},
		{DatasetImagesAdd, modeData, data, owners, "Add images to dataset"},
		{DatasetImagesRemove, modeData, data, owners, "Remove image from dataset"},
		{DatasetTrain, modeDataset, kinds(KindOrg, KindDataset), owners, "Train on dataset"},

		// Fleet alerts: not in the seed, derived from its rows (docs/ACTIONS.md).
		{AlertManage, modeReach, alertScope, locOwners, "Manage fleet alert rules (not a seed row: as location.edit)"},
		{AlertView, modeReach, alertScope, orgAndLocRoles, "See fleet alert rules and their history (not a seed row: as role.view.others above machines)"},
	}
}

// AllActions returns every action of the vocabulary in seed-table order.
func AllActions() []Action {
	specs := actionSpecs()
	out := make([]Action, len(specs))
	for i, s := range specs {
		out[i] = s.action
	}
	return out
}

// ParseAction returns the action named s, or an error wrapping ErrUnknownAction.
func ParseAction(s string) (Action, error) {
	for _, spec := range actionSpecs() {
		if string(spec.action) == s {
			return spec.action, nil
		}
	}
	return "", fmt.Errorf("parse action %q: %w (see rbac.AllActions)", s, ErrUnknownAction)
}

// SeedRow returns the seed table row an action transcribes, or "" for an unknown action.
func (a Action) SeedRow() string {
	for _, spec := range actionSpecs() {
		if spec.action == a {
			return spec.row
		}
	}
	return ""
}

// ResourceKinds returns the kinds of resource a check of this action may name (none for org.create).
func (a Action) ResourceKinds() []ResourceKind {
	for _, spec := range actionSpecs() {
		if spec.action == a {
			var out []ResourceKind
			for k := KindOrg; k <= KindModule; k++ {
				if spec.kinds.has(k) {
					out = append(out, k)
				}
			}
			return out
		}
	}
	return nil
}
