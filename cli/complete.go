package cli

import (
	"context"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

// placeholderKinds maps the placeholder of a command's first argument, and
// the flags naming a thing, to the kind the resolver looks up.
var (
	placeholderKinds = map[string]string{"ORG_ID": "org", "LOCATION_ID": "location", "MACHINE_ID": "machine",
		"PART_ID": "part", "FRAGMENT_ID": "fragment", "KEY_ID": "apikey"}
	flagKinds = map[string]string{"org": "org", "location": "location", "parent": "location", "machine": "machine",
		"fragment": "fragment"}
)

// registerCompletion gives every fleet command that takes an ID, as its
// first argument or in a flag, shell completion of the names (and IDs) the
// caller may see. `outpost robot` talks to a part, not the cloud: its
// arguments are not the cloud's.
func registerCompletion(g *globals, cmd *cobra.Command) {
	if cmd.Name() == "robot" {
		return
	}
	if f := strings.Fields(cmd.Use); len(f) > 1 && cmd.ValidArgsFunction == nil {
		if kind, ok := placeholderKinds[f[1]]; ok {
			cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
				if len(args) > 0 {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				return g.completeNames(cmd.Context(), kind), cobra.ShellCompDirectiveNoFileComp
			}
		}
	}
	for name, kind := range flagKinds {
		if cmd.LocalNonPersistentFlags().Lookup(name) == nil {
			continue
		}
		if _, ok := cmd.GetFlagCompletionFunc(name); ok {
			continue
		}
		_ = cmd.RegisterFlagCompletionFunc(name, func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
			return g.completeNames(cmd.Context(), kind), cobra.ShellCompDirectiveNoFileComp
		})
	}
	for _, sub := range cmd.Commands() {
		registerCompletion(g, sub)
	}
}

// completeNames lists what the caller may name of kind, each as its name
// when no other shares it, else its path, else its ID, described by its ID
// and path. It is quietly empty without a credential or when the cloud does
// not answer: completion must never print an error into a command line.
func (g *globals) completeNames(ctx context.Context, kind string) []string {
	if ctx == nil {
		ctx = context.Background()
	}
	if key, err := g.credentialKey(); key == nil || err != nil {
		return nil
	}
	c, err := g.client()
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r := newResolver(c)
	var cands []candidate
	switch kind {
	case "org":
		orgs, err := r.allOrgs(ctx)
		if err != nil {
			return nil
		}
		for _, o := range orgs {
			cands = append(cands, candidate{id: o.GetId(), name: o.GetName(), path: o.GetName()})
		}
	case "location":
		cands, err = r.locations(ctx)
	case "machine", "part":
		cands, err = r.inOrgs(ctx, "completion of "+kind, func(org string) ([]candidate, error) {
			res, err := c.ListFleet(ctx, connect.NewRequest(&fleetv1.ListFleetRequest{OrgId: org, PageSize: maxListLimit}))
			if err != nil {
				return nil, err
			}
			var out []candidate
			for _, m := range res.Msg.GetMachines() {
				mc := candidate{id: m.GetMachine().GetId(), name: m.GetMachine().GetName(), path: m.GetLocationPath() + "/" + m.GetMachine().GetName()}
				if kind == "machine" {
					out = append(out, mc)
					continue
				}
				for _, p := range m.GetMachine().GetParts() {
					out = append(out, candidate{id: p.GetId(), name: mc.name + "/" + p.GetName(), path: mc.path + "/" + p.GetName()})
				}
			}
			return out, nil
		})
	case "fragment":
		cands, err = r.inOrgs(ctx, kind, r.fragmentsOf(ctx))
	case "apikey":
		cands, err = r.inOrgs(ctx, kind, r.apiKeysOf(ctx))
	}
	if err != nil {
		return nil
	}
	names, paths, full := map[string]int{}, map[string]int{}, map[string]int{}
	seen := map[string]bool{}
	var uniq []candidate
	for _, c := range cands {
		if seen[c.id] {
			continue
		}
		seen[c.id] = true
		uniq = append(uniq, c)
		names[c.name]++
		paths[c.path]++
		full[c.org+"/"+c.path]++
	}
	var out []string
	for _, c := range uniq {
		v := c.id
		switch {
		case names[c.name] == 1:
			v = c.name
		case paths[c.path] == 1:
			v = c.path
		case c.org != "" && full[c.org+"/"+c.path] == 1:
			v = c.org + "/" + c.path
		}
		out = append(out, printable(v)+"\t"+printable(c.id+" "+c.where()))
	}
	slices.Sort(out)
	return out
}
