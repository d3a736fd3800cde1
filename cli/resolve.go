package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

// The CLI takes a name wherever the API takes an ID: before a request goes
// out, resolve replaces each name in its ID fields by the one ID it names
// among what the caller may list. An ID passes as it is, so scripts keep
// working; a name naming several things fails listing them, and one naming
// nothing says so. Names are looked up with the caller's own credential,
// so a name resolves only to what the caller could list anyway.

// isID says s has the shape of an ID: 32 lowercase hex digits.
func isID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// candidate is one thing a name may mean: its path is from the top of its
// organization (a machine's ends in its name), org is that organization's
// name, which a path may start with too.
type candidate struct{ id, name, path, org string }

// where is how an error shows a candidate's place.
func (c candidate) where() string {
	if c.org == "" {
		return c.path
	}
	return c.org + ": " + c.path
}

// ambiguousError is a name that means several things.
type ambiguousError struct {
	kind, name string
	cands      []candidate
}

func (e *ambiguousError) Error() string {
	var b strings.Builder
	// One line: errors are printed made printable, newlines escaped.
	fmt.Fprintf(&b, "%s %q is ambiguous, pass an ID or a longer path:", e.kind, e.name)
	for i, c := range e.cands {
		sep := ";"
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(&b, "%s %s %s (%s)", sep, c.id, c.name, c.where())
	}
	return b.String()
}

// pick is the one candidate name means: by name or path (a path also by
// its last segments), exactly, else ignoring case.
func pick(kind, name string, cands []candidate) (string, error) {
	for _, fold := range []bool{false, true} {
		eq := func(a, b string) bool { return a == b || fold && strings.EqualFold(a, b) }
		var hits []candidate
		for _, c := range cands {
			p := c.path
			if c.org != "" {
				p = c.org + "/" + p
			}
			if eq(c.name, name) || eq(c.path, name) || eq(p, name) || strings.Contains(name, "/") && len(p) > len(name) && eq(p[len(p)-len(name)-1:], "/"+name) {
				if !slices.ContainsFunc(hits, func(h candidate) bool { return h.id == c.id }) {
					hits = append(hits, c)
				}
			}
		}
		switch len(hits) {
		case 0:
			continue
		case 1:
			return hits[0].id, nil
		}
		slices.SortFunc(hits, func(a, b candidate) int { return strings.Compare(a.where()+"\x00"+a.id, b.where()+"\x00"+b.id) })
		return "", connect.NewError(connect.CodeInvalidArgument, &ambiguousError{kind: kind, name: name, cands: hits})
	}
	// Invalid, not not-found: the argument names nothing, as a malformed
	// ID does; whether a thing exists beyond the caller's sight is not said.
	return "", connect.NewError(connect.CodeInvalidArgument, &unknownError{kind: kind, name: name})
}

// unknownError is a name that means nothing the caller may see.
type unknownError struct{ kind, name string }

func (e *unknownError) Error() string {
	return fmt.Sprintf("no %s named %q among those you may see (an ID works too)", e.kind, e.name)
}

// resolver looks names up for one command, listing each collection once.
type resolver struct {
	c *api
	// org narrows lookups to the organization the request names, once
	// resolved; empty searches every organization the caller sees.
	org  string
	orgs []*fleetv1.Organization
	// listed memoizes the candidates of a kind in an organization.
	listed map[string][]candidate
}

func newResolver(c *api) *resolver { return &resolver{c: c, listed: map[string][]candidate{}} }

// denied says an organization's list was refused: the caller holds a role
// only below it, so it has nothing there to name.
func denied(err error) bool {
	code := connect.CodeOf(err)
	return code == connect.CodePermissionDenied || code == connect.CodeNotFound
}

func (r *resolver) allOrgs(ctx context.Context) ([]*fleetv1.Organization, error) {
	if r.orgs == nil {
		res, err := r.c.ListOrgs(ctx, connect.NewRequest(&fleetv1.ListOrgsRequest{}))
		if err != nil {
			return nil, fmt.Errorf("list organizations to look a name up: %w", err)
		}
		r.orgs = res.Msg.GetOrgs()
	}
	return r.orgs, nil
}

