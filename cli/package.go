package cli

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/pkgupload"
)

// parsePackageArg reads an "ORG_ID/NAME" argument.
func parsePackageArg(arg string) (org, name string, err error) {
	org, name, err = config.ParsePackage(arg)
	if err != nil {
		return "", "", fmt.Errorf("package %v", err)
	}
	return org, name, nil
}

// mibU says a size in bytes, KiB or MiB, whichever reads best.
func mibU(n uint64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func packageTable(w io.Writer, ps ...*fleetv1.Package) error {
	var rows [][]string
	for _, p := range ps {
		var tags []string
		for _, t := range sortedKeys(p.GetTags()) {
			tags = append(tags, t+"="+p.GetTags()[t])
		}
		rows = append(rows, []string{p.GetOrgId() + "/" + p.GetName(), p.GetType(), orDash(p.GetLatestVersion()), orDash(strings.Join(tags, ",")),
			fmt.Sprint(p.GetVersionCount()), when(p.GetUpdatedAt())})
	}
	return table(w, []string{"PACKAGE", "TYPE", "LATEST", "TAGS", "VERSIONS", "UPDATED"}, rows)
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func versionTable(w io.Writer, vs ...*fleetv1.PackageVersion) error {
	var rows [][]string
	for _, v := range vs {
		rows = append(rows, []string{v.GetVersion(), v.GetPlatform(), mibU(v.GetSize()), fmt.Sprint(v.GetChunkCount()),
			orDash(strings.Join(v.GetTags(), ",")), orDash(v.GetCreatedBy()), when(v.GetCreatedAt())})
	}
	return table(w, []string{"VERSION", "PLATFORM", "SIZE", "CHUNKS", "TAGS", "UPLOADED BY", "UPLOADED"}, rows)
}

// terminal is w when it is a terminal, for progress bars; nil otherwise.
func terminal(w io.Writer) io.Writer {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return f
	}
	return nil
}

func newPackageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "package", Short: "Ship modules, ML models, processes and files to the fleet through the organization's registry"}

	var version, typ, platform, org string
	upload := &cobra.Command{
		Use:   "upload ORG_ID/NAME --version V --type module|ml_model|process|file [--platform linux/arm64] PATH",
		Short: "Upload a file or directory as a package version",
		Long: "Upload a file or a directory as one version of a package, for one platform (upload again with another --platform for " +
			"each build). Only the chunks the cloud lacks are sent, so a rerun after a cut resumes and a version that shares " +
			"most bytes with an earlier one sends only the difference. A progress bar goes to stderr on a terminal.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, name, err := parsePackageArg(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			bar := &progress{w: terminal(cmd.ErrOrStderr()), unit: "bytes"}
			res, err := pkgupload.Upload(cmd.Context(), c.PackageServiceClient, pkgupload.Request{
				OrgID: o, Name: name, Version: version, Type: typ, Platform: platform, Path: args[1],
				Progress: func(done, total uint64) {
					bar.done, bar.total, bar.bytes = int(done>>10), int(total>>10), int64(done)
					bar.draw()
				},
			})
			if res.Uploaded > 0 {
				bar.finish()
			}
			if err != nil {
				return err
			}
			v := res.Version
			return g.output(cmd.OutOrStdout(), v, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "uploaded %s/%s %s for %s: %s in %d chunks, %d sent (%s)\nsha256 %x\n",
					o, name, v.GetVersion(), v.GetPlatform(), mibU(v.GetSize()), res.Chunks, res.Uploaded, mibU(res.UploadedBytes), v.GetSha256())
				return err
			})
		},
	}
	upload.Flags().StringVar(&version, "version", "", "the version: MAJOR.MINOR.PATCH[-PRE]")
	upload.Flags().StringVar(&typ, "type", "", "module, ml_model, process or file")
	upload.Flags().StringVar(&platform, "platform", "any", "GOOS/GOARCH the content runs on (linux/arm64, linux/amd64), or any")
	mustRequire(upload, "version", "type")

	list := &cobra.Command{
		Use: "list --org ORG_ID", Short: "List an organization's packages", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(g, cmd, (*api).ListPackages, &fleetv1.ListPackagesRequest{OrgId: org},
				func(w io.Writer, res *fleetv1.ListPackagesResponse) error {
					return packageTable(w, res.GetPackages()...)
				})
		},
	}
	list.Flags().StringVar(&org, "org", "", "organization ID")
	mustRequire(list, "org")

	versions := &cobra.Command{
		Use: "versions ORG_ID/NAME", Short: "List a package's versions, newest first", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, name, err := parsePackageArg(args[0])
			if err != nil {
				return err
			}
			return call(g, cmd, (*api).ListVersions, &fleetv1.ListVersionsRequest{OrgId: o, Name: name},
				func(w io.Writer, res *fleetv1.ListVersionsResponse) error {
					return versionTable(w, res.GetVersions()...)
				})
		},
	}

	tag := &cobra.Command{
		Use: "tag ORG_ID/NAME VERSION TAG", Short: "Point a tag at a version; machines following tag:TAG move to it", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, name, err := parsePackageArg(args[0])
			if err != nil {
				return err
			}
			return call(g, cmd, (*api).TagVersion, &fleetv1.TagVersionRequest{OrgId: o, Name: name, Version: args[1], Tag: args[2]},
				func(w io.Writer, res *fleetv1.TagVersionResponse) error {
					from := ""
					if p := res.GetPreviousVersion(); p != "" {
						from = " (was " + p + ")"
					}
					_, err := fmt.Fprintf(w, "tag %s of %s/%s: %s%s; machines following tag:%s get it at their next sync\n", args[2], o, name, args[1], from, args[2])
					return err
				})
		},
	}

	var delVersion, delPlatform string
	del := &cobra.Command{
		Use: "delete ORG_ID/NAME [--version V [--platform P]]", Short: "Delete a package, or one of its versions, that no machine pins", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, name, err := parsePackageArg(args[0])
			if err != nil {
				return err
			}
			if delVersion == "" {
				if delPlatform != "" {
					return fmt.Errorf("--platform needs --version")
				}
				return call(g, cmd, (*api).DeletePackage, &fleetv1.DeletePackageRequest{OrgId: o, Name: name},
					func(w io.Writer, _ *fleetv1.DeletePackageResponse) error {
						_, err := fmt.Fprintf(w, "deleted package %s/%s and its versions\n", o, name)
						return err
					})
			}
			return call(g, cmd, (*api).DeleteVersion, &fleetv1.DeleteVersionRequest{OrgId: o, Name: name, Version: delVersion, Platform: delPlatform},
				func(w io.Writer, _ *fleetv1.DeleteVersionResponse) error {
					_, err := fmt.Fprintf(w, "deleted %s/%s %s%s\n", o, name, delVersion, forPlatform(delPlatform))
					return err
				})
		},
	}
	del.Flags().StringVar(&delVersion, "version", "", "delete only this version")
	del.Flags().StringVar(&delPlatform, "platform", "", "delete only this platform's build of --version")

	status := &cobra.Command{
		Use: "status ORG_ID/NAME", Short: "Show a package's rollout: per part, what it runs and was issued, and the fleet's sum", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, name, err := parsePackageArg(args[0])
			if err != nil {
				return err
			}
			return call(g, cmd, (*api).GetRolloutStatus, &fleetv1.GetRolloutStatusRequest{OrgId: o, Name: name},
				func(w io.Writer, res *fleetv1.GetRolloutStatusResponse) error { return rolloutTable(w, res) })
		},
	}
	cmd.AddCommand(upload, list, versions, tag, del, status)
	return cmd
}