// inOrgs gathers the candidates list gives in the request's organization,
// or in every organization the caller sees.
func (r *resolver) inOrgs(ctx context.Context, kind string, list func(org string) ([]candidate, error)) ([]candidate, error) {
	all, err := r.allOrgs(ctx)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	var orgs []string
	for _, o := range all {
		names[o.GetId()] = o.GetName()
		if r.org == "" || r.org == o.GetId() {
			orgs = append(orgs, o.GetId())
		}
	}
	if len(orgs) == 0 { // an organization the caller is in without seeing it listed
		orgs = append(orgs, r.org)
	}
	var out []candidate
	for _, o := range orgs {
		key := kind + "/" + o
		cands, ok := r.listed[key]
		if !ok {
			var err error
			if cands, err = list(o); err != nil && !denied(err) {
				return nil, fmt.Errorf("list %ss to look a name up: %w", kind, err)
			}
			for i := range cands {
				if cands[i].org == "" {
					cands[i].org = names[o]
				}
			}
			r.listed[key] = cands
		}
		out = append(out, cands...)
	}
	return out, nil
}

func (r *resolver) orgID(ctx context.Context, name string) (string, error) {
	orgs, err := r.allOrgs(ctx)
	if err != nil {
		return "", err
	}
	var cands []candidate
	for _, o := range orgs {
		cands = append(cands, candidate{id: o.GetId(), name: o.GetName(), path: o.GetName()})
	}
	return pick("organization", name, cands)
}

func (r *resolver) locations(ctx context.Context) ([]candidate, error) {
	return r.inOrgs(ctx, "location", func(org string) ([]candidate, error) {
		res, err := r.c.ListLocations(ctx, connect.NewRequest(&fleetv1.ListLocationsRequest{OrgId: org, IncludeShared: true}))
		if err != nil {
			return nil, err
		}
		byID := map[string]*fleetv1.Location{}
		for _, l := range res.Msg.GetLocations() {
			byID[l.GetId()] = l
		}
		var out []candidate
		for _, l := range res.Msg.GetLocations() {
			path := l.GetName()
			// The parents the caller sees; a cycle cannot come from the
			// cloud, but a bound keeps a hostile answer from looping.
			for p, n := byID[l.GetParentLocationId()], 0; p != nil && n < 64; p, n = byID[p.GetParentLocationId()], n+1 {
				path = p.GetName() + "/" + path
			}
			out = append(out, candidate{id: l.GetId(), name: l.GetName(), path: path})
		}
		return out, nil
	})
}

func (r *resolver) machines(ctx context.Context, name string) ([]candidate, error) {
	search := name[strings.LastIndexByte(name, '/')+1:]
	return r.inOrgs(ctx, "machine "+search, func(org string) ([]candidate, error) {
		var out []candidate
		req := &fleetv1.ListFleetRequest{OrgId: org, Search: search, PageSize: maxListLimit}
		for range 20 { // 10,000 machines whose names hold the name: enough to say it is ambiguous
			res, err := r.c.ListFleet(ctx, connect.NewRequest(req))
			if err != nil {
				return out, err
			}
			for _, m := range res.Msg.GetMachines() {
				out = append(out, candidate{id: m.GetMachine().GetId(), name: m.GetMachine().GetName(), path: m.GetLocationPath() + "/" + m.GetMachine().GetName()})
			}
			if req.PageToken = res.Msg.GetNextPageToken(); req.PageToken == "" {
				break
			}
		}
		return out, nil
	})
}

func (r *resolver) machineID(ctx context.Context, name string) (string, error) {
	cands, err := r.machines(ctx, name)
	if err != nil {
		return "", err
	}
	return pick("machine", name, cands)
}

// partID resolves MACHINE/PART (the machine by name, ID or path), or a
// part's name within machine when the request names one.
func (r *resolver) partID(ctx context.Context, name, machine string) (string, error) {
	partName := name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		var err error
		if machine, err = r.resolveMachine(ctx, name[:i]); err != nil {
			return "", err
		}
		partName = name[i+1:]
	}
	if machine == "" {
		return "", fmt.Errorf("part %q: name it MACHINE/PART, such as rover/arm, or pass its ID", name)
	}
	res, err := r.c.GetMachine(ctx, connect.NewRequest(&fleetv1.GetMachineRequest{MachineId: machine}))
	if err != nil {
		return "", fmt.Errorf("look part %q up: %w", name, err)
	}
	var cands []candidate
	for _, p := range res.Msg.GetMachine().GetParts() {
		cands = append(cands, candidate{id: p.GetId(), name: p.GetName(), path: res.Msg.GetMachine().GetName() + "/" + p.GetName()})
	}
	return pick("part", partName, cands)
}

func (r *resolver) resolveMachine(ctx context.Context, v string) (string, error) {
	if isID(v) {
		return v, nil
	}
	return r.machineID(ctx, v)
}

// fragmentsOf lists an organization's fragments as candidates.
func (r *resolver) fragmentsOf(ctx context.Context) func(org string) ([]candidate, error) {
	return func(org string) ([]candidate, error) {
		res, err := r.c.ListFragments(ctx, connect.NewRequest(&fleetv1.ListFragmentsRequest{OrgId: org}))
		if err != nil {
			return nil, err
		}
		var out []candidate
		for _, f := range res.Msg.GetFragments() {
			out = append(out, candidate{id: f.GetId(), name: f.GetName(), path: f.GetName()})
		}
		return out, nil
	}
}

// apiKeysOf lists an organization's API keys as candidates.
func (r *resolver) apiKeysOf(ctx context.Context) func(org string) ([]candidate, error) {
	return func(org string) ([]candidate, error) {
		res, err := r.c.ListAPIKeys(ctx, connect.NewRequest(&fleetv1.ListAPIKeysRequest{OrgId: org}))
		if err != nil {
			return nil, err
		}
		var out []candidate
		for _, k := range res.Msg.GetKeys() {
			out = append(out, candidate{id: k.GetId(), name: k.GetName(), path: k.GetName()})
		}
		return out, nil
	}
}

func (r *resolver) fragmentID(ctx context.Context, name string) (string, error) {
	cands, err := r.inOrgs(ctx, "fragment", r.fragmentsOf(ctx))
	if err != nil {
		return "", err
	}
	return pick("fragment", name, cands)
}

func (r *resolver) apiKeyID(ctx context.Context, name string) (string, error) {
	cands, err := r.inOrgs(ctx, "API key", r.apiKeysOf(ctx))
	if err != nil {
		return "", err
	}
	return pick("API key", name, cands)
}

// one resolves v, a name or an ID of kind ("org", "location", "machine",
// "part", "fragment", "apikey"); machine is the request's machine, for a
// part named within it.
func (r *resolver) one(ctx context.Context, kind, v, machine string) (string, error) {
	if v == "" || isID(v) {
		return v, nil
	}
	id, err := r.lookup(ctx, kind, v, machine)
	var unknown *unknownError
	if r.org != "" && kind != "org" && errors.As(err, &unknown) {
		// The request's organization is not always the thing's (a
		// location shared with another organization names that one).
		org := r.org
		r.org = ""
		id, err = r.lookup(ctx, kind, v, machine)
		r.org = org
	}
	return id, err
}

func (r *resolver) lookup(ctx context.Context, kind, v, machine string) (string, error) {
	switch kind {
	case "org":
		return r.orgID(ctx, v)
	case "location":
		cands, err := r.locations(ctx)
		if err != nil {
			return "", err
		}
		return pick("location", v, cands)
	case "machine":
		return r.machineID(ctx, v)
	case "part":
		return r.partID(ctx, v, machine)
	case "fragment":
		return r.fragmentID(ctx, v)
	case "apikey":
		return r.apiKeyID(ctx, v)
	}
	return v, nil
}