func forPlatform(p string) string {
	if p == "" {
		return ""
	}
	return " for " + p
}

// rolloutTable prints one row per part and then the fleet's sum.
func rolloutTable(w io.Writer, res *fleetv1.GetRolloutStatusResponse) error {
	var rows [][]string
	for _, p := range res.GetParts() {
		st := p.GetStatus()
		prog := "-"
		if st.GetBytesTotal() > 0 {
			prog = fmt.Sprintf("%d%%", st.GetBytesDone()*100/st.GetBytesTotal())
		}
		problem := st.GetError()
		if st.GetRolledBackFrom() != "" {
			problem = strings.TrimSpace("rolled back from " + st.GetRolledBackFrom() + ": " + problem)
		}
		if p.GetProblem() != "" {
			problem = p.GetProblem()
		}
		rows = append(rows, []string{p.GetMachineName() + "/" + p.GetPartName(), orDash(p.GetPlatform()), orDash(st.GetRunningVersion()),
			orDash(p.GetIssuedVersion()), orDash(st.GetState()), prog, orDash(problem)})
	}
	if err := table(w, []string{"PART", "PLATFORM", "RUNNING", "ISSUED", "STATE", "PROGRESS", "PROBLEM"}, rows); err != nil {
		return err
	}
	// A part whose config names the package twice has a row for each.
	seen := map[string]bool{}
	for _, p := range res.GetParts() {
		seen[p.GetPartId()] = true
	}
	total := len(seen)
	sum := func(what string, cs []*fleetv1.PackageVersionCount) string {
		var parts []string
		for _, c := range cs {
			parts = append(parts, fmt.Sprintf("%s on %d", orValue(c.GetVersion(), "none"), c.GetParts()))
		}
		return fmt.Sprintf("%s: %s", what, orValue(strings.Join(parts, ", "), "-"))
	}
	_, err := fmt.Fprintf(w, "%d parts; %s; %s\n", total, sum("running", res.GetRunning()), sum("issued", res.GetIssued()))
	return err
}

func orValue(s, v string) string {
	if s == "" {
		return v
	}
	return s
}