// ref resolves "KIND/NAME" (a scope, a resource, an API key subject);
// kinds without names pass as they are.
func (r *resolver) ref(ctx context.Context, v string) (string, error) {
	kind, name, ok := strings.Cut(v, "/")
	sep := "/"
	if !ok && strings.HasPrefix(v, "apikey:") {
		kind, name, ok, sep = "apikey", strings.TrimPrefix(v, "apikey:"), true, ":"
	}
	if !ok || name == "" {
		return v, nil
	}
	switch kind {
	case "org", "location", "machine", "part", "fragment", "apikey":
	default:
		return v, nil
	}
	id, err := r.one(ctx, kind, name, "")
	if err != nil {
		return "", err
	}
	return kind + sep + id, nil
}

// resolveArg resolves one name or ID of kind, as resolve does a request's.
func (g *globals) resolveArg(ctx context.Context, c *api, kind, v string) (string, error) {
	return newResolver(c).one(ctx, kind, v, "")
}

// idFields are the request fields naming a thing by ID, and its kind.
var idFields = map[protoreflect.Name]string{
	"org_id": "org", "location_id": "location", "parent_location_id": "location", "new_parent_location_id": "location",
	"machine_id": "machine", "machine_ids": "machine", "part_id": "part", "part_ids": "part", "fragment_id": "fragment", "fragment_ids": "fragment", "key_id": "apikey",
}

// refFields are the request fields holding "KIND/ID".
var refFields = map[protoreflect.Name]bool{"scope": true, "resource": true, "limit_to": true, "subject": true}

// nestedFields are the message fields whose own ID fields resolve is to
// replace too: a fleet data query inside a request.
var nestedFields = map[protoreflect.Name]bool{"query": true}

// resolve replaces the names in m's ID fields by IDs: the organization
// first, as it narrows the rest, then locations and machines, then parts
// (a part's name may be within the request's machine), then those of its
// nested queries.
func (g *globals) resolve(ctx context.Context, c *api, m proto.Message) error {
	return newResolver(c).message(ctx, m.ProtoReflect())
}

func (r *resolver) message(ctx context.Context, msg protoreflect.Message) error {
	fields := msg.Descriptor().Fields()
	order := []string{"org", "location", "machine", "fragment", "apikey", "part", "ref"}
	for _, kind := range order {
		for i := range fields.Len() {
			fd := fields.Get(i)
			if fd.Kind() != protoreflect.StringKind {
				continue
			}
			k, isRef := idFields[fd.Name()], refFields[fd.Name()]
			if isRef {
				k = "ref"
			}
			if k != kind {
				continue
			}
			do := func(v string) (string, error) {
				if isRef {
					return r.ref(ctx, v)
				}
				machine := ""
				if mf := fields.ByName("machine_id"); mf != nil && mf.Kind() == protoreflect.StringKind && !mf.IsList() {
					machine = msg.Get(mf).String()
				}
				return r.one(ctx, kind, v, machine)
			}
			if fd.IsList() {
				l := msg.Mutable(fd).List()
				for j := range l.Len() {
					id, err := do(l.Get(j).String())
					if err != nil {
						return err
					}
					l.Set(j, protoreflect.ValueOfString(id))
				}
				continue
			}
			id, err := do(msg.Get(fd).String())
			if err != nil {
				return err
			}
			if id != "" {
				msg.Set(fd, protoreflect.ValueOfString(id))
			}
			if kind == "org" && fd.Name() == "org_id" {
				r.org = id
			}
		}
	}
	for i := range fields.Len() {
		fd := fields.Get(i)
		if nestedFields[fd.Name()] && fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() && msg.Has(fd) {
			if err := r.message(ctx, msg.Mutable(fd).Message()); err != nil {
				return err
			}
		}
	}
	return nil
}
